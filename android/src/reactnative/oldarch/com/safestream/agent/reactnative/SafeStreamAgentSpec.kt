package com.safestream.agent.reactnative

import com.facebook.react.bridge.Promise
import com.facebook.react.bridge.ReactApplicationContext
import com.facebook.react.bridge.ReactContextBaseJavaModule
import com.facebook.react.bridge.ReadableMap

/**
 * The old bridge's base of [SafeStreamAgentModule]: the same methods as the codegen spec
 * `NativeSafeStreamAgentSpec` that the New Architecture build generates from
 * `src/NativeSafeStreamAgent.ts` (see `../newarch`). Compiled when `newArchEnabled` is false.
 */
abstract class SafeStreamAgentSpec(ctx: ReactApplicationContext) : ReactContextBaseJavaModule(ctx) {
    companion object {
        /** The module's name in JavaScript. */
        const val NAME = "SafeStreamAgent"
    }

    override fun getName() = NAME

    abstract fun start(config: ReadableMap, promise: Promise)
    abstract fun stop(promise: Promise)
    abstract fun getState(promise: Promise)
    abstract fun completeCommand(id: String, status: String, error: String?, promise: Promise)
    abstract fun pair(deviceName: String, promise: Promise)
    abstract fun waitForPairing(promise: Promise)
    abstract fun reportStatus(activeViewing: Boolean, currentVideoJson: String?)
    abstract fun reportRestrictedAttempt(attempt: ReadableMap, promise: Promise)
    abstract fun reportScreenTime(minutesUsed: Double, promise: Promise)
    abstract fun waitForReports(timeoutMs: Double, promise: Promise)
    abstract fun syncNow(promise: Promise)
    abstract fun handlePush(budgetMs: Double, promise: Promise)
    abstract fun registerPushToken(provider: String, token: String, apnsEnvironment: String?, promise: Promise)
    abstract fun setToken(token: String, promise: Promise)
    abstract fun clearToken(promise: Promise)
    abstract fun setBackground(background: Boolean)
    abstract fun networkAvailable()
    abstract fun addListener(eventName: String)
    abstract fun removeListeners(count: Double)
}
