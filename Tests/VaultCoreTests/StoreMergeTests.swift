// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Foundation
import Synchronization
import Testing
@testable import VaultCore

/// Deferred audit rows of the read paths are merged by the writer into multi-row INSERTs: none
/// may be lost or reordered.
@Suite struct StoreMergeTests {
    /// A store whose idle writer never kicks by itself: every deferred write waits for `flush`,
    /// so all of them land in one batch.
    static let held = SQLiteStoreConfiguration(synchronous: .normal, deferredWriteDelayMilliseconds: 600_000)

    static func event(_ detail: String, time: Int64 = 1) -> AuditEvent {
        AuditEvent(
            time: time, accessor: "t1", action: "session.export", sessionName: "s", remoteAddress: "127.0.0.1",
            outcome: "ok", detail: detail)
    }

    /// Every audit row, oldest first.
    static func allAudit(_ store: SQLiteSessionStore) throws -> [AuditRecord] {
        var rows: [AuditRecord] = []
        var before: Int64?
        while true {
            let page = try store.auditEvents(before: before, limit: 1000)
            if page.isEmpty { break }
            rows += page
            before = page.last?.id
        }
        return rows.reversed()
    }

    @Test(arguments: [StoreKind.file, .memory])
    func mergedAuditRowsKeepSubmissionOrder(_ kind: StoreKind) throws {
        try withStore(kind, configuration: Self.held) { store, _ in
            try store.insert(.make("alpha"), peers: [])
            // 300 rows: chunks of 128 + 128 + 32 + 8 + 4, interleaved with deferred writes that are
            // not merged (a token expiry; no such token, so it changes nothing).
            let total = 300
            for i in 0..<total {
                store.enqueue(.audit(Self.event("e\(i)", time: Int64(i))))
                if i % 7 == 0 { store.enqueue(.expireToken(accessor: "none", at: Int64(i))) }
            }
            try store.flush()
            // A blocking append after them gets the next id.
            let last = try store.appendAudit(Self.event("last"))
            let rows = try Self.allAudit(store)
            #expect(rows.count == total + 1)
            let expected = (0..<total).map { "e\($0)" } + ["last"]
            // Counted rather than compared whole, to keep a failure's report short.
            let misplaced = zip(rows.map(\.event.detail), expected).filter { $0 != $1 }.count
            #expect(misplaced == 0)
            #expect(rows.last?.id == last)
            #expect(zip(rows, rows.dropFirst()).allSatisfy { $0.id < $1.id })
            #expect(rows.first?.event == Self.event("e0", time: 0))
            #expect(store.mergedRuns >= 1)
            #expect(store.statistics().deferredFailures == 0)
        }
    }
}

/// A waited-for write (`perform`, on another thread) that holds the coordinator's writer, as its
/// leader, until ``release()``; `release` returns once that write is done.
struct HeldLeader {
    private let gate = DispatchSemaphore(value: 0)
    private let done = DispatchGroup()

    init(_ coordinator: WriteCoordinator) {
        let started = DispatchSemaphore(value: 0)
        let gate = self.gate
        DispatchQueue.global().async(group: done) {
            try? coordinator.perform(WriteTicket(waits: true) { _ in
                started.signal()
                gate.wait()
            })
        }
        started.wait()
    }

    func release() {
        gate.signal()
        done.wait()
    }
}

/// The coordinator itself: a merged run sits at its place between other writes of one batch,
/// and a failing run falls back to one op at a time so only the failing op is lost.
@Suite struct WriteCoordinatorMergeTests {
    static func coordinator() throws -> (WriteCoordinator, SharedConnection) {
        let connection = try SQLiteConnection(path: ":memory:")
        try VaultSchema.migrate(connection)
        let shared = SharedConnection(connection)
        let coordinator = WriteCoordinator(
            access: shared, label: "test.writer", maxBatch: 4096, deferredDelay: .seconds(600), hasWAL: false,
            merge: SQLiteSessionStore.writeMerged)
        return (coordinator, shared)
    }

