// SPDX-License-Identifier: Apache-2.0
import Testing
import VaultCore

@Suite struct CodecBase64Tests {
    /// RFC 4648 §10 test vectors.
    static let rfc4648: [(String, String)] = [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy"),
    ]

    @Test func encodesRFC4648Vectors() {
        for (plain, encoded) in Self.rfc4648 {
            #expect(Base64.encode(Array(plain.utf8), alphabet: .standard, padded: true) == encoded)
            let unpadded = String(encoded.prefix { $0 != "=" })
            #expect(Base64.encode(Array(plain.utf8), alphabet: .urlSafe, padded: false) == unpadded)
            #expect(Base64.encodedCount(byteCount: plain.utf8.count, padded: true) == encoded.count)
            #expect(Base64.encodedCount(byteCount: plain.utf8.count, padded: false) == unpadded.count)
        }
    }

    @Test func decodesRFC4648VectorsPaddedAndUnpadded() throws {
        for (plain, encoded) in Self.rfc4648 {
            #expect(try Base64.decode(encoded) == Array(plain.utf8))
            #expect(try Base64.decode(String(encoded.prefix { $0 != "=" })) == Array(plain.utf8))
        }
    }

    @Test func alphabetsDifferOnlyIn62And63AndBothDecode() throws {
        let bytes: [UInt8] = [0xFB, 0xFF, 0xBF]
        #expect(Base64.encode(bytes, alphabet: .standard, padded: false) == "+/+/")
        #expect(Base64.encode(bytes, alphabet: .urlSafe, padded: false) == "-_-_")
        #expect(try Base64.decode("+/+/") == bytes)
        #expect(try Base64.decode("-_-_") == bytes)
        #expect(try Base64.decode("-/+_") == bytes)  // mixed, as Python's urlsafe_b64decode allows
    }

    @Test func encodesEveryByteValueAndDecodesItBack() throws {
        let all = (0...255).map { UInt8($0) }
        for count in 0...all.count where count % 17 == 0 || count < 5 {
            let slice = Array(all.prefix(count))
            for alphabet in [Base64.Alphabet.standard, .urlSafe] {
                for padded in [true, false] {
                    #expect(try Base64.decode(Base64.encode(slice, alphabet: alphabet, padded: padded)) == slice)
                }
            }
        }
    }

    @Test func decodeErrorsNameThePosition() {
        #expect(throws: CodecError.whitespace(position: 2)) { try Base64.decode("Zm 9v") }
        #expect(throws: CodecError.whitespace(position: 4)) { try Base64.decode("Zm9v\n") }
        #expect(throws: CodecError.whitespace(position: 4)) { try Base64.decode("Zm8=\t") }
        #expect(throws: CodecError.invalidCharacter(position: 2)) { try Base64.decode("Zm=9v") }
        #expect(throws: CodecError.invalidCharacter(position: 1)) { try Base64.decode("Z.m9v") }
        #expect(throws: CodecError.invalidCharacter(position: 0)) { try Base64.decode("\u{0}Zm9v") }
        #expect(throws: CodecError.nonASCII(position: 3)) { try Base64.decode("Zm9é") }
        #expect(throws: CodecError.invalidPadding) { try Base64.decode("Zg=") }
        #expect(throws: CodecError.invalidPadding) { try Base64.decode("Zm9v====") }
        #expect(throws: CodecError.invalidLength(1, expected: "not 4k+1 base64 digits")) { try Base64.decode("Z") }
        #expect(throws: CodecError.nonCanonicalEncoding) { try Base64.decode("Zh==") }
        #expect(throws: CodecError.nonCanonicalEncoding) { try Base64.decode("Zm9=") }
        #expect(throws: CodecError.tooLong(max: 8)) { try Base64.decode("Zm9vYmFyZg", maxLength: 8) }
    }
}

@Suite struct CodecByteReaderTests {
    @Test func readsBigEndianFields() throws {
        var reader = ByteReader([0x01, 0x00, 0x00, 0x30, 0x39, 0x01, 0xAA, 0xBB, 0, 0, 0, 0, 0, 0, 0, 0x2A])
        #expect(try reader.readUInt8() == 1)
        #expect(try reader.readUInt32() == 12345)
        #expect(try reader.readUInt8() == 1)
        #expect(try reader.readUInt16() == 0xAABB)
        #expect(try reader.readUInt64() == 42)
        #expect(reader.isAtEnd)
        #expect(reader.remaining == 0)
    }

