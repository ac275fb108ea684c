// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Primitives
import Testing
@testable import VaultCore

/// Collects the results of asynchronous inserts and lets a test wait for them (bounded).
private final class Outcomes: Sendable {
    private let results = Locked<[String: Result<StoredSession, StorageError>]>([:])
    private let arrived = DispatchSemaphore(value: 0)

    func record(_ name: String, _ result: Result<StoredSession, StorageError>) {
        results.withLock { $0[name] = result }
        arrived.signal()
    }

    /// Waits for `count` results; false if they did not all come within the (generous) bound.
    func wait(for count: Int, seconds: Int = 60) -> Bool {
        for _ in 0..<count where arrived.wait(timeout: .now() + .seconds(seconds)) == .timedOut { return false }
        return true
    }

    subscript(name: String) -> Result<StoredSession, StorageError>? { results.withLock { $0[name] } }
    var count: Int { results.withLock { $0.count } }
}

/// Inserts submitted without waiting (``SessionStore/insert(_:peers:completion:)``): each is
/// reported once, after its commit, with the same outcomes as the blocking insert, and a stream of
/// them is group committed.
@Suite struct StoreAsyncWriteTests {
    @Test(arguments: StoreKind.allCases)
    func completionsReportCommittedInsertsAndConflicts(_ kind: StoreKind) throws {
        try withStore(kind) { store, _ in
            try store.insert(.make("taken"), peers: [])
            let outcomes = Outcomes()
            let peers = [Peer(id: 1, accessHash: 2, type: .user, usernames: ["a"])]
            store.insert(try .make("fresh"), peers: peers) { outcomes.record("fresh", $0) }
            store.insert(try .make("taken"), peers: []) { outcomes.record("taken", $0) }
            var revoked = try StoredSession.make("revoked")
            revoked.revokedAt = 5
            store.insert(revoked, peers: []) { outcomes.record("revoked", $0) }
            #expect(outcomes.wait(for: 3))
            let fresh = try #require(try outcomes["fresh"]?.get())
            #expect(fresh.version == 1 && fresh.peerCount == 1)
            // Committed by the time the completion ran: a read sees it.
            #expect(try store.session(named: name("fresh"))?.id == fresh.id)
            #expect(try store.peers(in: name("fresh")).count == 1)
            #expect(outcomes["taken"].map { if case .failure(.conflict(field: "name")) = $0 { true } else { false } } == true)
            #expect(outcomes["revoked"].map { if case .failure(.invalidArgument(field: "revoked_at", _)) = $0 { true } else { false } } == true)
            #expect(try store.session(named: name("revoked")) == nil)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func insertsQueuedBehindABusyWriterShareOneCommit(_ kind: StoreKind) throws {
        try withStore(kind) { store, _ in
            // A blocking write holds the writer until released, so every insert submitted
            // meanwhile is pending when it finishes.
            let entered = DispatchSemaphore(value: 0)
            let release = DispatchSemaphore(value: 0)
            let holder = WriteTicket(waits: true) { _ in
                entered.signal()
                release.wait()
            }
            let held = DispatchSemaphore(value: 0)
            DispatchQueue(label: "holder").async {
                try? store.coordinator.perform(holder)
                held.signal()
            }
            entered.wait()
            let before = store.statistics().transactions
            let outcomes = Outcomes()
            let total = 40
            for i in 0..<total {
                store.insert(try .make("s\(i)"), peers: []) { outcomes.record("s\(i)", $0) }
                // A duplicate in the middle of the batch fails alone (no SAVEPOINT: the failing
                // INSERT is undone by SQLite), and the inserts after it still commit.
                if i == 20 { store.insert(try .make("s5"), peers: []) { outcomes.record("dup", $0) } }
            }
            #expect(outcomes.count == 0)  // nothing can commit while the writer is held
            release.signal()
            held.wait()
            #expect(outcomes.wait(for: total + 1))
            for i in 0..<total { #expect((try? outcomes["s\(i)"]?.get()) != nil) }
            #expect(outcomes["dup"].map { if case .failure(.conflict(field: "name")) = $0 { true } else { false } } == true)
            // The holder's transaction, then at most one batch of 40 (maxBatch is 512).
            let transactions = store.statistics().transactions - before
            #expect(transactions <= 2, "40 queued inserts took \(transactions) transactions")
            #expect(try store.listSessions(after: nil, limit: 100, prefix: "s").sessions.count == total)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func anInsertIsNotHeldBackByADelayedDeferredKick(_ kind: StoreKind) throws {
        // Deferred writes wait ten minutes for a kick here; an asynchronous insert must not.
        let configuration = SQLiteStoreConfiguration(synchronous: .normal, deferredWriteDelayMilliseconds: 600_000)
        try withStore(kind, configuration: configuration) { store, _ in
            store.enqueue(.audit(AuditEvent(
                time: 1, accessor: "t", action: "session.export", sessionName: "x", remoteAddress: nil, outcome: "ok",
                detail: nil)))
            let outcomes = Outcomes()
            store.insert(try .make("prompt"), peers: []) { outcomes.record("prompt", $0) }
            #expect(outcomes.wait(for: 1, seconds: 20))
            #expect((try? outcomes["prompt"]?.get()) != nil)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func afterCloseTheCompletionReportsClosedAtOnce(_ kind: StoreKind) throws {
        let dir = try TempDir()
        let store = try SQLiteSessionStore(kind.location(in: dir))
        store.close()
        let outcomes = Outcomes()
        store.insert(try .make("late"), peers: []) { outcomes.record("late", $0) }
        #expect(outcomes.count == 1)  // called on this thread, before insert returned
        #expect(outcomes["late"].map { if case .failure(.closed) = $0 { true } else { false } } == true)
    }
}

/// The service's create without waiting: validation errors are thrown at once, the outcome of
/// the insert arrives after the commit, and each outcome leaves its audit row.
@Suite struct VaultAsyncCreateTests {
    static let ctx = RequestContext(accessor: "root", remoteAddress: "127.0.0.1")

    static func imported(_ key: [UInt8]) throws -> ImportedSession {
        ImportedSession(
            session: TelegramSession(dcID: 2, apiID: 12345, testMode: false, authKey: try AuthKey(key), userID: 7, isBot: false),
            format: .pyrogramString)
    }

    @Test(arguments: StoreKind.allCases)
    func createLaterSealsCommitsAndAudits(_ kind: StoreKind) throws {
        try withStore(kind) { store, _ in
            let vault = try VaultService(store: store, master: try MasterKey.generate())
            let results = Locked<[Result<StoredSession, VaultError>]>([])
            let done = DispatchSemaphore(value: 0)
            let n = try SessionName("later")
            let key = randomBytes(256)
            for _ in 0..<2 {  // the second one conflicts
                try vault.create(name: n, imported: try Self.imported(key), context: Self.ctx) { result in
                    results.withLock { $0.append(result) }
                    done.signal()
                }
                #expect(done.wait(timeout: .now() + .seconds(60)) == .success)
            }
            let outcomes = results.withLock { $0 }
            let stored = try #require(try outcomes.first?.get())
            #expect(stored.sealedAuthKey != nil && stored.sealedAuthKey?.count != 256)
            #expect(outcomes.last.map { if case .failure(.conflict) = $0 { true } else { false } } == true)
            guard case .string(let text) = try vault.export(n, as: .pyrogram, context: Self.ctx) else {
                Issue.record("expected a string"); return
            }
            #expect(try SessionStringCodec.decode(text).session.authKey == (try AuthKey(key)))
            let audit = try vault.auditEvents(before: nil, limit: 10).filter { $0.event.action == "session.create" }
            #expect(audit.map(\.event.outcome).sorted() == ["conflict", "ok"])
            // An all-zero key is refused before anything is submitted.
            #expect(throws: VaultError.invalid(field: "auth_key", reason: "an all-zero key is not a usable auth key")) {
                try vault.create(name: try SessionName("zero"), imported: try Self.imported([UInt8](repeating: 0, count: 256)),
                                 context: Self.ctx) { _ in Issue.record("no completion for a refused create") }
            }
        }
    }
}

/// Export times flushed in chunks, by session id: one write per chunk, the later time kept,
/// unknown ids ignored, and nothing counted against the deferred backlog.
@Suite struct ExportTimeChunkTests {
    @Test(arguments: StoreKind.allCases)
    func chunksAreOneWriteEachAndKeepTheLaterTime(_ kind: StoreKind) throws {
        try withStore(kind) { store, _ in
            var late = try StoredSession.make("late")
            late.lastExportedAt = 9_000
            try store.insert(late, peers: [])
            var ids: [SessionID] = []
            for i in 0..<300 { ids.append(try store.insert(try .make("s\(i)"), peers: []).id) }
            let rows = (0..<300).map { (id: ids[$0], time: Int64(1_000 + $0)) }
            let before = store.statistics()
            try store.markExported(Array(rows[0..<256]))
            try store.markExported(Array(rows[256...]) + [(late.id, 5_000), (SessionID.random(), 1)])
            try store.markExported([])
            let after = store.statistics()
            #expect(after.committedWrites - before.committedWrites == 2)  // two writes, not 303
            #expect(try store.session(named: name("s0"))?.lastExportedAt == 1_000)
            #expect(try store.session(named: name("s299"))?.lastExportedAt == 1_299)
            #expect(try store.session(named: name("late"))?.lastExportedAt == 9_000)
            #expect(after.failedWrites == 0)
            #expect(try store.countSessions().total == 301)  // the unknown id created nothing
        }
    }
}
