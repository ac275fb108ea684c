// SPDX-License-Identifier: Apache-2.0
import Testing
import VaultCore

/// The session-string codecs against the vectors produced by the real libraries
/// (`Tests/VaultCoreTests/Vectors`, see its README).
@Suite struct CodecVectorTests {
    static let formatNames: [String: SourceFormat] = [
        "pyrogram-v2 (current, with api_id)": .pyrogramString,
        "pyrogram-legacy-32 (no api_id, 32-bit user_id)": .pyrogramLegacy32,
        "pyrogram-legacy-64 (no api_id, 64-bit user_id)": .pyrogramLegacy64,
        "telethon-string-v1-ipv4": .telethonString,
        "telethon-string-v1-ipv6": .telethonString,
    ]

    // MARK: session_strings.json

    @Test func everyValidStringDecodesToExpectedOnImport() throws {
        let cases = try VectorFiles.cases("session_strings.json")
        #expect(cases.count == 45)
        for entry in cases {
            let id = try #require(entry["id"]?.string)
            let text = try #require(entry["string"]?.string)
            let formatName = try #require(entry["format_name"]?.string)
            let format = try #require(Self.formatNames[formatName], "unknown format \(formatName)")
            let expected = try CodecFixtures.session(try #require(entry["expected_on_import"]))

            let imported = try SessionStringCodec.decode(text)
            #expect(imported.format == format, "\(id)")
            #expect(imported.peers.isEmpty, "\(id)")
            #expect(imported.session == expected, "\(id)")
            // Field by field too, so a failure says which one.
            let got = imported.session
            #expect(got.dcID == expected.dcID, "\(id)")
            #expect(got.apiID == expected.apiID, "\(id)")
            #expect(got.testMode == expected.testMode, "\(id)")
            #expect(got.userID == expected.userID, "\(id)")
            #expect(got.isBot == expected.isBot, "\(id)")
            #expect(got.serverAddress == expected.serverAddress, "\(id)")
            #expect(got.port == expected.port, "\(id)")
            #expect(got.date == expected.date, "\(id)")
            #expect(CodecFixtures.keyHex(got) == CodecFixtures.keyHex(expected), "\(id)")
            #expect(SessionStringCodec.detect(text) == format, "\(id)")
            #expect(text.utf8.count == Int(try #require(entry["string_length"]?.int64)), "\(id)")

            // The generic decoder sees the same payload the generator recorded.
            let payloadText = format == .telethonString ? String(text.dropFirst()) : text
            let payload = try Base64.decode(payloadText)
            #expect(Hex.encode(payload) == entry["decoded_hex"]?.string, "\(id)")
        }
    }

    @Test func currentLayoutReEncodesToTheLibrarysOwnString() throws {
        var checked = 0
        for entry in try VectorFiles.cases("session_strings.json") {
            let text = try #require(entry["string"]?.string)
            let imported = try SessionStringCodec.decode(text)
            guard imported.format == .pyrogramString else { continue }
            let s = imported.session
            let encoded = try CodecFixtures.pyrogramString(s)
            #expect(encoded == text, "\(entry["id"]?.string ?? "?")")
            // The policy-checked export agrees, except for api_id 0 ("unknown"), which it refuses.
            if s.apiID == 0 {
                #expect(throws: CodecError.missingFields(["api_id"])) {
                    try SessionStringCodec.encode(s, as: .pyrogram)
                }
            } else {
                #expect(try SessionStringCodec.encode(s, as: .pyrogram) == text)
            }
            checked += 1
        }
        #expect(checked == 32)
    }

