// SPDX-License-Identifier: Apache-2.0

/// Pyrogram-family session strings (pyrogram, hydrogram, kurigram, pyrofork;
/// docs/formats.md, "Pyrogram-family session strings").
///
/// ## Layouts
///
/// | layout | struct | bytes | characters | ``SourceFormat`` |
/// |---|---|---|---|---|
/// | current | `>BI?256sQ?` dc·api_id·test·key·user·bot | 271 | 362 | `.pyrogramString` |
/// | legacy-64 | `>B?256sQ?` dc·test·key·user·bot | 267 | 356 | `.pyrogramLegacy64` |
/// | legacy-32 | `>B?256sI?` dc·test·key·user·bot | 263 | 351 | `.pyrogramLegacy32` |
///
/// ## What the decoder accepts
///
/// Like the Python readers (which call `base64.urlsafe_b64decode`):
/// * the URL-safe alphabet (`-` `_`) **and** the standard one (`+` `/`), even mixed — the same
///   bytes re-export with `-` `_`;
/// * for the current layout: no padding (362 characters, what every writer emits), the full
///   `==` padding (364) or one stray `=` (363).
///
/// The layout is chosen by the number of base64 digits (characters before the trailing `=`):
/// 362 → current, 351 → legacy-32, 356 → legacy-64. Legacy strings must be **unpadded**, as the
/// real readers require (they pick the layout by the length as given, so a legacy-32 string with
/// its `=` kept — 352 characters — fails for them too). The vault keeps that rule on purpose: a
/// 352-character string ending in `=` is exactly a Telethon IPv4 string that lost its leading
/// `1`, and both payloads are 263 bytes, so accepting it would silently import garbage.
///
/// ## What it rejects (typed ``CodecError``, position but never content)
///
/// * input longer than ``SessionStringCodec/maxInputLength`` — before any work;
/// * whitespace anywhere, leading/trailing included (``CodecError/whitespace(position:)``); the
///   Python clients reject it too, and trimming would accept strings they refuse;
/// * non-ASCII characters (``CodecError/nonASCII(position:)``), e.g. homoglyphs;
/// * any other character, or `=` before the end (``CodecError/invalidCharacter(position:)``) —
///   Python silently *drops* such junk, the vault does not guess;
/// * three or more `=`, or any `=` after a legacy string (``CodecError/invalidPadding``);
/// * other lengths (``CodecError/invalidLength(_:expected:)``);
/// * non-zero unused bits in the last character (``CodecError/nonCanonicalEncoding``), which no
///   writer produces — Python ignores them;
/// * values that cannot be a real session: `dc_id` 0, an all-zero auth key, and `user_id`
///   ≥ 2^63 (the libraries decode it but cannot store it in SQLite) — each a
///   ``CodecError/fieldOutOfRange(field:reason:)`` naming the field.
///
/// Accepted as read: any non-zero byte for `test_mode`/`is_bot` (true), any `dc_id` 1–255
/// (the exporter checks the DC table), `api_id` 0 (means "unknown"; the exporter refuses it).
/// Every import yields `date: 0`; legacy layouts yield `apiID: nil`.
public enum PyrogramSessionString {
    /// The three string layouts.
    public enum Layout: Sendable, CaseIterable {
        /// `>BI?256sQ?`, written by every current fork.
        case current
        /// `>B?256sI?`, pyrogram 1.x for user ids below 2^31−1.
        case legacy32
        /// `>B?256sQ?`, pyrogram 1.3–1.4 for larger user ids.
        case legacy64

        /// Encoded length without padding.
        public var characterCount: Int {
            switch self {
            case .current: return 362
            case .legacy32: return 351
            case .legacy64: return 356
            }
        }

        /// Decoded payload length.
        public var byteCount: Int {
            switch self {
            case .current: return 271
            case .legacy32: return 263
            case .legacy64: return 267
            }
        }

        /// The import format this layout reports.
        public var format: SourceFormat {
            switch self {
            case .current: return .pyrogramString
            case .legacy32: return .pyrogramLegacy32
            case .legacy64: return .pyrogramLegacy64
            }
        }
    }

    /// Length of every string the encoder writes.
    public static let encodedLength = Layout.current.characterCount

    /// Picks the layout from the digit count and trailing padding (see the type's documentation).
    static func layout(for shape: Base64.Shape, length: Int) throws(CodecError) -> Layout {
        guard shape.paddingCount <= 2 else { throw .invalidPadding }
        switch shape.digitCount {
        case Layout.current.characterCount:
            return .current
        case Layout.legacy32.characterCount, Layout.legacy64.characterCount:
            // Legacy strings are unpadded; see the type's documentation for why this matters.
            guard shape.paddingCount == 0 else { throw .invalidPadding }
            return shape.digitCount == Layout.legacy32.characterCount ? .legacy32 : .legacy64
        default:
            throw .invalidLength(length, expected: "362 characters (351 or 356 for legacy strings)")
        }
    }

    /// The layout a string would be decoded with, or nil when its shape fits none. Cheap: does
    /// not decode.
    public static func layout(of text: String) -> Layout? {
        try? Base64.withUTF8(of: text, maxLength: SessionStringCodec.maxInputLength) {
            (utf8) throws(CodecError) -> Layout in
            try layout(for: Base64.scan(utf8), length: utf8.count)
        }
    }