    static func auditRow(_ detail: String, action: SQLiteValue = .text("a")) -> [SQLiteValue] {
        [.integer(1), .null, action, .null, .null, .text("ok"), .text(detail)]
    }

    static func deferredAudit(_ values: [SQLiteValue]) -> WriteTicket {
        WriteTicket(waits: false, mergeable: .audit(values)) { connection in
            try connection.run(
                "INSERT INTO audit (time, accessor, action, session_name, remote_address, outcome, detail) "
                    + "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", values)
        }
    }

    static func details(_ shared: SharedConnection) throws -> [String] {
        try shared.read { connection in
            try connection.query("SELECT detail FROM audit ORDER BY id").map { row -> String in
                if case .text(let text)? = row.first { return text }
                return "?"
            }
        }
    }

    @Test func aMergedRunKeepsItsPlaceAroundAnOrdinaryWrite() throws {
        let (coordinator, shared) = try Self.coordinator()
        defer { coordinator.close() }
        // Hold the writer so that everything below queues up for one batch.
        let held = HeldLeader(coordinator)
        let group = DispatchGroup()
        for i in 0..<150 { coordinator.submitDeferred(Self.deferredAudit(Self.auditRow("a\(i)"))) }
        let ordinary = WriteTicket(waits: true) { connection in
            try connection.run(
                "INSERT INTO audit (time, action, outcome, detail) VALUES (1, 'b', 'ok', 'b')", [])
        }
        DispatchQueue.global().async(group: group) { try? coordinator.perform(ordinary) }
        // The ordinary write is queued once the count includes it (it waits as a follower).
        while coordinator.pendingCount < 151 { _ = sched_yield() }
        for i in 0..<150 { coordinator.submitDeferred(Self.deferredAudit(Self.auditRow("c\(i)"))) }
        held.release()
        group.wait()
        try coordinator.perform(WriteTicket(waits: true) { _ in })
        let expected = (0..<150).map { "a\($0)" } + ["b"] + (0..<150).map { "c\($0)" }
        #expect(try Self.details(shared) == expected)
        #expect(ordinary.error == nil)
        #expect(coordinator.mergedRuns.load(ordering: .relaxed) >= 2)
        #expect(coordinator.deferredFailures.load(ordering: .relaxed) == 0)
    }

    @Test func aFailingRunFallsBackToSingleOpsAndCountsOnlyTheFailure() throws {
        let (coordinator, shared) = try Self.coordinator()
        defer { coordinator.close() }
        for i in 0..<10 {
            // `action` is NOT NULL: the sixth row fails, and with it the merged run.
            let row = Self.auditRow("r\(i)", action: i == 5 ? .null : .text("a"))
            coordinator.submitDeferred(Self.deferredAudit(row))
        }
        try coordinator.perform(WriteTicket(waits: true) { _ in })
        #expect(try Self.details(shared) == (0..<10).filter { $0 != 5 }.map { "r\($0)" })
        #expect(coordinator.deferredFailures.load(ordering: .relaxed) == 1)
        #expect(coordinator.failedWrites.load(ordering: .relaxed) == 1)
        #expect(coordinator.mergedRuns.load(ordering: .relaxed) == 0)
    }

    @Test func chunkSizesCoverEveryCount() {
        for count in [0, 1, 2, 3, 127, 128, 129, 300, 1000] {
            let chunks = MultiRow.chunks(count)
            #expect(chunks.map { 1 << $0 }.reduce(0, +) == count)
            #expect(chunks.allSatisfy { (0...7).contains($0) })
        }
    }
}

