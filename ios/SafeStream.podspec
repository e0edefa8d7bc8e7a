# The SafeStream agent for iOS apps through CocoaPods (the Swift package's contents):
#   pod 'SafeStream', :path => '../path/to/ios'
# Build ios/SafeStreamFFI.xcframework first with scripts/build-ios.sh (macOS, Xcode).
Pod::Spec.new do |s|
  s.name         = 'SafeStream'
  s.version      = '0.1.0'
  s.summary      = 'SafeStream agent: remote commands from the parent dashboard, run by the child app.'
  s.homepage     = 'https://github.com/safestream/safestream-realtime'
  s.license      = { :type => 'Apache-2.0' }
  s.author       = 'SafeStream'
  s.source       = { :git => 'https://github.com/safestream/safestream-realtime.git', :tag => "v#{s.version}" }
  s.platform     = :ios, '13.0'
  s.swift_version = '5.9'
  s.source_files = 'Sources/SafeStream/**/*.swift'
  s.vendored_frameworks = 'SafeStreamFFI.xcframework'
  s.frameworks   = 'Security', 'SystemConfiguration'
end
