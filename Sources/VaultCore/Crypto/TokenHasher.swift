// SPDX-License-Identifier: Apache-2.0

/// Creates API tokens and computes the only form in which they are stored.
///
/// A token is `svt_` followed by the unpadded base64url (RFC 4648 §5) of 32 random bytes:
/// 47 ASCII characters, 256 bits of entropy, shown to its owner once.
///
/// **What is stored.** HMAC-SHA-256(token-hash key, UTF-8 of the token), 32 bytes, not a plain
/// SHA-256. With a plain hash, whoever copies the database can test candidate tokens offline;
/// with a keyed hash they also need the key, which exists only in memory, derived from the
/// unsealed keyring (``Keyring/tokenHasher``). Because the tokens are 256-bit random values a
/// slow password hash adds nothing. Look a token up by its hash, then confirm with
/// ``verify(_:hash:)`` (constant time).
public struct TokenHasher: Sendable, CustomStringConvertible {
    /// Prefix of every token: recognisable in logs and by secret scanners.
    public static let tokenPrefix = "svt_"
    /// Random bytes in a token.
    public static let tokenRandomByteCount = 32
    /// Length of a token's text: prefix + 43 base64url characters.
    public static let tokenCharacterCount = 4 + 43
    /// Size of a stored token hash.
    public static let hashByteCount = Digest.sha256ByteCount

    /// The key, absorbed once (every request's token check uses it).
    private let mac: HMACSHA256Key

    /// A hasher with an explicit 32-byte key. The vault uses ``Keyring/tokenHasher``.
    /// - Throws: ``CryptoError/invalidKey(source:reason:)`` unless `key` is 32 bytes;
    ///   ``CryptoError/backendFailure(operation:)`` if libcrypto cannot set up HMAC.
    public init(key: SecretBytes) throws(CryptoError) {
        guard key.count == 32 else {
            throw .invalidKey(source: "token hash key", reason: "must be 32 bytes, got \(key.count)")
        }
        guard let mac = HMACSHA256Key(key) else { throw .backendFailure(operation: "EVP_MAC_init(HMAC)") }
        self.mac = mac
    }

    /// The value to store for `token`: HMAC-SHA-256 of its UTF-8 bytes (32 bytes).
    public func hash(_ token: some StringProtocol) -> [UInt8] {
        mac.mac(token.utf8)
    }

    /// True when `token` hashes to `expected`, compared in constant time.
    public func verify(_ token: some StringProtocol, hash expected: [UInt8]) -> Bool {
        ConstantTime.equals(hash(token), expected)
    }

    /// A new random token, `svt_` + base64url(32 random bytes). The random bytes are wiped;
    /// the returned `String` cannot be, so hash it, show it once and drop it.
    /// - Throws: ``CryptoError/randomFailure``.
    public static func generateToken() throws(CryptoError) -> String {
        let random = try SecureRandom.secret(count: tokenRandomByteCount)
        return tokenPrefix + random.withUnsafeBytes { SecretBase64.encode($0, url: true) }
    }

    /// True when `text` has the shape of a token this type generates (prefix, length,
    /// base64url alphabet, canonical final character). A cheap filter before hashing; the
    /// root token from configuration may legitimately have another shape.
    public static func isWellFormedToken(_ text: some StringProtocol) -> Bool {
        let utf8 = Array(text.utf8)
        guard utf8.count == tokenCharacterCount, utf8.starts(with: tokenPrefix.utf8) else { return false }
        let body = utf8.dropFirst(4)
        for c in body {
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
                continue
            default:
                return false
            }
        }
        // 32 bytes = 256 bits = 42 full sextets + 4 bits; the last character's low 2 bits are
        // padding and must be zero (A, E, I, … in the alphabet: index divisible by 4).
        guard let last = body.last else { return false }
        let index: Int
        switch last {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): index = Int(last - UInt8(ascii: "A"))
        case UInt8(ascii: "a")...UInt8(ascii: "z"): index = Int(last - UInt8(ascii: "a")) + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): index = Int(last - UInt8(ascii: "0")) + 52
        case UInt8(ascii: "-"): index = 62
        default: index = 63
        }
        return index % 4 == 0
    }

    /// A new non-secret accessor id for a token (`acc_` + 16 lower-case hex characters): what
    /// lists, audit logs and revocation refer to, so the token itself never has to appear.
    /// - Throws: ``CryptoError/randomFailure``.
    public static func generateAccessor() throws(CryptoError) -> String {
        "acc_" + Hex.encode(try SecureRandom.bytes(count: 8))
    }

    public var description: String { "TokenHasher(HMAC-SHA-256, key redacted)" }
}