/// Pacing: deferred writes alone are committed by the delayed kick, in large batches, not at
/// once by whichever leader or kick happens to finish; a full batch of them does not wait.
@Suite struct WriteCoordinatorPacingTests {
    static func coordinator(maxBatch: Int) throws -> (WriteCoordinator, SharedConnection) {
        let connection = try SQLiteConnection(path: ":memory:")
        try VaultSchema.migrate(connection)
        let shared = SharedConnection(connection)
        // The delayed kick is ten minutes away: only a prompt commit can happen in a test.
        let coordinator = WriteCoordinator(
            access: shared, label: "test.writer", maxBatch: maxBatch, deferredDelay: .seconds(600), hasWAL: false,
            merge: SQLiteSessionStore.writeMerged)
        return (coordinator, shared)
    }

    static func submitDeferred(_ count: Int, to coordinator: WriteCoordinator) {
        for i in 0..<count {
            coordinator.submitDeferred(WriteCoordinatorMergeTests.deferredAudit(WriteCoordinatorMergeTests.auditRow("d\(i)")))
        }
    }

    /// Holds the writer in an asynchronous ticket, queues `deferred` deferred tickets behind it,
    /// releases it and returns once the kick that ran it has finished on the writer queue.
    static func asynchronousWriteThen(_ deferred: Int, _ coordinator: WriteCoordinator) {
        let started = DispatchSemaphore(value: 0)
        let gate = DispatchSemaphore(value: 0)
        let completed = DispatchSemaphore(value: 0)
        coordinator.submit(WriteTicket(body: { _ in
            started.signal()
            gate.wait()
        }, completion: { _ in completed.signal() }))
        started.wait()
        submitDeferred(deferred, to: coordinator)
        gate.signal()
        completed.wait()
        coordinator.queue.sync {}  // the kick's decision about what is left is made by now
    }

    /// The same with a leader: a waited-for write holds the writer while `deferred` deferred
    /// tickets queue behind it; returns once that write is done.
    static func leaderWriteThen(_ deferred: Int, _ coordinator: WriteCoordinator) {
        let held = HeldLeader(coordinator)
        submitDeferred(deferred, to: coordinator)
        held.release()
    }

    @Test func deferredWritesLeftByAnAsynchronousWriteWaitForTheDelayedKick() throws {
        let (coordinator, shared) = try Self.coordinator(maxBatch: 512)
        defer { coordinator.close() }
        Self.asynchronousWriteThen(10, coordinator)
        #expect(coordinator.pendingCount == 10)
        #expect(coordinator.transactions.load(ordering: .relaxed) == 1)
        // Nothing is lost: the next commit takes them.
        try coordinator.perform(WriteTicket(waits: true) { _ in })
        #expect(coordinator.pendingCount == 0)
        #expect(try WriteCoordinatorMergeTests.details(shared) == (0..<10).map { "d\($0)" })
    }

    @Test func deferredWritesLeftByALeaderWaitForTheDelayedKick() throws {
        let (coordinator, shared) = try Self.coordinator(maxBatch: 512)
        defer { coordinator.close() }
        Self.leaderWriteThen(7, coordinator)
        coordinator.queue.sync {}
        #expect(coordinator.pendingCount == 7)
        #expect(coordinator.transactions.load(ordering: .relaxed) == 1)
        try coordinator.perform(WriteTicket(waits: true) { _ in })
        #expect(try WriteCoordinatorMergeTests.details(shared).count == 7)
    }

    @Test func aFullBatchOfDeferredWritesIsCommittedAtOnce() throws {
        let (coordinator, shared) = try Self.coordinator(maxBatch: 8)
        defer { coordinator.close() }
        Self.asynchronousWriteThen(20, coordinator)
        // 20 queued: two full batches of 8 go at once, the last 4 wait for the delayed kick.
        #expect(coordinator.pendingCount == 4)
        #expect(coordinator.transactions.load(ordering: .relaxed) == 3)
        try coordinator.perform(WriteTicket(waits: true) { _ in })
        #expect(try WriteCoordinatorMergeTests.details(shared) == (0..<20).map { "d\($0)" })
    }

