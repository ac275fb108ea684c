// SPDX-License-Identifier: Apache-2.0
import Foundation
import Primitives
import Synchronization
import Testing
@testable import VaultCore

/// Issue 14 (API hardening), the VaultCore side: names made only of dots (item 9), scoped
/// listing (item 2), expired tokens (item 9), aggregated authentication failures and audit
/// retention (item 7).
@Suite struct HardeningTests {
    static let ctx = RequestContext(accessor: "root", remoteAddress: "127.0.0.1")

    // MARK: Item 9: names made only of dots

    @Test(arguments: [".", "..", "...", String(repeating: ".", count: 64)])
    func item9NamesMadeOnlyOfDotsAreInvalid(_ text: String) {
        #expect(throws: ModelError.invalidField("name", "must not be made only of dots")) { try SessionName(text) }
        // A stored row or a cursor from before the rule still reads back.
        #expect((try? SessionName(stored: text))?.rawValue == text)
    }

    @Test(arguments: [".a", "a.", "a..b", "..x", "x..", "-", "_", ".-.", "._"])
    func item9NamesWithDotsAndMoreStayValid(_ text: String) throws {
        #expect(try SessionName(text).rawValue == text)
    }

    @Test func item9StoredRuleKeepsTheOtherChecks() {
        #expect(throws: ModelError.self) { try SessionName(stored: "") }
        #expect(throws: ModelError.self) { try SessionName(stored: "a b") }
        #expect(throws: ModelError.self) { try SessionName(stored: String(repeating: "a", count: 65)) }
    }

    // MARK: Item 9: a token seen expired stays expired

    @Test(arguments: StoreKind.allCases)
    func item9ExpiredTokenStaysExpiredWhenTheClockStepsBack(_ kind: StoreKind) throws {
        try withStore(kind) { store, _ in
            let master = try MasterKey.generate()
            let now = Atomic<Int64>(1_000_000)
            let clock: @Sendable () -> Int64 = { now.load(ordering: .relaxed) }
            let vault = try VaultService(store: store, master: master, clock: clock)
            let issued = try vault.createToken(policy: AccessPolicy(operations: [.read], sessions: ["a"]), displayName: nil,
                                               ttlSeconds: 60, context: Self.ctx)
            #expect(try vault.authenticate(issued.token)?.accessor == issued.record.accessor)
            now.store(1_000_000 + 61_000, ordering: .relaxed)
            #expect(try vault.authenticate(issued.token) == nil)
            // The wall clock steps back an hour: the token stays expired.
            now.store(1_000_000 + 61_000 - 3_600_000, ordering: .relaxed)
            #expect(try vault.authenticate(issued.token) == nil)
            now.store(1_000_000 + 30_000, ordering: .relaxed)
            #expect(try vault.authenticate(issued.token) == nil)
            // It was recorded: the store says revoked, at the time it was first seen expired.
            try store.flush()
            #expect(try store.token(accessor: issued.record.accessor)?.revokedAt == 1_000_000 + 61_000)
            // A restart (a new service on the same store) with the clock behind the expiry.
            let restarted = try VaultService(store: store, master: master, clock: clock)
            #expect(try restarted.authenticate(issued.token) == nil)
            // Its expiry was audited once, with the accessor and never the token.
            let expiries = try vault.auditEvents(before: nil, limit: 100).filter { $0.event.action == "token.expire" }
            #expect(expiries.count == 1 && expiries.first?.event.detail == issued.record.accessor)
        }
    }

    @Test func item9UnexpiredTokenIsNotMarked() throws {
        try withStore(.memory) { store, _ in
            let now = Atomic<Int64>(5_000)
            let vault = try VaultService(store: store, master: try MasterKey.generate(), clock: { now.load(ordering: .relaxed) })
            let issued = try vault.createToken(policy: AccessPolicy(operations: [.read], sessions: ["a"]), displayName: nil,
                                               ttlSeconds: 60, context: Self.ctx)
            now.store(5_000 + 59_999, ordering: .relaxed)
            #expect(try vault.authenticate(issued.token) != nil)
            try store.flush()
            #expect(try store.token(accessor: issued.record.accessor)?.revokedAt == nil)
        }
    }

    // MARK: Item 2: listing within a scope

