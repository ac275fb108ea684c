// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: `Envelope.open` and `Keyring.open` on hostile bytes.
//
// Invariants checked on every input (a violation aborts, so libFuzzer saves the input):
//  1. Opening the raw input with a fixed key and context either succeeds or throws exactly
//     `CryptoError.authenticationFailed` (the API promises one failure kind, CryptoError docs).
//  2. A successful open round-trips: sealing the plaintext again under the header's term and
//     opening that gives the same plaintext, and `Envelope.term(of:)` reads the header's term.
//  3. The same input used as a *plaintext*: seal → open gives it back; flipping any one bit,
//     truncating, or opening under another context fails with `.authenticationFailed`.
//  4. `Keyring.open` / `needsRewrap` / `Keyring.unseal` on the raw input never crash and fail
//     only with their documented errors.
// Seeds in Fuzz/Corpus/FuzzEnvelopeOpen are valid envelopes sealed with the key below
// (scripts: Fuzz/Corpus/FuzzEnvelopeOpen/README.md), so libFuzzer starts from the success path.
import VaultCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Fixed test key: bytes 0x00…0x1f. Public on purpose; it protects nothing.
private let fixedKey = SecretBytes((0..<32).map { UInt8($0) })
/// Fixed context the seeds were sealed for.
private let fixedContext = CipherContext(table: "sessions", row: 1, column: "auth_key")
private let otherContext = CipherContext(table: "sessions", row: 2, column: "auth_key")

/// A keyring whose master key is the fixed key; made once per process.
private let keyring: Keyring? = {
    guard let master = try? MasterKey(secret: fixedKey, source: "fuzz") else { return nil }
    return try? Keyring.create(master: master, createdAt: 0).0
}()

/// Reports a broken invariant and aborts, so libFuzzer records the input as a crash.
private func fail(_ message: String) -> Never {
    var text = "FuzzEnvelopeOpen invariant violated: \(message)\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    abort()
}

/// Opens `bytes` with the fixed key; nil on the documented failure, aborts on anything else.
private func openOrNil(_ bytes: [UInt8], context: CipherContext, what: String) -> SecretBytes? {
    do {
        return try Envelope.open(bytes, key: fixedKey, context: context)
    } catch .authenticationFailed {
        return nil
    } catch {
        fail("\(what): open threw \(error), expected only .authenticationFailed")
    }
}

/// Seals with the fixed key; seal must not fail for a valid 32-byte key.
private func sealOrFail(_ plaintext: [UInt8], term: UInt32, context: CipherContext) -> [UInt8] {
    do {
        return try Envelope.seal(plaintext, key: fixedKey, term: term, context: context)
    } catch {
        fail("seal threw \(error)")
    }
}

/// A cheap deterministic hash of the input, to pick mutation positions.
private func mix(_ bytes: [UInt8]) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}

private func checkRawOpen(_ input: [UInt8]) {
    let headerTerm = Envelope.term(of: input)
    guard let plaintext = openOrNil(input, context: fixedContext, what: "raw input") else { return }
    // Invariant 2: the header was valid, its term is readable, and a re-seal round-trips.
    guard let term = headerTerm else { fail("open succeeded but term(of:) is nil") }
    guard plaintext.count == input.count - Envelope.overheadByteCount else {
        fail("plaintext has \(plaintext.count) bytes for a \(input.count)-byte envelope")
    }
    let resealed = sealOrFail(plaintext.copyBytes(), term: term, context: fixedContext)
    guard Envelope.term(of: resealed) == term else { fail("resealed envelope lost its term") }
    guard let again = openOrNil(resealed, context: fixedContext, what: "resealed"), again == plaintext else {
        fail("re-sealed plaintext did not round-trip")
    }
    guard openOrNil(input, context: otherContext, what: "raw input, other context") == nil else {
        fail("envelope opened under a different context")
    }
}

private func checkSealTamper(_ input: [UInt8]) {
    let plaintext = Array(input.prefix(4096))
    let h = mix(input)
    let term = UInt32(truncatingIfNeeded: h >> 32)
    let sealed = sealOrFail(plaintext, term: term, context: fixedContext)
    guard sealed.count == plaintext.count + Envelope.overheadByteCount else { fail("sealed size") }
    guard let opened = openOrNil(sealed, context: fixedContext, what: "fresh seal"),
        opened.copyBytes() == plaintext
    else { fail("seal → open did not round-trip (\(plaintext.count) bytes)") }
    // One flipped bit anywhere must be detected (GCM authenticates header via AAD, nonce, body, tag).
    var flipped = sealed
    let position = Int(h % UInt64(sealed.count))
    flipped[position] ^= UInt8(1) << UInt8(truncatingIfNeeded: (h >> 16) & 7)
    if openOrNil(flipped, context: fixedContext, what: "bit flip") != nil {
        fail("a bit flip at byte \(position) of \(sealed.count) went undetected")
    }
    // Any truncation must be detected.
    let cut = Int((h >> 8) % UInt64(sealed.count))
    if openOrNil(Array(sealed.prefix(cut)), context: fixedContext, what: "truncation") != nil {
        fail("truncation to \(cut) of \(sealed.count) bytes went undetected")
    }
    if openOrNil(sealed, context: otherContext, what: "other context") != nil {
        fail("envelope opened under a different context")
    }
}

private func checkKeyring(_ input: [UInt8]) {
    guard let keyring else { fail("could not create the keyring") }
    _ = keyring.needsRewrap(input)
    do {
        _ = try keyring.open(input, context: fixedContext)
    } catch .authenticationFailed {
    } catch {
        fail("Keyring.open threw \(error)")
    }
    // Hostile persisted keyring: the input as a sealed data key of a term picked from it.
    guard let master = try? MasterKey(secret: fixedKey, source: "fuzz") else { fail("master key") }
    let term = UInt32(input.first ?? 0)
    do {
        let opened = try Keyring.unseal([SealedTerm(term: term, createdAt: 0, sealedKey: input)], master: master)
        // Only a real 32-byte data key sealed for this term under the fixed key gets here.
        guard opened.currentTerm == term else { fail("unsealed keyring has the wrong term") }
    } catch .sealed, .invalidKeyring {
    } catch {
        fail("Keyring.unseal threw \(error)")
    }
}

/// libFuzzer entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafeRawPointer, _ size: Int) -> CInt {
    let input = Array(UnsafeRawBufferPointer(start: data, count: size))
    checkRawOpen(input)
    checkSealTamper(input)
    checkKeyring(input)
    return 0
}