    @Test func aFullBatchQueuedWhileIdleIsCommittedWithoutTheDelay() throws {
        let (coordinator, shared) = try Self.coordinator(maxBatch: 8)
        defer { coordinator.close() }
        Self.submitDeferred(7, to: coordinator)
        coordinator.queue.sync {}
        #expect(coordinator.pendingCount == 7)  // less than a batch: waits for the delayed kick
        Self.submitDeferred(1, to: coordinator)
        coordinator.queue.sync {}  // the eighth queued an immediate kick, which has run by now
        #expect(coordinator.pendingCount == 0)
        #expect(coordinator.transactions.load(ordering: .relaxed) == 1)
        #expect(try WriteCoordinatorMergeTests.details(shared).count == 8)
    }

    /// A smaller `promptAt` (the store passes half its deferred backlog) starts the immediate
    /// kick before a full batch is queued.
    @Test func promptAtBelowTheBatchSizeStartsTheKickEarlier() throws {
        let connection = try SQLiteConnection(path: ":memory:")
        try VaultSchema.migrate(connection)
        let shared = SharedConnection(connection)
        let coordinator = WriteCoordinator(
            access: shared, label: "test.writer", maxBatch: 512, deferredDelay: .seconds(600), hasWAL: false,
            promptAt: 4, merge: SQLiteSessionStore.writeMerged)
        defer { coordinator.close() }
        Self.submitDeferred(3, to: coordinator)
        coordinator.queue.sync {}
        #expect(coordinator.pendingCount == 3)
        Self.submitDeferred(1, to: coordinator)
        coordinator.queue.sync {}
        #expect(coordinator.pendingCount == 0)
        #expect(try WriteCoordinatorMergeTests.details(shared).count == 4)
    }

    @Test func anAsynchronousWriteTakesTheWaitingDeferredWritesAlong() throws {
        let (coordinator, shared) = try Self.coordinator(maxBatch: 512)
        defer { coordinator.close() }
        Self.asynchronousWriteThen(5, coordinator)
        #expect(coordinator.pendingCount == 5)
        Self.asynchronousWriteThen(0, coordinator)
        #expect(coordinator.pendingCount == 0)
        #expect(try WriteCoordinatorMergeTests.details(shared).count == 5)
    }
}

/// Liveness: with a short delay, deferred writes left behind by a leader, by a kick, or queued
/// while the writer is idle are committed by the delayed kick with no other write to carry them.
@Suite struct WriteCoordinatorDelayedKickTests {
    static func coordinator() throws -> (WriteCoordinator, SharedConnection) {
        let connection = try SQLiteConnection(path: ":memory:")
        try VaultSchema.migrate(connection)
        let shared = SharedConnection(connection)
        let coordinator = WriteCoordinator(
            access: shared, label: "test.writer", maxBatch: 512, deferredDelay: .milliseconds(1), hasWAL: false,
            merge: SQLiteSessionStore.writeMerged)
        return (coordinator, shared)
    }

    /// Polls until nothing is pending (bounded: a lost kick fails the test instead of hanging).
    static func drained(_ coordinator: WriteCoordinator) -> Bool {
        let deadline = DispatchTime.now() + .seconds(30)
        while coordinator.pendingCount > 0 {
            if DispatchTime.now() > deadline { return false }
            usleep(1_000)
        }
        return true
    }

    /// Who leaves the deferred writes behind.
    enum Scenario: CaseIterable, Sendable { case nobody, aKick, aLeader }

    @Test(arguments: Scenario.allCases)
    func deferredWritesLeftBehindAreCommitted(_ scenario: Scenario) throws {
        let (coordinator, shared) = try Self.coordinator()
        defer { coordinator.close() }
        switch scenario {
        case .nobody: WriteCoordinatorPacingTests.submitDeferred(5, to: coordinator)  // queued while idle
        case .aKick: WriteCoordinatorPacingTests.asynchronousWriteThen(5, coordinator)
        case .aLeader: WriteCoordinatorPacingTests.leaderWriteThen(5, coordinator)
        }
        #expect(Self.drained(coordinator))
        coordinator.queue.sync {}
        #expect(try WriteCoordinatorMergeTests.details(shared).count == 5)
    }
}
