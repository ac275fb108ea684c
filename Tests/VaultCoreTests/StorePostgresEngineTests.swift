// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import VaultCore
import Primitives

/// What only the PostgreSQL engine promises (runs when `SESSION_VAULT_TEST_POSTGRES_URL` is set).
@Suite("PostgreSQL engine", .enabled(if: TestPostgres.url != nil))
struct StorePostgresEngineTests {
    /// Instances starting together on an empty database migrate it once (the advisory lock):
    /// none fails on a table the other just created, and all see one vault.
    @Test func concurrentStartsMigrateOnce() async throws {
        let url = try TestPostgres.freshURL()
        let opened = Locked<[Result<Void, StorageError>]>([])
        await onThreads(6) { index in
            do {
                let store = try PostgresSessionStore(PostgresConnectionSettings(url: url, password: TestPostgres.password))
                try store.insert(try StoredSession.make("s\(index)"))
                store.close()
                opened.withLock { $0.append(.success(())) }
            } catch let error as StorageError {
                opened.withLock { $0.append(.failure(error)) }
            } catch {
                opened.withLock { $0.append(.failure(.notFound)) }
            }
        }
        let results = opened.withLock { $0 }
        #expect(results.count == 6)
        for result in results { #expect(throws: Never.self) { try result.get() } }
        let store = try PostgresSessionStore(PostgresConnectionSettings(url: url, password: TestPostgres.password))
        defer { store.close() }
        #expect(try store.countSessions().total == 6)
    }

    /// Two stores on one database are one vault: a write through one is read by the other at once.
    @Test func twoStoresOnOneDatabaseSeeEachOthersWrites() throws {
        let url = try TestPostgres.freshURL()
        let a = try PostgresSessionStore(PostgresConnectionSettings(url: url, password: TestPostgres.password))
        let b = try PostgresSessionStore(PostgresConnectionSettings(url: url, password: TestPostgres.password))
        defer { a.close(); b.close() }
        let stored = try a.insert(try StoredSession.make("shared"))
        #expect(try b.exportRecord(named: name("shared")) == ExportRecord(stored))
        _ = try b.revoke(name("shared"), at: 5)
        #expect(try a.exportRecord(named: name("shared"))?.isRevoked == true)
        #expect(throws: StorageError.conflict(field: "name")) { try b.insert(try StoredSession.make("shared")) }
    }

    /// Leases are decided by the database (`SharedLeaseRepository`): two stores on one database
    /// (two instances) see one lease, timed by the database's clock.
    @Test func twoStoresShareOneLeaseTimedByTheDatabase() throws {
        let url = try TestPostgres.freshURL()
        let a = try PostgresSessionStore(PostgresConnectionSettings(url: url, password: TestPostgres.password))
        let b = try PostgresSessionStore(PostgresConnectionSettings(url: url, password: TestPostgres.password))
        defer { a.close(); b.close() }
        try a.insert(try StoredSession.make("leased"))
        let n = try name("leased")
        let (hashA, hashB) = ([UInt8](repeating: 0xA1, count: 32), [UInt8](repeating: 0xB2, count: 32))
        let got = try a.changeSharedLease(.acquire(idHash: hashA, holder: "a", ttlSeconds: 30), in: n, lockDelaySeconds: 15)
        #expect(got.done && got.view.epoch == 1 && got.view.deadline == got.view.now + 30_000 && got.view.acquiredAt == got.view.now)
        let refused = try b.changeSharedLease(.acquire(idHash: hashB, holder: "b", ttlSeconds: 30), in: n, lockDelaySeconds: 15)
        #expect(!refused.done && refused.view.holder == "a" && refused.view.deadline == got.view.deadline)
        #expect(try b.sharedLease(of: n, lockDelaySeconds: 15)?.holds(hashA) == true)
        #expect(try b.changeSharedLease(.renew(idHash: hashB, ttlSeconds: nil), in: n, lockDelaySeconds: 15).done == false)
        #expect(try b.changeSharedLease(.release(idHash: hashA), in: n, lockDelaySeconds: 15).done)
        let next = try a.changeSharedLease(.acquire(idHash: hashB, holder: "b", ttlSeconds: 5), in: n, lockDelaySeconds: 15)
        #expect(next.done && next.view.epoch == 2)
        _ = try a.revoke(n, at: 9)
        #expect(throws: StorageError.revoked) {
            try b.changeSharedLease(.acquire(idHash: hashA, holder: "a", ttlSeconds: 5), in: n, lockDelaySeconds: 15)
        }
        #expect(try b.sharedLease(of: n, lockDelaySeconds: 15)?.state == .free)
        #expect(try b.changeSharedLease(.endOnRevoke, in: n, lockDelaySeconds: 15).done)
        #expect(try b.sharedLease(of: name("nope"), lockDelaySeconds: 15) == nil)
        #expect(throws: StorageError.notFound) { try a.changeSharedLease(.settle, in: name("nope"), lockDelaySeconds: 15) }
    }

    /// A wrong password is a clean `unavailable` whose text does not contain the password.
    @Test func aWrongPasswordIsUnavailableAndNeverEchoed() throws {
        let url = try #require(TestPostgres.url)
        let secret = "not-the-password-\(UUID().uuidString)"
        do {
            _ = try PostgresSessionStore(PostgresConnectionSettings(url: url, password: secret))
            Issue.record("connected with a wrong password")
        } catch {
            guard case .unavailable(let reason) = error else { Issue.record("\(error)"); return }
            #expect(!reason.contains(secret))
            #expect(!"\(error)".contains(secret))
        }
    }

    /// A URL with a password is refused without echoing it; the location never holds one.
    @Test func aURLWithAPasswordIsRefused() {
        #expect(StoreFactory.problem(withServerURL: "postgres://u:hunter2@h:5432/db") != nil)
        #expect(StoreFactory.problem(withServerURL: "postgres://u:hunter2@h:5432/db")?.contains("hunter2") == false)
        #expect(StoreFactory.problem(withServerURL: "postgresql://u@h/db?sslmode=require&password=x") != nil)
        #expect(StoreFactory.location(fromURL: "postgres://u:hunter2@h/db") == nil)
        #expect(StoreFactory.location(fromURL: "postgresql://u@h:5433/db?sslmode=disable")
            == .server(engine: "postgres", address: "u@h:5433/db?sslmode=disable"))
        #expect(StoreFactory.location(fromURL: "postgres://u@h/db") == .server(engine: "postgres", address: "u@h/db"))
    }

    /// An unreachable server fails fast and cleanly, and health says why.
    @Test func anUnreachableServerIsUnavailable() throws {
        #expect(throws: StorageError.self) {
            _ = try PostgresSessionStore(PostgresConnectionSettings(url: "postgresql://vault@127.0.0.1:1/vault", connectTimeoutSeconds: 2))
        }
    }
}
