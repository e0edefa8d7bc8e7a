import Foundation
import Security

/// The device token in the iOS Keychain (a generic password item, readable after the first
/// unlock so a background wake-up can reconnect, never synced to iCloud, not restored to
/// another device).
public final class KeychainSecureStore: SecureStore, @unchecked Sendable {
    private let service: String
    private let account: String
    private let accessGroup: String?

    /// - Parameters:
    ///   - service: the item's service (`kSecAttrService`).
    ///   - account: the item's account (`kSecAttrAccount`).
    ///   - accessGroup: a keychain access group shared with an app extension, if any.
    public init(service: String = "com.safestream.agent", account: String = "device-token", accessGroup: String? = nil) {
        self.service = service
        self.account = account
        self.accessGroup = accessGroup
    }

    private func query() -> [String: Any] {
        var q: [String: Any] = [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecAttrAccount as String: account,
        ]
        if let group = accessGroup { q[kSecAttrAccessGroup as String] = group }
        return q
    }

    public func loadToken() throws -> String? {
        var q = query()
        q[kSecReturnData as String] = true
        q[kSecMatchLimit as String] = kSecMatchLimitOne
        var out: AnyObject?
        let status = SecItemCopyMatching(q as CFDictionary, &out)
        switch status {
        case errSecSuccess:
            guard let data = out as? Data else { return nil }
            return String(data: data, encoding: .utf8)
        case errSecItemNotFound:
            return nil
        default:
            throw SafeStreamError.Storage(reason: "keychain read failed (\(status))")
        }
    }

    public func saveToken(token: String) throws {
        let data = Data(token.utf8)
        let attrs: [String: Any] = [
            kSecValueData as String: data,
            kSecAttrAccessible as String: kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly,
        ]
        var status = SecItemUpdate(query() as CFDictionary, attrs as CFDictionary)
        if status == errSecItemNotFound {
            var add = query()
            add.merge(attrs) { $1 }
            status = SecItemAdd(add as CFDictionary, nil)
        }
        guard status == errSecSuccess else {
            throw SafeStreamError.Storage(reason: "keychain write failed (\(status))")
        }
    }

    public func clearToken() throws {
        let status = SecItemDelete(query() as CFDictionary)
        guard status == errSecSuccess || status == errSecItemNotFound else {
            throw SafeStreamError.Storage(reason: "keychain delete failed (\(status))")
        }
    }
}
