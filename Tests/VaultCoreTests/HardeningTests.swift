// SPDX-License-Identifier: Apache-2.0
import Foundation
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
}
