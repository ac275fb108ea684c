// SPDX-License-Identifier: Apache-2.0

/// The 32-byte key that seals the ``Keyring`` (key-encryption key). It comes from
/// configuration (`SESSION_VAULT_MASTER_KEY`, or a key file) and is never stored in the
/// database, so a copy of the database alone reveals nothing.
///
/// The bytes live in ``SecretBytes``; `description` is redacted; errors name the source of a
/// bad key but never echo its text.
public struct MasterKey: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The only valid size.
    public static let byteCount = 32
    /// The environment variable the key is read from; the default error source.
    public static let environmentVariable = "SESSION_VAULT_MASTER_KEY"

    /// The key bytes; used only inside `VaultCore/Crypto`.
    let secret: SecretBytes

    /// Wraps 32 secret bytes (for example read from a key file and decoded by the caller).
    /// - Throws: ``CryptoError/invalidKey(source:reason:)`` naming `source` unless 32 bytes.
    public init(secret: SecretBytes, source: String = MasterKey.environmentVariable) throws(CryptoError) {
        guard secret.count == Self.byteCount else {
            throw .invalidKey(
                source: source, reason: "must be \(Self.byteCount) bytes, got \(secret.count)")
        }
        self.secret = secret
    }

    /// Parses standard base64 of 32 bytes (44 characters ending in one `=`), as produced by
    /// `openssl rand -base64 32` or ``base64()``. One trailing `\n` (or `\r\n`), as a key file
    /// written by `echo` or an editor has, is ignored; nothing else is trimmed.
    /// - Throws: ``CryptoError/invalidKey(source:reason:)`` naming `source`, never the text.
    public init(base64 text: some StringProtocol, source: String = MasterKey.environmentVariable)
        throws(CryptoError)
    {
        try self.init(base64UTF8: text.utf8, source: source)
    }

    /// Parses the UTF-8 bytes of a base64 key (a key file's contents) without first making a
    /// `String` of them. Same rules as ``init(base64:source:)``.
    /// - Throws: ``CryptoError/invalidKey(source:reason:)`` naming `source`, never the text.
    public init(base64UTF8 text: some Collection<UInt8>, source: String = MasterKey.environmentVariable)
        throws(CryptoError)
    {
        var body = text[...]
        if body.lastByte == UInt8(ascii: "\n") {
            body = body.dropLast(1)
            if body.lastByte == UInt8(ascii: "\r") { body = body.dropLast(1) }
        }
        guard !body.isEmpty else {
            throw .invalidKey(source: source, reason: "is empty; expected base64 of \(Self.byteCount) bytes")
        }
        guard let secret = SecretBase64.decode(body) else {
            throw .invalidKey(
                source: source,
                reason: "is not canonical standard base64 (A-Z a-z 0-9 + / with = padding) "
                    + "of \(Self.byteCount) bytes; generate one with `openssl rand -base64 32`")
        }
        guard secret.count == Self.byteCount else {
            throw .invalidKey(
                source: source, reason: "must decode to \(Self.byteCount) bytes, decodes to \(secret.count)")
        }
        self.secret = secret
    }

    /// A fresh random master key (for the zero-configuration key file and `--dev`).
    /// - Throws: ``CryptoError/randomFailure``.
    public static func generate() throws(CryptoError) -> MasterKey {
        try MasterKey(secret: try SecureRandom.secret(count: byteCount), source: "generated master key")
    }

    /// The key as standard padded base64 (44 characters, no newline), for writing a key file
    /// with mode 0600. The returned `String` cannot be wiped: write it out and drop it.
    public func base64() -> String {
        secret.withUnsafeBytes { SecretBase64.encode($0, url: false) }
    }

    /// Constant-time comparison of two master keys.
    public func matches(_ other: MasterKey) -> Bool { secret == other.secret }

    public var description: String { "MasterKey(redacted)" }
    public var debugDescription: String { description }
}

extension Collection<UInt8> {
    /// The last element of a forward-only collection (such as a generic `UTF8View`).
    fileprivate var lastByte: UInt8? {
        isEmpty ? nil : self[index(startIndex, offsetBy: count - 1)]
    }
}
