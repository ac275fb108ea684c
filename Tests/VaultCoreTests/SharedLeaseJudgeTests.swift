// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import VaultCore

/// The decisions of leases judged by a shared database (`SharedLeaseJudge`): time is only the
/// `now` handed in (the database's clock), a deadline is stored, and a lock-delay ends a fixed
/// time after the deadline however late the expiry is noticed.
@Suite("Shared lease judge")
struct SharedLeaseJudgeTests {
    static let a: [UInt8] = Array(repeating: 0xA1, count: 32)
    static let b: [UInt8] = Array(repeating: 0xB2, count: 32)

    @Test func acquireRenewReleaseAndTheNextEpoch() {
        var row = SharedLeaseJudge.Row.never
        var r = SharedLeaseJudge.apply(.acquire(idHash: Self.a, holder: "a", ttlSeconds: 10), to: &row, now: 1_000, lockDelaySeconds: 15)
        #expect(r.done && r.expired == nil)
        #expect(row == .init(state: .held, epoch: 1, idHash: Self.a, holder: "a", ttlSeconds: 10, acquiredAt: 1_000, deadline: 11_000))
        r = SharedLeaseJudge.apply(.acquire(idHash: Self.b, holder: "b", ttlSeconds: 10), to: &row, now: 10_999, lockDelaySeconds: 15)
        #expect(!r.done && row.holder == "a" && row.epoch == 1)
        #expect(!SharedLeaseJudge.apply(.renew(idHash: Self.b, ttlSeconds: nil), to: &row, now: 5_000, lockDelaySeconds: 15).done)
        #expect(SharedLeaseJudge.apply(.renew(idHash: Self.a, ttlSeconds: 20), to: &row, now: 5_000, lockDelaySeconds: 15).done)
        #expect(row.deadline == 25_000 && row.ttlSeconds == 20 && row.acquiredAt == 1_000)
        #expect(!SharedLeaseJudge.apply(.release(idHash: Self.b), to: &row, now: 6_000, lockDelaySeconds: 15).done)
        #expect(SharedLeaseJudge.apply(.release(idHash: Self.a), to: &row, now: 6_000, lockDelaySeconds: 15).done)
        #expect(row.state == .free && row.idHash.isEmpty && row.holder == "" && row.epoch == 1)
        // A release frees at once: no lock-delay.
        #expect(SharedLeaseJudge.apply(.acquire(idHash: Self.b, holder: "b", ttlSeconds: 5), to: &row, now: 6_001, lockDelaySeconds: 15).done)
        #expect(row.epoch == 2 && row.holder == "b")
    }

    @Test func anExpiryIsFoundOnceAndItsLockDelayCountsFromTheDeadline() {
        var row = SharedLeaseJudge.Row.never
        _ = SharedLeaseJudge.apply(.acquire(idHash: Self.a, holder: "a", ttlSeconds: 5), to: &row, now: 0, lockDelaySeconds: 2)
        // Renewing at the deadline is too late: the lease is lost, the expiry found.
        var r = SharedLeaseJudge.apply(.renew(idHash: Self.a, ttlSeconds: nil), to: &row, now: 5_000, lockDelaySeconds: 2)
        #expect(!r.done && r.expired == 1)
        #expect(row.state == .delay && row.idHash.isEmpty && row.holder == "a" && row.deadline == 7_000)
        r = SharedLeaseJudge.apply(.acquire(idHash: Self.b, holder: "b", ttlSeconds: 5), to: &row, now: 6_999, lockDelaySeconds: 2)
        #expect(!r.done && r.expired == nil)
        r = SharedLeaseJudge.apply(.acquire(idHash: Self.b, holder: "b", ttlSeconds: 5), to: &row, now: 7_000, lockDelaySeconds: 2)
        #expect(r.done && row.epoch == 2)
        // Noticed late: the expiry and the end of its lock-delay both passed; still found once.
        var late = SharedLeaseJudge.Row(state: .held, epoch: 4, idHash: Self.a, holder: "a", ttlSeconds: 5, acquiredAt: 0, deadline: 5_000)
        r = SharedLeaseJudge.apply(.settle, to: &late, now: 60_000, lockDelaySeconds: 2)
        #expect(r.done && r.expired == 4 && late.state == .free)
        #expect(!SharedLeaseJudge.apply(.settle, to: &late, now: 60_001, lockDelaySeconds: 2).done)
    }

    @Test func aBreakEntersTheLockDelayAndARevokeEndsWithout() {
        var row = SharedLeaseJudge.Row.never
        #expect(!SharedLeaseJudge.apply(.breakHeld, to: &row, now: 0, lockDelaySeconds: 3).done)
        _ = SharedLeaseJudge.apply(.acquire(idHash: Self.a, holder: "a", ttlSeconds: 60), to: &row, now: 0, lockDelaySeconds: 3)
        #expect(SharedLeaseJudge.apply(.breakHeld, to: &row, now: 1_000, lockDelaySeconds: 3).done)
        #expect(row.state == .delay && row.deadline == 4_000 && row.idHash.isEmpty)
        #expect(!SharedLeaseJudge.apply(.release(idHash: Self.a), to: &row, now: 1_500, lockDelaySeconds: 3).done)
        _ = SharedLeaseJudge.apply(.acquire(idHash: Self.b, holder: "b", ttlSeconds: 60), to: &row, now: 4_000, lockDelaySeconds: 3)
        #expect(SharedLeaseJudge.apply(.endOnRevoke, to: &row, now: 4_001, lockDelaySeconds: 3).done)
        #expect(row.state == .free && row.epoch == 2)
    }
}
