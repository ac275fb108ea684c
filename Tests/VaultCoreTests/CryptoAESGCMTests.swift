// SPDX-License-Identifier: Apache-2.0
import Primitives
import Testing
import VaultCore

/// One AES-256-GCM known-answer vector, all fields lower-case hex.
struct GCMVector: Sendable, CustomTestStringConvertible {
    let name: String
    let key: String
    let nonce: String
    let aad: String
    /// `nil` for a gcmDecrypt256 FAIL entry (the tag must not verify).
    let plaintext: String?
    let ciphertext: String
    let tag: String

    var testDescription: String { name }
}

/// Known-answer vectors. Every one was checked against pyca/cryptography's AESGCM before it
/// was committed (encrypt: exact ciphertext and tag; FAIL: InvalidTag).
enum GCMVectors {
    /// gcmEncryptExtIV256.rsp (CAVS 14.0; IVlen 96, Taglen 128) and McGrew–Viega test cases 13–16.
    static let encrypt: [GCMVector] = [
        GCMVector(
            name: "CAVP enc PTlen=0 AADlen=0 Count=0",
            key: "b52c505a37d78eda5dd34f20c22540ea1b58963cf8e5bf8ffa85f9f2492505b4",
            nonce: "516c33929df5a3284ff463d7", aad: "",
            plaintext: "",
            ciphertext: "",
            tag: "bdc1ac884d332457a1d2664f168c76f0"),
        GCMVector(
            name: "CAVP enc PTlen=0 AADlen=128 Count=0",
            key: "78dc4e0aaf52d935c3c01eea57428f00ca1fd475f5da86a49c8dd73d68c8e223",
            nonce: "d79cf22d504cc793c3fb6c8a", aad: "b96baa8c1c75a671bfb2d08d06be5f36",
            plaintext: "",
            ciphertext: "",
            tag: "3e5d486aa2e30b22e040b85723a06e76"),
        GCMVector(
            name: "CAVP enc PTlen=128 AADlen=0 Count=0",
            key: "31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22",
            nonce: "0d18e06c7c725ac9e362e1ce", aad: "",
            plaintext: "2db5168e932556f8089a0622981d017d",
            ciphertext: "fa4362189661d163fcd6a56d8bf0405a",
            tag: "d636ac1bbedd5cc3ee727dc2ab4a9489"),
        GCMVector(
            name: "CAVP enc PTlen=128 AADlen=128 Count=0",
            key: "92e11dcdaa866f5ce790fd24501f92509aacf4cb8b1339d50c9c1240935dd08b",
            nonce: "ac93a1a6145299bde902f21a", aad: "1e0889016f67601c8ebea4943bc23ad6",
            plaintext: "2d71bcfa914e4ac045b2aa60955fad24",
            ciphertext: "8995ae2e6df3dbf96fac7b7137bae67f",
            tag: "eca5aa77d51d4a0a14d9c51e1da474ab"),
        GCMVector(
            name: "CAVP enc PTlen=104 AADlen=160 Count=1",
            key: "97431e565e8370a4879de962746a2fd67eca868b1c8e51eece2c1f94f74af407",
            nonce: "17fb63066e2726d282ecc610", aad: "78e7374da7c77be5938de8dd76cf0308618306a9",
            plaintext: "e21629cc973fbe40176e621d9d",
            ciphertext: "80dbd469de480389ba6c2fca52",
            tag: "4e284abb8b4f9f13c7497ae56df05fa5"),
        GCMVector(
            name: "CAVP enc PTlen=408 AADlen=720 Count=2",
            key: "c277df045d0a1a3956958f271055c229d2634427b1d73e99d54920da69f72e01",
            nonce: "79e24f84bc77a21a6cb14ee2", aad:
                "ca09282238d492029afbd30ea9b4aa9d448d77b4b41a791c35ebe3f8e5034ac7" +
                "1210117a843fae647cea020712c27e5c8f85acf933d5e28430c7770862d8dbb1" +
                "97cbbcfe49dd63f6aa05fbd13e32c459342698dfee5935c7c321",
            plaintext:
                "5ca68d858cc30b1cb0514c4e9de98e1a1a835df401f69e9ec6f1bcb1158f0911" +
                "4dff551683b3827457f77e17a7097b1ea69eac",
            ciphertext:
                "5c5223c8eda59a8dc28b08e6c21482a46e5d84d32c7050bf144fc57f4e8094de" +
                "133198da7b4b8398b167204aff837da15d9ab2",
            tag: "378885950a4491bee3cd681d3c957b9a"),
        GCMVector(
            name: "McGrew-Viega 13",
            key: "0000000000000000000000000000000000000000000000000000000000000000",
            nonce: "000000000000000000000000", aad: "",
            plaintext: "",
            ciphertext: "",
            tag: "530f8afbc74536b9a963b4f1c4cb738b"),
        GCMVector(
            name: "McGrew-Viega 14",
            key: "0000000000000000000000000000000000000000000000000000000000000000",
            nonce: "000000000000000000000000", aad: "",
            plaintext: "00000000000000000000000000000000",
            ciphertext: "cea7403d4d606b6e074ec5d3baf39d18",
            tag: "d0d1c8a799996bf0265b98b5d48ab919"),
        GCMVector(
            name: "McGrew-Viega 15",
            key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            nonce: "cafebabefacedbaddecaf888", aad: "",
            plaintext:
                "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" +
                "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
            ciphertext:
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa" +
                "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
            tag: "b094dac5d93471bdec1a502270e3cc6c"),
        GCMVector(
            name: "McGrew-Viega 16",
            key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            nonce: "cafebabefacedbaddecaf888", aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            plaintext:
                "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" +
                "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
            ciphertext:
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa" +
                "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
            tag: "76fc6ece0f4e1768cddf8853bb2d551b"),
    ]
    /// gcmDecrypt256.rsp (CAVS 14.0; IVlen 96, Taglen 128); `plaintext == nil` marks a FAIL entry.
    static let decrypt: [GCMVector] = [
        GCMVector(
            name: "CAVP dec PTlen=0 AADlen=0 Count=0",
            key: "f5a2b27c74355872eb3ef6c5feafaa740e6ae990d9d48c3bd9bb8235e589f010",
            nonce: "58d2240f580a31c1d24948e9", aad: "",
            plaintext: "",
            ciphertext: "",
            tag: "15e051a5e4a5f5da6cea92e2ebee5bac"),
        GCMVector(
            name: "CAVP dec PTlen=0 AADlen=0 Count=1 FAIL",
            key: "e5a8123f2e2e007d4e379ba114a2fb66e6613f57c72d4e4f024964053028a831",
            nonce: "51e43385bf533e168427e1ad", aad: "",
            plaintext: nil,
            ciphertext: "",
            tag: "38fe845c66e66bdd884c2aecafd280e6"),
        GCMVector(
            name: "CAVP dec PTlen=0 AADlen=128 PASS",
            key: "6dfdafd6703c285c01f14fd10a6012862b2af950d4733abb403b2e745b26945d",
            nonce: "3749d0b3d5bacb71be06ade6", aad: "c0d249871992e70302ae008193d1e89f",
            plaintext: "",
            ciphertext: "",
            tag: "4aa4cc69f84ee6ac16d9bfb4e05de500"),
        GCMVector(
            name: "CAVP dec PTlen=0 AADlen=128 FAIL",
            key: "2c392a5eb1a9c705371beda3a901c7c61dca4d93b4291de1dd0dd15ec11ffc45",
            nonce: "0723fb84a08f4ea09841f32a", aad: "140be561b6171eab942c486a94d33d43",
            plaintext: nil,
            ciphertext: "",
            tag: "aa0e1c9b57975bfc91aa137231977d2c"),
        GCMVector(
            name: "CAVP dec PTlen=128 AADlen=0 PASS",
            key: "4c8ebfe1444ec1b2d503c6986659af2c94fafe945f72c1e8486a5acfedb8a0f8",
            nonce: "473360e0ad24889959858995", aad: "",
            plaintext: "7789b41cb3ee548814ca0b388c10b343",
            ciphertext: "d2c78110ac7e8f107c0df0570bd7c90c",
            tag: "c26a379b6d98ef2852ead8ce83a833a7"),
        GCMVector(
            name: "CAVP dec PTlen=128 AADlen=0 FAIL",
            key: "c997768e2d14e3d38259667a6649079de77beb4543589771e5068e6cd7cd0b14",
            nonce: "835090aed9552dbdd45277e2", aad: "",
            plaintext: nil,
            ciphertext: "9f6607d68e22ccf21928db0986be126e",
            tag: "f32617f67c574fd9f44ef76ff880ab9f"),
        GCMVector(
            name: "CAVP dec PTlen=408 AADlen=160 FAIL",
            key: "e9d381a9c413bee66175d5586a189836e5c20f5583535ab4d3f3e612dc21700e",
            nonce: "23e81571da1c7821c681c7ca", aad: "6f39c9ae7b8e8a58a95f0dd8ea6a9087cbccdfd6",
            plaintext: nil,
            ciphertext:
                "a25f3f580306cd5065d22a6b7e9660110af7204bb77d370f7f34bee547feeff7" +
                "b32a596fce29c9040e68b1589aad48da881990",
            tag: "5b6dcd70eefb0892fab1539298b92a4b"),
        GCMVector(
            name: "CAVP dec PTlen=408 AADlen=160 PASS",
            key: "6450d4501b1e6cfbe172c4c8570363e96b496591b842661c28c2f6c908379cad",
            nonce: "7e4262035e0bf3d60e91668a", aad: "f1c522f026e4c5d43851da516a1b78768ab18171",
            plaintext:
                "17449e236ef5858f6d891412495ead4607bfae2a2d735182a2a0242f9d52fc53" +
                "45ef912dbe16f3bb4576fe3bcafe336dee6085",
            ciphertext:
                "5a99b336fd3cfd82f10fb08f7045012415f0d9a06bb92dcf59c6f0dbe62d4336" +
                "71aacb8a1c52ce7bbf6aea372bf51e2ba79406",
            tag: "fe93b01636f7bb0458041f213e98de65"),
        GCMVector(
            name: "CAVP dec PTlen=104 AADlen=0 FAIL",
            key: "8b37c4b8cf634704920059866ad96c49e9da502c63fca4a3a7a4dcec74cb0610",
            nonce: "cb59344d2b06c4ae57cd0ea4", aad: "",
            plaintext: nil,
            ciphertext: "66ab935c93555e786b775637a3",
            tag: "d8733acbb564d8afaa99d7ca2e2f92a9"),
        GCMVector(
            name: "CAVP dec PTlen=104 AADlen=0 PASS",
            key: "a71dac1377a3bf5d7fb1b5e36bee70d2e01de2a84a1c1009ba7448f7f26131dc",
            nonce: "c5b60dda3f333b1146e9da7c", aad: "",
            plaintext: "5b87141335f2becac1a559e05f",
            ciphertext: "43af49ec1ae3738a20755034d6",
            tag: "6f80b6ef2d8830a55eb63680a8dff9e0"),
    ]
}

