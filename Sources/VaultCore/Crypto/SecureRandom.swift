// SPDX-License-Identifier: Apache-2.0
internal import COpenSSL

/// Cryptographically secure random bytes from OpenSSL's `RAND_bytes` (the DRBG seeded from
/// the operating system).
///
/// A failing generator is reported as ``CryptoError/randomFailure`` rather than trapping: the
/// caller refuses the one request (or start-up) that needed randomness, and the process
/// survives to report it.
public enum SecureRandom {
    /// `count` random bytes as a plain array, for values that are not secret (nonces, ids).
    /// - Precondition: `count >= 0`.
    /// - Throws: ``CryptoError/randomFailure`` if `RAND_bytes` fails.
    public static func bytes(count: Int) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let ok = out.withUnsafeMutableBytes { fill($0) }
        guard ok else { throw .randomFailure }
        return out
    }

    /// `count` random bytes generated directly inside ``SecretBytes`` (keys, tokens).
    /// - Precondition: `count >= 0`.
    /// - Throws: ``CryptoError/randomFailure`` if `RAND_bytes` fails.
    public static func secret(count: Int) throws(CryptoError) -> SecretBytes {
        try SecretBytes(count: count) { (buffer) throws(CryptoError) in
            guard fill(buffer) else { throw .randomFailure }
        }
    }

    /// Fills `buffer` in place straight from `RAND_bytes`, one draw per value (a GCM nonce, a
    /// row id, a key): nothing drawn ahead is kept in memory, so nothing can be handed out twice
    /// (say, by a forked copy of the process; OpenSSL's DRBG reseeds after a fork). One call costs
    /// about 6.6k instructions under callgrind whatever its size (a create draws twice, ~13k of
    /// its ~250k; an export draws none). False when libcrypto fails.
    static func fill(_ buffer: UnsafeMutableRawBufferPointer) -> Bool {
        guard var base = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self) else {
            return true  // empty request
        }
        var remaining = buffer.count
        // RAND_bytes takes an `int` count; split larger requests.
        while remaining > 0 {
            let chunk = Swift.min(remaining, Int(Int32.max))
            guard RAND_bytes(base, Int32(chunk)) == 1 else { return false }
            base += chunk
            remaining -= chunk
        }
        return true
    }
}
