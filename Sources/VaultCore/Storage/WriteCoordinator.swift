// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Primitives
import Synchronization

/// One write submitted to the ``WriteCoordinator``.
///
/// `@unchecked Sendable`: `body` and `completion` are `@Sendable`; `error` and `isDone` are
/// written only by the thread running the batch (inside the writer queue) *before* it signals
/// `waiter` or calls `completion`, and read by the submitting thread only *after* `waiter.wait()`
/// returns (or by the same thread, when the submitter ran the batch itself), so the semaphore
/// (or the call) orders every access.
final class WriteTicket: @unchecked Sendable {
    /// The operation; runs inside its own SAVEPOINT on the writer connection.
    let body: @Sendable (SQLiteConnection) throws -> Void
    /// Signalled when the ticket is done or its owner is promoted to leader; `nil` for a
    /// deferred or asynchronous write nobody waits for.
    let waiter: DispatchSemaphore?
    /// Called once on the writer queue when the ticket's transaction has finished, with its
    /// failure or `nil` (asynchronous writes, ``WriteCoordinator/submit(_:)``). It must be cheap:
    /// the next batch waits for it.
    let completion: (@Sendable (StorageError?) -> Void)?
    /// After commit, checkpoint the WAL with TRUNCATE so that no old page image of a destroyed
    /// secret survives in the `-wal` file (revoke).
    let purgesWAL: Bool
    /// The failure, if any (the op's own, or its transaction's).
    var error: StorageError?
    /// True once the ticket's transaction has finished (committed or not).
    var isDone = false
    /// The same write as data, when the writer may merge it with neighbouring mergeable tickets
    /// (see ``MergeableWrite``); `body` remains the fallback that runs it alone.
    let mergeable: MergeableWrite?

    init(
        waits: Bool, purgesWAL: Bool = false, mergeable: MergeableWrite? = nil,
        body: @escaping @Sendable (SQLiteConnection) throws -> Void
    ) {
        self.body = body
        self.waiter = waits ? DispatchSemaphore(value: 0) : nil
        self.completion = nil
        self.purgesWAL = purgesWAL
        self.mergeable = mergeable
        self.isAtomic = false
    }

    /// An asynchronous write: nobody waits; `completion` reports the outcome after the commit.
    /// `atomic`: see ``isAtomic``.
    init(
        purgesWAL: Bool = false, atomic: Bool = false, body: @escaping @Sendable (SQLiteConnection) throws -> Void,
        completion: @escaping @Sendable (StorageError?) -> Void
    ) {
        self.body = body
        self.waiter = nil
        self.completion = completion
        self.purgesWAL = purgesWAL
        self.mergeable = nil
        self.isAtomic = atomic
    }

    /// True when `body` changes the database with at most one statement and reads otherwise, so
    /// that when it throws, SQLite has already undone its changes (a failing statement is rolled
    /// back on its own; the transaction stays open). Such a ticket needs no SAVEPOINT of its own
    /// in a batch: two statements fewer per write (about a sixth of the writer's work for a
    /// create). Anything else must leave this false.
    let isAtomic: Bool

    /// A deferred write: no waiter and no completion (its failure is only counted).
    var isDeferred: Bool { waiter == nil && completion == nil }
}

/// Bookkeeping writes of the read paths, as data, so that a run of them in one batch can be
/// written with a few multi-row statements instead of one statement (and one SAVEPOINT) each.
/// Today the audit rows are the only such write.
enum MergeableWrite: Sendable {
    /// One audit row, its values in the column order of the store's audit INSERT.
    case audit([SQLiteValue])
}

/// Gives the writer its connection. The file engine's writer connection is confined to the
/// writer queue; the memory engine's single connection is shared with readers under a lock.
protocol WriterAccess: Sendable {
    /// Runs `body` with the writer connection (`nil` once closed). Called on the writer queue.
    func withWriter(_ body: (SQLiteConnection?) -> Void)
    /// Closes the connection. Called on the writer queue.
    func closeWriter()
}