    @Test func telethonStringsRoundTripByteForByte() throws {
        var checked = 0
        for entry in try VectorFiles.cases("session_strings.json") {
            let text = try #require(entry["string"]?.string)
            let imported = try SessionStringCodec.decode(text)
            guard imported.format == .telethonString else { continue }
            let s = imported.session
            let direct = try TelethonSessionString.encode(
                dcID: s.dcID, serverAddress: try #require(s.serverAddress), port: try #require(s.port),
                authKey: try #require(s.authKey))
            #expect(direct == text, "\(entry["id"]?.string ?? "?")")
            #expect(try SessionStringCodec.encode(s, as: .telethon) == text)
            checked += 1
        }
        #expect(checked == 7)
    }

    @Test func legacyStringsExportAsCurrentOnlyWithAnAPIID() throws {
        var checked = 0
        for entry in try VectorFiles.cases("session_strings.json") {
            let text = try #require(entry["string"]?.string)
            let imported = try SessionStringCodec.decode(text)
            guard imported.format == .pyrogramLegacy32 || imported.format == .pyrogramLegacy64 else { continue }
            #expect(throws: CodecError.missingFields(["api_id"])) {
                try SessionStringCodec.encode(imported.session, as: .pyrogram)
            }
            let upgraded = try SessionStringCodec.encode(
                imported.session, as: .pyrogram, overrides: ConversionOverrides(apiID: 777))
            #expect(upgraded.utf8.count == 362)
            var expected = imported.session
            expected.apiID = 777
            let again = try SessionStringCodec.decode(upgraded)
            #expect(again.format == .pyrogramString)
            #expect(again.session == expected)
            checked += 1
        }
        #expect(checked == 6)
    }

    // MARK: invalid_session_strings.json

    /// What the vault does with each malformed or borderline input.
    enum Outcome {
        /// Refused with exactly this error.
        case refused(CodecError)
        /// Refused although at least one library accepts it; the reason is documented.
        case refusedStricter(CodecError, reason: String)
        /// Accepted; the reason is documented.
        case accepted(reason: String)
    }

    /// The documented decision for every case of `invalid_session_strings.json`.
    ///
    /// | id | vault | why |
    /// |---|---|---|
    /// | current-bad-padding | accepted | a stray `=` after 362 digits carries no data; every current reader accepts it |
    /// | all-A-362 | refused (`dc_id`) | decodes to DC 0 and an all-zero key: not a session (pyrogram, hydrogram, pyrofork accept it and fail later) |
    /// | legacy32-with-padding | refused (padding) | no reader accepts it, and its shape equals a Telethon string without its `1` |
    /// | everything else | refused | no library accepts it either |
    static let invalidOutcomes: [String: Outcome] = [
        "empty-string": .refused(.unknownFormat),
        "current-truncated-by-1": .refused(.invalidLength(361, expected: lengthHint)),
        "current-truncated-by-2": .refused(.invalidLength(360, expected: lengthHint)),
        "current-truncated-half": .refused(.invalidLength(181, expected: lengthHint)),
        "current-extra-char": .refused(.invalidLength(363, expected: lengthHint)),
        "current-extra-4-chars": .refused(.invalidLength(366, expected: lengthHint)),
        "current-invalid-char-bang": .refused(.invalidCharacter(position: 100)),
        "current-invalid-char-inserted": .refused(.invalidCharacter(position: 100)),
        "current-non-ascii": .refused(.nonASCII(position: 50)),
        "current-cyrillic": .refused(.nonASCII(position: 10)),
        "current-trailing-newline": .refused(.whitespace(position: 362)),
        "current-surrounding-spaces": .refused(.whitespace(position: 0)),
        "current-inner-whitespace": .refused(.whitespace(position: 180)),
        "current-bad-padding": .accepted(
            reason: "a stray '=' after 362 digits carries no data; every current reader accepts it"),
        "random-text": .refused(.whitespace(position: 5)),
        "telethon-string-to-pyrogram-length-352": .refused(.invalidLength(352, expected: lengthHint)),
        "all-A-362": .refusedStricter(
            .fieldOutOfRange(field: "dc_id", reason: "0 is not a data center"),
            reason: "DC 0 with an all-zero key is not a session; the libraries accept it and fail at connect"),
        "legacy32-with-padding": .refused(.invalidPadding),
        "legacy32-truncated": .refused(.invalidLength(350, expected: lengthHint)),
        "legacy64-truncated": .refused(.invalidLength(352, expected: lengthHint)),
        "telethon-wrong-version-char": .refused(.unsupportedVersion),
        "telethon-no-version-char": .refused(.invalidPadding),
        "telethon-padding-stripped": .refused(.invalidLength(352, expected: lengthHint)),
        "telethon-truncated": .refused(.invalidLength(345, expected: lengthHint)),
        "telethon-non-ascii": .refused(.nonASCII(position: 30)),
        "telethon-version-only": .refused(.invalidLength(1, expected: lengthHint)),
        "telethon-ipv6-truncated": .refused(.invalidLength(365, expected: lengthHint)),
    ]

