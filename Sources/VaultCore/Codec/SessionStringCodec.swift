// SPDX-License-Identifier: Apache-2.0

/// Values a caller supplies for an export when the session itself lacks them (a Telethon string
/// carries no api_id, user id, bot flag or test mode; a legacy Pyrogram string no api_id).
///
/// Rules (``SessionStringCodec/encode(_:as:overrides:)``): an override fills a value the session
/// does not have. `apiID` also *replaces* a stored one — it identifies the client application,
/// not the account, and the same key works with another app. For `userID`, `isBot` and
/// `testMode` an override that contradicts the session's own value is refused: it would produce
/// a string that describes a different account than its key.
public struct ConversionOverrides: Sendable, Equatable {
    /// Telegram application id, 1…2^32−1.
    public var apiID: Int64?
    /// The account's user id, 1…2^63−1.
    public var userID: Int64?
    /// Whether the account is a bot.
    public var isBot: Bool?
    /// Whether the session belongs to the test environment.
    public var testMode: Bool?

    public init(apiID: Int64? = nil, userID: Int64? = nil, isBot: Bool? = nil, testMode: Bool? = nil) {
        self.apiID = apiID
        self.userID = userID
        self.isBot = isBot
        self.testMode = testMode
    }
}

/// Format detection, decoding and policy-checked export of session strings — the entry point
/// the rest of the vault calls.
///
/// ## Detection (docs/formats.md, "Telling strings apart")
///
/// A string that starts with `1` and has 353 or 369 characters is Telethon (``decode(_:)`` sends
/// every 353/369-character input to the Telethon decoder, so a wrong version character is
/// reported as such); everything else is tried as a Pyrogram-family string (layout by digit count: 362 current, 351 legacy-32,
/// 356 legacy-64; see ``PyrogramSessionString``). The two never collide: Pyrogram strings start
/// with the base64 of `dc_id` (`A`/`B` for DC 1–5, never `1` for DC < 212).
///
/// ## Export policy (stricter than the libraries, on purpose)
///
/// The Python exporters pack whatever they get (short keys zero-padded, long keys truncated,
/// `is_bot=None` as false; docs/formats.md, "Field values"). The vault refuses instead of
/// inventing (docs/formats.md, "Conversions and exports"):
/// * Pyrogram: `dc_id` 1…255, kept as stored (the string carries no address, and every reader
///   but kurigram accepts any DC byte); `api_id` 1…2^32−1 (0 means "unknown" and is treated as
///   missing); `user_id` 1…2^63−1 (0 is treated as missing: pyrogram takes a session with
///   user_id 0 as *not authorised* and starts a new login); `test_mode`, `is_bot` and a non-zero
///   key are required.
/// * Telethon: `dc_id` 1…255, a non-zero key, and an address/port — the session's own, or from
///   the DC table by `dc_id` and test mode (port 443, test DCs 80).
/// * `test_mode`, when neither the session nor the overrides say, is inferred from a known DC
///   address (``DataCenters/lookup(address:)``): test-DC addresses imply `true`, production ones
///   `false`. Unknown addresses infer nothing.
/// * Every missing value is named in one ``CodecError/missingFields(_:)`` (struct order), so a
///   caller can ask for all of them at once.
public enum SessionStringCodec {
    /// Inputs longer than this (in UTF-8 bytes) are refused before any decoding; the longest
    /// valid string is 369 characters.
    public static let maxInputLength = 4096

    /// The format `text` looks like, judged by its shape only (no decoding, no field checks).
    public static func detect(_ text: String) -> SourceFormat? {
        let utf8 = text.utf8
        if utf8.first == TelethonSessionString.version,
            utf8.count == TelethonSessionString.ipv4Length || utf8.count == TelethonSessionString.ipv6Length
        {
            return .telethonString
        }
        return PyrogramSessionString.layout(of: text)?.format
    }

    /// Decodes a Telethon or Pyrogram-family session string.
    /// - Throws: ``CodecError`` naming the problem; ``CodecError/unknownFormat`` for empty input.
    public static func decode(_ text: String) throws(CodecError) -> ImportedSession {
        let utf8 = text.utf8
        guard utf8.count <= maxInputLength else { throw .tooLong(max: maxInputLength) }
        guard !utf8.isEmpty else { throw .unknownFormat }
        // No Pyrogram string has 353 or 369 characters, so these go to the Telethon decoder
        // even without the `1`: it can then say "unsupported version" instead of "bad length".
        if utf8.count == TelethonSessionString.ipv4Length || utf8.count == TelethonSessionString.ipv6Length {
            return try TelethonSessionString.decode(text)
        }
        do {
            return try PyrogramSessionString.decode(text)
        } catch .invalidLength(let length, _) {
            throw .invalidLength(length, expected: "362, 351 or 356 characters (Pyrogram) or 353/369 (Telethon)")
        }
    }

