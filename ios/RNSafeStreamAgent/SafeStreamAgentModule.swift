import Foundation
import React
#if canImport(SafeStream)
import SafeStream // SwiftPM; with CocoaPods the agent's Swift is compiled into this pod
#endif

/// The React Native module `SafeStreamAgent` (TypeScript API in the package's `src/`).
/// Commands go to JavaScript as `SafeStreamCommand` events; JavaScript answers with
/// `completeCommand`, which calls `Agent.completeCommand` from the bridge's queue. State
/// changes are `SafeStreamState` events, ack results `SafeStreamAck` events. Errors reject
/// with the `SafeStreamError` case name as the code (`Config`, `Unauthorized`, ...).
@objc(SafeStreamAgent)
final class SafeStreamAgentModule: RCTEventEmitter {
    private var agent: Agent?
    private var hasListeners = false

    override static func requiresMainQueueSetup() -> Bool { false }
    override func supportedEvents() -> [String]! { ["SafeStreamCommand", "SafeStreamState", "SafeStreamAck"] }
    override func startObserving() { hasListeners = true }
    override func stopObserving() { hasListeners = false }

    fileprivate func send(_ name: String, _ body: [String: Any?]) {
        guard hasListeners else { return }
        sendEvent(withName: name, body: body.mapValues { $0 ?? NSNull() })
    }

    private static func stateName(_ s: ConnectionState) -> String {
        switch s {
        case .stopped: return "stopped"
        case .notPaired: return "not_paired"
        case .connecting: return "connecting"
        case .connected: return "connected"
        case .disconnected: return "disconnected"
        case .unauthorized: return "unauthorized"
        }
    }

    private static func reject(_ reject: RCTPromiseRejectBlock, _ error: Error) {
        if let e = error as? SafeStreamError {
            let code = String(describing: e).split(separator: "(").first.map(String.init) ?? "Internal"
            reject(code, e.localizedDescription, e)
        } else {
            reject("Internal", error.localizedDescription, error)
        }
    }

    /// Runs an async agent call and settles the promise.
    private func run(_ resolve: @escaping RCTPromiseResolveBlock, _ reject: @escaping RCTPromiseRejectBlock,
                     _ body: @escaping (Agent) async throws -> Any?) {
        guard let agent = agent else { return reject("Stopped", "call start() first", nil) }
        Task {
            do { resolve(try await body(agent)) } catch { Self.reject(reject, error) }
        }
    }

