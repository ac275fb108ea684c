// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import VaultCore

/// Micro-benchmark, not a test: runs only with `SV_BENCH=1` and prints ns/op.
///
///     SV_BENCH=1 swift test --filter CodecBenchmark
@Suite struct CodecBenchmark {
    static let enabled = ProcessInfo.processInfo.environment["SV_BENCH"] == "1"

    static func nanosecondsPerOperation(_ count: Int, _ body: () throws -> Void) rethrows -> Double {
        let clock = ContinuousClock()
        let elapsed = try clock.measure {
            for _ in 0..<count { try body() }
        }
        let (seconds, attoseconds) = elapsed.components
        return (Double(seconds) * 1e9 + Double(attoseconds) / 1e9) / Double(count)
    }

    @Test(.enabled(if: enabled)) func decodeAndEncode100k() throws {
        let n = 100_000
        let pyrogram = try CodecSessionStringTests.vector(CodecSessionStringTests.current)
        let telethon = try CodecSessionStringTests.vector(CodecSessionStringTests.telethonV6)
        let pSession = try SessionStringCodec.decode(pyrogram).session
        let tSession = try SessionStringCodec.decode(telethon).session
        let damaged = "!" + pyrogram.dropFirst()
        var sink = 0
        let results: [(String, Double)] = [
            ("pyrogram decode", try Self.nanosecondsPerOperation(n) { sink &+= try SessionStringCodec.decode(pyrogram).session.dcID }),
            ("pyrogram encode", try Self.nanosecondsPerOperation(n) { sink &+= try SessionStringCodec.encode(pSession, as: .pyrogram).utf8.count }),
            ("telethon v6 decode", try Self.nanosecondsPerOperation(n) { sink &+= try SessionStringCodec.decode(telethon).session.dcID }),
            ("telethon v6 encode", try Self.nanosecondsPerOperation(n) { sink &+= try SessionStringCodec.encode(tSession, as: .telethon).utf8.count }),
            ("reject (bad char; includes Swift Testing's per-throw backtrace capture)", Self.nanosecondsPerOperation(n) { sink &+= (try? SessionStringCodec.decode(damaged))?.session.dcID ?? 1 }),
        ]
        for (name, ns) in results {
            print("CodecBenchmark \(name): \(Int(ns.rounded())) ns/op")
        }
        #expect(sink != 0)
    }
}
