// SPDX-License-Identifier: Apache-2.0
internal import COpenSSL

/// A fixed-size buffer of secret bytes that is wiped with `OPENSSL_cleanse` when released.
///
/// Swift arrays copy freely and never zero their storage, so secrets (auth keys, data keys,
/// master keys) live in this class instead: one heap allocation, never reallocated, wiped in
/// `deinit`. Equality is constant-time (`CRYPTO_memcmp`). `description` never shows the bytes.
///
/// `@unchecked Sendable`: the storage is written only in `init` and never mutated afterwards,
/// so concurrent reads are safe.
public final class SecretBytes: @unchecked Sendable, Equatable, CustomStringConvertible,
    CustomDebugStringConvertible
{
    private let pointer: UnsafeMutableRawBufferPointer

    /// Copies `bytes` into fresh storage. The caller is responsible for wiping its own copy.
    public init(_ bytes: some Collection<UInt8>) {
        pointer = .allocate(byteCount: Swift.max(bytes.count, 1), alignment: 16)
        _ = UnsafeMutableRawBufferPointer(rebasing: pointer[0..<bytes.count]).initializeMemory(
            as: UInt8.self, from: bytes)
        count = bytes.count
    }

    /// Creates `count` bytes filled by `fill`, which writes directly into the secret storage
    /// (so no intermediate copy exists).
    public init(count: Int, fill: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        pointer = .allocate(byteCount: Swift.max(count, 1), alignment: 16)
        pointer.initializeMemory(as: UInt8.self, repeating: 0)
        self.count = count
        do {
            try fill(UnsafeMutableRawBufferPointer(rebasing: pointer[0..<count]))
        } catch {
            OPENSSL_cleanse(pointer.baseAddress, pointer.count)
            pointer.deallocate()
            throw error
        }
    }

    /// Number of secret bytes.
    public let count: Int

    deinit {
        OPENSSL_cleanse(pointer.baseAddress, pointer.count)
        pointer.deallocate()
    }

    /// Gives temporary read access to the bytes. Do not let them escape.
    public func withUnsafeBytes<R, E: Error>(
        _ body: (UnsafeRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        try body(UnsafeRawBufferPointer(rebasing: pointer[0..<count]))
    }

    /// A copy of the bytes as an array. Use only where an API needs `[UInt8]` (e.g. encoding
    /// a session string); prefer `withUnsafeBytes`.
    public func copyBytes() -> [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    /// True when every byte is zero (Telethon uses an all-zero key to mean "no key").
    public var isAllZero: Bool {
        withUnsafeBytes { buf in buf.reduce(UInt8(0)) { $0 | $1 } == 0 }
    }

    /// Constant-time comparison (length is not secret).
    public static func == (lhs: SecretBytes, rhs: SecretBytes) -> Bool {
        guard lhs.count == rhs.count else { return false }
        return lhs.withUnsafeBytes { a in
            rhs.withUnsafeBytes { b in CRYPTO_memcmp(a.baseAddress, b.baseAddress, a.count) == 0 }
        }
    }

    public var description: String { "SecretBytes(\(count) bytes, redacted)" }
    public var debugDescription: String { description }
}
