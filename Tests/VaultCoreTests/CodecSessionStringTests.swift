// SPDX-License-Identifier: Apache-2.0
import Testing
import VaultCore

/// Decoder leniency/strictness (docs/formats.md, "Base64 and padding", "Telethon session strings"),
/// hand-built payloads and the export policy.
@Suite struct CodecSessionStringTests {
    static let standardDigits = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")

    static func vector(_ id: String) throws -> String {
        let entry = try #require(try VectorFiles.cases("session_strings.json").first { $0["id"]?.string == id })
        return try #require(entry["string"]?.string)
    }

    /// The 6-bit value of a base64 digit in either alphabet.
    static func digitValue(_ c: Character) -> Int? {
        if c == "-" { return 62 }
        if c == "_" { return 63 }
        return standardDigits.firstIndex(of: c)
    }

    static let current = "pyrogram:dc1-prod-user"
    static let legacy32 = "pyrogram-1.4:legacy32-dc2-prod-user"
    static let legacy64 = "pyrogram-1.4:legacy64-dc4-prod-user-id-above-2p32"
    static let telethonV4 = "telethon:ipv4-dc1"
    static let telethonV6 = "telethon:ipv6-dc2"

    /// Hand-built current-layout payload → string (what the libraries' struct.pack would do).
    static func currentString(
        dc: UInt8 = 2, api: UInt32 = 12345, test: UInt8 = 0, key: [UInt8]? = nil, user: UInt64 = 42, bot: UInt8 = 0
    ) -> String {
        var writer = ByteWriter()
        writer.write(dc)
        writer.writeBigEndian(api)
        writer.write(test)
        writer.write(contentsOf: key ?? [UInt8](repeating: 0x5A, count: 256))
        writer.writeBigEndian(user)
        writer.write(bot)
        return Base64.encode(writer.bytes, alphabet: .urlSafe, padded: false)
    }

    static func telethonString(dc: UInt8 = 2, address: [UInt8], port: UInt16 = 443, key: [UInt8]) -> String {
        var writer = ByteWriter()
        writer.write(dc)
        writer.write(contentsOf: address)
        writer.writeBigEndian(port)
        writer.write(contentsOf: key)
        return "1" + Base64.encode(writer.bytes, alphabet: .urlSafe, padded: true)
    }

    // MARK: Accepted like the Python readers

