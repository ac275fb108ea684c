// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import VaultCore

/// Micro-benchmark, run only with `SV_BENCH=1`: write and read a file with 10,000 peers in each
/// flavour and print the best of several runs in milliseconds. Prints figures; asserts no timing
/// (the machine is shared and noisy), only that the work was done.
@Suite struct SessionFileBenchmarkTests {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["SV_BENCH"] == "1"))
    func tenThousandPeers() throws {
        let session = TelegramSession(
            dcID: 2, apiID: 12_345, testMode: false, authKey: try sessionFileTestKey(), userID: 5_000_000_000,
            isBot: false, date: 1_700_000_000)
        var random = SessionFileRandom(state: 10_000)
        let peers: [Peer] = (0..<10_000).map { i in
            let hash = Int64(bitPattern: random.next())
            switch i % 4 {
            case 0: return Peer(id: 100_000_000 + Int64(i), accessHash: hash, type: .user, usernames: ["user\(i)"],
                                phoneNumber: "1555\(1_000_000 + i)", name: "User \(i)")
            case 1: return Peer(id: 6_000_000_000 + Int64(i), accessHash: hash, type: .bot, usernames: ["bot\(i)bot"])
            case 2: return Peer(id: -4_000_000 - Int64(i), accessHash: 0, type: .group, name: "Group \(i)")
            default: return Peer(id: -1_001_000_000_000 - Int64(i), accessHash: hash, type: .supergroup,
                                 usernames: ["chan\(i)", "alt\(i)"], name: "Channel \(i)")
            }
        }
        let clock = ContinuousClock()
        func bestMilliseconds(_ runs: Int, _ body: () throws -> Void) rethrows -> Double {
            var best = Duration.seconds(3600)
            for _ in 0..<runs {
                let elapsed = try clock.measure(body)
                best = min(best, elapsed)
            }
            let (seconds, attoseconds) = best.components
            return Double(seconds) * 1000 + Double(attoseconds) / 1e15
        }
        for format in [ExportFormat.pyrogramFile, .kurigramFile, .telethonFile] {
            var bytes: [UInt8] = []
            let writeMs = try bestMilliseconds(5) {
                bytes = try SessionFileWriter.write(session, peers: peers, as: format, now: 1_700_000_000)
            }
            var imported: ImportedSession?
            let readMs = try bestMilliseconds(5) { imported = try SessionFileReader.read(bytes: bytes) }
            #expect(imported?.peers.count == peers.count)
            print(
                "SV_BENCH sessionfile \(format.rawValue): 10000 peers, \(bytes.count) bytes, "
                    + "write \(String(format: "%.1f", writeMs)) ms, read \(String(format: "%.1f", readMs)) ms")
        }
    }
}