/// Serialises every write through one connection and commits concurrent writes together
/// (group commit), so that with `synchronous=FULL` one fsync acknowledges many writes.
///
/// Protocol (leader/follower, as in database write-ahead logs):
/// - A caller appends its ticket to `pending`. If no leader is active it becomes the leader;
///   otherwise it sleeps on its semaphore.
/// - The leader runs batches *on the writer queue* via `queue.sync` (which libdispatch executes
///   on the calling thread when the queue is idle: no thread hop) until its own ticket is done.
///   A batch takes up to `maxBatch` tickets in FIFO order into one `BEGIN IMMEDIATE … COMMIT`,
///   each inside its own SAVEPOINT so a failing op rolls back alone.
/// - Then it hands leadership to the oldest waiting ticket's owner, or releases it.
/// - Deferred tickets (no waiter) ride along with the next batch; when no leader is active, a
///   kick on the writer queue commits them after `deferredDelay` so that a stream of them is
///   batched too. A leader or kick that is left with deferred tickets only (fewer than `promptCount`)
///   does not commit them at once either: it schedules that delayed kick, so a steady stream
///   is committed about once per `deferredDelay`, not in back-to-back small transactions.
/// - Asynchronous tickets (``submit(_:)``, a completion instead of a waiter) never block their
///   submitter: when no leader is active an immediate kick runs them *on the writer queue*, and
///   the writer calls each completion after the commit. While that kick keeps finding pending
///   asynchronous tickets (or a full batch) it keeps committing them in batches, so a stream of
///   asynchronous writes is group committed with no thread waiting on a semaphore and no thread
///   hop but the one to the writer.
///
/// Because only this queue ever writes, and every write transaction starts with
/// `BEGIN IMMEDIATE`, writers never meet `SQLITE_BUSY` ("database is locked").
///
/// `@unchecked Sendable`: mutable coordination state lives in `state` (a ``Locked``); counters are
/// `Atomic`; `walPurgePending` is touched only on `queue` (checked by `dispatchPrecondition` in
/// debug builds); the connection is reached only through `access`.
final class WriteCoordinator: @unchecked Sendable {
    private struct State {
        var pending: [WriteTicket] = []
        var leaderActive = false
        /// A delayed kick (after `deferredDelay`) is queued on the writer queue.
        var delayedKickScheduled = false
        /// An immediate kick is queued on the writer queue.
        var kickQueued = false
        var closed = false
    }

    private let state = Locked(State())
    private let access: any WriterAccess
    private let maxBatch: Int
    /// Queued deferred tickets that are committed at once instead of after the delay: a full
    /// batch, or fewer when the caller's backlog bound is lower (see ``init``).
    private let promptCount: Int
    private let deferredDelay: DispatchTimeInterval
    private let hasWAL: Bool
    /// The writer queue: the only place the writer connection is used.
    let queue: DispatchQueue

    /// Set on the queue when a TRUNCATE checkpoint could not finish (a reader was in the WAL);
    /// retried after the next commit.
    private var walPurgePending = false

    let transactions = Atomic<Int>(0)
    let committedWrites = Atomic<Int>(0)
    let failedWrites = Atomic<Int>(0)
    let deferredFailures = Atomic<Int>(0)
    let largestBatch = Atomic<Int>(0)

    /// Writes a run of two or more consecutive mergeable tickets (in submission order) in one
    /// go; `nil`: every ticket runs its own body.
    private let merge: (@Sendable ([MergeableWrite], SQLiteConnection) throws -> Void)?
    /// Runs of mergeable tickets written through `merge` (statistics and tests).
    let mergedRuns = Atomic<Int>(0)

    /// Asked on the writer queue before every transaction; a failure it returns fails the whole
    /// batch untouched (the file engine's check that its database file is still the one it opened).
    private let precheck: (@Sendable () -> StorageError?)?
    /// The storage-level failure (``StorageError/meansNotWritable``) of the last batch that
    /// committed nothing, cleared by the next commit: whether the store can take writes now.
    let lastStorageFailure = Locked<StorageError?>(nil)

    init(
        access: any WriterAccess, label: String, maxBatch: Int, deferredDelay: DispatchTimeInterval, hasWAL: Bool,
        promptAt: Int? = nil, merge: (@Sendable ([MergeableWrite], SQLiteConnection) throws -> Void)? = nil,
        precheck: (@Sendable () -> StorageError?)? = nil
    ) {
        self.access = access
        self.merge = merge
        self.precheck = precheck
        self.maxBatch = max(1, maxBatch)
        self.promptCount = max(1, min(self.maxBatch, promptAt ?? self.maxBatch))
        self.deferredDelay = deferredDelay
        self.hasWAL = hasWAL
        self.queue = DispatchQueue(label: label)
    }

    // MARK: Submitting

