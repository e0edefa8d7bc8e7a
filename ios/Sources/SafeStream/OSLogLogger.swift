import Foundation
import os

/// Sends the agent's Rust log lines to the unified log (Console.app, `log stream
/// --predicate 'subsystem == "com.safestream.agent"'`). Install it once per process:
/// `_ = setLogger(logger: OSLogLogger(), maxLevel: .info)`.
public final class OSLogLogger: Logger, @unchecked Sendable {
    private let log: OSLog

    /// A logger writing under `subsystem` / `category`.
    public init(subsystem: String = "com.safestream.agent", category: String = "agent") {
        log = OSLog(subsystem: subsystem, category: category)
    }

    public func onLog(level: LogLevel, target: String, message: String) {
        let type: OSLogType
        switch level {
        case .error: type = .error
        case .warn: type = .default
        case .info: type = .info
        case .debug, .trace: type = .debug
        }
        // The agent never logs tokens; the message is public so it is readable in Console.
        os_log("%{public}@: %{public}@", log: log, type: type, target, message)
    }
}
