// SPDX-License-Identifier: Apache-2.0

/// Export times noted in memory until the once-a-second flush writes them (see `VaultService`).
///
/// **Why two tables.** The flush used to snapshot the one dictionary (sharing its storage) while
/// exports kept noting times, so the first export after the snapshot copied the whole table
/// (10,000 sessions: ~0.4 MiB, twice the table at the peak, measured with heaptrack). Here the
/// flush *moves* `noted` into `flushing` and new exports start a fresh, small `noted`; nothing is
/// copied, and `flushing` is released as soon as its times are committed. Reads consult both.
struct ExportTimes {
    /// Times noted since the last flush began, by session name.
    private var noted: [String: Int64] = [:]
    /// Times being written by the flush in progress (empty when none is).
    private var flushing: [String: Int64] = [:]

    /// True when no time is held.
    var isEmpty: Bool { noted.isEmpty && flushing.isEmpty }

    /// Notes `time` for `name`, keeping the newer of it and any time already noted.
    mutating func note(_ name: String, at time: Int64) {
        if time > (noted[name] ?? .min) { noted[name] = time }
    }

    /// The newest time held for `name`, noted or being flushed.
    func time(for name: String) -> Int64? {
        switch (noted[name], flushing[name]) {
        case (let a?, let b?): max(a, b)
        case (let a?, nil): a
        case (nil, let b): b
        }
    }

    /// Starts a flush: the noted times move to `flushing` and are returned (no copy: neither is
    /// mutated until ``endFlush(committed:)``). A flush already in progress is folded in first.
    mutating func beginFlush() -> [String: Int64] {
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
        for (name, time) in times { note(name, at: time) }
    }
}
