// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import VaultCore

/// Random values for public use (nonces, row ids), one `RAND_bytes` draw each: every draw is
/// fresh, in long runs of odd sizes and from many threads at once; large and empty draws work.
@Suite("Crypto: random draws")
struct CryptoRandomTests {
    @Test func drawsAcrossManyRefillsNeverRepeat() throws {
        // 16-byte ids with odd-sized draws in between.
        var seen = Set<[UInt8]>()
        for i in 0..<3_000 {
            let id = try SecureRandom.bytes(count: 16)
            #expect(seen.insert(id).inserted)
            if i % 7 == 0 { _ = try SecureRandom.bytes(count: 13) }
        }
        #expect(seen.count == 3_000)
    }

    @Test func concurrentDrawsAreDistinct() async throws {
        let batches = try await withThrowingTaskGroup(of: [[UInt8]].self) { group in
            for _ in 0..<8 {
                group.addTask { try (0..<500).map { _ in try SecureRandom.bytes(count: 12) } }
            }
            var all: [[UInt8]] = []
            for try await batch in group { all += batch }
            return all
        }
        #expect(Set(batches).count == 8 * 500)
    }

    @Test func largeAndEmptyDrawsWork() throws {
        let large = try SecureRandom.bytes(count: 5_000)  // bigger than a typical draw
        #expect(large.count == 5_000 && Set(large).count > 200)
        #expect(try SecureRandom.bytes(count: 0).isEmpty)
    }

    @Test func sealedNoncesDiffer() throws {
        let dataKey = try SecureRandom.secret(count: 32)
        let plaintext = SecretBytes([UInt8](repeating: 7, count: 256))
        let context = CipherContext(table: "sessions", row: 1, column: "auth_key")
        var nonces = Set<[UInt8]>()
        for _ in 0..<600 {
            let sealed = try Envelope.seal(plaintext, key: dataKey, term: 1, context: context)
            #expect(nonces.insert(Array(sealed[Envelope.headerByteCount..<(Envelope.headerByteCount + AESGCM.nonceByteCount)])).inserted)
        }
    }
}

/// Time-ordered session ids: the time prefix orders them, the random rest keeps them distinct.
@Suite struct SessionIDOrderTests {
    @Test func idsSortByTimeAndStayDistinct() {
        let times: [Int64] = [0, 1, 255, 256, 1_700_000_000_000, 1_700_000_000_001, 0xFFFF_FFFF_FFFF]
        let ids = times.map { SessionID.timeOrdered(milliseconds: $0) }
        for (earlier, later) in zip(ids, ids.dropFirst()) {
            #expect(earlier.bytes.lexicographicallyPrecedes(later.bytes))
        }
        // The prefix is the big-endian time.
        #expect(Array(ids[4].bytes.prefix(6)) == [0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x00])
        let sameMillisecond = (0..<1_000).map { _ in SessionID.timeOrdered(milliseconds: 42) }
        #expect(Set(sameMillisecond).count == 1_000)
        #expect(SessionID.timeOrdered(milliseconds: -5).bytes.prefix(6).allSatisfy { $0 == 0 })
    }
}
