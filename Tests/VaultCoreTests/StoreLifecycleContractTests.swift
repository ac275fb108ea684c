// SPDX-License-Identifier: Apache-2.0
import Testing
import VaultCore

/// The store contract's lifecycle cases (purge, token pages, audit filters), over every engine.
extension StoreContractTests {
    @Test(arguments: StoreEngine.all)
    func purgeRemovesOnlyATombstoneAndFreesItsName(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            let first = try StoredSession.make("gone")
            try store.insert(first, peers: [Peer(id: 1, accessHash: 2, type: .user, usernames: ["bob"])])
            try store.markExported(name("gone"), at: 5)
            #expect(throws: StorageError.conflict(field: "name")) { try store.purge(name("gone")) }
            #expect(try store.session(named: name("gone"))?.isRevoked == false)
            #expect(throws: StorageError.notFound) { try store.purge(name("never")) }

            _ = try store.revoke(name("gone"), at: 10)
            #expect(throws: StorageError.conflict(field: "name")) { try store.insert(StoredSession.make("gone")) }
            try store.purge(name("gone"))
            #expect(try store.session(named: name("gone")) == nil)
            #expect(try store.session(id: first.id) == nil)
            #expect(try store.countSessions() == SessionCounts(total: 0, revoked: 0))
            #expect(throws: StorageError.notFound) { try store.purge(name("gone")) }

            let again = try store.insert(StoredSession.make("gone"))
            #expect(again.version == 1 && again.peerCount == 0 && again.lastExportedAt == nil)
            #expect(try store.peers(in: name("gone")).isEmpty)
        }
    }

    @Test(arguments: StoreEngine.all)
    func tokensArePagedInCreationOrder(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            // Two share a creation time: the accessor orders them.
            let made = [("acc_c", Int64(10)), ("acc_b", 20), ("acc_a", 20), ("acc_d", 30), ("acc_e", 40)].map {
                TokenRecord(accessor: $0.0, hash: randomBytes(32), policy: "ops=read;sessions=a;prefixes=", createdAt: $0.1)
            }
            for token in made.shuffled() { try store.insertToken(token) }
            let ordered = ["acc_c", "acc_a", "acc_b", "acc_d", "acc_e"]
            #expect(try store.listTokens().map(\.accessor) == ordered)

            var seen: [String] = []
            var cursor: String?
            for _ in 0..<10 {
                let page = try store.listTokens(after: cursor, limit: 2)
                #expect(page.tokens.count <= 2)
                seen += page.tokens.map(\.accessor)
                cursor = page.nextCursor
                if cursor == nil { break }
            }
            #expect(seen == ordered)
            #expect(try store.listTokens(after: nil, limit: 5) == TokenPage(tokens: try store.listTokens(), nextCursor: nil))
            #expect(try store.listTokens(after: "acc_e", limit: 3) == TokenPage(tokens: [], nextCursor: nil))
            #expect(throws: StorageError.invalidArgument(field: "after", reason: "no token has this accessor")) {
                try store.listTokens(after: "acc_zzz", limit: 3)
            }
            #expect(throws: StorageError.invalidArgument(field: "limit", reason: "must be at least 1")) {
                try store.listTokens(after: nil, limit: 0)
            }
        }
    }

    @Test(arguments: StoreEngine.all)
    func auditEventsAreFilteredAndPaged(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            var ids: [Int64] = []
            for i in 0..<12 {
                ids.append(try store.appendAudit(AuditEvent(
                    time: Int64(i), accessor: i % 3 == 0 ? "root" : "acc_1", action: i % 2 == 0 ? "session.export" : "session.create",
                    sessionName: i % 4 == 0 ? "a" : "b", outcome: "ok")))
            }
            func matching(_ filter: AuditFilter, before: Int64? = nil, limit: Int = 100) throws -> [Int64] {
                try store.auditEvents(before: before, limit: limit, matching: filter).map(\.id)
            }
            func expected(_ keep: (Int) -> Bool) -> [Int64] { (0..<12).reversed().filter(keep).map { ids[$0] } }

            #expect(try matching(AuditFilter()) == expected { _ in true })
            #expect(try matching(AuditFilter(session: "a")) == expected { $0 % 4 == 0 })
            #expect(try matching(AuditFilter(accessor: "root")) == expected { $0 % 3 == 0 })
            #expect(try matching(AuditFilter(action: "session.create")) == expected { $0 % 2 == 1 })
            #expect(try matching(AuditFilter(session: "b", accessor: "acc_1", action: "session.export"))
                == expected { $0 % 4 != 0 && $0 % 3 != 0 && $0 % 2 == 0 })
            #expect(try matching(AuditFilter(session: "nobody")).isEmpty)
            // Pages of matching events: `limit` of them, then on below the last id.
            let first = try matching(AuditFilter(accessor: "acc_1"), limit: 3)
            #expect(first == Array(expected { $0 % 3 != 0 }.prefix(3)))
            let next = try matching(AuditFilter(accessor: "acc_1"), before: first.last, limit: 100)
            #expect(first + next == expected { $0 % 3 != 0 })
            #expect(throws: StorageError.invalidArgument(field: "limit", reason: "must be at least 1")) {
                try store.auditEvents(before: nil, limit: 0, matching: AuditFilter())
            }
        }
    }
}