    @Test func refusesToReadPastTheEndWithoutTrapping() throws {
        var reader = ByteReader([UInt8](repeating: 7, count: 3))
        #expect(throws: CodecError.self) { try reader.readUInt32() }
        #expect(reader.offset == 0, "a failed read consumes nothing")
        #expect(throws: CodecError.self) { try reader.readBytes(4) }
        #expect(throws: CodecError.self) { try reader.readBytes(-1) }
        #expect(Array(try reader.readBytes(3)) == [7, 7, 7])
        #expect(throws: CodecError.self) { try reader.readUInt8() }
    }

    @Test func readsFromASliceWithANonZeroStartIndex() throws {
        let bytes: [UInt8] = [9, 9, 0x12, 0x34]
        var reader = ByteReader(bytes[2...])
        #expect(try reader.readUInt16() == 0x1234)
        #expect(throws: CodecError.self) { try reader.readUInt8() }
    }

    @Test func writerWritesBigEndianAndWipes() {
        var writer = ByteWriter(capacity: 15)
        writer.write(0x01)
        writer.writeBigEndian(UInt32(12345))
        writer.writeBigEndian(UInt16(0xAABB))
        writer.writeBigEndian(UInt64(42))
        #expect(writer.bytes == [0x01, 0x00, 0x00, 0x30, 0x39, 0xAA, 0xBB, 0, 0, 0, 0, 0, 0, 0, 0x2A])
        writer.wipe()
        #expect(writer.count == 0)
    }
}

@Suite struct CodecIPAddressTests {
    @Test func formatsIPv6LikePythonCompressed() throws {
        let cases: [([UInt16], String)] = [
            ([0x2001, 0x67C, 0x4E8, 0xF002, 0, 0, 0, 0xA], "2001:67c:4e8:f002::a"),
            ([0, 0, 0, 0, 0, 0, 0, 0], "::"),
            ([0, 0, 0, 0, 0, 0, 0, 1], "::1"),
            ([1, 0, 0, 0, 0, 0, 0, 0], "1::"),
            ([1, 0, 2, 3, 4, 5, 6, 7], "1:0:2:3:4:5:6:7"),  // a single zero group is not compressed
            ([1, 0, 0, 2, 0, 0, 0, 3], "1:0:0:2::3"),  // the longest run wins
            ([1, 0, 0, 2, 0, 0, 3, 4], "1::2:0:0:3:4"),  // first run on a tie
            ([0, 0, 0, 0, 0, 0xFFFF, 0x0102, 0x0304], "::ffff:102:304"),  // mapped stays hex (Python 3.11)
            ([0xABCD, 0xEF, 0, 0, 0, 0, 0, 0xFFFF], "abcd:ef::ffff"),
        ]
        for (groups, text) in cases {
            let bytes = groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
            #expect(IPAddressText.formatIPv6(bytes) == text)
            #expect(IPAddressText.parseIPv6(text) == bytes, "\(text)")
        }
    }

    @Test func parsesStrictlyAndRefusesLookalikes() {
        #expect(IPAddressText.parseIPv4("149.154.167.51") == [149, 154, 167, 51])
        #expect(IPAddressText.parseIPv4("0.0.0.0") == [0, 0, 0, 0])
        for bad in ["1.2.3", "1.2.3.4.5", "01.2.3.4", "256.1.1.1", "1.2.3.4 ", " 1.2.3.4", "1..3.4", "1.2.3.",
                    "+1.2.3.4", "1.2.3.1000", "", "a.b.c.d", "１.2.3.4"]
        {
            #expect(IPAddressText.parseIPv4(bad) == nil, "\(bad)")
        }
        #expect(IPAddressText.parseIPv6("::ffff:1.2.3.4") == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 1, 2, 3, 4])
        #expect(IPAddressText.parseIPv6("1:2:3:4:5:6:7::") != nil)  // `::` for a single group
        #expect(IPAddressText.parseIPv6("::0") == [UInt8](repeating: 0, count: 16))
        for bad in ["::1::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::", "1::2::3", "fe80::1%eth0", "[::1]",
                    "12345::", ":::", "1:", ":1", "1:2:3:4:5:6:7", "::g", "1.2.3.4::", "::1.2.3", "::1.2.3.4:5",
                    " ::1"]
        {
            #expect(IPAddressText.parseIPv6(bad) == nil, "\(bad)")
        }
        #expect(IPAddressText.canonical("2001:067c:04e8:f002:0000:0000:0000:000a") == "2001:67c:4e8:f002::a")
        #expect(IPAddressText.canonical("2001:67C:4E8:F002::A") == "2001:67c:4e8:f002::a")
        #expect(IPAddressText.canonical("example.org") == nil)
    }
}

