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
        let ok = out.withUnsafeMutableBytes { fillPublic($0) }
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

    /// Fills `buffer` with random bytes for a value that is *public once used* (a GCM nonce, a
    /// row id), served from a 4 KiB block drawn from the DRBG at once. One `RAND_bytes` call
    /// costs several thousand instructions in OpenSSL 3 (provider look-ups and locks) whatever
    /// its size, which was ~5 % of a create for its two small draws. The block holds bytes not
    /// yet handed out; every byte is handed out once and the block is wiped as it is used. Never
    /// use this for keys or tokens: they come from ``secret(count:)``. False when libcrypto fails.
    static func fillPublic(_ buffer: UnsafeMutableRawBufferPointer) -> Bool {
        guard let target = buffer.baseAddress else { return true }
        guard buffer.count <= PublicBlock.size / 4 else { return fill(buffer) }
        return publicBlock.withLock { block in block.take(buffer.count, into: target) }
    }

    /// The block behind ``fillPublic(_:)``.
    private struct PublicBlock {
        static let size = 4096
        var bytes = [UInt8](repeating: 0, count: size)
        /// Bytes before this offset were handed out (and wiped).
        var used = size

        mutating func take(_ count: Int, into target: UnsafeMutableRawPointer) -> Bool {
            if Self.size - used < count {
                guard bytes.withUnsafeMutableBytes({ SecureRandom.fill($0) }) else { return false }
                used = 0
            }
            bytes.withUnsafeMutableBytes { raw in
                guard let base = raw.baseAddress else { return }
                target.copyMemory(from: base + used, byteCount: count)
                (base + used).initializeMemory(as: UInt8.self, repeating: 0, count: count)
            }
            used += count
            return true
        }
    }

    private static let publicBlock = PThreadLocked(PublicBlock())

    /// Fills `buffer` in place; false when libcrypto fails.
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
