// Lets `gradle :assembleRelease` build this library on its own (inside an app, the app's
// settings include it instead).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "safestream-agent"
