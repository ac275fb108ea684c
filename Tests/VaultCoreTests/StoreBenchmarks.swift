// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Foundation
import Testing
import VaultCore

/// Micro-benchmark of the file engine. Runs and prints only with `SV_BENCH=1`; asserts nothing
/// about time (the machine is shared and noisy). Prefer a release build:
/// `SV_BENCH=1 swift test -c release --filter StoreBenchmarks`.
@Suite("Store benchmarks", .serialized, .enabled(if: ProcessInfo.processInfo.environment["SV_BENCH"] == "1"))
struct StoreBenchmarks {
    static let inserts = 2_000
    static let gets = 20_000

    @Test(arguments: SQLiteStoreConfiguration.Synchronous.allCases)
    func fileEngine(synchronous: SQLiteStoreConfiguration.Synchronous) async throws {
        for threads in [1, 8] {
            let dir = try TempDir()
            let store = try SQLiteSessionStore(.file(dir.file("bench.db")), configuration: .init(synchronous: synchronous))
            let blob = randomBytes(300)
            let perThreadInserts = Self.inserts / threads
            let sessions = try (0..<threads).map { t in
                try (0..<perThreadInserts).map { i in try StoredSession.make("b\(t)-\(i)", sealed: blob) }
            }
            let before = store.statistics()
            let insertNS = await timed(threads) { t in
                for session in sessions[t] { _ = try? store.insert(session) }
            }
            let after = store.statistics()
            let names = sessions.flatMap { $0.map(\.name) }
            let perThreadGets = Self.gets / threads
            let getNS = await timed(threads) { t in
                for i in 0..<perThreadGets { _ = try? store.session(named: names[(i * 7 + t) % names.count]) }
            }
            #expect(try store.countSessions().total == perThreadInserts * threads)
            store.close()
            let tx = after.transactions - before.transactions
            let ops = after.committedWrites - before.committedWrites
            print(
                "store-bench sync=\(synchronous.rawValue) threads=\(threads)"
                    + " insert_ns_per_op=\(insertNS / UInt64(perThreadInserts * threads))"
                    + " get_ns_per_op=\(getNS / UInt64(perThreadGets * threads))"
                    + " insert_tx=\(tx) insert_ops=\(ops) ops_per_tx=\(String(format: "%.1f", Double(ops) / Double(max(tx, 1))))"
            )
        }
    }

    /// Wall-clock nanoseconds for `threads` threads each running `body`.
    private func timed(_ threads: Int, _ body: @escaping @Sendable (Int) -> Void) async -> UInt64 {
        let start = DispatchTime.now().uptimeNanoseconds
        await onThreads(threads, body)
        return DispatchTime.now().uptimeNanoseconds - start
    }
}
