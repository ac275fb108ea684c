// SPDX-License-Identifier: Apache-2.0
import Testing
import VaultCore

/// The update-state and key-replacement part of the `SessionStore` contract, over every engine.
@Suite("Store contract: update state and new keys")
struct StoreUpdateStateContractTests {
    @Test(arguments: StoreEngine.all)
    func updateStatesUpsertByIDListInIDOrderAndDelete(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            try store.insert(try StoredSession.make("alpha"))
            try store.insert(try StoredSession.make("beta"))
            let alpha = try name("alpha")
            #expect(try store.updateStates(in: alpha).isEmpty)
            let rows = [
                UpdateState(id: 5, pts: 1, qts: nil, date: 3, seq: nil),
                UpdateState(id: 0, pts: 10, qts: 2, date: 1_700_000_000, seq: 7),
                UpdateState(id: -1_001_234_567_890, pts: nil, qts: nil, date: nil, seq: nil),
            ]
            #expect(try store.upsertUpdateStates(rows, in: alpha) == 3)
            #expect(try store.updateStates(in: alpha) == rows.sorted { $0.id < $1.id })
            #expect(try store.updateStates(in: name("beta")).isEmpty)  // per session
            let newer = UpdateState(id: 0, pts: 11, qts: nil, date: 5, seq: 8)
            #expect(try store.upsertUpdateStates([newer], in: alpha) == 3)
            #expect(try store.updateStates(in: alpha).first { $0.id == 0 } == newer)
            #expect(try store.deleteUpdateState(id: 5, in: alpha))
            #expect(!(try store.deleteUpdateState(id: 5, in: alpha)))
            #expect(try store.updateStates(in: alpha).map(\.id) == [-1_001_234_567_890, 0])
        }
    }

    @Test(arguments: StoreEngine.all)
    func updateStatesOfMissingOrRevokedSessions(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            let ghost = try name("ghost")
            #expect(throws: StorageError.notFound) { try store.updateStates(in: ghost) }
            #expect(throws: StorageError.notFound) {
                try store.upsertUpdateStates([UpdateState(id: 0, pts: 1, qts: 1, date: 1, seq: 1)], in: ghost)
            }
            #expect(throws: StorageError.notFound) { try store.deleteUpdateState(id: 0, in: ghost) }
            try store.insert(try StoredSession.make("alpha"))
            let alpha = try name("alpha")
            _ = try store.upsertUpdateStates([UpdateState(id: 0, pts: 1, qts: 1, date: 1, seq: 1)], in: alpha)
            _ = try store.revoke(alpha, at: 9)
            #expect(try store.updateStates(in: alpha).isEmpty)  // the tombstone keeps none
            #expect(throws: StorageError.revoked) {
                try store.upsertUpdateStates([UpdateState(id: 0, pts: 1, qts: 1, date: 1, seq: 1)], in: alpha)
            }
            #expect(throws: StorageError.revoked) { try store.deleteUpdateState(id: 0, in: alpha) }
        }
    }

    @Test(arguments: StoreEngine.all)
    func updateReplacingKeyWritesTheEnvelopeAndMetadataAsOneCompareAndSet(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            let stored = try store.insert(try StoredSession.make("alpha"))
            var changed = stored
            changed.dcID = 5
            changed.sealedAuthKey = Array(repeating: 0xAB, count: stored.sealedAuthKey?.count ?? 300)
            changed.sealedKeyTerm = 3
            changed.authKeyID = "00112233445566ff"
            #expect(throws: StorageError.versionMismatch(current: 1)) {
                try store.updateReplacingKey(changed, expectedVersion: 2)
            }
            #expect(try store.session(named: name("alpha")) == stored)
            let updated = try store.updateReplacingKey(changed, expectedVersion: 1)
            #expect(updated.version == 2 && updated.dcID == 5)
            #expect(updated.sealedAuthKey == changed.sealedAuthKey && updated.sealedKeyTerm == 3)
            #expect(updated.authKeyID == "00112233445566ff")
            #expect(try store.session(named: name("alpha")) == updated)
            _ = try store.revoke(name("alpha"), at: 9)
            #expect(throws: StorageError.revoked) { try store.updateReplacingKey(changed, expectedVersion: 3) }
        }
    }
}
