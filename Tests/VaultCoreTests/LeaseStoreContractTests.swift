// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Testing
import VaultCore

/// The ``LeaseRepository`` part of the store contract, over every engine in ``StoreEngine/all``:
/// epochs that move by compare-and-set only and never repeat, the lease id kept only as its hash,
/// the `exclusive` flag, late writes that change nothing, and the lease rows a reopened file
/// gives back.
@Suite("Store contract: leases")
struct LeaseStoreContractTests {
    static func held(_ epoch: Int64, hash: UInt8 = 1, holder: String = "host:1") -> LeaseRecord {
        LeaseRecord(state: .held, epoch: epoch, idHash: [UInt8](repeating: hash, count: 32), holder: holder, ttlSeconds: 15,
                    acquiredAt: 1_000 * epoch)
    }

    @Test(arguments: StoreEngine.all)
    func acquisitionsAreCompareAndSetOnTheEpoch(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            try store.insert(StoredSession.make("alpha"))
            let alpha = try name("alpha")
            let fresh = try #require(try store.leaseState(of: alpha))
            #expect(fresh.lease == LeaseRecord(state: .free, epoch: 0) && !fresh.exclusive && !fresh.revoked)
            #expect(try store.leaseStates().isEmpty)

            #expect(try store.acquireLease(Self.held(1), in: alpha, ifEpoch: 0))
            // A second acquisition from the same epoch loses, and changes nothing.
            #expect(try !store.acquireLease(Self.held(1, hash: 2, holder: "other"), in: alpha, ifEpoch: 0))
            #expect(try store.leaseState(of: alpha)?.lease == Self.held(1))
            // A later epoch from a stale read loses too.
            #expect(try !store.acquireLease(Self.held(3), in: alpha, ifEpoch: 2))
            #expect(try store.acquireLease(Self.held(2, hash: 3, holder: "b"), in: alpha, ifEpoch: 1))
            #expect(try store.leaseState(of: alpha)?.lease == Self.held(2, hash: 3, holder: "b"))
            #expect(try store.leaseStates().map(\.name) == [alpha])
        }
    }

    @Test(arguments: StoreEngine.all)
    func endingALeaseKeepsItsEpochAndLateWritesChangeNothing(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            try store.insert(StoredSession.make("alpha"))
            let alpha = try name("alpha")
            #expect(try store.acquireLease(Self.held(1), in: alpha, ifEpoch: 0))
            #expect(try store.setLease(in: alpha, epoch: 1, state: .held, ttlSeconds: 40))
            #expect(try store.leaseState(of: alpha)?.lease.ttlSeconds == 40)
            #expect(try store.setLease(in: alpha, epoch: 1, state: .delay, ttlSeconds: nil))
            var lease = try #require(try store.leaseState(of: alpha)?.lease)
            #expect(lease.state == .delay && lease.idHash.isEmpty && lease.epoch == 1)
            #expect(try store.setLease(in: alpha, epoch: 1, state: .free, ttlSeconds: nil))
            #expect(try store.acquireLease(Self.held(2), in: alpha, ifEpoch: 1))
            // The expiry of epoch 1 arriving late does not touch epoch 2.
            #expect(try !store.setLease(in: alpha, epoch: 1, state: .delay, ttlSeconds: nil))
            #expect(try !store.setLease(in: alpha, epoch: 1, state: .held, ttlSeconds: 99))
            lease = try #require(try store.leaseState(of: alpha)?.lease)
            #expect(lease == Self.held(2))
            #expect(throws: StorageError.notFound) { try store.setLease(in: name("beta"), epoch: 1, state: .free, ttlSeconds: nil) }
        }
    }

    @Test(arguments: StoreEngine.all)
    func exclusiveFlagAndRevokedSessions(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            try store.insert(StoredSession.make("alpha"))
            try store.insert(StoredSession.make("beta"))
            let alpha = try name("alpha")
            try store.setExclusive(true, for: alpha)
            #expect(try store.leaseState(of: alpha)?.exclusive == true)
            #expect(try store.leaseState(of: name("beta"))?.exclusive == false)
            #expect(try store.leaseStates().map(\.name) == [alpha])
            let done = DispatchSemaphore(value: 0)
            store.setExclusive(false, for: alpha) { result in
                #expect((try? result.get()) != nil)
                done.signal()
            }
            done.wait()
            #expect(try store.leaseState(of: alpha)?.exclusive == false)
            #expect(throws: StorageError.notFound) { try store.setExclusive(true, for: name("gamma")) }
            #expect(throws: StorageError.notFound) { try store.acquireLease(Self.held(1), in: name("gamma"), ifEpoch: 0) }
            _ = try store.revoke(name("beta"), at: 5)
            #expect(throws: StorageError.revoked) { try store.acquireLease(Self.held(1), in: name("beta"), ifEpoch: 0) }
            #expect(throws: StorageError.revoked) { try store.setExclusive(true, for: name("beta")) }
            #expect(try store.leaseState(of: name("beta"))?.revoked == true)
            // Only the next epoch, held, with a hash, is a valid acquisition.
            #expect(throws: StorageError.self) { try store.acquireLease(Self.held(5), in: alpha, ifEpoch: 0) }
            #expect(throws: StorageError.self) {
                try store.acquireLease(LeaseRecord(state: .held, epoch: 1), in: alpha, ifEpoch: 0)
            }
        }
    }

    @Test func leasesSurviveReopeningTheFile() throws {
        let dir = try TempDir()
        let path = dir.file("vault.db")
        do {
            let store = try SQLiteSessionStore(.file(path))
            defer { store.close() }
            try store.insert(StoredSession.make("alpha"))
            #expect(try store.acquireLease(Self.held(1), in: name("alpha"), ifEpoch: 0))
            try store.setExclusive(true, for: name("alpha"))
        }
        let store = try SQLiteSessionStore(.file(path))
        defer { store.close() }
        let state = try #require(try store.leaseStates().first)
        #expect(state.lease == Self.held(1) && state.exclusive)
    }
}