    /// Runs `ticket` in the next group commit and returns when its transaction has finished;
    /// the outcome is in `ticket.error`.
    /// - Throws: ``StorageError/closed`` when the coordinator no longer accepts writes.
    func perform(_ ticket: WriteTicket, evenIfClosed: Bool = false) throws(StorageError) {
        #if DEBUG
        // A write from inside a write would wait for itself.
        dispatchPrecondition(condition: .notOnQueue(queue))
        #endif
        let leads = try state.withLock { (s) throws(StorageError) -> Bool in
            if s.closed && !evenIfClosed { throw .closed }
            s.pending.append(ticket)
            pendingGauge.store(s.pending.count, ordering: .relaxed)
            if s.leaderActive { return false }
            s.leaderActive = true
            return true
        }
        if !leads {
            ticket.waiter?.wait()
            if ticket.isDone { return }
            // Woken without being done: promoted to leader by the previous one.
        }
        repeat {
            queue.sync { runBatch() }
        } while !ticket.isDone
        handOff()
    }

    /// Tickets queued and not yet taken into a batch.
    var pendingCount: Int { state.withLock { $0.pending.count } }

    /// `pendingCount` as of the last change, without the lock: for a cheap per-request
    /// "would an enqueue wait?" check, where being a moment stale is fine.
    var approximatePendingCount: Int { pendingGauge.load(ordering: .relaxed) }
    /// Mirrors `state.pending.count`, stored under the lock at every change.
    private let pendingGauge = Atomic<Int>(0)

    /// Queues a deferred ticket. Never blocks. The delayed kick commits it, or an immediate one
    /// once `promptCount` are queued: a fast stream of deferred writes must not pile up for the
    /// whole delay.
    func submitDeferred(_ ticket: WriteTicket) {
        enum Kick { case closed, none, now, later }
        let kick = state.withLock { s -> Kick in
            if s.closed { return .closed }
            s.pending.append(ticket)
            pendingGauge.store(s.pending.count, ordering: .relaxed)
            if s.leaderActive || s.kickQueued { return .none }
            if s.pending.count >= promptCount {
                s.kickQueued = true
                return .now
            }
            if s.delayedKickScheduled { return .none }
            s.delayedKickScheduled = true
            return .later
        }
        switch kick {
        case .closed: deferredFailures.add(1, ordering: .relaxed)
        case .now: queue.async { self.kicked(delayed: false) }
        case .later: kickLater()
        case .none: break
        }
    }

    /// Queues an asynchronous ticket (one made with a completion) for the next group commit and
    /// returns at once; the writer calls its completion after the commit. Never blocks. After
    /// ``close()`` the completion is called at once, on the caller's thread, with
    /// ``StorageError/closed``.
    func submit(_ ticket: WriteTicket) {
        let kick = state.withLock { s -> Bool? in
            if s.closed { return nil }
            s.pending.append(ticket)
            pendingGauge.store(s.pending.count, ordering: .relaxed)
            if s.leaderActive || s.kickQueued { return false }
            s.kickQueued = true
            return true
        }
        switch kick {
        case nil:
            ticket.error = .closed
            ticket.isDone = true
            failedWrites.add(1, ordering: .relaxed)
            ticket.completion?(.closed)
        case true?: queue.async { self.kicked(delayed: false) }
        case false?: break
        }
    }

    /// Passes leadership to the oldest waiting ticket, or releases it, queueing an immediate
    /// kick if an asynchronous ticket (which must not wait for a delayed kick) or `promptCount`
    /// tickets remain, and the delayed kick if deferred tickets alone do.
    private func handOff() {
        enum Next { case none, promote(WriteTicket), kick, kickLater }
        let next = state.withLock { s -> Next in
            if let waiting = s.pending.first(where: { $0.waiter != nil }) { return .promote(waiting) }
            s.leaderActive = false
            if s.pending.isEmpty || s.kickQueued { return .none }
            if !needsPromptCommit(s.pending) {
                if s.delayedKickScheduled { return .none }
                s.delayedKickScheduled = true
                return .kickLater
            }
            s.kickQueued = true
            return .kick
        }
        switch next {
        case .none: break
        case .promote(let ticket): ticket.waiter?.signal()
        case .kick: queue.async { self.kicked(delayed: false) }
        case .kickLater: kickLater()
        }
    }

    /// Queues the delayed kick; the caller has set `delayedKickScheduled` under the lock.
    private func kickLater() {
        queue.asyncAfter(deadline: .now() + deferredDelay) { self.kicked(delayed: true) }
    }

    /// True when `pending` holds an asynchronous ticket (its owner waits for the completion) or
    /// `promptCount` tickets. Deferred tickets alone wait for the delayed kick instead, so that a steady
    /// stream of them (one audit row per export) is committed about once per `deferredDelay`
    /// in large batches, not in one small transaction after another: every commit makes each
    /// reader connection drop its page cache at its next read (WAL), and costs the writer a
    /// transaction and new WAL frames of the same few pages.
    private func needsPromptCommit(_ pending: [WriteTicket]) -> Bool {
        pending.count >= promptCount || pending.contains { !$0.isDeferred }
    }

