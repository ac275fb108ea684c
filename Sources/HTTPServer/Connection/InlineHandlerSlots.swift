// SPDX-License-Identifier: Apache-2.0
import Glibc
import Synchronization

/// Decides whether a handler may run inline on its connection queue (no thread hop) or must move to
/// a per-connection queue of Dispatch's overcommit pool.
///
/// **Why.** Connection queues share Dispatch's default-QoS worker pool, which is sized to the CPUs.
/// On Linux, libdispatch adds a worker when all of them are blocked only about once a second, so a
/// few handlers sleeping inline (SQLite waiting for a group commit, a stuck call) would stall the
/// socket I/O of every connection in the process.
///
/// **Rule.** The pool is process-wide, so this accounting is too (``shared``; several servers in one
/// process, as in tests, share it). There is one slot per CPU; an inline handler holds a slot with
/// its start time. A new handler runs inline if a slot is free and fewer than `longRunningLimit`
/// inline handlers have been running for over ``longRunningAfterNanoseconds``; otherwise it is
/// offloaded. So:
/// - cheap handlers (tens of µs) never look long-running: they always run inline while a slot is
///   free, with no thread hop and no system call (two or three atomic operations per CPU slot);
/// - long-running handlers occupy at most `longRunningLimit` (≤ CPUs − 1) workers before further
///   handlers move off the pool, so at least one worker stays free for socket I/O;
/// - at most one inline handler per CPU exists at any time.
///
/// Residual window: handlers that start within ``longRunningAfterNanoseconds`` of each other all
/// look young and may all block afterwards, occupying every slot (at most one per CPU). That stalls
/// I/O only until one of them returns (milliseconds for a group commit) or libdispatch adds a worker.
///
/// Age alone decides; the thread's scheduler state is deliberately not consulted: reading `/proc`
/// costs system calls, and a handler burning CPU for over a millisecond occupies its worker just
/// as much as a sleeping one. A handler that only looks old because it was preempted on a busy
/// machine causes at most some extra offloading, bounded by
/// ``HTTPServerConfiguration/maxInFlightHandlers``.
final class InlineHandlerSlots: Sendable {
    /// A handler running longer than this counts as occupying its worker (1 ms: far above a cheap
    /// handler, about the length of a group-commit wait).
    static let longRunningAfterNanoseconds: UInt64 = 1_000_000

    /// Online CPUs, the width of Dispatch's default pool (at least 1).
    static let cpuCount: Int = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))

    /// The process-wide instance: one slot per CPU of the shared Dispatch pool.
    static let shared = InlineHandlerSlots(slotCount: cpuCount)

    /// The most long-running inline handlers any configuration may allow: CPUs − 1 (at least 1), so
    /// that one worker stays free of them.
    static var maximumLongRunningLimit: Int { max(1, cpuCount - 1) }

    /// One inline handler's registration.
    private final class Slot: Sendable {
        /// Monotonic start time of the handler in this slot, 0 when free.
        let startedAt = Atomic<UInt64>(0)
    }

    /// Fixed set of slots; more inline handlers than slots are never allowed.
    private let slots: [Slot]

    /// Creates `slotCount` free slots (at least one).
    init(slotCount: Int) {
        slots = (0..<max(1, slotCount)).map { _ in Slot() }
    }

    /// Claims a slot for an inline handler starting at `now` (monotonic ns, non-zero), or returns
    /// nil to offload. `longRunningLimit` 0 always offloads.
    func acquire(now: UInt64, longRunningLimit: Int) -> Int? {
        if longRunningLimit <= 0 { return nil }
        var mine: Int?
        var longRunning = 0
        for index in slots.indices {
            let slot = slots[index]
            let started = slot.startedAt.load(ordering: .relaxed)
            if started == 0 {
                if mine == nil, slot.startedAt.compareExchange(expected: 0, desired: now, ordering: .relaxed).exchanged {
                    mine = index
                }
            } else if now > started && now - started > InlineHandlerSlots.longRunningAfterNanoseconds {
                longRunning += 1
            }
        }
        guard let mine else { return nil }
        if longRunning >= longRunningLimit {
            release(mine)
            return nil
        }
        return mine
    }

    /// Frees a slot claimed by ``acquire(now:longRunningLimit:)``.
    func release(_ index: Int) {
        slots[index].startedAt.store(0, ordering: .relaxed)
    }
}