    @Test func item2ScopePartsAreDisjointAndOrdered() {
        let scope = NameScope(names: ["mybot", "team-1", "zed", "a", "a"], prefixes: ["team-", "team-x", "b", "b"])
        #expect(scope.parts == [.name("a"), .prefix("b"), .name("mybot"), .prefix("team-"), .name("zed")])
        #expect(scope.contains("team-9") && scope.contains("bob") && scope.contains("a") && !scope.contains("ab"))
        #expect(!scope.contains("team") && !scope.contains("myb") && !scope.contains("mybot2"))
        #expect(scope.narrowed(toPrefix: "t").parts == [.prefix("team-")])
        #expect(scope.narrowed(toPrefix: "team-x.").parts == [.prefix("team-x.")])
        #expect(scope.narrowed(toPrefix: "my").parts == [.name("mybot")])
        #expect(scope.narrowed(toPrefix: "q").parts == [])
        #expect(scope.narrowed(toPrefix: nil) == scope)
        // Byte order, as SQLite compares: '-' < '.' < digits < upper case < '_' < lower case.
        #expect(NameScope(names: ["a_", "a-", "aZ", "a.", "a0"], prefixes: []).parts.map(\.lowerBound) == ["a-", "a.", "a0", "aZ", "a_"])
    }

    /// Every page of every limit, from every cursor, against a brute-force filter: each in-scope
    /// session exactly once, in order, and no cursor outside the scope.
    @Test(arguments: StoreKind.allCases)
    func item2ScopedListingMatchesBruteForce(_ kind: StoreKind) throws {
        try withStore(kind) { store, _ in
            let all = ["a", "a-1", "alice", "b", "bob", "carol-ceo-account", "m", "m-1", "m-2", "m.x", "m_3", "mybot",
                       "mybot2", "t", "team", "team-", "team-1", "team-10", "team-2", "team_1", "teal", "z", "zed"]
            for n in all { try store.insert(try .make(n)) }
            let scopes = [
                NameScope(names: ["mybot", "a"], prefixes: ["team-"]),
                NameScope(names: ["zed", "nobody", "carol-ceo-account"], prefixes: []),
                NameScope(names: [], prefixes: ["m", "m-", "zz"]),
                NameScope(names: ["b"], prefixes: ["team-1", "a-"]),
                NameScope(names: [], prefixes: []),
            ]
            for scope in scopes {
                let expected = all.filter(scope.contains).sorted { NameScope.precedes($0, $1) }
                for limit in 1...4 {
                    var seen: [String] = []
                    var cursor: SessionName?
                    for _ in 0...all.count {
                        let page = try store.listSessions(after: cursor, limit: limit, within: scope)
                        #expect(page.sessions.count <= limit)
                        seen += page.sessions.map(\.name.rawValue)
                        guard let next = page.nextCursor else { cursor = nil; break }
                        #expect(scope.contains(next.rawValue), "cursor \(next) outside the scope")
                        cursor = next
                    }
                    #expect(cursor == nil, "paging did not end")
                    #expect(seen == expected, "limit \(limit)")
                }
                // From any cursor (in the scope or not), the rest of the scope after it.
                for after in all + ["", "0", "zzz"] where !after.isEmpty {
                    let page = try store.listSessions(after: try SessionName(stored: after), limit: 1000, within: scope)
                    #expect(page.sessions.map(\.name.rawValue) == expected.filter { NameScope.precedes(after, $0) })
                }
            }
        }
    }

    @Test func item2ScopedListingOnTheService() throws {
        try withStore(.memory) { store, _ in
            let vault = try VaultService(store: store, master: try MasterKey.generate())
            for n in ["alice", "bob", "mybot", "team-1", "team-2", "teal"] { try store.insert(try .make(n)) }
            let scope = NameScope(names: ["mybot"], prefixes: ["team-"])
            let page = try vault.list(after: nil, limit: 1, prefix: nil, scope: scope)
            #expect(page.sessions.map(\.name.rawValue) == ["mybot"] && page.nextCursor?.rawValue == "mybot")
            let narrowed = try vault.list(after: nil, limit: 10, prefix: "te", scope: scope)
            #expect(narrowed.sessions.map(\.name.rawValue) == ["team-1", "team-2"] && narrowed.nextCursor == nil)
            #expect(try vault.list(after: nil, limit: 10, prefix: "te", scope: nil).sessions.count == 3)
        }
    }