    /// A kick on the writer queue: commits queued deferred and asynchronous tickets unless a
    /// leader is active, and goes on while asynchronous ones (or a full batch) keep arriving.
    /// An immediate kick that finds its reason gone (a leader took those tickets) leaves what
    /// is left, deferred tickets only, to the delayed kick.
    private func kicked(delayed: Bool) {
        enum Start { case lead, no, later }
        let start = state.withLock { s -> Start in
            if delayed { s.delayedKickScheduled = false } else { s.kickQueued = false }
            if s.leaderActive || s.pending.isEmpty { return .no }
            if !delayed && !needsPromptCommit(s.pending) {
                if s.delayedKickScheduled { return .no }
                s.delayedKickScheduled = true
                return .later
            }
            s.leaderActive = true
            return .lead
        }
        switch start {
        case .no: return
        case .later:
            kickLater()
            return
        case .lead: break
        }
        while true {
            runBatch()
            enum Next { case done, promote(WriteTicket), again, later }
            let next = state.withLock { s -> Next in
                if let waiting = s.pending.first(where: { $0.waiter != nil }) { return .promote(waiting) }
                if !s.pending.isEmpty && needsPromptCommit(s.pending) { return .again }
                s.leaderActive = false
                if s.pending.isEmpty || s.delayedKickScheduled || s.kickQueued { return .done }
                s.delayedKickScheduled = true
                return .later
            }
            switch next {
            case .done: return
            case .later:
                kickLater()
                return
            case .again: continue
            case .promote(let ticket):
                ticket.waiter?.signal()
                return
            }
        }
    }

    // MARK: Running a batch (writer queue only)

    /// Takes up to `maxBatch` pending tickets and commits them in one transaction.
    private func runBatch() {
        #if DEBUG
        dispatchPrecondition(condition: .onQueue(queue))
        #endif
        let batch = state.withLock { s -> [WriteTicket] in
            let n = min(s.pending.count, maxBatch)
            let batch = Array(s.pending.prefix(n))
            s.pending.removeFirst(n)
            pendingGauge.store(s.pending.count, ordering: .relaxed)
            return batch
        }
        guard !batch.isEmpty else { return }
        access.withWriter { connection in
            guard let connection else {
                for ticket in batch { ticket.error = .closed }
                return
            }
            if let failure = precheck?() {
                for ticket in batch { ticket.error = failure }
                return
            }
            execute(batch, on: connection)
        }
        noteHealth(of: batch)
        for ticket in batch {
            if ticket.error != nil {
                failedWrites.add(1, ordering: .relaxed)
                if ticket.isDeferred { deferredFailures.add(1, ordering: .relaxed) }
            }
            ticket.isDone = true
            ticket.waiter?.signal()
            ticket.completion?(ticket.error)
        }
    }

    /// A batch in which anything committed proves the storage writable; one that committed
    /// nothing and failed for want of storage says it is not (see ``lastStorageFailure``).
    private func noteHealth(of batch: [WriteTicket]) {
        if batch.contains(where: { $0.error == nil }) {
            lastStorageFailure.withLock { if $0 != nil { $0 = nil } }
        } else if let failure = batch.lazy.compactMap(\.error).first(where: \.meansNotWritable) {
            lastStorageFailure.withLock { $0 = failure }
        }
    }

