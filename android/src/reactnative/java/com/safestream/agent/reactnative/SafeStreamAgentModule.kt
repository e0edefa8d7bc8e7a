package com.safestream.agent.reactnative

import com.facebook.react.bridge.Arguments
import com.facebook.react.bridge.Promise
import com.facebook.react.bridge.ReactApplicationContext
import com.facebook.react.bridge.ReactMethod
import com.facebook.react.bridge.ReadableMap
import com.facebook.react.bridge.WritableMap
import com.facebook.react.modules.core.DeviceEventManagerModule
import com.safestream.agent.AckResult
import com.safestream.agent.AckStatus
import com.safestream.agent.Agent
import com.safestream.agent.AgentConfig
import com.safestream.agent.Command
import com.safestream.agent.CommandOutcome
import com.safestream.agent.CommandRunner
import com.safestream.agent.ConnectionState
import com.safestream.agent.LogLevel
import com.safestream.agent.RestrictedAttempt
import com.safestream.agent.SafeStreamException
import com.safestream.agent.StateObserver
import com.safestream.agent.android.KeystoreSecureStore
import com.safestream.agent.android.LogcatLogger
import com.safestream.agent.setLogger
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.launch

/**
 * The React Native module `SafeStreamAgent` (TypeScript API in the package's `src/`): a
 * TurboModule implementing the codegen spec `src/NativeSafeStreamAgent.ts` on the New
 * Architecture, a bridge module on the old one (the base [SafeStreamAgentSpec] comes from
 * `src/reactnative/newarch` or `src/reactnative/oldarch`).
 *
 * Commands go to JavaScript as `SafeStreamCommand` events; JavaScript answers with
 * [completeCommand] (a promise), which calls `Agent.completeCommand` from the bridge's
 * thread. State changes are `SafeStreamState` events, ack results `SafeStreamAck` events.
 * Errors reject with the `SafeStreamException` subclass name as the code (`Config`,
 * `Unauthorized`, `UnknownCommand`, ...).
 */
class SafeStreamAgentModule(private val ctx: ReactApplicationContext) : SafeStreamAgentSpec(ctx) {
    private val scope = CoroutineScope(SupervisorJob() + Dispatchers.Default)
    @Volatile private var agent: Agent? = null

    private fun emit(event: String, body: WritableMap) {
        if (ctx.hasActiveReactInstance()) {
            ctx.getJSModule(DeviceEventManagerModule.RCTDeviceEventEmitter::class.java).emit(event, body)
        }
    }

    private fun stateName(s: ConnectionState) = when (s) {
        ConnectionState.STOPPED -> "stopped"
        ConnectionState.NOT_PAIRED -> "not_paired"
        ConnectionState.CONNECTING -> "connecting"
        ConnectionState.CONNECTED -> "connected"
        ConnectionState.DISCONNECTED -> "disconnected"
        ConnectionState.UNAUTHORIZED -> "unauthorized"
    }

    private val runner = object : CommandRunner {
        override fun onCommand(command: Command) {
            emit("SafeStreamCommand", Arguments.createMap().apply {
                putString("id", command.id)
                putString("type", command.commandTypeName)
                putString("payloadJson", command.payloadJson)
                putString("expiresAt", command.expiresAt)
                putString("createdAt", command.createdAt)
            })
        }
    }

    private val observer = object : StateObserver {
        override fun onStateChanged(state: ConnectionState) {
            emit("SafeStreamState", Arguments.createMap().apply { putString("state", stateName(state)) })
        }

        override fun onAckFinished(commandId: String, status: AckStatus, result: AckResult) {
            emit("SafeStreamAck", Arguments.createMap().apply {
                putString("id", commandId)
                putString("status", status.name)
                putBoolean("confirmed", result is AckResult.Confirmed)
            })
        }
    }

    private fun reject(promise: Promise, e: Throwable) {
        val code = if (e is SafeStreamException) e.javaClass.simpleName else "Internal"
        promise.reject(code, e.message ?: code, e)
    }

    private fun withAgent(promise: Promise, block: (Agent) -> Unit) {
        val a = agent ?: return promise.reject("Stopped", "call start() first")
        try {
            block(a)
        } catch (e: Throwable) {
            reject(promise, e)
        }
    }

    private fun launch(promise: Promise, block: suspend (Agent) -> Any?) {
        val a = agent ?: return promise.reject("Stopped", "call start() first")
        scope.launch {
            try {
                promise.resolve(block(a))
            } catch (e: Throwable) {
                reject(promise, e)
            }
        }
    }

    private fun ReadableMap.str(key: String) = if (hasKey(key) && !isNull(key)) getString(key) else null
    private fun ReadableMap.int(key: String) = if (hasKey(key) && !isNull(key)) getDouble(key).toLong() else null

