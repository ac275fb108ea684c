// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Testing
@testable import VaultCore

/// The façade end to end on real SQLite stores: sealing, export, revocation, tokens, keys.
@Suite struct VaultServiceTests {
    static let ctx = RequestContext(accessor: "root", remoteAddress: "127.0.0.1")

    static func imported(_ key: [UInt8], userID: Int64 = 777, peers: [Peer] = []) throws -> ImportedSession {
        ImportedSession(
            session: TelegramSession(dcID: 2, apiID: 12345, testMode: false, authKey: try AuthKey(key), userID: userID, isBot: false),
            peers: peers, format: .pyrogramString)
    }

    @Test(arguments: StoreKind.allCases)
    func createExportRevoke(_ kind: StoreKind) throws {
        try withStore(kind) { store, _ in
            let vault = try VaultService(store: store, master: try MasterKey.generate())
            let key = randomBytes(256)
            let n = try SessionName("bot-1")
            let stored = try vault.create(name: n, imported: try Self.imported(key), context: Self.ctx)
            #expect(stored.authKeyID == (try AuthKey(key)).id)
            #expect(stored.sealedAuthKey != nil && stored.sealedAuthKey?.count != 256)
            guard case .string(let s) = try vault.export(n, as: .pyrogram, context: Self.ctx) else {
                Issue.record("expected a string"); return
            }
            let back = try SessionStringCodec.decode(s)
            #expect(back.session.authKey == (try AuthKey(key)))
            #expect(back.session.userID == 777 && back.session.apiID == 12345)
            #expect(throws: VaultError.conflict) { try vault.create(name: n, imported: try Self.imported(key), context: Self.ctx) }
            _ = try vault.revoke(n, context: Self.ctx)
            #expect(throws: VaultError.revoked) { try vault.export(n, as: .pyrogram, context: Self.ctx) }
            #expect(throws: VaultError.revoked) { try vault.revoke(n, context: Self.ctx) }
            let tomb = try vault.session(n)
            #expect(tomb.isRevoked && tomb.sealedAuthKey == nil)
        }
    }

    /// `last_exported_at` is noted in memory and flushed: reads see it at once, the store has it
    /// after a flush, and it never moves backwards.
    @Test(arguments: StoreKind.allCases)
    func exportTimeIsVisibleAtOnceAndDurableAfterAFlush(_ kind: StoreKind) throws {
        try withStore(kind) { store, _ in
            let now = Atomic<Int64>(1_000)
            let vault = try VaultService(store: store, master: try MasterKey.generate(), clock: { now.load(ordering: .relaxed) })
            let a = try SessionName("a"), b = try SessionName("b")
            _ = try vault.create(name: a, imported: try Self.imported(randomBytes(256)), context: Self.ctx)
            _ = try vault.create(name: b, imported: try Self.imported(randomBytes(256)), context: Self.ctx)
            now.store(5_000, ordering: .relaxed)
            _ = try vault.export(a, as: .pyrogram, context: Self.ctx)
            #expect(try vault.session(a).lastExportedAt == 5_000)
            #expect(try vault.session(b).lastExportedAt == nil)
            let listed = try vault.list(after: nil, limit: 10, prefix: nil).sessions
            #expect(listed.first { $0.name == a }?.lastExportedAt == 5_000)
            vault.flushExportTimes()
            #expect(try store.session(named: a)?.lastExportedAt == 5_000)
            // An older clock reading (a step back) never moves it backwards, noted or stored.
            now.store(4_000, ordering: .relaxed)
            _ = try vault.export(a, as: .pyrogram, context: Self.ctx)
            #expect(try vault.session(a).lastExportedAt == 5_000)
            now.store(9_000, ordering: .relaxed)
            for name in [a, b] { _ = try vault.export(name, as: .telethon, context: Self.ctx) }
            vault.flushExportTimes()
            #expect(try store.session(named: a)?.lastExportedAt == 9_000)
            #expect(try store.session(named: b)?.lastExportedAt == 9_000)
            // Nothing noted is left once flushed: a second vault on the same store agrees.
            let again = try VaultService(store: store, master: nil)
            #expect(try again.session(a).lastExportedAt == 9_000)
        }
    }

