// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import VaultCore

/// The in-memory export times behind `last_exported_at`: reads see times being flushed, a failed
/// flush keeps them, and a committed one releases them. Keys are session ids.
@Suite("Export times")
struct ExportTimesTests {
    static let a = SessionID(unchecked: Array(repeating: 0xAA, count: 16))
    static let b = SessionID(unchecked: Array(0..<16))

    static func keyed(_ times: [SessionID: Int64]) -> [ExportTimes.Key: Int64] {
        Dictionary(uniqueKeysWithValues: times.map { (ExportTimes.Key($0.key), $0.value) })
    }

    @Test func keepsTheNewestTimeAndSeesTimesBeingFlushed() {
        let (a, b) = (Self.a, Self.b)
        var times = ExportTimes()
        times.note(a, at: 5)
        times.note(a, at: 3)
        #expect(times.time(for: a) == 5)
        let flushing = times.beginFlush()
        #expect(flushing == Self.keyed([a: 5]))
        // Noted during the flush: both tables are consulted, the newer time wins.
        times.note(a, at: 4)
        times.note(b, at: 7)
        #expect(times.time(for: a) == 5)
        #expect(times.time(for: b) == 7)
        times.endFlush(committed: true)
        #expect(times.time(for: a) == 4)
        #expect(times.beginFlush() == Self.keyed([a: 4, b: 7]))
        times.endFlush(committed: true)
        #expect(times.isEmpty)
    }

    @Test func aFailedFlushKeepsItsTimesForTheNext() {
        let (a, b) = (Self.a, Self.b)
        var times = ExportTimes()
        times.note(a, at: 5)
        times.note(b, at: 2)
        _ = times.beginFlush()
        times.note(b, at: 9)
        times.endFlush(committed: false)
        #expect(times.beginFlush() == Self.keyed([a: 5, b: 9]))
    }

    /// The key keeps every bit of the id and orders as the bytes do (big-endian), so the flush's
    /// id order is creation-time order for time-ordered ids.
    @Test func keysRoundTripAndSortAsTheirBytes() {
        var ids = (0..<200).map { _ in SessionID.random() }
        ids += [Self.a, Self.b, SessionID(unchecked: Array(repeating: 0, count: 16)),
                SessionID(unchecked: Array(repeating: 0xFF, count: 16))]
        ids += (0..<20).map { SessionID.timeOrdered(milliseconds: 1_700_000_000_000 + Int64($0)) }
        for id in ids { #expect(ExportTimes.Key(id).id == id) }
        let byKey = ids.sorted { ExportTimes.Key($0) < ExportTimes.Key($1) }
        let byBytes = ids.sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) }
        #expect(byKey == byBytes)
        #expect(Set(ids.map(ExportTimes.Key.init)).count == Set(ids).count)
    }
}