    private func execute(_ batch: [WriteTicket], on connection: SQLiteConnection) {
        do {
            try connection.run("BEGIN IMMEDIATE")
        } catch {
            let failure = StorageError(error)
            for ticket in batch { ticket.error = failure }
            return
        }
        var committed: [WriteTicket] = []
        committed.reserveCapacity(batch.count)
        if batch.count == 1, let ticket = batch.first {
            // A lone op needs no savepoint: the transaction itself rolls back.
            do {
                try ticket.body(connection)
                committed.append(ticket)
            } catch {
                ticket.error = StorageError.wrap(error)
                if connection.inTransaction { try? connection.run("ROLLBACK") }
                return
            }
        } else {
            var index = 0
            while index < batch.count {
                // A run of consecutive mergeable tickets is written as one unit at its place in
                // the batch, so audit ids stay in submission order relative to every other write.
                var end = index
                while end < batch.count, batch[end].mergeable != nil { end += 1 }
                if let merge, end - index >= 2 {
                    let run = batch[index..<end]
                    guard let failure = runMerged(run, merge, on: connection) else {
                        committed.append(contentsOf: run)
                        index = end
                        continue
                    }
                    if !connection.inTransaction {
                        fail(committed: committed, rest: batch[index...], failure)
                        return
                    }
                    // The merged run failed as a whole: run its tickets one by one below, so
                    // that only the failing ones fail (and are counted).
                }
                let stop = max(end, index + 1)
                for position in index..<stop {
                    let ticket = batch[position]
                    if ticket.isAtomic {
                        do {
                            try ticket.body(connection)
                            committed.append(ticket)
                        } catch {
                            ticket.error = StorageError.wrap(error)
                            if !connection.inTransaction {
                                fail(committed: committed, rest: batch[(position + 1)...], ticket.error ?? .closed)
                                return
                            }
                        }
                        continue
                    }
                    do {
                        try connection.run("SAVEPOINT op")
                        try ticket.body(connection)
                        try connection.run("RELEASE op")
                        committed.append(ticket)
                    } catch {
                        let failure = StorageError.wrap(error)
                        ticket.error = failure
                        if connection.inTransaction {
                            try? connection.run("ROLLBACK TO op")
                            try? connection.run("RELEASE op")
                        } else {
                            // SQLite rolled back the whole transaction (I/O error, disk full, out
                            // of memory): what was done before is lost too, and the rest is not
                            // tried.
                            fail(committed: committed, rest: batch[(position + 1)...], failure)
                            return
                        }
                    }
                }
                index = stop
            }
        }
        do {
            try connection.run("COMMIT")
        } catch {
            let failure = StorageError(error)
            for done in committed { done.error = failure }
            if connection.inTransaction { try? connection.run("ROLLBACK") }
            return
        }
        transactions.add(1, ordering: .relaxed)
        committedWrites.add(committed.count, ordering: .relaxed)
        _ = largestBatch.max(committed.count, ordering: .relaxed)
        if hasWAL && (walPurgePending || committed.contains(where: \.purgesWAL)) {
            walPurgePending = !checkpointTruncate(connection)
        }
    }

    /// Writes `run` through `merge` inside one SAVEPOINT. Returns the failure (after rolling
    /// back the savepoint, or with the whole transaction gone if SQLite aborted it), or `nil`.
    private func runMerged(
        _ run: ArraySlice<WriteTicket>, _ merge: ([MergeableWrite], SQLiteConnection) throws -> Void,
        on connection: SQLiteConnection
    ) -> StorageError? {
        var writes: [MergeableWrite] = []
        writes.reserveCapacity(run.count)
        for ticket in run { if let write = ticket.mergeable { writes.append(write) } }
        do {
            try connection.run("SAVEPOINT run")
            try merge(writes, connection)
            try connection.run("RELEASE run")
            mergedRuns.add(1, ordering: .relaxed)
            return nil
        } catch {
            if connection.inTransaction {
                try? connection.run("ROLLBACK TO run")
                try? connection.run("RELEASE run")
            }
            return StorageError.wrap(error)
        }
    }

    /// Marks the already committed tickets and every remaining one as failed with `failure`.
    private func fail(committed: [WriteTicket], rest: ArraySlice<WriteTicket>, _ failure: StorageError) {
        for done in committed { done.error = failure }
        for ticket in rest { ticket.error = failure }
    }

    /// `wal_checkpoint(TRUNCATE)`: copies every WAL frame into the database and truncates the
    /// WAL to zero bytes. Returns false when a reader kept it from finishing.
    func checkpointTruncate(_ connection: SQLiteConnection) -> Bool {
        #if DEBUG
        dispatchPrecondition(condition: .onQueue(queue))
        #endif
        guard let statement = try? connection.cached("PRAGMA wal_checkpoint(TRUNCATE)") else { return false }
        defer { statement.reset() }
        // One row: busy flag, WAL frames, frames checkpointed.
        guard (try? statement.step()) == true else { return false }
        return statement.int64(0) == 0
    }

    // MARK: Closing

    /// Stops accepting writes, waits for everything already submitted, checkpoints the WAL and
    /// closes the writer. Returns false if it was already closed.
    @discardableResult
    func close() -> Bool {
        let first = state.withLock { s -> Bool in
            if s.closed { return false }
            s.closed = true
            return true
        }
        guard first else { return false }
        // A barrier: FIFO order means every earlier ticket is done when it is.
        let barrier = WriteTicket(waits: true) { _ in }
        try? perform(barrier, evenIfClosed: true)
        queue.sync {
            access.withWriter { connection in
                if let connection, hasWAL { _ = checkpointTruncate(connection) }
            }
            access.closeWriter()
        }
        return true
    }
}
