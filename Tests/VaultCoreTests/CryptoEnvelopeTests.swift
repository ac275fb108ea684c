// SPDX-License-Identifier: Apache-2.0
import Testing
import VaultCore

@Suite("Crypto: envelope format and tamper resistance")
struct CryptoEnvelopeTests {
    let key: SecretBytes
    let authKey: SecretBytes
    let context = CipherContext(table: "sessions", row: 42, column: "auth_key")

    init() throws {
        key = try SecureRandom.secret(count: 32)
        authKey = try SecureRandom.secret(count: 256)
    }

    @Test("layout: version 1, big-endian term, 12-byte nonce, ciphertext, 16-byte tag")
    func layout() throws {
        let envelope = try Envelope.seal(authKey, key: key, term: 0x0102_0304, context: context)
        #expect(envelope.count == 1 + 4 + 12 + 256 + 16)
        #expect(envelope.count == Envelope.overheadByteCount + 256)
        #expect(Array(envelope[0..<5]) == [1, 1, 2, 3, 4])
        #expect(Envelope.term(of: envelope) == 0x0102_0304)
        let opened = try Envelope.open(envelope, key: key, context: context)
        #expect(opened == authKey)
    }

    @Test("each seal draws a fresh nonce")
    func freshNonces() throws {
        var nonces = Set<[UInt8]>()
        for _ in 0..<64 {
            let envelope = try Envelope.seal(authKey, key: key, term: 1, context: context)
            nonces.insert(Array(envelope[5..<17]))
        }
        #expect(nonces.count == 64)
    }

    @Test("empty plaintext round-trips and is still authenticated")
    func emptyPlaintext() throws {
        let envelope = try Envelope.seal([UInt8](), key: key, term: 7, context: context)
        #expect(envelope.count == Envelope.overheadByteCount)
        #expect(try Envelope.open(envelope, key: key, context: context).count == 0)
        var tampered = envelope
        tampered[tampered.count - 1] ^= 1
        #expect(throws: CryptoError.authenticationFailed) { try Envelope.open(tampered, key: key, context: context) }
    }

    @Test("flipping any bit in any region gives the one generic error",
          arguments: [("version", 0..<1), ("term", 1..<5), ("nonce", 5..<17), ("ciphertext", 17..<273), ("tag", 273..<289)])
    func bitFlips(region: String, range: Range<Int>) throws {
        let envelope = try Envelope.seal(authKey, key: key, term: 3, context: context)
        #expect(envelope.count == 289)
        for byte in range {
            for bit in 0..<8 {
                var tampered = envelope
                tampered[byte] ^= UInt8(1) << UInt8(bit)
                #expect(throws: CryptoError.authenticationFailed, "\(region) byte \(byte) bit \(bit)") {
                    try Envelope.open(tampered, key: key, context: context)
                }
            }
        }
    }

    @Test("relabelling the term fails even when the other term has the same key")
    func termRelabel() throws {
        // Keys are per term, but the header is also bound through the AAD: a value must not
        // be movable between terms even if a key were ever reused.
        var envelope = try Envelope.seal(authKey, key: key, term: 1, context: context)
        envelope[4] = 2
        #expect(throws: CryptoError.authenticationFailed) { try Envelope.open(envelope, key: key, context: context) }
    }

    @Test("truncation at every length and extension give the generic error")
    func truncation() throws {
        let envelope = try Envelope.seal(authKey, key: key, term: 1, context: context)
        for length in 0..<envelope.count {
            #expect(throws: CryptoError.authenticationFailed, "length \(length)") {
                try Envelope.open(Array(envelope.prefix(length)), key: key, context: context)
            }
        }
        #expect(throws: CryptoError.authenticationFailed) { try Envelope.open(envelope + [0], key: key, context: context) }
        #expect(Envelope.term(of: Array(envelope.prefix(Envelope.overheadByteCount - 1))) == nil)
    }

    @Test("a ciphertext moved to another row, column or table does not open")
    func contextBinding() throws {
        let envelope = try Envelope.seal(authKey, key: key, term: 1, context: context)
        let elsewhere = [
            CipherContext(table: "sessions", row: 43, column: "auth_key"),
            CipherContext(table: "sessions", row: 42, column: "session_string"),
            CipherContext(table: "sessions_archive", row: 42, column: "auth_key"),
            CipherContext(table: "sessions", row: "42 ", column: "auth_key"),
        ]
        for other in elsewhere {
            #expect(throws: CryptoError.authenticationFailed, "\(other)") {
                try Envelope.open(envelope, key: key, context: other)
            }
        }
        #expect(try Envelope.open(envelope, key: key, context: CipherContext(table: "sessions", row: "42", column: "auth_key")) == authKey)
    }

    @Test("wrong key gives the generic error")
    func wrongKey() throws {
        let envelope = try Envelope.seal(authKey, key: key, term: 1, context: context)
        #expect(throws: CryptoError.authenticationFailed) {
            try Envelope.open(envelope, key: try SecureRandom.secret(count: 32), context: context)
        }
    }

    @Test("context bytes are length-prefixed, so separators cannot be shifted between parts")
    func contextCanonical() {
        let c = CipherContext(table: "ab", row: "c", column: "")
        #expect(c.bytes == [0, 0, 0, 2, 0x61, 0x62, 0, 0, 0, 1, 0x63, 0, 0, 0, 0])
        let pairs = [
            (CipherContext(table: "a|b", row: "c", column: "d"), CipherContext(table: "a", row: "b|c", column: "d")),
            (CipherContext(table: "ab", row: "", column: "c"), CipherContext(table: "a", row: "b", column: "c")),
            (CipherContext(table: "", row: "", column: "abc"), CipherContext(table: "abc", row: "", column: "")),
        ]
        for (x, y) in pairs {
            #expect(x.bytes != y.bytes, "\(x) vs \(y)")
        }
    }

    @Test("term(of:) reads only well-formed version-1 headers")
    func termPeek() throws {
        #expect(Envelope.term(of: [UInt8]()) == nil)
        var envelope = try Envelope.seal([1, 2, 3], key: key, term: UInt32.max, context: context)
        #expect(Envelope.term(of: envelope) == UInt32.max)
        envelope[0] = 2
        #expect(Envelope.term(of: envelope) == nil)
        #expect(throws: CryptoError.authenticationFailed) { try Envelope.open(envelope, key: key, context: context) }
    }
}