@Suite struct CodecDataCenterTests {
    @Test func looksUpBothWays() throws {
        #expect(DataCenters.lookup(id: 2, testMode: false)?.ipv4 == "149.154.167.51")
        #expect(DataCenters.lookup(id: 203, testMode: false)?.ipv4 == "91.105.192.100")
        #expect(DataCenters.lookup(id: 1, testMode: true)?.port == 80)
        #expect(DataCenters.lookup(id: 4, testMode: true) == nil)
        #expect(DataCenters.lookup(id: 0, testMode: false) == nil)
        #expect(DataCenters.lookup(id: 6, testMode: false) == nil)

        let test = try #require(DataCenters.lookup(address: "149.154.175.117"))
        #expect(test.id == 3 && test.testMode && test.port == 80)
        let prod = try #require(DataCenters.lookup(address: "91.108.56.130"))
        #expect(prod.id == 5 && !prod.testMode && prod.port == 443)
        let v6 = try #require(DataCenters.lookup(address: "2001:067c:04e8:f002:0000:0000:0000:000a"))
        #expect(v6.id == 2 && !v6.testMode)
        #expect(DataCenters.lookup(address: "10.0.0.1") == nil)
        #expect(DataCenters.lookup(address: "not an address") == nil)

        // Every entry is consistent with its own reverse look-up and port rule.
        for dc in DataCenters.all {
            #expect(DataCenters.lookup(address: dc.ipv4) == dc)
            if let v6 = dc.ipv6 { #expect(DataCenters.lookup(address: v6) == dc) }
            #expect(dc.port == DataCenters.defaultPort(testMode: dc.testMode))
        }
    }
}

@Suite struct CodecErrorTests {
    @Test func namesTheFieldAndDescribesWithoutContent() {
        #expect(CodecError.invalidCharacter(position: 3).field == "session_string")
        #expect(CodecError.tooLong(max: 4096).field == "session_string")
        #expect(CodecError.fieldOutOfRange(field: "user_id", reason: "x").field == "user_id")
        #expect(CodecError.missingFields(["api_id", "is_bot"]).field == "api_id")
        #expect(CodecError.missingFields(["api_id", "is_bot"]).fields == ["api_id", "is_bot"])
        #expect(CodecError.missingFields(["api_id", "is_bot"]).description == "missing fields: api_id, is_bot")
        #expect(CodecError.whitespace(position: 362).description.contains("362"))
        #expect(CodecError.invalidLength(361, expected: "362").description.contains("361"))
    }
}

@Suite struct CodecHexTests {
    @Test func encodesEveryByteValueInLowerCaseAndDecodesItBack() throws {
        let bytes = (0...255).map { UInt8($0) }
        let text = Hex.encode(bytes)
        let expected = bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        #expect(text == expected)
        #expect(Hex.decode(text) == bytes)
        #expect(Hex.decode(text.uppercased()) == bytes)
    }

    @Test func encodesEmptyAndSlicedInput() {
        #expect(Hex.encode([UInt8]()) == "")
        let bytes: [UInt8] = [0x00, 0xAB, 0xCD, 0xEF, 0x10]
        #expect(Hex.encode(bytes[1..<4]) == "abcdef")
        #expect(Hex.encode(bytes[4...]).utf8.count == 2)
    }
}
