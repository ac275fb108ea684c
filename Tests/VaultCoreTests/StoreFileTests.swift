// SPDX-License-Identifier: Apache-2.0
import Foundation
import Primitives
import Synchronization
import Testing
@testable import VaultCore

/// What only the file engine has: persistence, migrations, refusing foreign files, WAL,
/// concurrency across connections, and zeroing destroyed secrets on disk.
@Suite("Store file engine")
struct StoreFileTests {
    @Test func everythingSurvivesCloseAndReopen() throws {
        let dir = try TempDir()
        let path = dir.file("vault.db")
        let session = try StoredSession.make("keep")
        let peer = Peer(id: 9, accessHash: 8, type: .user, usernames: ["nine"], phoneNumber: "1")
        let token = TokenRecord(accessor: "a", hash: randomBytes(32), policy: "{}", createdAt: 1)
        let term = KeyTermRecord(term: 1, createdAt: 1, sealedKey: randomBytes(60))
        do {
            let store = try SQLiteSessionStore(.file(path))
            try store.insert(session, peers: [peer])
            try store.insertToken(token)
            #expect(try store.appendKeyTerm(term, ifGeneration: 0) == 1)
            try store.setMeta("check", value: [1, 2])
            _ = try store.appendAudit(AuditEvent(time: 1, action: "create", outcome: "ok"))
            try store.markExported([(session.id, 77)])
            store.enqueue(.audit(AuditEvent(time: 2, action: "export", outcome: "ok")))
            store.close()
        }
        // A clean close checkpoints and removes the WAL.
        #expect(dir.bytes("vault.db-wal").isEmpty)
        let store = try SQLiteSessionStore(.file(path))
        defer { store.close() }
        let stored = try #require(try store.session(named: session.name))
        #expect(stored.sealedAuthKey == session.sealedAuthKey)
        #expect(stored.lastExportedAt == 77)
        #expect(try store.peer(username: "nine", in: session.name) == peer)
        #expect(try store.token(hash: token.hash) == token)
        #expect(try store.loadKeyTerms() == [term])
        #expect(try store.meta("check") == [1, 2])
        // The deferred audit row was committed by the close.
        #expect(try store.auditEvents(before: nil, limit: 5).map(\.event.action) == ["export", "create"])
    }

    @Test func anEmptyFileIsMigratedToTheCurrentSchema() throws {
        let dir = try TempDir()
        let path = dir.file("empty.db")
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        do {
            let store = try SQLiteSessionStore(.file(path))
            try store.insert(try StoredSession.make("first"))
            store.close()
        }
        let header = dir.bytes("empty.db")
        // SQLite header: user_version at offset 60, application_id at 68 (big-endian).
        #expect(Array(header[60..<64]) == [0, 0, 0, UInt8(SQLiteSessionStore.schemaVersion)])
        #expect(Array(header[68..<72]) == Array("SVLT".utf8))
        let store = try SQLiteSessionStore(.file(path))
        defer { store.close() }
        #expect(try store.session(named: name("first")) != nil)
    }

