// SPDX-License-Identifier: Apache-2.0

/// Where a ciphertext lives: table, row identity and column. Its canonical bytes become part
/// of the associated data, so a ciphertext copied to another row, column or table no longer
/// opens (docs/architecture.md, "Keys").
///
/// Canonical form: for each of `table`, `row`, `column` in that order, a 4-byte big-endian
/// length followed by the UTF-8 bytes. Length prefixes make the encoding injective: no two
/// different contexts produce the same bytes (unlike joining with `|`, where
/// `("a|b", "c")` and `("a", "b|c")` would collide).
public struct CipherContext: Sendable, Hashable, CustomStringConvertible {
    /// Table (or other namespace), e.g. `sessions`.
    public let table: String
    /// Stable identity of the row, e.g. its integer primary key rendered in decimal.
    public let row: String
    /// Column (or field) that holds the ciphertext, e.g. `auth_key`.
    public let column: String

    /// A context from its three parts.
    public init(table: String, row: String, column: String) {
        self.table = table
        self.row = row
        self.column = column
    }

    /// A context whose row identity is an integer key, rendered in decimal.
    public init(table: String, row: Int64, column: String) {
        self.init(table: table, row: String(row), column: column)
    }

    /// The canonical, length-prefixed bytes that are authenticated.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(byteCount)
        append(to: &out)
        return out
    }

    /// The length of ``bytes``.
    var byteCount: Int { 12 + table.utf8.count + row.utf8.count + column.utf8.count }

    /// Appends ``bytes`` to `out`.
    func append(to out: inout [UInt8]) {
        Self.append(table, to: &out)
        Self.append(row, to: &out)
        Self.append(column, to: &out)
    }

    /// One part: its UTF-8 length (4 bytes, big-endian), then its UTF-8.
    private static func append(_ part: String, to out: inout [UInt8]) {
        var part = part
        part.withUTF8 { utf8 in
            out.appendBigEndian(UInt32(truncatingIfNeeded: utf8.count))
            out.append(contentsOf: utf8)
        }
    }

    /// `table/row/column`. A row identity is not secret.
    public var description: String { "\(table)/\(row)/\(column)" }

    /// The context under which the data key of keyring term `term` is sealed by the master key.
    static func keyring(term: UInt32) -> CipherContext {
        CipherContext(table: "keyring", row: String(term), column: "data_key")
    }
}

/// The byte format of every encrypted value at rest (format version 1):
///
/// ```
/// offset  size  field
///      0     1  version   = 1
///      1     4  term      key term that sealed it, big-endian u32
///      5    12  nonce     random, from RAND_bytes
///     17     n  ciphertext (n = plaintext length)
///   17+n    16  tag       AES-256-GCM tag
/// ```
///
/// Associated data = the 5 header bytes (version ‖ term) ‖ ``CipherContext/bytes``. Binding
/// the header means a ciphertext relabelled with another term or version fails even if that
/// term's key were the same; binding the context pins it to its row and column.
///
/// Random 96-bit nonces are safe for up to 2³² seals per key (SP 800-38D §8.3); the vault
/// rotates terms long before that.
///
/// Opening reports every failure, including a value too short to hold header and tag or an
/// unknown version, as ``CryptoError/authenticationFailed``.
public enum Envelope {
    /// The only format version written and accepted.
    public static let version: UInt8 = 1
    /// Size of version + term.
    public static let headerByteCount = 5
    /// Bytes added to the plaintext length: header, nonce and tag (33).
    public static let overheadByteCount = headerByteCount + AESGCM.nonceByteCount + AESGCM.tagByteCount

