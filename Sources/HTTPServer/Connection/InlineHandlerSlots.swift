// SPDX-License-Identifier: Apache-2.0
import CSocketShims
import Glibc
import Synchronization

/// Decides whether a handler may run inline on a connection queue (no thread hop) or must move to
/// Dispatch's overcommit pool, so that *blocking* handlers cannot occupy every worker of the
/// CPU-sized pool that socket I/O runs on (Dispatch on Linux adds a thread for blocked workers only
/// about once a second).
///
/// Each inline handler holds a slot with its start time and thread id. A new handler runs inline
/// if a slot is free and fewer than `blockedLimit` other inline handlers are *blocked*: running for
/// more than ``blockedAfterNanoseconds`` while their thread sleeps (state `S` or `D` in
/// `/proc/self/task/<tid>/stat`). Checking the thread state keeps a handler that was merely
/// preempted on a busy machine from being mistaken for a blocked one, which would otherwise feed
/// back into more threads and more preemption. Cheap handlers never reach the check at all.
/// `blockedLimit == 0` offloads every handler.
final class InlineHandlerSlots: Sendable {
    /// A handler younger than this is never considered blocked (1 ms).
    static let blockedAfterNanoseconds: UInt64 = 1_000_000
    /// Without `/proc`, a handler older than this is assumed blocked (10 ms).
    static let assumedBlockedAfterNanoseconds: UInt64 = 10_000_000

    /// One inline handler's registration; lock-free so the fast path costs a few atomics.
    final class Slot: Sendable {
        /// Monotonic start time of the handler in this slot, 0 when free.
        let startedAt = Atomic<UInt64>(0)
        /// Kernel thread id running the handler.
        let thread = Atomic<Int32>(0)
        /// Sticky verdict for the current occupant, so `/proc` is read at most once per blocked call.
        let blocked = Atomic<Bool>(false)
    }

    /// Fixed set of slots (`blockedLimit` + CPUs): more inline handlers than that are offloaded.
    private let slots: [Slot]
    /// Blocked inline handlers tolerated before offloading (``HTTPServerConfiguration/inlineHandlerLimit``).
    private let blockedLimit: Int

    /// Creates `slotCount` free slots.
    init(blockedLimit: Int, slotCount: Int) {
        self.blockedLimit = blockedLimit
        self.slots = (0..<max(1, slotCount)).map { _ in Slot() }
    }

    /// Claims a slot for an inline handler starting at `now` on this thread, or returns nil to offload.
    func acquire(now: UInt64) -> Int? {
        if blockedLimit == 0 { return nil }
        var mine: Int?
        var blocked = 0
        for index in slots.indices {
            let slot = slots[index]
            let started = slot.startedAt.load(ordering: .acquiring)
            if started == 0 {
                if mine == nil,
                    slot.startedAt.compareExchange(expected: 0, desired: now, ordering: .acquiringAndReleasing).exchanged
                {
                    slot.blocked.store(false, ordering: .relaxed)
                    slot.thread.store(ThreadID.current, ordering: .releasing)
                    mine = index
                }
            } else if now > started && now - started > InlineHandlerSlots.blockedAfterNanoseconds {
                if slot.blocked.load(ordering: .relaxed) {
                    blocked += 1
                } else if isBlocked(thread: slot.thread.load(ordering: .acquiring), age: now - started) {
                    slot.blocked.store(true, ordering: .relaxed)
                    blocked += 1
                }
            }
        }
        guard let mine else { return nil }
        if blocked >= blockedLimit {
            release(mine)
            return nil
        }
        return mine
    }

    /// Frees a slot claimed by ``acquire(now:)``.
    func release(_ index: Int) {
        slots[index].startedAt.store(0, ordering: .releasing)
    }

    /// Whether the thread of a handler running for `age` ns is asleep (blocked in a system call).
    private func isBlocked(thread: Int32, age: UInt64) -> Bool {
        switch ThreadID.state(of: thread) {
        case UInt8(ascii: "S"), UInt8(ascii: "D"): true
        case nil: age > InlineHandlerSlots.assumedBlockedAfterNanoseconds
        default: false
        }
    }
}

/// Kernel thread ids and states, for ``InlineHandlerSlots``.
enum ThreadID {
    /// Thread-local cache of the kernel thread id.
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        _ = pthread_key_create(&key, nil)
        return key
    }()

    /// This thread's kernel id, cached in thread-local storage (one `gettid` per thread).
    static var current: Int32 {
        if let cached = pthread_getspecific(key) { return Int32(truncatingIfNeeded: Int(bitPattern: cached)) }
        let tid = csocket_thread_id()
        _ = pthread_setspecific(key, UnsafeRawPointer(bitPattern: Int(tid)))
        return tid
    }

    /// The scheduler state letter (`R`, `S`, `D`, …) of thread `tid` of this process, or nil if
    /// `/proc` cannot be read.
    static func state(of tid: Int32) -> UInt8? {
        guard tid > 0 else { return nil }
        let fd = open("/proc/self/task/\(tid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { _ = close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        // Format: "tid (comm) S ...": the state follows the last ')' and a space (proc(5)).
        guard let close = buffer[0..<n].lastIndex(of: UInt8(ascii: ")")), close + 2 < n else { return nil }
        return buffer[close + 2]
    }
}
