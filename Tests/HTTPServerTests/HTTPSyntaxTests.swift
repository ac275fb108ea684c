// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import HTTPServer

/// The byte classes are folded into bitmap constants; here they are rebuilt from the grammar
/// (RFC 9110 §5.6.2 tchar, §5.5 field-value, RFC 3986 §3.2.2 host, request-target) and compared
/// for every one of the 256 byte values, so a wrong bit cannot hide.
@Suite struct HTTPSyntaxTests {
    static func isAlpha(_ c: UInt8) -> Bool { (0x41...0x5A).contains(c) || (0x61...0x7A).contains(c) }
    static func isDigit(_ c: UInt8) -> Bool { (0x30...0x39).contains(c) }

    @Test func everyByteClassMatchesTheGrammar() {
        for value in 0...255 {
            let c = UInt8(value)
            let tchar = Self.isAlpha(c) || Self.isDigit(c) || "!#$%&'*+-.^_`|~".utf8.contains(c)
            let fieldValue = (0x21...0x7E).contains(c) || c >= 0x80 || c == 0x20 || c == 0x09
            let target = (0x21...0x7E).contains(c)
            let host = Self.isAlpha(c) || Self.isDigit(c) || "-._~!$&'()*+,;=%:[]".utf8.contains(c)
            let whitespace = c == 0x20 || c == 0x09
            let hex = Self.isDigit(c) || (0x41...0x46).contains(c) || (0x61...0x66).contains(c)
            #expect(HTTPSyntax.isTchar(c) == tchar, "tchar \(value)")
            #expect(HTTPSyntax.isFieldValueByte(c) == fieldValue, "field value \(value)")
            #expect(HTTPSyntax.isTargetByte(c) == target, "target \(value)")
            #expect(HTTPSyntax.isHostByte(c) == host, "host \(value)")
            #expect(HTTPSyntax.isWhitespace(c) == whitespace, "whitespace \(value)")
            #expect(HTTPSyntax.isHexDigit(c) == hex, "hex \(value)")
        }
    }

    @Test func tokensAndOutgoingValuesOverStringsAndBytes() {
        #expect(HTTPSyntax.isToken("Content-Type".utf8))
        #expect(HTTPSyntax.isToken(Array("x-a.b~c".utf8)[...]))
        #expect(!HTTPSyntax.isToken("".utf8))
        #expect(!HTTPSyntax.isToken("a b".utf8))
        #expect(!HTTPSyntax.isToken("naïve".utf8))
        #expect(HTTPSyntax.isSafeOutgoingValue("text/plain; q=\"1\" ü".utf8))
        #expect(HTTPSyntax.isSafeOutgoingValue("".utf8))
        for bad in ["a\rb", "a\nb", "a\u{0}b", "\r\n"] {
            #expect(!HTTPSyntax.isSafeOutgoingValue(bad.utf8))
            #expect(!HTTPSyntax.isSafeOutgoingValue(Array(bad.utf8)))
        }
    }
}