    /// The term recorded in an envelope's header, or `nil` if `envelope` is too short or not
    /// format version 1. Unauthenticated: use it for routing and statistics only.
    public static func term(of envelope: some Collection<UInt8>) -> UInt32? {
        guard envelope.count >= overheadByteCount else { return nil }
        var iterator = envelope.makeIterator()
        guard iterator.next() == version else { return nil }
        var term: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = iterator.next() else { return nil }
            term = term << 8 | UInt32(byte)
        }
        return term
    }

    /// Seals `plaintext` under `key`, recording `term` in the header.
    /// - Throws: ``CryptoError/randomFailure`` if no nonce could be drawn,
    ///   ``CryptoError/invalidKey(source:reason:)`` unless `key` is 32 bytes,
    ///   ``CryptoError/backendFailure(operation:)`` if libcrypto fails.
    public static func seal(
        _ plaintext: SecretBytes, key: SecretBytes, term: UInt32, context: CipherContext
    ) throws(CryptoError) -> [UInt8] {
        try plaintext.withUnsafeBytes { (pt) throws(CryptoError) in
            try seal(buffer: pt, key: key, term: term, context: context)
        }
    }

    /// Seals a non-pooled `plaintext` array (the caller owns and should wipe its copy).
    /// - Throws: as the ``SecretBytes`` variant.
    public static func seal(
        _ plaintext: [UInt8], key: SecretBytes, term: UInt32, context: CipherContext
    ) throws(CryptoError) -> [UInt8] {
        try plaintext.withUnsafeBytes { pt in
            Result { () throws(CryptoError) in try seal(buffer: pt, key: key, term: term, context: context) }
        }.get()
    }

    /// Opens an envelope sealed under `key` for `context`.
    /// - Returns: the plaintext, in secret storage.
    /// - Throws: ``CryptoError/authenticationFailed`` for every failure.
    public static func open(
        _ envelope: [UInt8], key: SecretBytes, context: CipherContext
    ) throws(CryptoError) -> SecretBytes {
        guard envelope.count >= overheadByteCount, envelope[0] == version else {
            throw .authenticationFailed
        }
        let aad = associatedData(header: envelope[0..<headerByteCount], context: context)
        let bodyCount = envelope.count - overheadByteCount
        return try key.withUnsafeBytes { (k) throws(CryptoError) in
            try envelope.withUnsafeBytes { e in
                aad.withUnsafeBytes { a in
                    Result { () throws(CryptoError) in
                        let nonceStart = headerByteCount
                        let bodyStart = nonceStart + AESGCM.nonceByteCount
                        let tagStart = bodyStart + bodyCount
                        return try SecretBytes(count: bodyCount) { (out) throws(CryptoError) in
                            try AESGCM.open(
                                key: k,
                                nonce: UnsafeRawBufferPointer(rebasing: e[nonceStart..<bodyStart]),
                                ciphertext: UnsafeRawBufferPointer(rebasing: e[bodyStart..<tagStart]),
                                tag: UnsafeRawBufferPointer(rebasing: e[tagStart...]),
                                aad: a, into: out)
                        }
                    }
                }
            }.get()
        }
    }

    private static func seal(
        buffer pt: UnsafeRawBufferPointer, key: SecretBytes, term: UInt32, context: CipherContext
    ) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: overheadByteCount + pt.count)
        out[0] = version
        out[1] = UInt8(truncatingIfNeeded: term >> 24)
        out[2] = UInt8(truncatingIfNeeded: term >> 16)
        out[3] = UInt8(truncatingIfNeeded: term >> 8)
        out[4] = UInt8(truncatingIfNeeded: term)
        let aad = associatedData(header: out[0..<headerByteCount], context: context)
        try key.withUnsafeBytes { (k) throws(CryptoError) in
            try aad.withUnsafeBytes { a in
                out.withUnsafeMutableBytes { o in
                    Result { () throws(CryptoError) in
                        let bodyStart = headerByteCount + AESGCM.nonceByteCount
                        let tagStart = bodyStart + pt.count
                        let nonce = UnsafeMutableRawBufferPointer(rebasing: o[headerByteCount..<bodyStart])
                        guard SecureRandom.fill(nonce) else { throw .randomFailure }
                        try AESGCM.seal(
                            key: k, nonce: UnsafeRawBufferPointer(nonce), plaintext: pt, aad: a,
                            ciphertext: UnsafeMutableRawBufferPointer(rebasing: o[bodyStart..<tagStart]),
                            tag: UnsafeMutableRawBufferPointer(rebasing: o[tagStart...]))
                    }
                }
            }.get()
        }
        return out
    }

    private static func associatedData(header: ArraySlice<UInt8>, context: CipherContext) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(header.count + context.byteCount)
        out.append(contentsOf: header)
        context.append(to: &out)
        return out
    }
}

// File-private so the name stays free for the codecs' own byte writers.
extension [UInt8] {
    /// Appends `value` as 4 big-endian bytes.
    fileprivate mutating func appendBigEndian(_ value: UInt32) {
        append(UInt8(truncatingIfNeeded: value >> 24))
        append(UInt8(truncatingIfNeeded: value >> 16))
        append(UInt8(truncatingIfNeeded: value >> 8))
        append(UInt8(truncatingIfNeeded: value))
    }
}
