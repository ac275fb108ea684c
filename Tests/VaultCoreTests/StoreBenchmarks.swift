// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Foundation
import Primitives
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
            let (insertNS, insertCPU) = await timed(threads) { t in
                for session in sessions[t] { _ = try? store.insert(session) }
            }
            let after = store.statistics()
            let names = sessions.flatMap { $0.map(\.name) }
            let perThreadGets = Self.gets / threads
            let (getNS, getCPU) = await timed(threads) { t in
                for i in 0..<perThreadGets { _ = try? store.session(named: names[(i * 7 + t) % names.count]) }
            }
            #expect(try store.countSessions().total == perThreadInserts * threads)
            store.close()
            let tx = after.transactions - before.transactions
            let ops = after.committedWrites - before.committedWrites
            let inserts = UInt64(perThreadInserts * threads)
            let gets = UInt64(perThreadGets * threads)
            print(
                "store-bench sync=\(synchronous.rawValue) threads=\(threads)"
                    + " insert_ns_per_op=\(insertNS / inserts) insert_cpu_ns_per_op=\(insertCPU / inserts)"
                    + " get_ns_per_op=\(getNS / gets) get_cpu_ns_per_op=\(getCPU / gets)"
                    + " insert_tx=\(tx) insert_ops=\(ops) ops_per_tx=\(String(format: "%.1f", Double(ops) / Double(max(tx, 1))))"
            )
        }
    }

    /// Wall-clock nanoseconds for `threads` threads each running `body`, and the CPU time the
    /// calling threads spent (their own CPU clocks, summed: on a shared machine this is the
    /// steadier figure; it leaves out work done on the writer queue's thread by deferred kicks).
    private func timed(_ threads: Int, _ body: @escaping @Sendable (Int) -> Void) async -> (UInt64, UInt64) {
        let cpu = Locked<UInt64>(0)
        let start = DispatchTime.now().uptimeNanoseconds
        await onThreads(threads) { t in
            let before = Self.threadCPUTime()
            body(t)
            let spent = Self.threadCPUTime() - before
            cpu.withLock { $0 += spent }
        }
        return (DispatchTime.now().uptimeNanoseconds - start, cpu.withLock { $0 })
    }

    private static func threadCPUTime() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
