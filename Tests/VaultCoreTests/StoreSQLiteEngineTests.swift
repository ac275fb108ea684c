// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import VaultCore

/// What only the SQLite engines promise beyond the store contract: group commit.
@Suite("SQLite engine")
struct StoreSQLiteEngineTests {
    /// Deferred writes queued while the writer is idle are committed together by the next
    /// blocking write: one transaction for all of them (deterministic, no timing involved).
    @Test(arguments: StoreKind.allCases)
    func groupCommitBatchesQueuedWrites(kind: StoreKind) throws {
        // A long idle delay: nothing commits the queued writes but the flush.
        try withStore(kind, configuration: .init(deferredWriteDelayMilliseconds: 60_000)) { store, _ in
            let before = store.statistics()
            for i in 0..<100 { store.enqueue(.audit(AuditEvent(time: Int64(i), action: "a", outcome: "ok"))) }
            try store.flush()
            let after = store.statistics()
            #expect(after.transactions - before.transactions == 1)
            #expect(after.committedWrites - before.committedWrites == 101)
            #expect(after.largestBatch >= 101)
            #expect(try store.auditEvents(before: nil, limit: 1000).count == 100)
        }
    }

}
