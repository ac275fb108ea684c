// SPDX-License-Identifier: Apache-2.0
import Primitives
import Testing
@testable import VaultCore

@Suite("Crypto: API tokens, digests, HMAC, HKDF, constant-time compare")
struct CryptoTokenDigestTests {
    @Test("tokens are svt_ + 43 base64url characters, unique, well formed")
    func tokenShape() throws {
        var seen = Set<String>()
        for _ in 0..<200 {
            let token = try TokenHasher.generateToken()
            #expect(token.hasPrefix("svt_"))
            #expect(token.utf8.count == TokenHasher.tokenCharacterCount)
            #expect(TokenHasher.isWellFormedToken(token), "\(token)")
            seen.insert(token)
        }
        #expect(seen.count == 200)
    }

    @Test("isWellFormedToken rejects near misses")
    func tokenNearMisses() throws {
        let body = String(repeating: "A", count: 43)
        #expect(TokenHasher.isWellFormedToken("svt_" + body))
        #expect(!TokenHasher.isWellFormedToken("svx_" + body))
        #expect(!TokenHasher.isWellFormedToken("svt_" + body.dropLast()))
        #expect(!TokenHasher.isWellFormedToken("svt_" + body + "A"))
        #expect(!TokenHasher.isWellFormedToken("svt_+" + body.dropFirst()))
        #expect(!TokenHasher.isWellFormedToken("svt_" + body.dropLast() + "B"))  // non-zero pad bits
        #expect(TokenHasher.isWellFormedToken("svt_" + body.dropLast() + "E"))
        #expect(!TokenHasher.isWellFormedToken(""))
    }

    @Test("token hashes: 32 bytes, deterministic, keyed, verified in constant time")
    func tokenHash() throws {
        let hasher = try TokenHasher(key: try SecureRandom.secret(count: 32))
        let other = try TokenHasher(key: try SecureRandom.secret(count: 32))
        let token = try TokenHasher.generateToken()
        let hash = hasher.hash(token)
        #expect(hash.count == 32)
        #expect(hasher.hash(token) == hash)
        #expect(other.hash(token) != hash)
        #expect(hash != Digest.sha256(Array(token.utf8)))
        #expect(hasher.verify(token, hash: hash))
        let altered = String(token.dropLast()) + (token.hasSuffix("A") ? "E" : "A")
        #expect(!hasher.verify(altered, hash: hash))
        #expect(!hasher.verify(try TokenHasher.generateToken(), hash: hash))
        #expect(!hasher.verify(token, hash: Array(hash.prefix(31))))
        #expect(throws: CryptoError.self) { try TokenHasher(key: SecretBytes([1])) }
        #expect(hasher.hash("").count == 32)
        #expect(!hasher.verify("", hash: hash))
    }

    @Test("a token hash is exactly HMAC-SHA-256(key, UTF-8 of the token)")
    func tokenHashIsHMAC() throws {
        let hasher = try TokenHasher(key: SecretBytes([UInt8](repeating: 0x0b, count: 32)))
        let expected = Digest.hmacSHA256(key: SecretBytes([UInt8](repeating: 0x0b, count: 32)), message: Array("svt_x".utf8))
        #expect(hasher.hash("svt_x") == expected)
    }

    @Test("the keyring's token hasher survives rotation, rekey and reload, and differs per vault")
    func keyringTokenHasher() throws {
        let master = try MasterKey.generate()
        let (keyring, first) = try Keyring.create(master: master)
        let token = try TokenHasher.generateToken()
        let hash = keyring.tokenHasher.hash(token)
        let second = try keyring.rotate()
        #expect(keyring.tokenHasher.hash(token) == hash)
        let newMaster = try MasterKey.generate()
        let resealed = try keyring.rekey(newMaster: newMaster)
        #expect(keyring.tokenHasher.hash(token) == hash)
        #expect(try Keyring.unseal(first + [second], master: master).tokenHasher.hash(token) == hash)
        #expect(try Keyring.unseal(resealed, master: newMaster).tokenHasher.hash(token) == hash)
        let (otherVault, _) = try Keyring.create(master: master)
        #expect(otherVault.tokenHasher.hash(token) != hash)
    }

