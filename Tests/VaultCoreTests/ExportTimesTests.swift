// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import VaultCore

/// The in-memory export times behind `last_exported_at`: reads see times being flushed, a failed
/// flush keeps them, and a committed one releases them.
@Suite("Export times")
struct ExportTimesTests {
    @Test func keepsTheNewestTimeAndSeesTimesBeingFlushed() {
        var times = ExportTimes()
        times.note("a", at: 5)
        times.note("a", at: 3)
        #expect(times.time(for: "a") == 5)
        let flushing = times.beginFlush()
        #expect(flushing == ["a": 5])
        // Noted during the flush: both tables are consulted, the newer time wins.
        times.note("a", at: 4)
        times.note("b", at: 7)
        #expect(times.time(for: "a") == 5)
        #expect(times.time(for: "b") == 7)
        times.endFlush(committed: true)
        #expect(times.time(for: "a") == 4)
        #expect(times.beginFlush() == ["a": 4, "b": 7])
        times.endFlush(committed: true)
        #expect(times.isEmpty)
    }

    @Test func aFailedFlushKeepsItsTimesForTheNext() {
        var times = ExportTimes()
        times.note("a", at: 5)
        times.note("b", at: 2)
        _ = times.beginFlush()
        times.note("b", at: 9)
        times.endFlush(committed: false)
        #expect(times.beginFlush() == ["a": 5, "b": 9])
    }
}