    @Test func standardAlphabetDecodesToTheSameSession() throws {
        for id in [Self.current, Self.legacy32, Self.legacy64, Self.telethonV4, Self.telethonV6] {
            let text = try Self.vector(id)
            let standard = String(text.map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 })
            #expect(standard != text, "\(id) should contain - or _ to make this test meaningful")
            #expect(try SessionStringCodec.decode(standard) == SessionStringCodec.decode(text), "\(id)")
        }
    }

    @Test func currentStringsAcceptZeroOneOrTwoPaddingCharacters() throws {
        let text = try Self.vector(Self.current)
        let reference = try SessionStringCodec.decode(text)
        #expect(try SessionStringCodec.decode(text + "=") == reference)
        #expect(try SessionStringCodec.decode(text + "==") == reference)
        #expect(throws: CodecError.invalidPadding) { try SessionStringCodec.decode(text + "===") }
        #expect(SessionStringCodec.detect(text + "==") == .pyrogramString)
    }

    // MARK: Refused

    @Test func legacyStringsMustBeUnpadded() throws {
        #expect(throws: CodecError.invalidPadding) { try SessionStringCodec.decode(Self.vector(Self.legacy32) + "=") }
        #expect(throws: CodecError.invalidPadding) { try SessionStringCodec.decode(Self.vector(Self.legacy64) + "=") }
        #expect(SessionStringCodec.detect(try Self.vector(Self.legacy32) + "=") == nil)
    }

    @Test func telethonStringsNeedExactlyTheirOnePaddingCharacter() throws {
        let text = try Self.vector(Self.telethonV4)
        #expect(text.hasSuffix("="))
        #expect(throws: CodecError.invalidPadding) { try SessionStringCodec.decode(String(text.dropLast()) + "A") }
        #expect(throws: CodecError.invalidLength(352, expected: CodecVectorTests.lengthHint)) {
            try SessionStringCodec.decode(String(text.dropLast()))
        }
        #expect(throws: CodecError.unsupportedVersion) { try TelethonSessionString.decode("2" + text.dropFirst()) }
    }

    @Test func everyKindOfWhitespaceIsRefusedWithItsPosition() throws {
        for id in [Self.current, Self.telethonV4] {
            let text = try Self.vector(id)
            for space in ["\u{20}", "\t", "\n", "\r", "\u{0B}", "\u{0C}", "\r\n"] {
                #expect(throws: CodecError.whitespace(position: 0)) { try SessionStringCodec.decode(space + text) }
                let n = text.utf8.count
                #expect(throws: CodecError.whitespace(position: n)) { try SessionStringCodec.decode(text + space) }
                let middle = String(text.prefix(7)) + space + String(text.dropFirst(7))
                #expect(throws: CodecError.whitespace(position: 7)) { try SessionStringCodec.decode(middle) }
            }
        }
    }

    @Test func nonZeroUnusedBitsAreRefused() throws {
        for id in [Self.current, Self.legacy32, Self.telethonV4] {
            var chars = Array(try Self.vector(id))
            let last = chars.lastIndex { $0 != "=" } ?? 0
            let value = try #require(Self.digitValue(chars[last]))
            #expect(value & 1 == 0, "canonical strings have zero unused bits")
            chars[last] = Self.standardDigits[value | 1]
            #expect(throws: CodecError.nonCanonicalEncoding, "\(id)") { try SessionStringCodec.decode(String(chars)) }
        }
    }

    @Test func oversizedInputIsRefusedBeforeDecoding() {
        let cap = SessionStringCodec.maxInputLength
        #expect(throws: CodecError.tooLong(max: cap)) { try SessionStringCodec.decode(String(repeating: "A", count: cap + 1)) }
        #expect(throws: CodecError.tooLong(max: cap)) { try SessionStringCodec.decode(String(repeating: "é", count: 1 << 20)) }
        #expect(throws: CodecError.tooLong(max: cap)) { try PyrogramSessionString.decode(String(repeating: " ", count: 1 << 20)) }
        #expect(throws: CodecError.tooLong(max: cap)) { try TelethonSessionString.decode(String(repeating: "1", count: cap + 1)) }
        #expect(SessionStringCodec.detect(String(repeating: "A", count: cap + 1)) == nil)
    }

    // MARK: Field values (hand-built payloads)

    @Test func pyrogramFieldRules() throws {
        // Any non-zero byte is true, as Python's `?`.
        let flags = try SessionStringCodec.decode(Self.currentString(test: 2, bot: 0xFF)).session
        #expect(flags.testMode == true && flags.isBot == true)
        // 2^63 − 1 is the largest storable user id; 2^63 names user_id.
        #expect(try SessionStringCodec.decode(Self.currentString(user: UInt64(Int64.max))).session.userID == .max)
        #expect(throws: CodecError.fieldOutOfRange(field: "user_id", reason: "above 2^63−1, cannot be stored")) {
            try SessionStringCodec.decode(Self.currentString(user: 1 << 63))
        }
        #expect(throws: CodecError.fieldOutOfRange(field: "dc_id", reason: "0 is not a data center")) {
            try SessionStringCodec.decode(Self.currentString(dc: 0))
        }
        #expect(throws: CodecError.fieldOutOfRange(field: "auth_key", reason: "all zero, the string carries no key")) {
            try SessionStringCodec.decode(Self.currentString(key: [UInt8](repeating: 0, count: 256)))
        }
        // Kept as read: DC outside the table, api_id 0.
        let odd = try SessionStringCodec.decode(Self.currentString(dc: 200, api: 0)).session
        #expect(odd.dcID == 200 && odd.apiID == 0 && odd.date == 0)
    }

    @Test func telethonFieldRules() throws {
        let key = [UInt8](repeating: 0x33, count: 256)
        let zero = [UInt8](repeating: 0, count: 256)
        let noKey = try SessionStringCodec.decode(Self.telethonString(address: [149, 154, 167, 51], key: zero))
        #expect(noKey.session.authKey == nil)
        #expect(noKey.session.serverAddress == "149.154.167.51")
        #expect(throws: CodecError.fieldOutOfRange(field: "dc_id", reason: "0 is not a data center")) {
            try SessionStringCodec.decode(Self.telethonString(dc: 0, address: [1, 2, 3, 4], key: key))
        }
        #expect(throws: CodecError.fieldOutOfRange(field: "port", reason: "0 is not a valid port")) {
            try SessionStringCodec.decode(Self.telethonString(address: [1, 2, 3, 4], port: 0, key: key))
        }
        let mapped: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 1, 2, 3, 4]
        let text = Self.telethonString(address: mapped, key: key)
        let session = try SessionStringCodec.decode(text).session
        #expect(session.serverAddress == "::ffff:102:304")
        #expect(try SessionStringCodec.encode(session, as: .telethon) == text)
    }

    // MARK: Export policy

    static func pyrogramSession() throws -> TelegramSession {
        try SessionStringCodec.decode(Self.vector(Self.current)).session
    }

    @Test func zeroMeansMissingForAPIIDAndUserID() throws {
        var session = try Self.pyrogramSession()
        session.apiID = 0
        session.userID = 0
        #expect(throws: CodecError.missingFields(["api_id", "user_id"])) { try SessionStringCodec.encode(session, as: .pyrogram) }
        let fixed = try SessionStringCodec.encode(session, as: .pyrogram, overrides: .init(apiID: 5, userID: 6))
        let back = try SessionStringCodec.decode(fixed).session
        #expect(back.apiID == 5 && back.userID == 6)
    }

    @Test func everyMissingFieldIsNamedInStructOrder() throws {
        let bare = TelegramSession(dcID: 0)
        #expect(throws: CodecError.missingFields(["dc_id", "api_id", "test_mode", "auth_key", "user_id", "is_bot"])) {
            try SessionStringCodec.encode(bare, as: .pyrogram)
        }
        #expect(throws: CodecError.missingFields(["dc_id", "test_mode", "server_address", "port", "auth_key"])) {
            try SessionStringCodec.encode(bare, as: .telethon)
        }
    }

    @Test func overridesFillGapsReplaceAPIIDAndNeverContradict() throws {
        let session = try Self.pyrogramSession()
        let replaced = try SessionStringCodec.encode(session, as: .pyrogram, overrides: .init(apiID: 999))
        #expect(try SessionStringCodec.decode(replaced).session.apiID == 999)
        let same = try SessionStringCodec.encode(
            session, as: .pyrogram, overrides: .init(userID: session.userID, isBot: session.isBot, testMode: false))
        #expect(same == (try Self.vector(Self.current)))
        #expect(throws: CodecError.fieldOutOfRange(field: "user_id", reason: "override conflicts with the session's own value")) {
            try SessionStringCodec.encode(session, as: .pyrogram, overrides: .init(userID: 1))
        }
        #expect(throws: CodecError.fieldOutOfRange(field: "is_bot", reason: "override conflicts with the session's own value")) {
            try SessionStringCodec.encode(session, as: .pyrogram, overrides: .init(isBot: true))
        }
        var contradicting = session
        contradicting.serverAddress = "149.154.175.10"  // a test DC
        #expect(throws: CodecError.fieldOutOfRange(field: "test_mode", reason: "contradicts the server address")) {
            try SessionStringCodec.encode(contradicting, as: .pyrogram)
        }
    }

    @Test func pyrogramExportKeepsAnyOneByteDCAndNeedsARealKey() throws {
        var session = try Self.pyrogramSession()
        session.testMode = true
        session.dcID = 4
        // Outside Telegram's test table, but what pyrofork itself writes: round-trips unchanged.
        let testDC4 = try SessionStringCodec.encode(session, as: .pyrogram)
        let decoded = try SessionStringCodec.decode(testDC4)
        #expect(decoded.session.dcID == 4 && decoded.session.testMode == true)
        session.dcID = 256
        #expect(throws: CodecError.fieldOutOfRange(field: "dc_id", reason: "must fit one byte (1…255)")) {
            try SessionStringCodec.encode(session, as: .pyrogram)
        }
        session.testMode = false
        session.dcID = 203
        #expect(try SessionStringCodec.encode(session, as: .pyrogram).utf8.count == 362)
        session.authKey = try AuthKey([UInt8](repeating: 0, count: 256))
        #expect(throws: CodecError.fieldOutOfRange(field: "auth_key", reason: "all zero, not a key")) {
            try SessionStringCodec.encode(session, as: .pyrogram)
        }
        #expect(throws: CodecError.fieldOutOfRange(field: "auth_key", reason: "all zero, not a key")) {
            try SessionStringCodec.encode(session, as: .telethon)
        }
    }

    @Test func telethonExportTakesAddressFromSessionOrTable() throws {
        var session = try Self.pyrogramSession()  // dc 1, production, no address
        let fromTable = try SessionStringCodec.decode(SessionStringCodec.encode(session, as: .telethon)).session
        #expect(fromTable.serverAddress == "149.154.175.53" && fromTable.port == 443)

        session.testMode = nil
        #expect(throws: CodecError.missingFields(["test_mode", "server_address", "port"])) {
            try SessionStringCodec.encode(session, as: .telethon)
        }
        let test = try SessionStringCodec.decode(
            SessionStringCodec.encode(session, as: .telethon, overrides: .init(testMode: true))).session
        #expect(test.serverAddress == "149.154.175.10" && test.port == 80)

        session.dcID = 9
        #expect(throws: CodecError.missingFields(["server_address", "port"])) {
            try SessionStringCodec.encode(session, as: .telethon, overrides: .init(testMode: false))
        }
        // The session's own address wins; a missing port follows the environment.
        session.serverAddress = "2001:db8::1"
        let own = try SessionStringCodec.decode(
            SessionStringCodec.encode(session, as: .telethon, overrides: .init(testMode: false))).session
        #expect(own.serverAddress == "2001:db8::1" && own.port == 443 && own.dcID == 9)
        session.port = 0
        #expect(throws: CodecError.fieldOutOfRange(field: "port", reason: "must be 1…65535")) {
            try SessionStringCodec.encode(session, as: .telethon)
        }
        session.port = 443
        session.serverAddress = "localhost"
        #expect(throws: CodecError.fieldOutOfRange(field: "server_address", reason: "not an IPv4 or IPv6 address")) {
            try SessionStringCodec.encode(session, as: .telethon)
        }
        #expect(throws: CodecError.fieldOutOfRange(field: "format", reason: "pyrogram-file is a file format, not a string")) {
            try SessionStringCodec.encode(session, as: .pyrogramFile)
        }
    }

    @Test func faithfulEncodersCheckOnlyRepresentability() throws {
        let key = try CodecFixtures.key(hex: String(repeating: "ab", count: 256))
        #expect(try PyrogramSessionString.encode(dcID: 0, apiID: 0, testMode: false, authKey: key, userID: 0, isBot: false)
            .utf8.count == 362)
        #expect(throws: CodecError.fieldOutOfRange(field: "dc_id", reason: "must fit one byte (0…255)")) {
            try PyrogramSessionString.encode(dcID: 256, apiID: 1, testMode: false, authKey: key, userID: 1, isBot: false)
        }
        #expect(throws: CodecError.fieldOutOfRange(field: "api_id", reason: "must be 0…4294967295")) {
            try PyrogramSessionString.encode(dcID: 1, apiID: -1, testMode: false, authKey: key, userID: 1, isBot: false)
        }
        #expect(throws: CodecError.fieldOutOfRange(field: "user_id", reason: "must not be negative")) {
            try PyrogramSessionString.encode(dcID: 1, apiID: 1, testMode: false, authKey: key, userID: -1, isBot: false)
        }
        #expect(throws: CodecError.fieldOutOfRange(field: "port", reason: "must be 0…65535")) {
            try TelethonSessionString.encode(dcID: 1, serverAddress: "1.2.3.4", port: 65536, authKey: key)
        }
        #expect(throws: CodecError.fieldOutOfRange(field: "dc_id", reason: "must fit one byte (0…255)")) {
            try TelethonSessionString.encode(dcID: -1, serverAddress: "1.2.3.4", port: 1, authKey: key)
        }
        #expect(try TelethonSessionString.encode(dcID: 1, serverAddress: "1.2.3.4", port: 1, authKey: key).utf8.count == 353)
        #expect(try TelethonSessionString.encode(dcID: 1, serverAddress: "::1", port: 1, authKey: key).utf8.count == 369)
    }

    @Test func detectJudgesShapeOnly() throws {
        #expect(SessionStringCodec.detect(try Self.vector(Self.telethonV6)) == .telethonString)
        #expect(SessionStringCodec.detect(try Self.vector(Self.legacy64)) == .pyrogramLegacy64)
        #expect(SessionStringCodec.detect(String(repeating: "A", count: 362)) == .pyrogramString)  // shape only
        #expect(SessionStringCodec.detect("") == nil)
        #expect(SessionStringCodec.detect("hello") == nil)
        #expect(PyrogramSessionString.layout(of: try Self.vector(Self.legacy32)) == .legacy32)
    }
}
