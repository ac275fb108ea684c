// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
import VaultCore

/// Runs only with `SV_BENCH=1`: it measures, it never asserts a time (the machine is noisy).
private let benchmarkEnabled = getenv("SV_BENCH").map { String(cString: $0) == "1" } ?? false

@Suite("Crypto: micro-benchmark (SV_BENCH=1)")
struct CryptoBenchmarkTests {
    @Test("100k seal + open of a 256-byte auth key through the keyring", .enabled(if: benchmarkEnabled))
    func sealOpen() throws {
        let iterations = 100_000
        let (keyring, _) = try Keyring.create(master: try MasterKey.generate())
        let authKey = try SecureRandom.secret(count: 256)
        let context = CipherContext(table: "sessions", row: 1, column: "auth_key")
        let clock = ContinuousClock()

        var envelope: [UInt8] = []
        let sealTime = try clock.measure {
            for _ in 0..<iterations { envelope = try keyring.seal(authKey, context: context) }
        }
        var opened = 0
        let openTime = try clock.measure {
            for _ in 0..<iterations { opened &+= try keyring.open(envelope, context: context).count }
        }
        #expect(opened == iterations * 256)

        func nsPerOp(_ d: Duration) -> Int64 {
            let (seconds, attoseconds) = d.components
            return (seconds * 1_000_000_000 + attoseconds / 1_000_000_000) / Int64(iterations)
        }
        print("SV_BENCH keyring.seal(256 B): \(nsPerOp(sealTime)) ns/op over \(iterations)")
        print("SV_BENCH keyring.open(256 B): \(nsPerOp(openTime)) ns/op over \(iterations)")
    }
}
