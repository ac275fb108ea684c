// SPDX-License-Identifier: Apache-2.0
import Testing
import VaultCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Seeded, bounded property and robustness tests for the session-string codecs.
@Suite struct CodecPropertyTests {
    static let iterations = 2000

    @Test func pyrogramDecodeOfEncodeIsIdentity() throws {
        var rng = SeededGenerator(seed: 0x5E55_1011)
        for _ in 0..<Self.iterations {
            let session = TelegramSession(
                dcID: Int.random(in: 1...255, using: &rng),
                apiID: Int64.random(in: 0...Int64(UInt32.max), using: &rng),
                testMode: Bool.random(using: &rng),
                authKey: try CodecFixtures.randomKey(using: &rng),
                userID: Bool.random(using: &rng)
                    ? Int64.random(in: 0...Int64.max, using: &rng) : Int64.random(in: 0...1 << 33, using: &rng),
                isBot: Bool.random(using: &rng),
                date: 0)
            let text = try CodecFixtures.pyrogramString(session)
            #expect(text.utf8.count == PyrogramSessionString.encodedLength)
            let decoded = try SessionStringCodec.decode(text)
            #expect(decoded.format == .pyrogramString)
            #expect(decoded.session == session)
        }
    }

    /// A random IPv6 address with many zero groups, so compression is exercised.
    static func randomIPv6(using rng: inout SeededGenerator) -> [UInt8] {
        (0..<8).flatMap { _ -> [UInt8] in
            let group: UInt16 = Bool.random(using: &rng) ? 0 : UInt16.random(in: 0...UInt16.max, using: &rng)
            return [UInt8(group >> 8), UInt8(group & 0xFF)]
        }
    }

    @Test func telethonDecodeOfEncodeIsIdentity() throws {
        var rng = SeededGenerator(seed: 0x7E1E_7404)
        for _ in 0..<Self.iterations {
            let address: String
            if Bool.random(using: &rng) {
                address = try #require(IPAddressText.formatIPv4((0..<4).map { _ in UInt8.random(in: 0...255, using: &rng) }))
            } else {
                address = try #require(IPAddressText.formatIPv6(Self.randomIPv6(using: &rng)))
            }
            let session = TelegramSession(
                dcID: Int.random(in: 1...255, using: &rng), authKey: try CodecFixtures.randomKey(using: &rng),
                serverAddress: address, port: Int.random(in: 1...65535, using: &rng))
            let text = try SessionStringCodec.encode(session, as: .telethon)
            let decoded = try SessionStringCodec.decode(text)
            #expect(decoded.format == .telethonString)
            #expect(decoded.session == session)
        }
    }

    #if canImport(Glibc) || canImport(Darwin)
    /// Differential check of the RFC 5952 formatter against the C library's `inet_ntop`, skipping
    /// the ::/96 and ::ffff:0:0/96 prefixes that libc renders with a dotted tail (Python 3.11 does not).
    @Test func ipv6FormattingMatchesInetNtop() throws {
        var rng = SeededGenerator(seed: 0x1F6)
        var compared = 0
        for _ in 0..<Self.iterations {
            let bytes = Self.randomIPv6(using: &rng)
            let text = try #require(IPAddressText.formatIPv6(bytes))
            #expect(IPAddressText.parseIPv6(text) == bytes)
            if bytes[0..<10].allSatisfy({ $0 == 0 }) { continue }
            var buffer = [CChar](repeating: 0, count: 64)
            let rendered = bytes.withUnsafeBytes { raw in
                inet_ntop(AF_INET6, raw.baseAddress, &buffer, socklen_t(buffer.count)) != nil
            }
            try #require(rendered)
            let libc = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            #expect(text == libc)
            compared += 1
        }
        #expect(compared > Self.iterations / 2)
    }
    #endif

    // MARK: Robustness

