// SPDX-License-Identifier: Apache-2.0

/// Export times noted in memory until the once-a-second flush writes them (see `VaultService`).
///
/// **Keyed by session id, not name.** Ids begin with their creation time
/// (``SessionID/timeOrdered(milliseconds:)``) and so sort in about the order of the rows in the
/// table, which names do not: the flush writes them in id order, and each of its chunks updates
/// neighbouring rows on a few pages instead of one row on each of hundreds of pages (measured
/// under export load, 10,000 sessions: the writer's dirty pages per chunk fell from ~0.9 MiB to
/// ~0.1 MiB, and the WAL it wrote per second with them).
///
/// **Why two tables.** The flush used to snapshot the one dictionary (sharing its storage) while
/// exports kept noting times, so the first export after the snapshot copied the whole table
/// (10,000 sessions: ~0.4 MiB, twice the table at the peak, measured with heaptrack). Here the
/// flush *moves* `noted` into `flushing` and new exports start a fresh, small `noted`; nothing is
/// copied, and `flushing` is released as soon as its times are committed. Reads consult both.
struct ExportTimes {
    /// Times noted since the last flush began, by session id.
    private var noted: [Key: Int64] = [:]
    /// Times being written by the flush in progress (empty when none is).
    private var flushing: [Key: Int64] = [:]

    /// A session id as two integers: hashed and compared without touching the heap, and
    /// ordered as the id's bytes are (big-endian), so by creation time.
    struct Key: Hashable, Comparable, Sendable {
        let high: UInt64
        let low: UInt64

        init(_ id: SessionID) {
            var high: UInt64 = 0
            var low: UInt64 = 0
            for (index, byte) in id.bytes.enumerated() {
                if index < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
            }
            self.high = high
            self.low = low
        }

        /// The id again.
        var id: SessionID {
            var bytes = [UInt8](repeating: 0, count: SessionID.byteCount)
            for index in 0..<8 {
                bytes[index] = UInt8(truncatingIfNeeded: high >> (56 - 8 * index))
                bytes[8 + index] = UInt8(truncatingIfNeeded: low >> (56 - 8 * index))
            }
            return SessionID(unchecked: bytes)
        }

        static func < (a: Key, b: Key) -> Bool { (a.high, a.low) < (b.high, b.low) }
    }

    /// True when no time is held.
    var isEmpty: Bool { noted.isEmpty && flushing.isEmpty }

    /// Notes `time` for the session `id`, keeping the newer of it and any time already noted.
    mutating func note(_ id: SessionID, at time: Int64) { note(Key(id), at: time) }

    private mutating func note(_ key: Key, at time: Int64) {
        if time > (noted[key] ?? .min) { noted[key] = time }
    }

    /// The newest time held for the session `id`, noted or being flushed.
    func time(for id: SessionID) -> Int64? {
        let key = Key(id)
        return switch (noted[key], flushing[key]) {
        case (let a?, let b?): max(a, b)
        case (let a?, nil): a
        case (nil, let b): b
        }
    }

    /// Starts a flush: the noted times move to `flushing` and are returned (no copy: neither is
    /// mutated until ``endFlush(committed:)``). A flush already in progress is folded in first.
    mutating func beginFlush() -> [Key: Int64] {
        if !flushing.isEmpty { endFlush(committed: false) }
        flushing = noted
        noted = [:]
        return flushing
    }

    /// Ends the flush: committed times are dropped; otherwise they go back to `noted` (keeping
    /// the newer time where an export noted one meanwhile) for the next flush.
    mutating func endFlush(committed: Bool) {
        let times = flushing
        flushing = [:]
        guard !committed else { return }
        for (key, time) in times { note(key, at: time) }
    }
}