    @objc(start:resolve:reject:)
    func start(_ config: NSDictionary, resolver resolve: RCTPromiseResolveBlock, rejecter reject: RCTPromiseRejectBlock) {
        if let agent = agent { return resolve(Self.stateName(agent.state())) }
        guard let relayUrl = config["relayUrl"] as? String else { return reject("Config", "relayUrl is required", nil) }
        let level: LogLevel
        switch config["logLevel"] as? String {
        case "error": level = .error
        case "warn": level = .warn
        case "debug": level = .debug
        case "trace": level = .trace
        default: level = .info
        }
        _ = setLogger(logger: OSLogLogger(), maxLevel: level)
        let dir = FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0]
            .appendingPathComponent("safestream", isDirectory: true)
        let cfg = AgentConfig(
            relayUrl: relayUrl,
            stateDir: dir.path,
            apiUrl: config["apiUrl"] as? String,
            heartbeatSecs: (config["heartbeatSecs"] as? NSNumber)?.uint32Value,
            backgroundHeartbeatSecs: (config["backgroundHeartbeatSecs"] as? NSNumber)?.uint32Value ?? 300,
            extraCaPem: config["extraCaPem"] as? String,
            commandTimeoutSecs: (config["commandTimeoutSecs"] as? NSNumber)?.uint64Value ?? 120
        )
        do {
            let bridge = Bridge(module: self)
            let a = try Agent.start(config: cfg, runner: bridge, store: KeychainSecureStore(), observer: bridge)
            agent = a
            resolve(Self.stateName(a.state()))
        } catch {
            Self.reject(reject, error)
        }
    }

    @objc(stop:reject:)
    func stop(_ resolve: @escaping RCTPromiseResolveBlock, rejecter reject: @escaping RCTPromiseRejectBlock) {
        guard let a = agent else { return resolve(nil) }
        agent = nil
        Task { try? await a.shutdown(); resolve(nil) }
    }

    @objc(getState:reject:)
    func getState(_ resolve: RCTPromiseResolveBlock, rejecter reject: RCTPromiseRejectBlock) {
        resolve(agent.map { Self.stateName($0.state()) } ?? "stopped")
    }

    @objc(completeCommand:status:error:resolve:reject:)
    func completeCommand(_ id: String, status: String, error: String?, resolver resolve: RCTPromiseResolveBlock,
                         rejecter reject: RCTPromiseRejectBlock) {
        guard let agent = agent else { return reject("Stopped", "call start() first", nil) }
        do {
            try agent.completeCommand(commandId: id, outcome: status == "EXECUTED" ? .executed : .failed(error: error ?? "failed"))
            resolve(nil)
        } catch {
            Self.reject(reject, error)
        }
    }

    @objc(pair:resolve:reject:)
    func pair(_ deviceName: String, resolver resolve: @escaping RCTPromiseResolveBlock, rejecter reject: @escaping RCTPromiseRejectBlock) {
        run(resolve, reject) { a in
            let c = try await a.pair(deviceName: deviceName)
            return ["pairingId": c.pairingId, "code": c.code, "expiresAt": c.expiresAt]
        }
    }

    @objc(waitForPairing:reject:)
    func waitForPairing(_ resolve: @escaping RCTPromiseResolveBlock, rejecter reject: @escaping RCTPromiseRejectBlock) {
        run(resolve, reject) { a in
            let d = try await a.waitForPairing()
            return ["deviceId": d.deviceId, "childId": d.childId]
        }
    }

    @objc(reportStatus:currentVideoJson:)
    func reportStatus(_ activeViewing: Bool, currentVideoJson: String?) {
        agent?.reportStatus(activeViewing: activeViewing, currentVideo: currentVideoJson)
    }

    @objc(reportRestrictedAttempt:resolve:reject:)
    func reportRestrictedAttempt(_ attempt: NSDictionary, resolver resolve: @escaping RCTPromiseResolveBlock,
                                 rejecter reject: @escaping RCTPromiseRejectBlock) {
        let a = RestrictedAttempt(url: attempt["url"] as? String, title: attempt["title"] as? String,
                                  reason: attempt["reason"] as? String, metadataJson: attempt["metadataJson"] as? String)
        // Queued on disk by the agent (a file write): off the JS thread.
        run(resolve, reject) { agent in try agent.reportRestrictedAttempt(attempt: a); return nil }
    }

    @objc(reportScreenTime:resolve:reject:)
    func reportScreenTime(_ minutesUsed: Double, resolver resolve: @escaping RCTPromiseResolveBlock,
                          rejecter reject: @escaping RCTPromiseRejectBlock) {
        guard minutesUsed >= 0, minutesUsed <= 1440, minutesUsed.rounded() == minutesUsed else {
            return reject("Config", "minutesUsed must be a whole number from 0 to 1440", nil)
        }
        run(resolve, reject) { a in try a.reportScreenTime(minutesUsed: UInt32(minutesUsed)); return nil }
    }

    @objc(waitForReports:resolve:reject:)
    func waitForReports(_ timeoutMs: Double, resolver resolve: @escaping RCTPromiseResolveBlock,
                        rejecter reject: @escaping RCTPromiseRejectBlock) {
        let ms = UInt64(max(0, timeoutMs))
        run(resolve, reject) { a in try await a.waitForReports(timeoutMs: ms) }
    }

    @objc(syncNow:reject:)
    func syncNow(_ resolve: @escaping RCTPromiseResolveBlock, rejecter reject: @escaping RCTPromiseRejectBlock) {
        run(resolve, reject) { a in Int(try await a.syncNow()) }
    }

    @objc(handlePush:resolve:reject:)
    func handlePush(_ budgetMs: Double, resolver resolve: @escaping RCTPromiseResolveBlock,
                    rejecter reject: @escaping RCTPromiseRejectBlock) {
        let ms = UInt64(max(0, budgetMs))
        run(resolve, reject) { a in
            let r = try await a.syncNowWithin(budgetMs: ms)
            return ["ran": Int(r.ran), "pulled": r.pulled, "acksDone": r.acksDone]
        }
    }

    @objc(registerPushToken:token:apnsEnvironment:resolve:reject:)
    func registerPushToken(_ provider: String, token: String, apnsEnvironment: String?,
                           resolver resolve: @escaping RCTPromiseResolveBlock,
                           rejecter reject: @escaping RCTPromiseRejectBlock) {
        run(resolve, reject) { a in
            try await a.registerPushToken(provider: provider, token: token, apnsEnvironment: apnsEnvironment)
            return nil
        }
    }

    @objc(setToken:resolve:reject:)
    func setToken(_ token: String, resolver resolve: RCTPromiseResolveBlock, rejecter reject: RCTPromiseRejectBlock) {
        guard let agent = agent else { return reject("Stopped", "call start() first", nil) }
        do { try agent.setToken(token: token); resolve(nil) } catch { Self.reject(reject, error) }
    }

    @objc(clearToken:reject:)
    func clearToken(_ resolve: RCTPromiseResolveBlock, rejecter reject: RCTPromiseRejectBlock) {
        guard let agent = agent else { return reject("Stopped", "call start() first", nil) }
        do { try agent.clearToken(); resolve(nil) } catch { Self.reject(reject, error) }
    }

    @objc(setBackground:)
    func setBackground(_ background: Bool) { agent?.setBackground(background: background) }

    @objc(networkAvailable)
    func networkAvailable() { agent?.networkAvailable() }
}

/// The runner and observer the agent calls (on its own threads): forwards to JavaScript.
private final class Bridge: CommandRunner, StateObserver, @unchecked Sendable {
    weak var module: SafeStreamAgentModule?
    init(module: SafeStreamAgentModule) { self.module = module }

    func onCommand(command: Command) {
        module?.send("SafeStreamCommand", [
            "id": command.id, "type": command.commandTypeName, "payloadJson": command.payloadJson,
            "expiresAt": command.expiresAt, "createdAt": command.createdAt,
        ])
    }

    func onStateChanged(state: ConnectionState) {
        let name: String
        switch state {
        case .stopped: name = "stopped"
        case .notPaired: name = "not_paired"
        case .connecting: name = "connecting"
        case .connected: name = "connected"
        case .disconnected: name = "disconnected"
        case .unauthorized: name = "unauthorized"
        }
        module?.send("SafeStreamState", ["state": name])
    }

    func onAckFinished(commandId: String, status: AckStatus, result: AckResult) {
        let confirmed: Bool
        if case .confirmed = result { confirmed = true } else { confirmed = false }
        module?.send("SafeStreamAck", ["id": commandId, "status": status == .executed ? "EXECUTED" : "FAILED", "confirmed": confirmed])
    }
}