    /// Exports `session` as a session string, applying the export policy and conversion rules
    /// in the type's documentation.
    /// - Throws: ``CodecError/missingFields(_:)`` naming every value that is missing,
    ///   ``CodecError/fieldOutOfRange(field:reason:)`` for an unusable or conflicting value, or
    ///   for a file `format` (`field` = `format`).
    public static func encode(
        _ session: TelegramSession, as format: ExportFormat, overrides: ConversionOverrides = .init()
    ) throws(CodecError) -> String {
        switch format {
        case .pyrogram: return try exportPyrogram(session, overrides)
        case .telethon: return try exportTelethon(session, overrides)
        case .pyrogramFile, .kurigramFile, .telethonFile:
            throw .fieldOutOfRange(field: "format", reason: "\(format.rawValue) is a file format, not a string")
        }
    }

    // MARK: Policy

    /// A session value merged with an override; a contradiction is refused.
    private static func merge<T: Equatable>(
        _ own: T?, _ override: T?, field: String
    ) throws(CodecError) -> T? {
        if let own, let override, own != override {
            throw .fieldOutOfRange(field: field, reason: "override conflicts with the session's own value")
        }
        return own ?? override
    }

    /// The test-mode flag from the session, else from its known DC address, merged with the
    /// override.
    private static func testMode(_ session: TelegramSession, _ overrides: ConversionOverrides) throws(CodecError) -> Bool? {
        let inferred = session.serverAddress.flatMap { DataCenters.lookup(address: $0)?.testMode }
        if let own = session.testMode, let inferred, own != inferred {
            throw .fieldOutOfRange(field: "test_mode", reason: "contradicts the server address")
        }
        return try merge(session.testMode ?? inferred, overrides.testMode, field: "test_mode")
    }

    private static func usableKey(_ key: AuthKey?) throws(CodecError) -> AuthKey? {
        if let key, key.isAllZero { throw .fieldOutOfRange(field: "auth_key", reason: "all zero, not a key") }
        return key
    }

    private static func exportPyrogram(_ session: TelegramSession, _ overrides: ConversionOverrides) throws(CodecError) -> String {
        // 0 means "unknown" for api_id and "not authorised" for user_id: both count as missing.
        let apiID = (overrides.apiID ?? session.apiID).flatMap { $0 == 0 ? nil : $0 }
        let userID = try merge(session.userID.flatMap { $0 == 0 ? nil : $0 }, overrides.userID, field: "user_id")
            .flatMap { $0 == 0 ? nil : $0 }
        let isBot = try merge(session.isBot, overrides.isBot, field: "is_bot")
        let testMode = try testMode(session, overrides)
        let authKey = try usableKey(session.authKey)

        var missing: [String] = []
        if session.dcID == 0 { missing.append("dc_id") }
        if apiID == nil { missing.append("api_id") }
        if testMode == nil { missing.append("test_mode") }
        if authKey == nil { missing.append("auth_key") }
        if userID == nil { missing.append("user_id") }
        if isBot == nil { missing.append("is_bot") }
        guard let apiID, let testMode, let authKey, let userID, let isBot, missing.isEmpty else {
            throw .missingFields(missing)
        }
        guard (1...Int64(UInt32.max)).contains(apiID) else {
            throw .fieldOutOfRange(field: "api_id", reason: "must be 1…4294967295")
        }
        guard userID > 0 else { throw .fieldOutOfRange(field: "user_id", reason: "must be 1…2^63−1") }
        // The string carries dc_id and test_mode, never an address, and pyrogram, hydrogram and
        // pyrofork accept any DC byte (docs/formats.md, "Field values"): give back what was
        // stored, as the libraries would. (kurigram alone maps the DC through its table on import and refuses
        // test DC 4/5; that is its documented behaviour, not a reason to refuse everyone.)
        guard (1...255).contains(session.dcID) else {
            throw .fieldOutOfRange(field: "dc_id", reason: "must fit one byte (1…255)")
        }
        return try PyrogramSessionString.encode(
            dcID: session.dcID, apiID: apiID, testMode: testMode, authKey: authKey, userID: userID,
            isBot: isBot)
    }

    private static func exportTelethon(_ session: TelegramSession, _ overrides: ConversionOverrides) throws(CodecError) -> String {
        let authKey = try usableKey(session.authKey)
        var address = session.serverAddress
        var port = session.port
        var missing: [String] = []
        if session.dcID == 0 { missing.append("dc_id") }
        if address == nil {
            // Pyrogram → Telethon: the address comes from the DC table (docs/formats.md, "Data centers").
            if let testMode = try testMode(session, overrides) {
                if let dc = DataCenters.lookup(id: session.dcID, testMode: testMode) {
                    address = dc.ipv4
                    port = dc.port
                }
            } else {
                missing.append("test_mode")
            }
        } else if port == nil, let testMode = try testMode(session, overrides) {
            port = DataCenters.defaultPort(testMode: testMode)
        }
        if address == nil { missing.append("server_address") }
        if port == nil { missing.append("port") }
        if authKey == nil { missing.append("auth_key") }
        guard let address, let port, let authKey, missing.isEmpty else { throw .missingFields(missing) }
        guard (1...255).contains(session.dcID) else {
            throw .fieldOutOfRange(field: "dc_id", reason: "must be 1…255")
        }
        guard (1...65535).contains(port) else { throw .fieldOutOfRange(field: "port", reason: "must be 1…65535") }
        return try TelethonSessionString.encode(
            dcID: session.dcID, serverAddress: address, port: port, authKey: authKey)
    }
}