    /// Decodes a Pyrogram-family session string of any of the three layouts.
    /// - Throws: ``CodecError`` — see the type's documentation for the full list.
    public static func decode(_ text: String) throws(CodecError) -> ImportedSession {
        try Base64.withUTF8(of: text, maxLength: SessionStringCodec.maxInputLength) {
            (utf8) throws(CodecError) -> ImportedSession in
            let shape = try Base64.scan(utf8)
            let layout = try layout(for: shape, length: utf8.count)
            let digits = UnsafeBufferPointer(rebasing: utf8[0..<shape.digitCount])
            let payload = try Base64.decodeSecret(digits, byteCount: layout.byteCount)
            return try payload.withUnsafeBytes { (raw) throws(CodecError) -> ImportedSession in
                try parse(raw, layout: layout)
            }
        }
    }

    /// Reads the fields of a decoded payload (struct order, big-endian).
    private static func parse(_ raw: UnsafeRawBufferPointer, layout: Layout) throws(CodecError) -> ImportedSession {
        var reader = ByteReader(raw)
        let dcID = try reader.readUInt8()
        let apiID: UInt32? = if layout == .current { try reader.readUInt32() } else { nil }
        // `?` is a C bool: Python's struct reads any non-zero byte as True (docs/formats.md, "Layouts").
        let testMode = try reader.readUInt8() != 0
        let keyBytes = try reader.readBytes(AuthKey.byteCount)
        let userID: UInt64 =
            if layout == .legacy32 { UInt64(try reader.readUInt32()) } else { try reader.readUInt64() }
        let isBot = try reader.readUInt8() != 0
        guard reader.isAtEnd else {
            throw .invalidLength(raw.count, expected: "\(layout.byteCount) bytes")
        }

        guard dcID != 0 else { throw .fieldOutOfRange(field: "dc_id", reason: "0 is not a data center") }
        // A u64 above Int64.max decodes in Python but cannot be stored (docs/formats.md, "Field values").
        guard let signedUserID = Int64(exactly: userID) else {
            throw .fieldOutOfRange(field: "user_id", reason: "above 2^63−1, cannot be stored")
        }
        let authKey = try makeAuthKey(keyBytes)
        let session = TelegramSession(
            dcID: Int(dcID), apiID: apiID.map { Int64($0) }, testMode: testMode, authKey: authKey,
            userID: signedUserID, isBot: isBot, date: 0)
        return ImportedSession(session: session, format: layout.format)
    }

    /// Wraps the 256 key bytes; an all-zero key is refused (Pyrogram has no "no key" convention,
    /// so zeros mean damage or a dummy, not a session).
    private static func makeAuthKey(_ bytes: Slice<UnsafeRawBufferPointer>) throws(CodecError) -> AuthKey {
        guard bytes.contains(where: { $0 != 0 }) else {
            throw .fieldOutOfRange(field: "auth_key", reason: "all zero, the string carries no key")
        }
        return try AuthKey.copying(bytes)
    }

    /// Encodes the current layout exactly as the libraries' `export_session_string()` does:
    /// URL-safe alphabet, padding removed, always 362 characters.
    ///
    /// Faithful: checks only that each value fits its `struct` field (so `api_id` 0 encodes,
    /// as the libraries allow). The export policy — what the vault is willing to hand out — is
    /// ``SessionStringCodec/encode(_:as:overrides:)``.
    /// - Throws: ``CodecError/fieldOutOfRange(field:reason:)`` naming `dc_id` (0…255), `api_id`
    ///   (0…2^32−1) or `user_id` (0…2^63−1).
    public static func encode(
        dcID: Int, apiID: Int64, testMode: Bool, authKey: AuthKey, userID: Int64, isBot: Bool
    ) throws(CodecError) -> String {
        guard let dc = UInt8(exactly: dcID) else {
            throw .fieldOutOfRange(field: "dc_id", reason: "must fit one byte (0…255)")
        }
        guard let api = UInt32(exactly: apiID) else {
            throw .fieldOutOfRange(field: "api_id", reason: "must be 0…4294967295")
        }
        guard let user = UInt64(exactly: userID) else {
            throw .fieldOutOfRange(field: "user_id", reason: "must not be negative")
        }
        var writer = ByteWriter(capacity: Layout.current.byteCount)
        defer { writer.wipe() }
        writer.write(dc)
        writer.writeBigEndian(api)
        writer.write(testMode ? 1 : 0)
        authKey.bytes.withUnsafeBytes { writer.write(contentsOf: $0) }
        writer.writeBigEndian(user)
        writer.write(isBot ? 1 : 0)
        return writer.bytes.withUnsafeBytes { Base64.encode($0, alphabet: .urlSafe, padded: false) }
    }
}

extension AuthKey {
    /// Copies 256 key bytes out of a decoded payload straight into new secret storage
    /// (a plain `memcpy`, no intermediate array).
    /// - Throws: ``CodecError/fieldOutOfRange(field:reason:)`` naming `auth_key` unless 256 bytes.
    static func copying(_ bytes: Slice<UnsafeRawBufferPointer>) throws(CodecError) -> AuthKey {
        let source = UnsafeRawBufferPointer(rebasing: bytes)
        guard source.count == byteCount else {
            throw .fieldOutOfRange(field: "auth_key", reason: "must be exactly 256 bytes")
        }
        let secret = SecretBytes(count: byteCount) { $0.copyMemory(from: source) }
        do {
            return try AuthKey(secret: secret)
        } catch {
            throw .fieldOutOfRange(field: "auth_key", reason: "must be exactly 256 bytes")
        }
    }
}
