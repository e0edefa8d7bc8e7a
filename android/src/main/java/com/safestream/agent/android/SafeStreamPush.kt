package com.safestream.agent.android

import android.util.Log
import com.safestream.agent.Agent
import com.safestream.agent.SafeStreamException
import com.safestream.agent.SyncReport
import kotlinx.coroutines.runBlocking

/**
 * Glue between the app's `FirebaseMessagingService` and the agent. The relay wakes a phone
 * whose app sleeps with a high-priority FCM data message `{"safestream": "sync"}` carrying no
 * command; the app then pulls its commands over HTTPS:
 *
 * ```kotlin
 * class PushService : FirebaseMessagingService() {
 *     override fun onMessageReceived(message: RemoteMessage) {
 *         SafeStreamPush.onMessageReceived(App.agent, message.data)
 *     }
 *     override fun onNewToken(token: String) {
 *         SafeStreamPush.onNewToken(App.agent, token)
 *     }
 * }
 * ```
 *
 * Both calls block the calling thread, which is what FCM expects: it calls them on a
 * background thread and may stop the process soon after `onMessageReceived` returns (about
 * 10 s for a high-priority message; hence [DEFAULT_BUDGET_MS]).
 */
object SafeStreamPush {
    /** The data key of SafeStream's wake-up message. */
    const val DATA_KEY = "safestream"

    /** Its value. */
    const val SYNC = "sync"

    /** The time a sync may take in `onMessageReceived`, acks included. */
    const val DEFAULT_BUDGET_MS = 8_000L

    private const val TAG = "SafeStream"

    /** Whether an FCM message's data is SafeStream's wake-up (other messages are the app's). */
    @JvmStatic
    fun isWakeUp(data: Map<String, String>): Boolean = data[DATA_KEY] == SYNC

    /**
     * Handles an FCM message: for SafeStream's wake-up, pulls and runs the pending commands
     * within [budgetMs] (even while the socket looks open: it may be suspended; a sync already
     * running is joined, not repeated). Returns what it did, or `null` for another message or a failed sync (logged; the
     * commands arrive on the next connection).
     */
    @JvmStatic
    @JvmOverloads
    fun onMessageReceived(
        agent: Agent,
        data: Map<String, String>,
        budgetMs: Long = DEFAULT_BUDGET_MS,
    ): SyncReport? {
        if (!isWakeUp(data)) return null
        return try {
            runBlocking { agent.syncNowWithin(budgetMs.coerceAtLeast(0L).toULong()) }
        } catch (e: SafeStreamException) {
            Log.println(Log.WARN, TAG, "sync after a push failed: ${e.message}")
            null
        }
    }

    /**
     * Registers a new FCM registration token with the relay. Returns whether the relay has it
     * now; when not, the agent keeps it and sends it again at its next start or sync.
     */
    @JvmStatic
    fun onNewToken(agent: Agent, token: String): Boolean =
        try {
            runBlocking { agent.registerPushToken("fcm", token, null) }
            true
        } catch (e: SafeStreamException) {
            Log.println(Log.WARN, TAG, "push token not registered yet: ${e.message}")
            false
        }
}