    /** Starts the agent (once per process); resolves with the first state. */
    @ReactMethod
    override fun start(config: ReadableMap, promise: Promise) {
        try {
            agent?.let { return promise.resolve(stateName(it.state())) }
            val level = when (config.str("logLevel")) {
                "error" -> LogLevel.ERROR
                "warn" -> LogLevel.WARN
                "debug" -> LogLevel.DEBUG
                "trace" -> LogLevel.TRACE
                else -> LogLevel.INFO
            }
            setLogger(LogcatLogger(), level)
            val cfg = AgentConfig(
                relayUrl = config.str("relayUrl") ?: return promise.reject("Config", "relayUrl is required"),
                stateDir = ctx.filesDir.resolve("safestream").path,
                apiUrl = config.str("apiUrl"),
                heartbeatSecs = config.int("heartbeatSecs")?.toUInt(),
                backgroundHeartbeatSecs = (config.int("backgroundHeartbeatSecs") ?: 300L).toUInt(),
                extraCaPem = config.str("extraCaPem"),
                commandTimeoutSecs = (config.int("commandTimeoutSecs") ?: 120L).toULong(),
            )
            val a = Agent.start(cfg, runner, KeystoreSecureStore(ctx), observer)
            agent = a
            promise.resolve(stateName(a.state()))
        } catch (e: Throwable) {
            reject(promise, e)
        }
    }

    /** Stops the agent and waits for it; a later start() makes a new one. */
    @ReactMethod
    override fun stop(promise: Promise) {
        val a = agent ?: return promise.resolve(null)
        agent = null
        scope.launch {
            try { a.shutdown() } catch (_: Throwable) {}
            a.close()
            promise.resolve(null)
        }
    }

    /** The current state name. */
    @ReactMethod
    override fun getState(promise: Promise) {
        promise.resolve(agent?.let { stateName(it.state()) } ?: "stopped")
    }

    /** Finishes a command: `status` is `EXECUTED` or `FAILED` (with `error`). */
    @ReactMethod
    override fun completeCommand(id: String, status: String, error: String?, promise: Promise) = withAgent(promise) {
        val outcome = if (status == "EXECUTED") CommandOutcome.Executed else CommandOutcome.Failed(error ?: "failed")
        it.completeCommand(id, outcome)
        promise.resolve(null)
    }

    @ReactMethod
    override fun pair(deviceName: String, promise: Promise) = launch(promise) {
        val code = it.pair(deviceName)
        Arguments.createMap().apply {
            putString("pairingId", code.pairingId)
            putString("code", code.code)
            putString("expiresAt", code.expiresAt)
        }
    }

    @ReactMethod
    override fun waitForPairing(promise: Promise) = launch(promise) {
        val d = it.waitForPairing()
        Arguments.createMap().apply {
            putString("deviceId", d.deviceId)
            putString("childId", d.childId)
        }
    }

    @ReactMethod
    override fun reportStatus(activeViewing: Boolean, currentVideoJson: String?) {
        agent?.reportStatus(activeViewing, currentVideoJson)
    }

    @ReactMethod
    override fun reportRestrictedAttempt(attempt: ReadableMap, promise: Promise) = launch(promise) {
        it.reportRestrictedAttempt(
            RestrictedAttempt(
                url = attempt.str("url"),
                title = attempt.str("title"),
                reason = attempt.str("reason"),
                metadataJson = attempt.str("metadataJson"),
            )
        )
        null
    }

    /** Minutes used today; queued durably by the agent (a file write, off the JS thread). */
    @ReactMethod
    override fun reportScreenTime(minutesUsed: Double, promise: Promise) {
        if (minutesUsed < 0 || minutesUsed > 1440 || minutesUsed != Math.floor(minutesUsed)) {
            return promise.reject("Config", "minutesUsed must be a whole number from 0 to 1440")
        }
        launch(promise) {
            it.reportScreenTime(minutesUsed.toInt().toUInt())
            null
        }
    }

    /** Resolves whether every queued report was answered by the relay within `timeoutMs`. */
    @ReactMethod
    override fun waitForReports(timeoutMs: Double, promise: Promise) = launch(promise) {
        it.waitForReports(timeoutMs.coerceAtLeast(0.0).toLong().toULong())
    }

    @ReactMethod
    override fun syncNow(promise: Promise) = launch(promise) { it.syncNow().toInt() }

    @ReactMethod
    override fun handlePush(budgetMs: Double, promise: Promise) = launch(promise) {
        val r = it.syncNowWithin(budgetMs.coerceAtLeast(0.0).toLong().toULong())
        Arguments.createMap().apply {
            putInt("ran", r.ran.toInt())
            putBoolean("pulled", r.pulled)
            putBoolean("acksDone", r.acksDone)
        }
    }

    @ReactMethod
    override fun registerPushToken(
        provider: String,
        token: String,
        apnsEnvironment: String?,
        promise: Promise,
    ) = launch(promise) {
        it.registerPushToken(provider, token, apnsEnvironment)
        null
    }

    @ReactMethod
    override fun setToken(token: String, promise: Promise) = withAgent(promise) {
        it.setToken(token)
        promise.resolve(null)
    }

    @ReactMethod
    override fun clearToken(promise: Promise) = withAgent(promise) {
        it.clearToken()
        promise.resolve(null)
    }

    @ReactMethod
    override fun setBackground(background: Boolean) {
        agent?.setBackground(background)
    }

    @ReactMethod
    override fun networkAvailable() {
        agent?.networkAvailable()
    }

    // Required by NativeEventEmitter.
    @ReactMethod
    override fun addListener(eventName: String) {}

    @ReactMethod
    override fun removeListeners(count: Double) {}

    override fun invalidate() {
        agent?.stop()
        scope.cancel()
        super.invalidate()
    }
}