    /// Version 1 kept `last_exported_at` in the session row; version 2 moves it into
    /// `session_exports`. A version-1 file written by hand keeps every time, and the upserts
    /// keep the later of the migrated and a new time.
    @Test func version1ExportTimesMoveToTheirOwnTable() throws {
        let dir = try TempDir()
        let path = dir.file("v1.db")
        let old = try StoredSession.make("old")
        let never = try StoredSession.make("never")
        do {
            let db = try SQLiteConnection(path: path)
            try db.execute(VaultSchema.version1)
            for (s, exported) in [(old, SQLiteValue.integer(5_000)), (never, .null)] {
                try db.run("""
                    INSERT INTO sessions (id, name, dc_id, source_format, created_at, updated_at, \
                    last_exported_at, version, auth_key_id, sealed_auth_key, sealed_key_term) \
                    VALUES (?1, ?2, 2, 'pyrogram', 1, 1, ?3, 1, ?4, ?5, 1)
                    """, [.blob(s.id.bytes), .text(s.name.rawValue), exported, .text(s.authKeyID ?? ""), .blob(s.sealedAuthKey ?? [])])
            }
            try db.execute("PRAGMA user_version = 1; PRAGMA application_id = \(VaultSchema.applicationID)")
            db.close()
        }
        let store = try SQLiteSessionStore(.file(path))
        defer { store.close() }
        #expect(try store.session(named: old.name)?.lastExportedAt == 5_000)
        #expect(try store.session(named: never.name)?.lastExportedAt == nil)
        #expect(try store.session(named: old.name)?.sealedAuthKey == old.sealedAuthKey)
        // An older time does not move it back; a newer one does; a first one creates the row.
        try store.markExported([(old.id, 4_000), (never.id, 7_000)])
        #expect(try store.session(named: old.name)?.lastExportedAt == 5_000)
        #expect(try store.session(named: never.name)?.lastExportedAt == 7_000)
        try store.markExported(old.name, at: 6_000)
        #expect(try store.session(named: old.name)?.lastExportedAt == 6_000)
        #expect(throws: StorageError.notFound) { try store.markExported(try SessionName("nobody"), at: 1) }
        // The column is gone from the session row, and the version says so.
        let check = try SQLiteConnection(path: path, options: .init(readOnly: true, create: false))
        defer { check.close() }
        let columns = try check.query("SELECT name FROM pragma_table_info('sessions')").compactMap { row -> String? in
            if case .text(let name) = row.first { return name }
            return nil
        }
        #expect(columns.contains("name") && !columns.contains("last_exported_at"))
        #expect(try VaultSchema.scalar(check, "PRAGMA user_version") == SQLiteSessionStore.schemaVersion)
        #expect(try VaultSchema.scalar(check, "SELECT count(*) FROM session_exports") == 2)
    }

    @Test func aNewerSchemaIsRefusedUntouched() throws {
        let dir = try TempDir()
        let path = dir.file("newer.db")
        try SQLiteSessionStore(.file(path)).close()
        var bytes = dir.bytes("newer.db")
        bytes[60..<64] = [0, 0, 0, 99]
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(throws: StorageError.newerSchema(found: 99, supported: SQLiteSessionStore.schemaVersion)) {
            try SQLiteSessionStore(.file(path))
        }
        #expect(dir.bytes("newer.db") == bytes)
    }

