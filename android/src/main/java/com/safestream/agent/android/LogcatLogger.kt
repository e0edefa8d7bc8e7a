package com.safestream.agent.android

import android.util.Log
import com.safestream.agent.LogLevel
import com.safestream.agent.Logger

/**
 * Sends the agent's Rust log lines to Logcat under [tag] (`adb logcat -s SafeStream`).
 * Install it once per process: `setLogger(LogcatLogger(), LogLevel.INFO)`.
 */
class LogcatLogger(private val tag: String = "SafeStream") : Logger {
    override fun onLog(level: LogLevel, target: String, message: String) {
        val priority = when (level) {
            LogLevel.ERROR -> Log.ERROR
            LogLevel.WARN -> Log.WARN
            LogLevel.INFO -> Log.INFO
            LogLevel.DEBUG -> Log.DEBUG
            LogLevel.TRACE -> Log.VERBOSE
        }
        Log.println(priority, tag, "$target: $message")
    }
}
