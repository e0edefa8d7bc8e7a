// The SafeStream agent for Android: the uniffi-generated Kotlin (src/main/java/com/safestream/
// agent/safestream.kt), Android helpers (Logcat logger, Keystore-backed token store) and the
// Rust library for arm64-v8a, armeabi-v7a and x86_64 in src/main/jniLibs/ (built by
// scripts/build-android.sh with cargo-ndk; not committed).
//
// When the library is used from a React Native app (autolinking finds this file through the
// package's root package.json), the React Native module in src/reactnative/ is compiled too.
// Set the Gradle property `safestream.reactNative=false|true` to override the detection.
plugins {
    id("com.android.library") version "8.7.3"
    id("org.jetbrains.kotlin.android") version "2.1.0"
}

val withReactNative: Boolean =
    (findProperty("safestream.reactNative") as String?)?.toBoolean()
        ?: (rootProject.findProject(":app") != null &&
            file("${rootProject.projectDir}/../node_modules/react-native/package.json").exists())

// The app's `newArchEnabled` (gradle.properties): the module is then a TurboModule built on
// the codegen spec (src/reactnative/newarch), else a bridge module (src/reactnative/oldarch).
val newArch: Boolean = (findProperty("newArchEnabled") as String?)?.toBoolean() ?: false

// React Native's Gradle plugin runs codegen on package.json `codegenConfig` (the app's
// build script has it on the classpath).
if (withReactNative && newArch) apply(plugin = "com.facebook.react")

android {
    namespace = "com.safestream.agent"
    compileSdk = 35

    defaultConfig {
        minSdk = 23 // Android Keystore AES-GCM keys; the Rust library targets API 21+
        consumerProguardFiles("consumer-rules.pro")
    }

    sourceSets["main"].apply {
        jniLibs.srcDirs("src/main/jniLibs")
        if (withReactNative) {
            java.srcDir("src/reactnative/java")
            java.srcDir(if (newArch) "src/reactnative/newarch" else "src/reactnative/oldarch")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    // uniffi's generated Kotlin calls the Rust library through JNA (the Android AAR ships
    // libjnidispatch.so for every ABI).
    implementation("net.java.dev.jna:jna:5.14.0@aar")
    // Async methods (pair, syncNow, ...) are suspend functions.
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
    if (withReactNative) {
        // The version comes from the app's React Native Gradle plugin.
        implementation("com.facebook.react:react-android")
    }
}
