// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Synchronization
import Testing
import VaultCore

@Suite("Crypto: keyring terms, rotation, rewrap and rekey")
struct CryptoKeyringTests {
    let master: MasterKey
    let row1 = CipherContext(table: "sessions", row: 1, column: "auth_key")
    let row2 = CipherContext(table: "sessions", row: 2, column: "auth_key")

    init() throws {
        master = try MasterKey.generate()
    }

    private func secret(_ byte: UInt8) -> SecretBytes { SecretBytes([UInt8](repeating: byte, count: 256)) }

    @Test("create → persist → unseal opens what the first keyring sealed")
    func createUnsealRoundTrip() throws {
        let (keyring, sealed) = try Keyring.create(master: master, createdAt: 1_700_000_000)
        #expect(keyring.currentTerm == 1)
        #expect(sealed.map(\.term) == [1])
        #expect(sealed[0].createdAt == 1_700_000_000)
        #expect(sealed[0].sealedKey.count == Envelope.overheadByteCount + 32)
        #expect(keyring.terms == [KeyTerm(term: 1, createdAt: 1_700_000_000)])

        let envelope = try keyring.seal(secret(9), context: row1)
        let reloaded = try Keyring.unseal(sealed, master: master)
        #expect(reloaded.currentTerm == 1)
        #expect(try reloaded.open(envelope, context: row1) == secret(9))
    }

    @Test("a wrong master key is .sealed and yields no keyring")
    func wrongMaster() throws {
        let (_, sealed) = try Keyring.create(master: master)
        #expect(throws: CryptoError.sealed) { try Keyring.unseal(sealed, master: try MasterKey.generate()) }
    }

    @Test("never partial: one altered or swapped term seals the whole keyring")
    func neverPartial() throws {
        let (keyring, first) = try Keyring.create(master: master)
        let second = try keyring.rotate()
        let third = try keyring.rotate()
        let all = first + [second, third]
        #expect(try Keyring.unseal(all, master: master).currentTerm == 3)

        var altered = second.sealedKey
        altered[altered.count - 1] ^= 1
        let withAltered = [first[0], SealedTerm(term: 2, createdAt: second.createdAt, sealedKey: altered), third]
        #expect(throws: CryptoError.sealed) { try Keyring.unseal(withAltered, master: master) }

        // Sealed keys swapped between term numbers: bound by the AAD, so they do not open.
        let swapped = [
            first[0], SealedTerm(term: 2, createdAt: 0, sealedKey: third.sealedKey),
            SealedTerm(term: 3, createdAt: 0, sealedKey: second.sealedKey),
        ]
        #expect(throws: CryptoError.sealed) { try Keyring.unseal(swapped, master: master) }
    }

    @Test("structurally bad keyrings are reported as such")
    func invalidKeyrings() throws {
        let (_, sealed) = try Keyring.create(master: master)
        #expect(throws: CryptoError.self) { try Keyring.unseal([], master: master) }
        do {
            _ = try Keyring.unseal(sealed + sealed, master: master)
            Issue.record("duplicate terms were accepted")
        } catch {
            guard case .invalidKeyring = error else { Issue.record("unexpected \(error)"); return }
        }
        do {
            _ = try Keyring.unseal([SealedTerm(term: 0, createdAt: 0, sealedKey: sealed[0].sealedKey)], master: master)
            Issue.record("term 0 was accepted")
        } catch {
            guard case .invalidKeyring = error else { Issue.record("unexpected \(error)"); return }
        }
    }

    @Test("rotate: new writes use the new term, old envelopes still open")
    func rotate() throws {
        let (keyring, first) = try Keyring.create(master: master)
        let old = try keyring.seal(secret(1), context: row1)
        let rotated = try keyring.rotate(createdAt: 1_800_000_000)
        #expect(rotated.term == 2)
        #expect(keyring.currentTerm == 2)
        #expect(keyring.terms.map(\.term) == [1, 2])
        #expect(keyring.terms.last?.createdAt == 1_800_000_000)

        let new = try keyring.seal(secret(2), context: row2)
        #expect(Envelope.term(of: old) == 1)
        #expect(Envelope.term(of: new) == 2)
        #expect(try keyring.open(old, context: row1) == secret(1))
        #expect(try keyring.open(new, context: row2) == secret(2))

        // A keyring loaded from storage without the new term cannot open new values, generically.
        let stale = try Keyring.unseal(first, master: master)
        #expect(throws: CryptoError.authenticationFailed) { try stale.open(new, context: row2) }
        let fresh = try Keyring.unseal(first + [rotated], master: master)
        #expect(try fresh.open(new, context: row2) == secret(2))
    }

