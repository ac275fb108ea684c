// SPDX-License-Identifier: Apache-2.0

/// The 256-byte MTProto authorization key of an account. Whoever holds it *is* the account.
///
/// The bytes live in ``SecretBytes`` (wiped on release, compared in constant time) and are never
/// printed. The public fingerprint is ``id``: the last 8 bytes of SHA-1(key), the value MTProto
/// itself calls `auth_key_id`, as 16 lower-case hex characters.
public struct AuthKey: Sendable, Equatable, CustomStringConvertible {
    /// The only valid size of an auth key.
    public static let byteCount = 256

    /// The secret bytes.
    public let bytes: SecretBytes

    /// - Throws: ``ModelError/invalidField(_:_:)`` naming `auth_key` unless exactly 256 bytes.
    public init(_ bytes: some Collection<UInt8>) throws(ModelError) {
        guard bytes.count == Self.byteCount else {
            throw .invalidField("auth_key", "must be exactly 256 bytes, got \(bytes.count)")
        }
        self.bytes = SecretBytes(bytes)
    }

    /// Wraps secret storage that already holds 256 bytes.
    /// - Throws: ``ModelError/invalidField(_:_:)`` naming `auth_key` unless exactly 256 bytes.
    public init(secret: SecretBytes) throws(ModelError) {
        guard secret.count == Self.byteCount else {
            throw .invalidField("auth_key", "must be exactly 256 bytes, got \(secret.count)")
        }
        self.bytes = secret
    }

    /// Decodes canonical standard base64 (344 characters with padding) straight into secret storage.
    /// - Throws: ``ModelError/invalidField(_:_:)`` naming `auth_key` for other text or another size
    ///   (the message never echoes the text).
    public init(base64 text: String) throws(ModelError) {
        guard let secret = SecretBase64.decode(text.utf8) else {
            throw .invalidField("auth_key", "must be the 256-byte key in standard base64 (344 characters with = padding)")
        }
        try self.init(secret: secret)
    }

    /// `auth_key_id`: the last 8 bytes of SHA-1(auth_key), lower-case hex (16 characters).
    public var id: String {
        Hex.encode(Digest.sha1(bytes)[12..<20])
    }

    /// True when all 256 bytes are zero.
    public var isAllZero: Bool { bytes.isAllZero }

    public var description: String { "AuthKey(id: \(id))" }
}
