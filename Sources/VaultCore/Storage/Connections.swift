// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Primitives
import Synchronization

/// The file engine's read connections: a stack of idle read-only connections.
///
/// A read checks one out on the caller's thread, runs its single statement (no explicit
/// `BEGIN`: one statement is its own consistent snapshot in WAL mode), and checks it back in.
/// Each connection keeps its own prepared-statement cache, so the hot reads are bind/step/reset.
/// Connections are opened on demand when the stack is empty, at most `maxOpen` at once; at most
/// `maxIdle` are kept.
///
/// **Why a bound on open connections.** Each reader costs ~130 KiB of RSS (SQLite lookaside,
/// schema, cached statements, its page cache). Without a bound there were as many readers as
/// threads reading at once, and under an export load the handler pool sometimes reached its 32
/// threads (readers waiting out a WAL checkpoint, handlers waiting on write backpressure): 33
/// readers, +4.5 MiB of peak RSS (`bench/export_rss.sh`). Beyond `maxOpen` a reader waits for a
/// connection instead; a read holds its connection for one statement and never waits for anything
/// else meanwhile (no nested reads, no writes), so the wait is short and cannot deadlock.
///
/// `@unchecked Sendable`: idle connections live only inside `state` (a ``Locked``); a checked-out
/// connection is used by exactly one thread until it is checked in, and the mutex hand-over
/// orders every access to it.
final class ReaderPool: @unchecked Sendable {
    private struct State {
        var idle: [SQLiteConnection] = []
        var open = 0
        var closed = false
    }

    private let state = Locked(State())
    private let path: String
    private let busyTimeout: Int32
    private let maxIdle: Int
    /// Free slots for open connections: `maxOpen` minus the connections checked out.
    private let slots: DispatchSemaphore
    /// Most connections open at once.
    let maxOpen: Int
    /// Page-cache budget of each reader connection, in KiB.
    static let cacheKiB = 64

    init(path: String, busyTimeout: Int32, maxIdle: Int, maxOpen: Int) {
        self.path = path
        self.busyTimeout = busyTimeout
        self.maxOpen = max(1, maxOpen)
        self.maxIdle = min(max(1, maxIdle), self.maxOpen)
        self.slots = DispatchSemaphore(value: self.maxOpen)
    }

    /// Runs `body` with a read-only connection on the calling thread.
    /// - Throws: ``StorageError/closed`` after ``close()``; whatever `body` throws.
    func read<T>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        slots.wait()
        defer { slots.signal() }
        inUse.wrappingAdd(1, ordering: .relaxed)
        defer { inUse.wrappingSubtract(1, ordering: .relaxed) }
        let connection = try checkOut()
        defer { checkIn(connection) }
        return try body(connection)
    }

    /// Reads running now (each holds a slot).
    private let inUse = Atomic<Int>(0)

    /// Whether every slot is taken, so a new read would wait (a moment stale at most).
    var allBusy: Bool { inUse.load(ordering: .relaxed) >= maxOpen }

    /// Connections currently open (idle or in use).
    var openCount: Int { state.withLock { $0.open } }

    private func checkOut() throws -> SQLiteConnection {
        let idle = try state.withLock { (s) throws(StorageError) -> SQLiteConnection? in
            if s.closed { throw .closed }
            if let idle = s.idle.popLast() { return idle }
            s.open += 1
            return nil
        }
        if let idle { return idle }
        do {
            return try openReader()
        } catch {
            state.withLock { $0.open -= 1 }
            throw error
        }
    }

    private func checkIn(_ connection: SQLiteConnection) {
        let kept = state.withLock { s -> Bool in
            guard !s.closed, s.idle.count < maxIdle else {
                s.open -= 1
                return false
            }
            s.idle.append(connection)
            return true
        }
        if !kept { connection.close() }
    }

    private func openReader() throws -> SQLiteConnection {
        let connection = try SQLiteConnection(path: path, options: .init(readOnly: true, create: false))
        // Readers rarely wait in WAL mode, but can while a TRUNCATE checkpoint resets the WAL.
        connection.setBusyTimeout(milliseconds: busyTimeout)
        // A small private page cache per reader (SQLite's default is 2 MiB each): the database
        // file stays in the kernel's page cache, shared by every reader, and a miss is one pread.
        // There is one reader per thread reading at once, so the default multiplied RSS. 64 KiB
        // holds the hot interior pages; a random export misses its leaves at any size short of
        // the file, so 256 KiB read no faster (BENCHMARKS.md, "Optimisations", session 10).
        try? connection.execute("PRAGMA cache_size = -\(ReaderPool.cacheKiB)")
        return connection
    }

    /// Closes idle connections; connections in use close when they are checked in.
    func close() {
        let idle = state.withLock { s -> [SQLiteConnection] in
            s.closed = true
            let idle = s.idle
            s.idle.removeAll()
            s.open -= idle.count
            return idle
        }
        for connection in idle { connection.close() }
    }
}

/// The file engine's writer connection, confined to the writer queue.
///
/// `@unchecked Sendable`: ``WriteCoordinator`` calls `withWriter` and `closeWriter` only on its
/// serial writer queue (asserted there with `dispatchPrecondition` in debug builds), so
/// `connection` is never touched by two threads at once.
final class ConfinedWriter: WriterAccess, @unchecked Sendable {
    private var connection: SQLiteConnection?

    init(_ connection: SQLiteConnection) { self.connection = connection }

    func withWriter(_ body: (SQLiteConnection?) -> Void) { body(connection) }

    func closeWriter() {
        connection?.close()
        connection = nil
    }
}

/// The memory engine's only connection, shared by readers and the writer under one lock.
///
/// A private `:memory:` database can have only one connection, and the `memdb` VFS that allows
/// several makes readers poll with SQLite's sleeping busy handler (1 ms steps) while a write
/// transaction is open. One connection behind a ``Locked`` is simpler and never waits longer than
/// the transaction in progress. The writer still batches (group commit) on its queue, holding
/// the lock for the batch.
///
/// `@unchecked Sendable`: `connection` is touched only while holding `lock`.
final class SharedConnection: WriterAccess, @unchecked Sendable {
    private let lock = Locked()
    private var connection: SQLiteConnection?

    init(_ connection: SQLiteConnection) { self.connection = connection }

    func withWriter(_ body: (SQLiteConnection?) -> Void) {
        lock.withLock { body(connection) }
    }

    /// Runs a read under the lock.
    /// - Throws: ``StorageError/closed`` after close; whatever `body` throws.
    func read<T: Sendable>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        try lock.withLock { () throws -> T in
            guard let connection else { throw StorageError.closed }
            return try body(connection)
        }
    }

    func closeWriter() {
        lock.withLock {
            connection?.close()
            connection = nil
        }
    }
}

/// Holds a write's result until its owner, woken by the ticket's semaphore, reads it.
///
/// `@unchecked Sendable`: written once by the thread running the batch before the ticket's
/// semaphore is signalled, read by the owner after `wait()` (see ``WriteTicket``).
final class ResultBox<T>: @unchecked Sendable {
    var value: T?
}