    /// The sessions that PATCH and revoke answer with carry the export time noted in memory too.
    @Test(arguments: StoreKind.allCases)
    func updateAndRevokeAnswersShowTheNotedExportTime(_ kind: StoreKind) throws {
        try withStore(kind) { store, _ in
            let now = Atomic<Int64>(1_000)
            let vault = try VaultService(store: store, master: try MasterKey.generate(), clock: { now.load(ordering: .relaxed) })
            let a = try SessionName("a")
            _ = try vault.create(name: a, imported: try Self.imported(randomBytes(256)), context: Self.ctx)
            now.store(5_000, ordering: .relaxed)
            _ = try vault.export(a, as: .pyrogram, context: Self.ctx)
            #expect(try store.session(named: a)?.lastExportedAt == nil)  // noted, not flushed yet
            now.store(6_000, ordering: .relaxed)
            let updated = try vault.patch(a, changes: SessionChanges(userID: 42), expectedVersion: nil, context: Self.ctx)
            #expect(updated.lastExportedAt == 5_000)
            let tomb = try vault.revoke(a, context: Self.ctx)
            #expect(tomb.lastExportedAt == 5_000)
        }
    }

    @Test func conversionLackingDataNamesEveryField() throws {
        try withStore(.memory) { store, _ in
            let vault = try VaultService(store: store, master: try MasterKey.generate())
            let n = try SessionName("tele")
            let telethon = ImportedSession(
                session: TelegramSession(dcID: 2, authKey: try AuthKey(randomBytes(256)), serverAddress: "149.154.167.51", port: 443),
                format: .telethonString)
            _ = try vault.create(name: n, imported: telethon, context: Self.ctx)
            do {
                _ = try vault.export(n, as: .pyrogram, context: Self.ctx)
                Issue.record("expected missing fields")
            } catch {
                guard let e = error as? VaultError, case .missingFields(let fields) = e else { Issue.record("\(error)"); return }
                #expect(Set(fields).isSuperset(of: ["api_id", "user_id", "is_bot"]))
            }
            do {
                _ = try vault.export(n, as: .pyrogramFile, context: Self.ctx)
                Issue.record("expected missing fields")
            } catch {
                #expect(error as? VaultError == .missingFields(["api_id", "user_id", "is_bot", "test_mode"]))
            }
            _ = try vault.patch(n, changes: SessionChanges(apiID: 5, testMode: false, userID: 9, isBot: true), expectedVersion: 1, context: Self.ctx)
            guard case .string(let s) = try vault.export(n, as: .pyrogram, context: Self.ctx) else { return }
            #expect(s.count == 362)
            guard case .file(let bytes) = try vault.export(n, as: .pyrogramFile, context: Self.ctx) else { return }
            #expect(try SessionFileReader.read(bytes: bytes).session.userID == 9)
            #expect(throws: VaultError.versionMismatch(current: 2)) {
                try vault.patch(n, changes: SessionChanges(apiID: 6), expectedVersion: 1, context: Self.ctx)
            }
        }
    }

    @Test func wrongMasterKeySealsAndChangesNothing() throws {
        let dir = try TempDir()
        let path = dir.file("vault.db")
        let master = try MasterKey.generate()
        do {
            let store = try SQLiteSessionStore(.file(path))
            let vault = try VaultService(store: store, master: master)
            _ = try vault.create(name: try SessionName("a"), imported: try Self.imported(randomBytes(256)), context: Self.ctx)
            store.close()
        }
        let before = dir.bytes("vault.db")
        do {
            let store = try SQLiteSessionStore(.file(path))
            let vault = try VaultService(store: store, master: try MasterKey.generate())
            #expect(vault.sealedReason != nil)
            #expect(throws: VaultError.self) { try vault.export(try SessionName("a"), as: .pyrogram, context: Self.ctx) }
            #expect(throws: VaultError.self) { try vault.installRootToken(configured: nil) }
            let none = try VaultService(store: store, master: nil)
            #expect(none.sealedReason != nil)
            store.close()
        }
        #expect(try store0Terms(path) == 1)
        _ = before
        // The right key still opens it.
        let store = try SQLiteSessionStore(.file(path))
        defer { store.close() }
        let vault = try VaultService(store: store, master: master)
        #expect(vault.sealedReason == nil)
        guard case .string = try vault.export(try SessionName("a"), as: .telethon, context: Self.ctx) else {
            Issue.record("export failed"); return
        }
    }

    private func store0Terms(_ path: String) throws -> Int {
        let store = try SQLiteSessionStore(.file(path))
        defer { store.close() }
        return try store.loadKeyTerms().count
    }

    @Test func rotateRewrapRekey() throws {
        try withStore(.file) { store, _ in
            let master = try MasterKey.generate()
            let vault = try VaultService(store: store, master: master)
            var keys: [String: [UInt8]] = [:]
            for i in 0..<20 {
                let k = randomBytes(256)
                keys["s\(i)"] = k
                _ = try vault.create(name: try SessionName("s\(i)"), imported: try Self.imported(k), context: Self.ctx)
            }
            #expect(try vault.rotate(context: Self.ctx) == 2)
            #expect(try vault.rewrap(context: Self.ctx) == 20)
            #expect(try vault.rewrap(context: Self.ctx) == 0)
            let newMaster = try MasterKey.generate()
            try vault.rekey(to: newMaster)
            let reopened = try VaultService(store: store, master: newMaster)
            #expect(reopened.sealedReason == nil)
            #expect(try reopened.keyTerms().current == 2)
            for (name, key) in keys {
                guard case .string(let s) = try reopened.export(try SessionName(name), as: .pyrogram, context: Self.ctx) else { continue }
                #expect(try SessionStringCodec.decode(s).session.authKey == (try AuthKey(key)))
            }
            #expect(try VaultService(store: store, master: master).sealedReason != nil)
        }
    }

    @Test func tokensAndRootToken() throws {
        try withStore(.memory) { store, _ in
            let vault = try VaultService(store: store, master: try MasterKey.generate())
            let printed = try #require(try vault.installRootToken(configured: nil))
            #expect(try vault.authenticate(printed) == .root)
            #expect(try vault.installRootToken(configured: nil) == nil)  // stored hash, not printed again
            #expect(try vault.authenticate(printed + "x") == nil)
            let policy = AccessPolicy(operations: [.export], sessions: ["bot"], prefixes: ["team-"])
            let issued = try vault.createToken(policy: policy, displayName: "ci", ttlSeconds: 3600, context: Self.ctx)
            let principal = try #require(try vault.authenticate(issued.token))
            #expect(principal.policy == policy)
            #expect(principal.policy.allows(.export, session: "team-a"))
            #expect(!principal.policy.allows(.read, session: "bot"))
            #expect(!principal.policy.allows(.export, session: "other"))
            _ = try vault.revokeToken(accessor: issued.record.accessor, context: Self.ctx)
            #expect(try vault.authenticate(issued.token) == nil)
            let stored = try vault.tokens()
            #expect(stored.allSatisfy { !String(decoding: $0.hash, as: UTF8.self).contains(issued.token) })
        }
    }

    @Test func expiredTokenIsRejected() throws {
        try withStore(.memory) { store, _ in
            let clockBox = ClockBox(1_000_000)
            let vault = try VaultService(store: store, master: try MasterKey.generate(), clock: { clockBox.now })
            let issued = try vault.createToken(policy: AccessPolicy(operations: [.read]), displayName: nil, ttlSeconds: 10, context: Self.ctx)
            #expect(try vault.authenticate(issued.token) != nil)
            clockBox.now += 10_000
            #expect(try vault.authenticate(issued.token) == nil)
        }
    }

    /// The issue's at-rest proof: 100 sessions in a file engine, closed, then a byte scan of the
    /// database, WAL and SHM finds none of the keys raw, in hex or in base64.
    @Test func noKeyReachesTheDatabaseInPlaintext() throws {
        let dir = try TempDir()
        let store = try SQLiteSessionStore(.file(dir.file("vault.db")))
        let vault = try VaultService(store: store, master: try MasterKey.generate())
        var keys: [[UInt8]] = []
        for i in 0..<100 {
            let k = randomBytes(256)
            keys.append(k)
            _ = try vault.create(name: try SessionName("scan-\(i)"), imported: try Self.imported(k), context: Self.ctx)
            if i % 10 == 0 { _ = try vault.export(try SessionName("scan-\(i)"), as: .pyrogramFile, context: Self.ctx) }
        }
        let root = try #require(try vault.installRootToken(configured: nil))
        let scoped = try vault.createToken(policy: AccessPolicy(operations: [.export]), displayName: nil, ttlSeconds: nil, context: Self.ctx).token
        // Scan while open (WAL and SHM present) and after close.
        for phase in 0..<2 {
            if phase == 1 { store.close() }
            var haystacks: [[UInt8]] = []
            for f in ["vault.db", "vault.db-wal", "vault.db-shm"] { haystacks.append(dir.bytes(f)) }
            #expect(!haystacks[0].isEmpty)
            for k in keys {
                let needles: [[UInt8]] = [
                    Array(k[0..<32]), Array(Hex.encode(k[0..<32]).utf8),
                    Array(Data(k).base64EncodedString().utf8.prefix(40)),
                    Array(Data(k).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").utf8.prefix(40)),
                ]
                for h in haystacks { for n in needles { #expect(!contains(h, n[...])) } }
            }
            for t in [root, scoped] {
                for h in haystacks { #expect(!contains(h, Array(t.utf8)[...])) }
            }
        }
    }
}

final class ClockBox: @unchecked Sendable {
    var now: Int64
    init(_ now: Int64) { self.now = now }
}
