// SPDX-License-Identifier: Apache-2.0
import Synchronization
import Testing
@_spi(Testing) import VaultCore

/// Secrets must never show up in descriptions, debug output or errors, and must be wiped.
@Suite("Crypto: secret hygiene")
struct CryptoSecretHygieneTests {
    /// Every text form of `bytes` a careless description could leak: hex in both cases,
    /// standard and URL-safe base64 (with and without padding), and 8-byte windows of the hex.
    private static func leakForms(of bytes: [UInt8]) -> [String] {
        let lower = Hex.encode(bytes)
        var forms = [lower, lower.uppercased()]
        if let b64 = try? MasterKey(secret: SecretBytes(bytes.count == 32 ? bytes : [UInt8](repeating: 0, count: 32))).base64(),
            bytes.count == 32
        {
            forms.append(b64)
            forms.append(String(b64.dropLast()))
            forms.append(String(b64.map { $0 == "+" ? "-" : $0 == "/" ? "_" : $0 }.dropLast()))
        }
        let chars = Array(lower)
        var start = 0
        while start + 16 <= chars.count {
            forms.append(String(chars[start..<start + 16]))
            start += 8
        }
        return forms
    }

    private static func renderings(_ value: Any) -> [String] {
        var dumped = ""
        dump(value, to: &dumped)
        return [String(describing: value), String(reflecting: value), "\(value)", dumped]
    }

    private static func expectNoLeak(_ value: Any, of bytes: [UInt8], _ label: String) {
        let forms = leakForms(of: bytes)
        for text in renderings(value) {
            for form in forms where text.contains(form) {
                Issue.record("\(label) leaks key material: \(text)")
            }
        }
    }

    @Test("descriptions of secret-holding types contain no key bytes")
    func descriptionsAreRedacted() throws {
        let raw = try SecureRandom.bytes(count: 32)
        let master = try MasterKey(secret: SecretBytes(raw))
        Self.expectNoLeak(SecretBytes(raw), of: raw, "SecretBytes")
        Self.expectNoLeak(master, of: raw, "MasterKey")
        Self.expectNoLeak(try TokenHasher(key: SecretBytes(raw)), of: raw, "TokenHasher")
        let (keyring, sealed) = try Keyring.create(master: master)
        Self.expectNoLeak(keyring, of: raw, "Keyring")
        Self.expectNoLeak(keyring.terms, of: raw, "KeyTerm")
        Self.expectNoLeak(sealed, of: raw, "SealedTerm")
        #expect(String(describing: SecretBytes(raw)) == "SecretBytes(32 bytes, redacted)")
        #expect(String(describing: master) == "MasterKey(redacted)")

        let authKey = try SecureRandom.bytes(count: 256)
        Self.expectNoLeak(try AuthKey(authKey), of: authKey, "AuthKey")
        Self.expectNoLeak(SecretBytes(authKey), of: authKey, "SecretBytes(256)")
    }

    @Test("errors from a bad key never carry the key text")
    func errorsAreRedacted() throws {
        let text = try MasterKey.generate().base64()
        let bad = String(text.dropLast(2)) + "!="
        do {
            _ = try MasterKey(base64: bad)
            Issue.record("accepted a bad key")
        } catch {
            for rendering in Self.renderings(error) {
                #expect(!rendering.contains(text.prefix(16)))
                #expect(!rendering.contains(bad.suffix(16)))
            }
        }
    }

    @Test("SecretBytes storage is all zero after release")
    func wipedOnRelease() throws {
        let probe = WipeProbe()
        do {
            let secret = SecretBytes(try SecureRandom.bytes(count: 64) + [0xFF], onWipe: { probe.report($0) })
            #expect(secret.count == 65)
            #expect(probe.state == WipeProbe.notYet)
        }
        #expect(probe.state == WipeProbe.wiped)
    }

    @Test("a throwing fill releases the storage exactly once (no double free)")
    func throwingFill() {
        struct Stop: Error {}
        for _ in 0..<100 {
            #expect(throws: Stop.self) {
                _ = try SecretBytes(count: 32) { buffer in
                    buffer[0] = 0xAA
                    throw Stop()
                }
            }
        }
    }

    /// Checks the storage itself, not only that the array is empty: with the cleansing removed
    /// (emptying alone) the old bytes are still in the storage and this fails.
    @Test("SecretBytes.wipe zeroes and empties an array")
    func wipeArray() {
        var bytes: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]
        let storage = bytes.withUnsafeBufferPointer { $0.baseAddress }
        SecretBytes.wipe(&bytes)
        #expect(bytes.isEmpty)
        #expect(bytes.withUnsafeBufferPointer { $0.baseAddress } == storage)  // the same storage, kept
        let left = bytes.withUnsafeBufferPointer { buffer -> [UInt8] in
            guard let base = buffer.baseAddress else { return [] }
            return Array(UnsafeBufferPointer(start: base, count: 8))
        }
        #expect(left == [UInt8](repeating: 0, count: 8))
    }

    @Test("SecretBytes equality is by content")
    func equality() {
        #expect(SecretBytes([1, 2, 3]) == SecretBytes([1, 2, 3]))
        #expect(SecretBytes([1, 2, 3]) != SecretBytes([1, 2, 4]))
        #expect(SecretBytes([1, 2, 3]) != SecretBytes([1, 2]))
    }

    @Test("SecretBytes copies contiguous and non-contiguous collections alike")
    func copying() {
        let bytes: [UInt8] = (0..<256).map { UInt8($0) }
        let fromArray = SecretBytes(bytes)
        let fromSlice = SecretBytes(bytes[16..<48])
        let fromSequence = SecretBytes(repeatElement(UInt8(7), count: 5))  // no contiguous storage
        #expect(fromArray.withUnsafeBytes { Array($0) } == bytes)
        #expect(fromSlice.withUnsafeBytes { Array($0) } == Array(bytes[16..<48]))
        #expect(fromSequence.withUnsafeBytes { Array($0) } == [7, 7, 7, 7, 7])
        #expect(SecretBytes([UInt8]()).count == 0)
    }
}

/// Records what `SecretBytes`'s test-only wipe observer reported.
final class WipeProbe: Sendable {
    static let notYet = 0
    static let wiped = 1
    static let notWiped = 2

    private let value = Atomic<Int>(WipeProbe.notYet)
    func report(_ allZero: Bool) { value.store(allZero ? Self.wiped : Self.notWiped, ordering: .sequentiallyConsistent) }
    var state: Int { value.load(ordering: .sequentiallyConsistent) }
}