    @Test("needsRewrap and rewrap move a value to the current term")
    func rewrap() throws {
        let (keyring, _) = try Keyring.create(master: master)
        let old = try keyring.seal(secret(5), context: row1)
        #expect(!keyring.needsRewrap(old))
        _ = try keyring.rotate()
        #expect(keyring.needsRewrap(old))
        let rewrapped = try keyring.rewrap(old, context: row1)
        #expect(Envelope.term(of: rewrapped) == 2)
        #expect(!keyring.needsRewrap(rewrapped))
        #expect(try keyring.open(rewrapped, context: row1) == secret(5))
        #expect(keyring.needsRewrap([1, 2, 3]))

        // Moving to another row re-binds the context.
        let moved = try keyring.rewrap(rewrapped, context: row1, to: row2)
        #expect(try keyring.open(moved, context: row2) == secret(5))
        #expect(throws: CryptoError.authenticationFailed) { try keyring.open(moved, context: row1) }

        // Rewrapping something that does not open is the generic error.
        #expect(throws: CryptoError.authenticationFailed) { try keyring.rewrap(old, context: row2) }
    }

    @Test("rekey: unseal works with the new master, not the old; data keys unchanged")
    func rekey() throws {
        let (keyring, _) = try Keyring.create(master: master)
        _ = try keyring.rotate()
        let envelope = try keyring.seal(secret(3), context: row1)
        let newMaster = try MasterKey.generate()
        let resealed = try keyring.rekey(newMaster: newMaster)
        #expect(resealed.map(\.term) == [1, 2])
        #expect(keyring.isSealed(by: newMaster))
        #expect(!keyring.isSealed(by: master))

        let reloaded = try Keyring.unseal(resealed, master: newMaster)
        #expect(try reloaded.open(envelope, context: row1) == secret(3))
        #expect(throws: CryptoError.sealed) { try Keyring.unseal(resealed, master: master) }

        // Rotations after a rekey are sealed under the new master.
        let third = try keyring.rotate()
        #expect(try Keyring.unseal(resealed + [third], master: newMaster).currentTerm == 3)
        #expect(throws: CryptoError.sealed) { try Keyring.unseal(resealed + [third], master: master) }
    }

    @Test("sealedTerms(under:) leaves the keyring unchanged")
    func sealedTermsIsPure() throws {
        let (keyring, _) = try Keyring.create(master: master)
        let other = try MasterKey.generate()
        let resealed = try keyring.sealedTerms(under: other)
        #expect(keyring.isSealed(by: master))
        #expect(try Keyring.unseal(resealed, master: other).currentTerm == 1)
    }

    @Test("two-phase rotation: prepare does not change the keyring; activate does, once")
    func prepareActivate() throws {
        let (keyring, sealed) = try Keyring.create(master: master)
        let next = try keyring.prepareRotation(createdAt: 5)
        #expect(next.term == 2)
        #expect(keyring.currentTerm == 1)
        try keyring.activate(next)
        #expect(keyring.currentTerm == 2)
        let envelope = try keyring.seal(secret(4), context: row1)
        #expect(try Keyring.unseal(sealed + [next], master: master).open(envelope, context: row1) == secret(4))

        // Activating the same term again (a lost race) is refused.
        do {
            try keyring.activate(next)
            Issue.record("a stale term was activated")
        } catch {
            guard case .invalidKeyring = error else { Issue.record("unexpected \(error)"); return }
        }
        // A term sealed by another master is refused as .sealed.
        let (foreign, _) = try Keyring.create(master: try MasterKey.generate())
        _ = try foreign.rotate()
        let foreignNext = try foreign.prepareRotation()
        #expect(foreignNext.term == 3)
        #expect(throws: CryptoError.sealed) { try keyring.activate(foreignNext) }
        #expect(keyring.currentTerm == 2)
    }

    @Test("keyrings with different keys cannot open each other's values")
    func isolation() throws {
        let (a, _) = try Keyring.create(master: master)
        let (b, _) = try Keyring.create(master: master)
        let envelope = try a.seal(secret(1), context: row1)
        #expect(throws: CryptoError.authenticationFailed) { try b.open(envelope, context: row1) }
    }

    @Test("concurrent seal/open while rotating never loses a value")
    func concurrentUse() throws {
        let (keyring, _) = try Keyring.create(master: master)
        let failures = Failures()
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for i in 0..<200 {
                do {
                    if worker == 0, i % 50 == 0 { _ = try keyring.rotate() }
                    let context = CipherContext(table: "t", row: Int64(worker * 1000 + i), column: "c")
                    let value = SecretBytes([UInt8(truncatingIfNeeded: i), UInt8(worker)])
                    let envelope = try keyring.seal(value, context: context)
                    guard try keyring.open(envelope, context: context) == value else {
                        failures.record()
                        continue
                    }
                } catch {
                    failures.record()
                }
            }
        }
        #expect(failures.count == 0)
        #expect(keyring.currentTerm == 5)
    }
}

/// Thread-safe failure counter for the concurrency test.
final class Failures: Sendable {
    private let counter = Atomic<Int>(0)
    func record() { counter.add(1, ordering: .relaxed) }
    var count: Int { counter.load(ordering: .relaxed) }
}
