// swift-tools-version:5.9
// The SafeStream agent for iOS apps as a Swift package: the uniffi-generated Swift
// (Sources/SafeStream/SafeStream.swift), the os_log logger and the Keychain token store,
// over the Rust library in SafeStreamFFI.xcframework (built by scripts/build-ios.sh on
// macOS; not committed). Add it to an app as a local package (File > Add Packages... >
// Add Local..., this `ios/` folder).
import PackageDescription

let package = Package(
    name: "SafeStream",
    platforms: [.iOS(.v13)],
    products: [
        .library(name: "SafeStream", targets: ["SafeStream"]),
    ],
    targets: [
        // Headers + module map + libsafestream_ffi.a for device and simulator.
        .binaryTarget(name: "SafeStreamFFI", path: "SafeStreamFFI.xcframework"),
        .target(
            name: "SafeStream",
            dependencies: ["SafeStreamFFI"],
            path: "Sources/SafeStream",
            linkerSettings: [.linkedFramework("Security"), .linkedFramework("SystemConfiguration")]
        ),
    ]
)