    static let lengthHint = "362, 351 or 356 characters (Pyrogram) or 353/369 (Telethon)"

    @Test func everyInvalidStringIsRefusedOrADocumentedAcceptance() throws {
        let cases = try VectorFiles.cases("invalid_session_strings.json")
        let ids = Set(try cases.map { try #require($0["id"]?.string) })
        #expect(ids == Set(Self.invalidOutcomes.keys), "the table must cover exactly the vector ids")

        for entry in cases {
            let id = try #require(entry["id"]?.string)
            let input = try #require(entry["input"]?.string)
            let outcome = try #require(Self.invalidOutcomes[id])
            let readers = try #require(entry["readers"])
            let libraryKeys = ["pyrogram", "hydrogram", "kurigram", "pyrofork", "telethon", "pyrogram-1.4",
                               "kurigram-2.2.9", "telethon-1.42"]
            let acceptedBySome = libraryKeys.contains { readers[$0]?["accepted"]?.bool == true }

            switch outcome {
            case .refused(let expected), .refusedStricter(let expected, _):
                if case .refused = outcome {
                    #expect(!acceptedBySome, "\(id): a library accepts it, mark it refusedStricter with a reason")
                } else {
                    #expect(acceptedBySome, "\(id): no library accepts it, 'stricter' is wrong")
                }
                #expect(throws: expected, "\(id)") { try SessionStringCodec.decode(input) }
                do {
                    _ = try SessionStringCodec.decode(input)
                } catch {
                    Self.expectSecretFree(error, input: input, id: id)
                }
            case .accepted:
                #expect(acceptedBySome, "\(id): accepting what no library accepts needs a better reason")
                let imported = try SessionStringCodec.decode(input)
                let canonical = try SessionStringCodec.decode(String(input.prefix(362)))
                #expect(imported == canonical, "\(id)")
            }
        }
    }

    /// No 8-character window of the input appears in the error's description.
    static func expectSecretFree(_ error: CodecError, input: String, id: String) {
        let text = error.description
        let scalars = Array(input.unicodeScalars)
        guard scalars.count >= 8 else { return }
        for start in 0...(scalars.count - 8) {
            var window = String.UnicodeScalarView()
            window.append(contentsOf: scalars[start..<(start + 8)])
            if text.contains(String(window)) {
                Issue.record("\(id): description echoes the input")
                return
            }
        }
    }

    // MARK: export_errors.json

    /// The vault's answer to each bad export of `export_errors.json` (Pyrogram family).
    enum ExportOutcome {
        /// `SessionStringCodec.encode(_:as: .pyrogram)` refuses with this error.
        case refused(CodecError)
        /// Not even representable: `AuthKey` accepts only 256 bytes (the libraries zero-pad or
        /// truncate silently).
        case keyRejected
    }

    static let exportOutcomes: [String: ExportOutcome] = [
        "api-id-none": .refused(.missingFields(["api_id"])),
        "user-id-none": .refused(.missingFields(["user_id"])),
        // Stricter: the libraries pack None as False.
        "is-bot-none": .refused(.missingFields(["is_bot"])),
        "user-id-negative": .refused(.fieldOutOfRange(field: "user_id", reason: "must be 1…2^63−1")),
        "dc-id-256": .refused(.fieldOutOfRange(field: "dc_id", reason: "must fit one byte (1…255)")),
        "api-id-2p32": .refused(.fieldOutOfRange(field: "api_id", reason: "must be 1…4294967295")),
        "auth-key-128-bytes": .keyRejected,
        "auth-key-300-bytes": .keyRejected,
        "auth-key-none": .refused(.missingFields(["auth_key"])),
    ]

    @Test func exporterRefusesWhatTheLibrariesCannotMeaningfullyExport() throws {
        let cases = try VectorFiles.cases("export_errors.json")
        let ids = Set(try cases.map { try #require($0["id"]?.string) })
        #expect(ids == Set(Self.exportOutcomes.keys))
        for entry in cases {
            let id = try #require(entry["id"]?.string)
            let fields = try #require(entry["fields"])
            switch try #require(Self.exportOutcomes[id]) {
            case .keyRejected:
                let hex = try #require(fields["auth_key_hex"]?.string)
                #expect(throws: ModelError.self, "\(id)") { try CodecFixtures.key(hex: hex) }
            case .refused(let expected):
                let session = try CodecFixtures.session(fields)
                #expect(throws: expected, "\(id)") { try SessionStringCodec.encode(session, as: .pyrogram) }
            }
        }
    }

    @Test func isBotSuppliedByTheCallerReproducesTheLibraryExport() throws {
        let entry = try #require(try VectorFiles.cases("export_errors.json").first { $0["id"]?.string == "is-bot-none" })
        let session = try CodecFixtures.session(try #require(entry["fields"]))
        let libraryString = try #require(entry["results"]?["pyrogram"]?["string"]?.string)
        // pyrogram packed None as False; with is_bot supplied explicitly we produce the same bytes.
        let ours = try SessionStringCodec.encode(session, as: .pyrogram, overrides: ConversionOverrides(isBot: false))
        #expect(ours == libraryString)
    }

    // MARK: conversion_pairs.json

    @Test func pyrogramToTelethonEqualsTelethonsOwnString() throws {
        let pairs = try VectorFiles.cases("conversion_pairs.json")
        #expect(pairs.count == 3)
        for pair in pairs {
            let pyrogram = try #require(pair["pyrogram_string"]?.string)
            let telethon = try #require(pair["telethon_string"]?.string)
            let imported = try SessionStringCodec.decode(pyrogram)
            #expect(try SessionStringCodec.encode(imported.session, as: .telethon) == telethon)
            // The decoded fields are the generator's inputs.
            #expect(imported.session.dcID == Int(try #require(pair["pyrogram_fields"]?["dc_id"]?.int64)))
        }
    }

    @Test func telethonToPyrogramNeedsTheMissingFieldsAndNamesThem() throws {
        for pair in try VectorFiles.cases("conversion_pairs.json") {
            let pyrogram = try #require(pair["pyrogram_string"]?.string)
            let telethon = try #require(pair["telethon_string"]?.string)
            let fields = try #require(pair["pyrogram_fields"])
            let session = try SessionStringCodec.decode(telethon).session

            // test_mode is inferred from the (known) DC address; the rest must be supplied.
            #expect(throws: CodecError.missingFields(["api_id", "user_id", "is_bot"])) {
                try SessionStringCodec.encode(session, as: .pyrogram)
            }
            #expect(throws: CodecError.missingFields(["user_id"])) {
                try SessionStringCodec.encode(
                    session, as: .pyrogram, overrides: ConversionOverrides(apiID: 1, isBot: false))
            }
            let overrides = ConversionOverrides(
                apiID: fields["api_id"]?.int64, userID: fields["user_id"]?.int64, isBot: fields["is_bot"]?.bool)
            #expect(try SessionStringCodec.encode(session, as: .pyrogram, overrides: overrides) == pyrogram)

            // A test-mode override that contradicts the address is refused, never applied.
            var contradicting = overrides
            contradicting.testMode = !(try #require(fields["test_mode"]?.bool as Bool?))
            #expect(throws: CodecError.fieldOutOfRange(field: "test_mode", reason: "override conflicts with the session's own value")) {
                try SessionStringCodec.encode(session, as: .pyrogram, overrides: contradicting)
            }

            // Without a known address nothing is inferred: test_mode is missing too.
            var unknownAddress = session
            unknownAddress.serverAddress = "10.0.0.1"
            #expect(throws: CodecError.missingFields(["api_id", "test_mode", "user_id", "is_bot"])) {
                try SessionStringCodec.encode(unknownAddress, as: .pyrogram)
            }
        }
    }
}