    // MARK: Item 7: aggregated authentication failures, audit retention

    static func failures(_ detail: String?) -> Int {
        (detail ?? "").split(separator: " ").compactMap { part -> Int? in
            part.hasPrefix("failures=") ? Int(part.dropFirst("failures=".count)) : nil
        }.first ?? 0
    }

    @Test(arguments: StoreKind.allCases)
    func item7UnauthenticatedFailuresAreAggregated(_ kind: StoreKind) throws {
        try withStore(kind) { store, _ in
            let vault = try VaultService(store: store, master: try MasterKey.generate())
            // 3,000 addresses, 10 failures each (the last 5 throttled): 30,000 failures.
            for i in 0..<3000 {
                for k in 0..<10 { vault.auditAuthFailure(remoteAddress: "10.\(i / 256).\(i % 256).1", throttled: k >= 5) }
            }
            let rows = try vault.auditEvents(before: nil, limit: 10_000).filter { $0.event.action == "auth.denied" }
            #expect(rows.count == AuthFailureTally.maxAddresses + 1)
            #expect(rows.reduce(0) { $0 + Self.failures($1.event.detail) } == 30_000)
            let first = rows.last  // newest first: the first address's row is the oldest
            #expect(first?.event.remoteAddress == "10.0.0.1" && first?.event.detail == "failures=10 throttled=5")
            #expect(first?.event.outcome == "unauthenticated" && first?.event.accessor == nil)
            let others = rows.first { $0.event.remoteAddress == nil }
            #expect(others?.event.detail == "failures=29000 throttled=14500 addresses=others")
            // Written once: a second read adds nothing, and new failures start a new period.
            #expect(try vault.auditEvents(before: nil, limit: 10_000).count == rows.count)
            vault.auditAuthFailure(remoteAddress: "10.0.0.1", throttled: true)
            vault.flushAuthFailures()
            let again = try vault.auditEvents(before: nil, limit: 10_000).filter { $0.event.action == "auth.denied" }
            #expect(again.count == rows.count + 1 && again.first?.event.detail == "failures=1 throttled=1")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func item7PruneAuditDeletesOnlyOlderEvents(_ kind: StoreKind) throws {
        try withStore(kind) { store, _ in
            let vault = try VaultService(store: store, master: try MasterKey.generate())
            func event(_ time: Int64) -> AuditEvent {
                AuditEvent(time: time, accessor: "root", action: "test", sessionName: nil, remoteAddress: nil, outcome: "ok", detail: nil)
            }
            for i in 0..<2500 { _ = try store.appendAudit(event(Int64(i))) }
            _ = try store.appendAudit(event(1_000_000))
            _ = try store.appendAudit(event(5))  // an old time after newer ones (a clock stepped back)
            #expect(try vault.pruneAudit(before: 10_000) == 2501)
            let left = try store.auditEvents(before: nil, limit: 100)
            #expect(left.map(\.event.time) == [1_000_000])
            #expect(try vault.pruneAudit(before: 10_000) == 0)
        }
    }

    @Test func item7AuditRetentionRunsAtStart() throws {
        try withStore(.memory) { store, _ in
            let day: Int64 = 86_400_000
            let now: Int64 = 1_000 * day
            let vault = try VaultService(store: store, master: try MasterKey.generate(), clock: { now })
            for time in [now - 40 * day, now - 31 * day, now - 29 * day, now] {
                _ = try store.appendAudit(AuditEvent(time: time, accessor: "root", action: "test", sessionName: nil,
                                                     remoteAddress: nil, outcome: "ok", detail: nil))
            }
            let pruned = Locked<[Int]>([])
            vault.startAuditRetention(days: 30) { result in
                if case .success(let n) = result { pruned.withLock { $0.append(n) } }
            }
            for _ in 0..<500 where pruned.withLock({ $0.isEmpty }) { Thread.sleep(forTimeInterval: 0.01) }
            vault.startAuditRetention(days: 0)  // stops the schedule
            #expect(pruned.withLock { $0.first } == 2)
            #expect(try store.auditEvents(before: nil, limit: 10).map(\.event.time) == [now, now - 29 * day])
        }
    }
}
