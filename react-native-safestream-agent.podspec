# The React Native module for iOS (found by autolinking / `pod install`). It compiles the
# agent's Swift (ios/Sources/SafeStream) together with the RN bridge (ios/RNSafeStreamAgent)
# and links the Rust library from ios/SafeStreamFFI.xcframework (scripts/build-ios.sh).
# With the New Architecture (RCT_NEW_ARCH_ENABLED), React Native's
# `install_modules_dependencies` (0.71+) adds the codegen and TurboModule dependencies and
# SafeStreamAgentTurboModule.mm makes the module a TurboModule.
require "json"
package = JSON.parse(File.read(File.join(__dir__, "package.json")))

Pod::Spec.new do |s|
  s.name         = "react-native-safestream-agent"
  s.version      = package["version"]
  s.summary      = package["description"]
  s.license      = package["license"]
  s.homepage     = "https://github.com/safestream/safestream-realtime"
  s.author       = "SafeStream"
  s.source       = { :git => "https://github.com/safestream/safestream-realtime.git", :tag => "v#{s.version}" }
  s.platform     = :ios, "13.0"
  s.swift_version = "5.9"
  s.source_files = "ios/Sources/SafeStream/**/*.swift", "ios/RNSafeStreamAgent/**/*.{swift,m,mm}"
  s.vendored_frameworks = "ios/SafeStreamFFI.xcframework"
  s.frameworks   = "Security", "SystemConfiguration"
  if respond_to?(:install_modules_dependencies, true)
    install_modules_dependencies(s)
  else
    s.dependency "React-Core"
  end
end
