import Foundation
import os

/// Glue between the app delegate's remote-notification callback and the agent. The relay
/// wakes a phone whose app is suspended with a background push (`content-available: 1`,
/// `apns-push-type: background`, `apns-priority: 5`) whose payload carries
/// `"safestream": "sync"` and no command; the app then pulls its commands over HTTPS:
///
/// ```swift
/// func application(_ app: UIApplication, didReceiveRemoteNotification userInfo: [AnyHashable: Any],
///                  fetchCompletionHandler done: @escaping (UIBackgroundFetchResult) -> Void) {
///     SafeStreamPush.didReceiveRemoteNotification(agent, userInfo: userInfo) { ran in
///         done(ran == nil ? .noData : (ran! > 0 ? .newData : .noData))
///     }
/// }
/// func application(_ app: UIApplication, didRegisterForRemoteNotificationsWithDeviceToken token: Data) {
///     SafeStreamPush.didRegister(agent, deviceToken: token, sandbox: isDebugBuild)
/// }
/// ```
///
/// iOS gives a background notification about 30 s of run time and throttles them (a few
/// per hour; none while the app is force-quit or in Low Power Mode): hence
/// `defaultBudgetMs`, and commands also arrive on the next connection.
public enum SafeStreamPush {
    /// The payload key of SafeStream's wake-up.
    public static let dataKey = "safestream"
    /// Its value.
    public static let sync = "sync"
    /// The time a sync may take in the callback, acks included (iOS allows about 30 s).
    public static let defaultBudgetMs: UInt64 = 25_000

    private static let log = OSLog(subsystem: "com.safestream.agent", category: "push")

    /// Whether a notification is SafeStream's wake-up (other notifications are the app's).
    public static func isWakeUp(_ userInfo: [AnyHashable: Any]) -> Bool {
        (userInfo[dataKey] as? String) == sync
    }

    /// Handles a remote notification: for SafeStream's wake-up, pulls and runs the pending
    /// commands within `budgetMs` (even while the socket looks open: it may be suspended; a
    /// sync already running is joined, not repeated), then calls `done` with how many ran, or `nil` for another notification
    /// or a failed sync (the commands then arrive on the next connection).
    public static func didReceiveRemoteNotification(
        _ agent: Agent, userInfo: [AnyHashable: Any], budgetMs: UInt64 = defaultBudgetMs,
        done: @escaping (UInt32?) -> Void
    ) {
        guard isWakeUp(userInfo) else { return done(nil) }
        Task {
            do {
                let report = try await agent.syncNowWithin(budgetMs: budgetMs)
                done(report.ran)
            } catch {
                os_log("sync after a push failed: %{public}@", log: log, type: .error,
                       String(describing: error))
                done(nil)
            }
        }
    }

    /// Registers the APNs device token (`sandbox` for a development build's token). The agent
    /// keeps it and sends it again after a failure.
    public static func didRegister(_ agent: Agent, deviceToken: Data, sandbox: Bool) {
        let hex = deviceToken.map { String(format: "%02x", $0) }.joined()
        Task {
            do {
                try await agent.registerPushToken(
                    provider: "apns", token: hex, apnsEnvironment: sandbox ? "sandbox" : "production")
            } catch {
                os_log("push token not registered yet: %{public}@", log: log, type: .default,
                       String(describing: error))
            }
        }
    }
}