    @Test("accessor ids are acc_ + 16 hex characters")
    func accessor() throws {
        let a = try TokenHasher.generateAccessor()
        #expect(a.hasPrefix("acc_"))
        #expect(a.utf8.count == 20)
        #expect(Hex.decode(a.dropFirst(4)) != nil)
        #expect(a != (try TokenHasher.generateAccessor()))
    }

    @Test("SHA-256 and SHA-1 known answers (FIPS 180-4 examples)")
    func digests() {
        #expect(Hex.encode(Digest.sha256(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Hex.encode(Digest.sha256([UInt8]())) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(
            Hex.encode(Digest.sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(Hex.encode(Digest.sha1(Array("abc".utf8))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(Digest.sha256(SecretBytes(Array("abc".utf8))) == Digest.sha256(Array("abc".utf8)))
        #expect(Digest.sha1(SecretBytes(Array("abc".utf8))) == Digest.sha1(Array("abc".utf8)))
        #expect(Digest.sha256(Array("abc".utf8)[1...]) == Digest.sha256(Array("bc".utf8)))
    }

    @Test("HMAC-SHA-256 known answers (RFC 4231 test cases 1 and 2)")
    func hmac() {
        #expect(
            Hex.encode(Digest.hmacSHA256(key: SecretBytes([UInt8](repeating: 0x0b, count: 20)), message: Array("Hi There".utf8)))
                == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        #expect(
            Hex.encode(Digest.hmacSHA256(key: SecretBytes(Array("Jefe".utf8)), message: Array("what do ya want for nothing?".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        // An empty message (an empty bearer token reaches this) is valid input, not a crash.
        #expect(
            Hex.encode(Digest.hmacSHA256(key: SecretBytes([UInt8](repeating: 0x0b, count: 20)), message: [UInt8]()))
                == "999a901219f032cd497cadb5e6051e97b6a29ab297bd6ae722bd6062a2f59542")
    }

    /// Compare the prepared key with RFC 2104 spelled
    /// out over the one-shot `EVP_Digest` SHA-256, at the key and message lengths where padding
    /// and block boundaries change (a key of exactly one block, one byte more, messages that
    /// end at or across the 55/56/64-byte boundaries of the inner hash).
    @Test("a prepared HMAC key equals RFC 2104 written out, across key and message lengths")
    func preparedHMACMatchesTheDefinition() throws {
        func reference(_ key: [UInt8], _ message: [UInt8]) -> [UInt8] {
            var padded = key.count > 64 ? Digest.sha256(key) : key
            padded += [UInt8](repeating: 0, count: 64 - padded.count)
            let inner = Digest.sha256(padded.map { $0 ^ 0x36 } + message)
            return Digest.sha256(padded.map { $0 ^ 0x5C } + inner)
        }
        for keyLength in [0, 1, 20, 32, 63, 64, 65, 131, 200] {
            let key = (0..<keyLength).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ keyLength) }
            let prepared = try #require(HMACSHA256Key(SecretBytes(key)))
            for messageLength in [0, 1, 31, 55, 56, 63, 64, 65, 119, 120, 128, 300] {
                let message = (0..<messageLength).map { UInt8(truncatingIfNeeded: $0 &* 11 &+ 3) }
                #expect(prepared.mac(message) == reference(key, message), "key \(keyLength), message \(messageLength)")
                #expect(prepared.mac(message[...]) == prepared.mac(message), "slices hash alike")
            }
        }
    }

    /// RFC 4231 §4.2–4.8, all seven HMAC-SHA-256 test cases, through the prepared key: short
    /// keys (cases 1, 2), 50-byte messages (3, 4), a truncated output (5: only the first 128
    /// bits are specified) and keys longer than SHA-256's 64-byte block, which are hashed first
    /// (6 and 7, 131 bytes, with a short and a long message).
    @Test("a prepared HMAC key gives all seven RFC 4231 HMAC-SHA-256 answers")
    func rfc4231AllCases() throws {
        let longKey = [UInt8](repeating: 0xaa, count: 131)
        let cases: [(key: [UInt8], message: [UInt8], answer: String)] = [
            ([UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8),
             "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (Array("Jefe".utf8), Array("what do ya want for nothing?".utf8),
             "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            ([UInt8](repeating: 0xaa, count: 20), [UInt8](repeating: 0xdd, count: 50),
             "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
            ((1...25).map { UInt8($0) }, [UInt8](repeating: 0xcd, count: 50),
             "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
            ([UInt8](repeating: 0x0c, count: 20), Array("Test With Truncation".utf8),
             "a3b6167473100ee06e0c796c2955552b"),
            (longKey, Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
             "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
            (longKey,
             Array(("This is a test using a larger than block-size key and a larger than block-size data. "
                + "The key needs to be hashed before being used by the HMAC algorithm.").utf8),
             "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
        ]
        for (number, c) in zip(1..., cases) {
            let prepared = try #require(HMACSHA256Key(SecretBytes(c.key)))
            let mac = Hex.encode(prepared.mac(c.message))
            #expect(mac.hasPrefix(c.answer), "RFC 4231 test case \(number)")
            #expect(Hex.encode(Digest.hmacSHA256(key: SecretBytes(c.key), message: c.message)) == mac)
        }
    }

    @Test("a prepared HMAC key gives the RFC 4231 answers on every call, from many threads at once")
    func preparedHMACKey() async throws {
        let case1 = try #require(HMACSHA256Key(SecretBytes([UInt8](repeating: 0x0b, count: 20))))
        // Test case 6: a key longer than SHA-256's block is hashed first (RFC 2104 §2).
        let case6 = try #require(HMACSHA256Key(SecretBytes([UInt8](repeating: 0xaa, count: 131))))
        let message6 = Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)
        let answer1 = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        let answer6 = "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        // The template must not be consumed or changed by a call.
        for _ in 0..<3 {
            #expect(Hex.encode(case1.mac(Array("Hi There".utf8))) == answer1)
            #expect(Hex.encode(case6.mac(message6)) == answer6)
        }
        #expect(Hex.encode(case1.mac("Hi There".utf8)) == answer1)
        let empty = try #require(HMACSHA256Key(SecretBytes([UInt8]())))
        #expect(Hex.encode(empty.mac([UInt8]())) == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
        let wrong = Locked(0)
        await onThreads(8) { _ in
            for _ in 0..<200 where Hex.encode(case1.mac(Array("Hi There".utf8))) != answer1 {
                wrong.withLock { $0 += 1 }
            }
        }
        #expect(wrong.withLock { $0 } == 0)
    }

    @Test("HKDF-SHA-256 known answer (RFC 5869 test case 1) and bounds")
    func hkdf() throws {
        let okm = try HKDF.sha256(
            key: SecretBytes([UInt8](repeating: 0x0b, count: 22)), salt: try hex("000102030405060708090a0b0c"),
            info: try hex("f0f1f2f3f4f5f6f7f8f9"), count: 42)
        #expect(
            Hex.encode(okm.copyBytes())
                == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        #expect(try HKDF.sha256(key: SecretBytes([1]), salt: [], info: [], count: 8160).count == 8160)
        #expect(throws: CryptoError.self) { try HKDF.sha256(key: SecretBytes([1]), salt: [], info: [], count: 8161) }
        #expect(throws: CryptoError.self) { try HKDF.sha256(key: SecretBytes([1]), salt: [], info: [], count: 0) }
    }

    @Test("ConstantTime.equals")
    func constantTime() {
        #expect(ConstantTime.equals([1, 2, 3], [1, 2, 3]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2, 4]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2]))
        #expect(ConstantTime.equals([UInt8](), [UInt8]()))
        #expect(ConstantTime.equals([0, 1, 2, 3][1...], [1, 2, 3]))
        #expect(ConstantTime.equals("svt_abc".utf8, Array("svt_abc".utf8)))
    }

    @Test("SecureRandom returns the requested sizes and different values")
    func random() throws {
        #expect(try SecureRandom.bytes(count: 0).isEmpty)
        #expect(try SecureRandom.secret(count: 0).count == 0)
        let a = try SecureRandom.bytes(count: 32)
        #expect(a.count == 32)
        #expect(a != (try SecureRandom.bytes(count: 32)))
        #expect(try SecureRandom.secret(count: 1000).count == 1000)
    }
}