/// Decodes test hex, failing the test (not trapping) on a typo.
func hex(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [UInt8] {
    try #require(Hex.decode(text), "bad hex in test", sourceLocation: sourceLocation)
}

@Suite("Crypto: AES-256-GCM through EVP")
struct CryptoAESGCMTests {
    @Test("seal reproduces the known ciphertext and tag", arguments: GCMVectors.encrypt)
    func sealKnownAnswer(_ v: GCMVector) throws {
        let key = SecretBytes(try hex(v.key))
        let plaintext = try hex(try #require(v.plaintext))
        let sealed = try AESGCM.seal(key: key, nonce: try hex(v.nonce), plaintext: plaintext, aad: try hex(v.aad))
        #expect(Hex.encode(sealed.ciphertext) == v.ciphertext)
        #expect(Hex.encode(sealed.tag) == v.tag)

        // The SecretBytes plaintext path must agree byte for byte.
        let secretSealed = try AESGCM.seal(
            key: key, nonce: try hex(v.nonce), plaintext: SecretBytes(plaintext), aad: try hex(v.aad))
        #expect(secretSealed.ciphertext == sealed.ciphertext)
        #expect(secretSealed.tag == sealed.tag)
    }

    @Test("open recovers the known plaintext", arguments: GCMVectors.encrypt)
    func openKnownAnswer(_ v: GCMVector) throws {
        let opened = try AESGCM.open(
            key: SecretBytes(try hex(v.key)), nonce: try hex(v.nonce), ciphertext: try hex(v.ciphertext),
            tag: try hex(v.tag), aad: try hex(v.aad))
        #expect(Hex.encode(opened.copyBytes()) == v.plaintext)
    }

    @Test("gcmDecrypt256: PASS entries open, FAIL entries are rejected", arguments: GCMVectors.decrypt)
    func decryptVectors(_ v: GCMVector) throws {
        let attempt = {
            try AESGCM.open(
                key: SecretBytes(try hex(v.key)), nonce: try hex(v.nonce),
                ciphertext: try hex(v.ciphertext), tag: try hex(v.tag), aad: try hex(v.aad))
        }
        if let plaintext = v.plaintext {
            #expect(Hex.encode(try attempt().copyBytes()) == plaintext)
        } else {
            #expect(throws: CryptoError.authenticationFailed) { try attempt() }
        }
    }

    @Test("every single-bit change of tag, ciphertext, nonce or AAD is rejected")
    func bitFlipsOnVector() throws {
        // McGrew–Viega 16: has plaintext and AAD, so all four inputs are non-empty.
        let v = try #require(GCMVectors.encrypt.first { $0.name == "McGrew-Viega 16" })
        let key = SecretBytes(try hex(v.key))
        let fields = [try hex(v.nonce), try hex(v.ciphertext), try hex(v.tag), try hex(v.aad)]
        for field in fields.indices {
            for bit in 0..<(fields[field].count * 8) {
                var f = fields
                f[field][bit / 8] ^= UInt8(1) << UInt8(bit % 8)
                #expect(throws: CryptoError.authenticationFailed) {
                    try AESGCM.open(key: key, nonce: f[0], ciphertext: f[1], tag: f[2], aad: f[3])
                }
            }
        }
    }

    @Test("a truncated, extended or empty tag is rejected, never verified as a prefix")
    func tagLengths() throws {
        let v = try #require(GCMVectors.encrypt.first { $0.name == "McGrew-Viega 16" })
        let key = SecretBytes(try hex(v.key))
        let tag = try hex(v.tag)
        for length in [0, 1, 4, 8, 12, 15] {
            #expect(throws: CryptoError.authenticationFailed) {
                try AESGCM.open(
                    key: key, nonce: try hex(v.nonce), ciphertext: try hex(v.ciphertext),
                    tag: Array(tag.prefix(length)), aad: try hex(v.aad))
            }
        }
        #expect(throws: CryptoError.authenticationFailed) {
            try AESGCM.open(
                key: key, nonce: try hex(v.nonce), ciphertext: try hex(v.ciphertext), tag: tag + [0],
                aad: try hex(v.aad))
        }
    }

    @Test("wrong key, wrong-size key or nonce on open: the same generic error")
    func openWrongInputs() throws {
        let v = try #require(GCMVectors.encrypt.first { $0.name == "McGrew-Viega 15" })
        var wrongKey = try hex(v.key)
        wrongKey[31] ^= 0x80
        let cases: [(key: [UInt8], nonce: [UInt8])] = [
            (wrongKey, try hex(v.nonce)),
            (Array(try hex(v.key).prefix(31)), try hex(v.nonce)),
            (try hex(v.key), Array(try hex(v.nonce).prefix(11))),
            (try hex(v.key), try hex(v.nonce) + [0]),
        ]
        for c in cases {
            #expect(throws: CryptoError.authenticationFailed) {
                try AESGCM.open(
                    key: SecretBytes(c.key), nonce: c.nonce, ciphertext: try hex(v.ciphertext), tag: try hex(v.tag))
            }
        }
    }

    @Test("seal refuses a key that is not 32 bytes or a nonce that is not 12 bytes")
    func sealValidatesSizes() throws {
        #expect(throws: CryptoError.self) {
            try AESGCM.seal(key: SecretBytes([UInt8](repeating: 1, count: 16)), nonce: [UInt8](repeating: 0, count: 12), plaintext: [1])
        }
        do {
            _ = try AESGCM.seal(key: SecretBytes([UInt8](repeating: 1, count: 32)), nonce: [0, 1, 2], plaintext: [1])
            Issue.record("a 3-byte nonce was accepted")
        } catch {
            guard case .invalidParameter(let name, _) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(name == "nonce")
        }
    }

    @Test("a plaintext larger than one GCM block crosses blocks correctly (round trip, 0…1 KiB)")
    func roundTripLengths() throws {
        let key = try SecureRandom.secret(count: 32)
        for length in [0, 1, 15, 16, 17, 255, 256, 1024] {
            let nonce = try SecureRandom.bytes(count: 12)
            let plaintext = try SecureRandom.bytes(count: length)
            let sealed = try AESGCM.seal(key: key, nonce: nonce, plaintext: plaintext, aad: [7, 7])
            #expect(sealed.ciphertext.count == length)
            let opened = try AESGCM.open(key: key, nonce: nonce, ciphertext: sealed.ciphertext, tag: sealed.tag, aad: [7, 7])
            #expect(opened.copyBytes() == plaintext)
        }
    }

    /// Every operation has its own context (GCMOperation). Whatever the order of keys, failures
    /// and threads, every answer must equal the deterministic one for its (key, nonce,
    /// plaintext): any state carried from one operation to the next (a stale key, the tag or
    /// GHASH state of a failed open) would break that.
    @Test("key switches, failed opens and many threads give the same answers")
    func keptContextsStayCorrect() async throws {
        let keys = [try SecureRandom.secret(count: 32), try SecureRandom.secret(count: 32)]
        let nonce = try SecureRandom.bytes(count: 12)
        let plaintext = try SecureRandom.bytes(count: 256)
        let expected = try keys.map { try AESGCM.seal(key: $0, nonce: nonce, plaintext: plaintext, aad: [1]) }
        #expect(expected[0].ciphertext != expected[1].ciphertext)
        // A, B, A on one thread: the third seal must match the first.
        let again = try AESGCM.seal(key: keys[0], nonce: nonce, plaintext: plaintext, aad: [1])
        #expect(again.ciphertext == expected[0].ciphertext && again.tag == expected[0].tag)
        // B's ciphertext under A fails; A's then opens. A bad tag under A fails; A then opens.
        #expect(throws: CryptoError.authenticationFailed) {
            try AESGCM.open(key: keys[0], nonce: nonce, ciphertext: expected[1].ciphertext, tag: expected[1].tag, aad: [1])
        }
        #expect(try AESGCM.open(key: keys[0], nonce: nonce, ciphertext: expected[0].ciphertext, tag: expected[0].tag, aad: [1])
            .copyBytes() == plaintext)
        var badTag = expected[0].tag
        badTag[0] ^= 1
        #expect(throws: CryptoError.authenticationFailed) {
            try AESGCM.open(key: keys[0], nonce: nonce, ciphertext: expected[0].ciphertext, tag: badTag, aad: [1])
        }
        #expect(try AESGCM.open(key: keys[0], nonce: nonce, ciphertext: expected[0].ciphertext, tag: expected[0].tag, aad: [1])
            .copyBytes() == plaintext)
        // Many threads, each switching keys and failing now and then.
        let wrong = Locked(0)
        await onThreads(6) { thread in
            for i in 0..<150 {
                let k = (i + thread) % 2
                do {
                    let sealed = try AESGCM.seal(key: keys[k], nonce: nonce, plaintext: plaintext, aad: [1])
                    let opened = try AESGCM.open(key: keys[k], nonce: nonce, ciphertext: sealed.ciphertext, tag: sealed.tag, aad: [1])
                    let crossOpened = try? AESGCM.open(
                        key: keys[1 - k], nonce: nonce, ciphertext: sealed.ciphertext, tag: sealed.tag, aad: [1])
                    if sealed.ciphertext != expected[k].ciphertext || sealed.tag != expected[k].tag
                        || opened.copyBytes() != plaintext || crossOpened != nil
                    {
                        wrong.withLock { $0 += 1 }
                    }
                } catch {
                    wrong.withLock { $0 += 1 }
                }
            }
        }
        #expect(wrong.withLock { $0 } == 0)
    }
}