    /// Characters fuzz inputs are built from: digits of both alphabets, padding, whitespace,
    /// ASCII junk, control characters and non-ASCII (incl. a homoglyph and an astral scalar).
    static let pool: [Unicode.Scalar] = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=1 \t\n\r\0!*.:%é\u{410}\u{1F600}\u{7F}"
            .unicodeScalars)

    /// Checks what any accepted input must satisfy: re-encoding gives its canonical form.
    static func checkAccepted(_ input: String, _ imported: ImportedSession) throws {
        var canonical = String(input.map { $0 == "+" ? "-" : $0 == "/" ? "_" : $0 })
        switch imported.format {
        case .pyrogramString:
            while canonical.hasSuffix("=") { canonical.removeLast() }
            let again = try CodecFixtures.pyrogramString(imported.session)
            // Only 0x00/0x01 flag bytes survive a re-encode unchanged.
            if again != canonical {
                let original = try Base64.decode(canonical)
                #expect(original[5] > 1 || original[270] > 1, "accepted input does not re-encode canonically")
            }
        case .telethonString:
            let s = imported.session
            guard let key = s.authKey else { return }
            let again = try TelethonSessionString.encode(
                dcID: s.dcID, serverAddress: try #require(s.serverAddress), port: try #require(s.port), authKey: key)
            #expect(again == canonical)
        default:
            #expect(imported.session.apiID == nil)
        }
    }

    @Test func randomStringsNeverCrashTheDecoder() throws {
        var rng = SeededGenerator(seed: 0xF022)
        let lengths = [0, 1, 2, 4, 11, 181, 350, 351, 352, 353, 355, 356, 357, 361, 362, 363, 364, 365, 368, 369, 370, 4096, 4097]
        for round in 0..<3000 {
            let length = round % 2 == 0 ? lengths[round / 2 % lengths.count] : Int.random(in: 0...600, using: &rng)
            var scalars = String.UnicodeScalarView()
            // Mostly digits, so some inputs get past the character scan.
            let junkRate = Int.random(in: 0...3, using: &rng)
            for _ in 0..<length {
                let pickJunk = junkRate > 0 && Int.random(in: 0..<(400 / junkRate), using: &rng) == 0
                let index = pickJunk ? Int.random(in: 64..<Self.pool.count, using: &rng) : Int.random(in: 0..<64, using: &rng)
                scalars.append(Self.pool[index])
            }
            let input = String(scalars)
            do {
                try Self.checkAccepted(input, SessionStringCodec.decode(input))
            } catch let error as CodecError {
                _ = error.description
            }
        }
    }

    @Test func mutatedVectorsNeverCrashTheDecoder() throws {
        var rng = SeededGenerator(seed: 0x3017)
        let vectors = try VectorFiles.cases("session_strings.json").compactMap { $0["string"]?.string }
        for vector in vectors {
            for _ in 0..<100 {
                var scalars = Array(vector.unicodeScalars)
                let position = Int.random(in: 0..<scalars.count, using: &rng)
                let scalar = Self.pool[Int.random(in: 0..<Self.pool.count, using: &rng)]
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: scalars[position] = scalar
                case 1: scalars.insert(scalar, at: position)
                case 2: scalars.remove(at: position)
                default: scalars.swapAt(position, Int.random(in: 0..<scalars.count, using: &rng))
                }
                var view = String.UnicodeScalarView()
                view.append(contentsOf: scalars)
                let input = String(view)
                do {
                    try Self.checkAccepted(input, SessionStringCodec.decode(input))
                } catch let error as CodecError {
                    _ = error.description
                }
            }
        }
    }

    /// Every scalar U+0000…U+00FF at selected positions of a current string, with the exact
    /// expected outcome for each.
    @Test func exhaustiveSingleCharacterReplacement() throws {
        let text = try CodecSessionStringTests.vector(CodecSessionStringTests.current)
        let original = Array(text.unicodeScalars)
        #expect(original.count == 362)
        for position in [0, 1, 100, 360, 361] {
            for code in UInt32(0)...0xFF {
                let scalar = try #require(Unicode.Scalar(code))
                var scalars = original
                scalars[position] = scalar
                var view = String.UnicodeScalarView()
                view.append(contentsOf: scalars)
                let input = String(view)
                let character = Character(scalar)

                let expected: CodecError?
                if code >= 0x80 {
                    expected = .nonASCII(position: position)
                } else if [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20].contains(code) {
                    expected = .whitespace(position: position)
                } else if character == "=" {
                    expected = position == 361
                        ? .invalidLength(362, expected: CodecVectorTests.lengthHint) : .invalidCharacter(position: position)
                } else if let value = CodecSessionStringTests.digitValue(character) {
                    if position == 361 && value & 0x0F != 0 {
                        expected = .nonCanonicalEncoding  // the last of 362 digits has 4 unused bits
                    } else if position == 1 && value >> 4 == 0 {
                        // Digit 0 is `A`, so dc_id = value >> 4 becomes 0.
                        expected = .fieldOutOfRange(field: "dc_id", reason: "0 is not a data center")
                    } else {
                        expected = nil
                    }
                } else {
                    expected = .invalidCharacter(position: position)
                }

                if let expected {
                    #expect(throws: expected, "position \(position), U+\(String(code, radix: 16))") {
                        try SessionStringCodec.decode(input)
                    }
                } else {
                    try Self.checkAccepted(input, SessionStringCodec.decode(input))
                }
            }
        }
    }
}