    @Test func aClientSessionFileIsRefusedUntouched() throws {
        let vector = try #require(
            Bundle.module.url(forResource: "pyrofork_user", withExtension: "session", subdirectory: "Vectors/sessions"))
        let dir = try TempDir()
        let path = dir.file("client.session")
        try FileManager.default.copyItem(atPath: vector.path, toPath: path)
        let before = dir.bytes("client.session")
        #expect(throws: StorageError.notAVaultDatabase) { try SQLiteSessionStore(.file(path)) }
        #expect(dir.bytes("client.session") == before)
    }

    enum Garbage: String, CaseIterable, Sendable {
        case text, random
        var bytes: [UInt8] {
            switch self {
            case .text: return Array("this is not a database, just text\n".utf8)
            case .random: return randomBytes(8192)
            }
        }
    }

    @Test(arguments: Garbage.allCases)
    func garbageIsNotADatabase(garbage: Garbage) throws {
        let bytes = garbage.bytes
        let dir = try TempDir()
        let path = dir.file("garbage.db")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(throws: StorageError.notADatabase) { try SQLiteSessionStore(.file(path)) }
        #expect(dir.bytes("garbage.db") == bytes)
    }

    @Test func aMissingDirectoryCannotBeOpened() throws {
        let dir = try TempDir()
        let path = dir.file("no/such/dir/vault.db")
        #expect(throws: StorageError.cannotOpen(path: path)) { try SQLiteSessionStore(.file(path)) }
    }

    /// Root ignores file modes, so this only runs as an ordinary user.
    @Test(.enabled(if: geteuid() != 0)) func aWriteProtectedFileIsReadOnly() throws {
        let dir = try TempDir()
        let path = dir.file("ro.db")
        try SQLiteSessionStore(.file(path)).close()
        try FileManager.default.setAttributes([.posixPermissions: 0o444], ofItemAtPath: path)
        #expect(throws: StorageError.readOnly) { try SQLiteSessionStore(.file(path)) }
    }

    /// Revoked envelopes are gone from the database, its WAL and its shared-memory file, while
    /// live ones are still found by the same scan (so the scan can fail).
    @Test func revokedBlobsAreNotOnDisk() throws {
        let dir = try TempDir()
        let path = dir.file("vault.db")
        let store = try SQLiteSessionStore(.file(path))
        var sessions: [StoredSession] = []
        for i in 0..<20 {
            let session = try StoredSession.make("scan\(i)")
            try store.insert(session, peers: [Peer(id: Int64(i + 1), accessHash: 1, type: .user)])
            sessions.append(session)
        }
        for session in sessions[..<10] { _ = try store.revoke(session.name, at: 1) }

        func files() -> [UInt8] { dir.bytes("vault.db") + dir.bytes("vault.db-wal") + dir.bytes("vault.db-shm") }
        func found(_ session: StoredSession, in bytes: [UInt8]) -> [Bool] {
            let blob = session.sealedAuthKey ?? []
            return [0, 100, 200, 284].map { contains(bytes, blob[$0..<($0 + 16)]) }
        }
        let open = files()
        for session in sessions[..<10] { #expect(found(session, in: open) == [false, false, false, false]) }
        for session in sessions[10...] { #expect(found(session, in: open) == [true, true, true, true]) }

        store.close()
        let closed = files()
        for session in sessions[..<10] { #expect(found(session, in: closed) == [false, false, false, false]) }
        for session in sessions[10...] { #expect(found(session, in: closed) == [true, true, true, true]) }
    }

    /// 8 threads × 500 mixed operations, `synchronous=FULL`: no error at all (in particular no
    /// "database is locked", even while revokes run TRUNCATE checkpoints under concurrent
    /// readers), and every acknowledged write is there after close and reopen.
    @Test func concurrentMixedWorkloadLosesNothing() async throws {
        let dir = try TempDir()
        let path = dir.file("vault.db")
        let store = try SQLiteSessionStore(.file(path))
        let errors = Locked<[String]>([])
        let acknowledged = Locked<[String: Int64]>([:])  // name → last acknowledged apiID
        let revoked = Locked<Set<String>>([])
        await onThreads(8) { thread in
            var mine: [StoredSession] = []
            for op in 0..<500 {
                do {
                    switch op % 5 {
                    case 0, 1:
                        var session = try StoredSession.make("c\(thread)-\(op)")
                        session.apiID = Int64(op)
                        mine.append(try store.insert(session))
                        acknowledged.withLock { $0[session.name.rawValue] = Int64(op) }
                    case 2:
                        if var last = mine.popLast() {
                            last.apiID = Int64(op) + 1_000_000
                            let updated = try store.update(last, expectedVersion: last.version)
                            mine.append(updated)
                            acknowledged.withLock { $0[updated.name.rawValue] = updated.apiID }
                        }
                    case 3:
                        if let any = mine.randomElement() {
                            let read = try store.session(named: any.name)
                            if read == nil { errors.withLock { $0.append("missing \(any.name)") } }
                        }
                        _ = try store.listSessions(after: nil, limit: 20, prefix: "c\(thread)")
                    default:
                        if op % 50 == 49, let victim = mine.popLast() {
                            let tombstone = try store.revoke(victim.name, at: Int64(op))
                            if tombstone.sealedAuthKey != nil { errors.withLock { $0.append("blob kept") } }
                            revoked.withLock { _ = $0.insert(victim.name.rawValue) }
                        }
                        if let any = mine.randomElement() {
                            try store.upsertPeers(
                                [Peer(id: Int64(op), accessHash: 1, type: .user, usernames: ["p\(op)"])], in: any.name)
                            _ = try store.peer(username: "p\(op)", in: any.name)
                        }
                        store.enqueue(.audit(AuditEvent(time: Int64(op), action: "mixed", outcome: "ok")))
                    }
                } catch {
                    errors.withLock { $0.append("\(error)") }
                }
            }
        }
        let stats = store.statistics()
        store.close()
        #expect(errors.withLock { $0 } == [])
        #expect(stats.transactions <= stats.committedWrites)
        #expect(stats.deferredFailures == 0)

        let reopened = try SQLiteSessionStore(.file(path))
        defer { reopened.close() }
        let expected = acknowledged.withLock { $0 }
        #expect(expected.count == 8 * 200)
        let tombstones = revoked.withLock { $0 }
        #expect(tombstones.count == 8 * 10)
        var missing = 0
        for (text, apiID) in expected {
            let stored = try reopened.session(named: name(text))
            let isTombstone = tombstones.contains(text)
            if stored?.apiID != apiID || stored?.isRevoked != isTombstone || (stored?.sealedAuthKey == nil) != isTombstone {
                missing += 1
            }
        }
        #expect(missing == 0)
        #expect(try reopened.countSessions().total == expected.count)
        #expect(try reopened.auditEvents(before: nil, limit: 10_000).count == 8 * 100)
    }
}

/// Holds the store's writer inside an asynchronous ticket (bounded: 60 s) so that writes pile
/// up behind it, until ``release()``.
struct HeldWriter {
    private let holding = DispatchSemaphore(value: 0)
    private let gate = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)
    /// Whether the writer is inside the ticket.
    let isHolding: Bool

    init(_ store: SQLiteSessionStore) {
        let (holding, gate, done) = (self.holding, self.gate, self.done)
        store.coordinator.submit(WriteTicket(body: { _ in
            holding.signal()
            _ = gate.wait(timeout: .now() + .seconds(60))
        }, completion: { _ in done.signal() }))
        isHolding = holding.wait(timeout: .now() + .seconds(60)) == .success
    }

    func release() { gate.signal() }

    /// Waits (60 s at most) for the held ticket's commit.
    func finished() -> Bool { done.wait(timeout: .now() + .seconds(60)) == .success }
}

/// The deferred-write backlog is bounded by backpressure and loses nothing.
@Suite struct StoreBacklogTests {
    @Test func aBurstOfDeferredWritesIsBoundedAndComplete() throws {
        try withStore(.file) { store, _ in
            let total = 3 * SQLiteSessionStore.maxDeferredBacklog
            // Hold the writer so that the burst fills the backlog whatever the machine's speed;
            // let it go once an enqueue has had to wait.
            let held = HeldWriter(store)
            #expect(held.isHolding)
            let burst = DispatchGroup()
            DispatchQueue.global().async(group: burst) {
                for i in 0..<total {
                    store.enqueue(.audit(AuditEvent(time: Int64(i), accessor: nil, action: "burst", sessionName: nil,
                                                    remoteAddress: nil, outcome: "ok", detail: nil)))
                }
            }
            let deadline = DispatchTime.now() + .seconds(60)
            while store.backpressureWaits.load(ordering: .relaxed) == 0 && DispatchTime.now() < deadline {
                usleep(1_000)
            }
            #expect(store.backpressureWaits.load(ordering: .relaxed) > 0)
            #expect(store.coordinator.pendingCount <= SQLiteSessionStore.maxDeferredBacklog + 1)
            held.release()
            #expect(burst.wait(timeout: .now() + .seconds(60)) == .success)
            try store.flush()
            var seen = 0
            var before: Int64?
            while true {
                let page = try store.auditEvents(before: before, limit: 1000)
                if page.isEmpty { break }
                seen += page.count
                before = page.last?.id
            }
            #expect(seen == total)
        }
    }

    /// However many threads read at once, the pool opens at most `maxOpen` connections; the
    /// others wait for one and still complete (each reader costs RSS, see ``ReaderPool``).
    @Test func readerPoolOpensAtMostItsBound() throws {
        let dir = try TempDir()
        let path = dir.file("vault.db")
        let store = try SQLiteSessionStore(.file(path))
        defer { store.close() }
        let pool = ReaderPool(path: path, busyTimeout: 1000, maxIdle: 8, maxOpen: 2)
        defer { pool.close() }
        let threads = 8
        let inside = Atomic<Int>(0)
        let most = Atomic<Int>(0)
        let completed = Atomic<Int>(0)
        let started = DispatchSemaphore(value: 0)
        let entered = DispatchSemaphore(value: 0)
        let gate = DispatchSemaphore(value: 0)
        let done = DispatchGroup()
        for _ in 0..<threads {
            done.enter()
            Thread {
                defer { done.leave() }
                started.signal()
                let one = try? pool.read { connection -> Int64 in
                    let now = inside.add(1, ordering: .sequentiallyConsistent).newValue
                    _ = most.max(now, ordering: .sequentiallyConsistent)
                    entered.signal()
                    gate.wait()
                    inside.subtract(1, ordering: .sequentiallyConsistent)
                    return try connection.query("SELECT 1").first?.first.flatMap { value in
                        if case .integer(let n) = value { n } else { nil }
                    } ?? 0
                }
                if one == 1 { completed.add(1, ordering: .sequentiallyConsistent) }
            }.start()
        }
        for _ in 0..<threads { started.wait() }
        entered.wait()
        entered.wait()
        #expect(pool.openCount == 2)
        for _ in 0..<threads { gate.signal() }
        done.wait()
        #expect(completed.load(ordering: .sequentiallyConsistent) == threads)
        #expect(most.load(ordering: .sequentiallyConsistent) <= 2)
        #expect(pool.openCount <= 2)
    }
}

/// ``SessionStore/mayWaitNow``: what a server asks before running a read on a thread that must
/// not block. Each cause is produced for real and then removed.
@Suite struct StoreMayWaitTests {
    @Test func theMemoryEngineAlwaysMayWait() throws {
        let store = try SQLiteSessionStore(.memory)
        defer { store.close() }
        #expect(store.mayWaitNow)
    }

    @Test func everyReaderBusyMeansAReadWouldWait() throws {
        let dir = try TempDir()
        let path = dir.file("vault.db")
        let store = try SQLiteSessionStore(.file(path))
        defer { store.close() }
        let pool = ReaderPool(path: path, busyTimeout: 1000, maxIdle: 2, maxOpen: 2)
        defer { pool.close() }
        #expect(!pool.allBusy)
        let entered = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let done = DispatchGroup()
        for _ in 0..<2 {
            done.enter()
            DispatchQueue.global().async {
                _ = try? pool.read { _ in
                    entered.signal()
                    _ = release.wait(timeout: .now() + .seconds(60))
                }
                done.leave()
            }
        }
        for _ in 0..<2 { #expect(entered.wait(timeout: .now() + .seconds(60)) == .success) }
        #expect(pool.allBusy)
        release.signal()
        release.signal()
        #expect(done.wait(timeout: .now() + .seconds(60)) == .success)
        #expect(!pool.allBusy)
        #expect(!store.mayWaitNow, "a file store with idle readers and no backlog does not wait")
    }

    @Test func aNearlyFullAuditBacklogMeansAnEnqueueMayWait() throws {
        try withStore(.file) { store, _ in
            #expect(!store.mayWaitNow)
            // Hold the writer inside a ticket so that deferred writes pile up behind it.
            let held = HeldWriter(store)
            #expect(held.isHolding)
            for i in 0..<(SQLiteSessionStore.maxDeferredBacklog * 3 / 4) {
                store.enqueue(.audit(AuditEvent(time: Int64(i), accessor: nil, action: "pile", sessionName: nil,
                                                remoteAddress: nil, outcome: "ok", detail: nil)))
            }
            #expect(store.mayWaitNow)
            held.release()
            #expect(held.finished())
            try store.flush()
            #expect(!store.mayWaitNow)
        }
    }
}
