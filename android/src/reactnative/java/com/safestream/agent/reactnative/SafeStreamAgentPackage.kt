package com.safestream.agent.reactnative

import com.facebook.react.BaseReactPackage
import com.facebook.react.bridge.NativeModule
import com.facebook.react.bridge.ReactApplicationContext
import com.facebook.react.module.model.ReactModuleInfo
import com.facebook.react.module.model.ReactModuleInfoProvider
import com.facebook.react.turbomodule.core.interfaces.TurboModule

/**
 * Registers [SafeStreamAgentModule] (found by React Native autolinking). A
 * `BaseReactPackage` (React Native 0.74+) serves both architectures: the module is a
 * TurboModule when built with `newArchEnabled=true`, a bridge module otherwise.
 */
class SafeStreamAgentPackage : BaseReactPackage() {
    override fun getModule(name: String, reactContext: ReactApplicationContext): NativeModule? =
        if (name == SafeStreamAgentSpec.NAME) SafeStreamAgentModule(reactContext) else null

    override fun getReactModuleInfoProvider() = ReactModuleInfoProvider {
        val name = SafeStreamAgentSpec.NAME
        // The 7-argument constructor (with `hasConstants`) is the one every version from 0.74
        // has; the 6-argument one is newer.
        @Suppress("DEPRECATION")
        val info = ReactModuleInfo(
            name,
            SafeStreamAgentModule::class.java.name,
            false, // canOverrideExistingModule
            false, // needsEagerInit
            false, // hasConstants
            false, // isCxxModule
            TurboModule::class.java.isAssignableFrom(SafeStreamAgentModule::class.java),
        )
        mapOf(name to info)
    }
}
