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

    /// Test probe called from `deinit` after the wipe with "every byte is zero" (see
    /// `init(_:onWipe:)`); `nil` in production.
    private let wipeObserver: (@Sendable (_ wiped: Bool) -> Void)?

    /// Number of secret bytes.
    public let count: Int

    /// Copies `bytes` into fresh storage. The caller is responsible for wiping its own copy.
    public convenience init(_ bytes: some Collection<UInt8>) {
        self.init(copying: bytes, observer: nil)
    }

    /// Like `init(_:)`, and calls `onWipe` from `deinit` once the storage has been cleansed,
    /// passing whether every byte reads as zero. For tests that check zeroization.
    @_spi(Testing)
    public convenience init(_ bytes: some Collection<UInt8>, onWipe: @escaping @Sendable (Bool) -> Void) {
        self.init(copying: bytes, observer: onWipe)
    }

    private init(copying bytes: some Collection<UInt8>, observer: (@Sendable (Bool) -> Void)?) {
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: Swift.max(bytes.count, 1), alignment: 16)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
        // One memcpy for contiguous collections (arrays, buffers): the generic element-wise copy
        // is not specialised across modules and costs a witness call per byte.
        let copied: Bool? = bytes.withContiguousStorageIfAvailable { source in
            storage.copyMemory(from: UnsafeRawBufferPointer(source))
            return true
        }
        if copied == nil {
            _ = UnsafeMutableRawBufferPointer(rebasing: storage[0..<bytes.count]).initializeMemory(
                as: UInt8.self, from: bytes)
        }
        pointer = storage
        count = bytes.count
        wipeObserver = observer
    }

    /// Creates `count` bytes filled by `fill`, which writes directly into the secret storage
    /// (so no intermediate copy exists). The storage starts zeroed.
    ///
    /// - Throws: whatever `fill` throws; the partly written storage is wiped before the error
    ///   propagates.
    public init<E: Error>(
        count: Int, fill: (UnsafeMutableRawBufferPointer) throws(E) -> Void
    ) throws(E) {
        pointer = .allocate(byteCount: Swift.max(count, 1), alignment: 16)
        pointer.initializeMemory(as: UInt8.self, repeating: 0)
        self.count = count
        wipeObserver = nil
        // Every stored property is set, so if `fill` throws Swift still runs `deinit`, which
        // wipes and frees the storage. Freeing it here as well would be a double free.
        try fill(UnsafeMutableRawBufferPointer(rebasing: pointer[0..<count]))
    }

    deinit {
        OPENSSL_cleanse(pointer.baseAddress, pointer.count)
        if let wipeObserver {
            wipeObserver(UnsafeRawBufferPointer(pointer).allSatisfy { $0 == 0 })
        }
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

    /// Overwrites `bytes` with zeros through `OPENSSL_cleanse` (which the optimiser cannot
    /// remove) and empties it. Best effort: copies the array already shared are not reached,
    /// so call it on buffers that were never copied.
    public static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { cleanse($0) }
        // The cleansed storage is kept (and freed with the array): a test can then check that
        // it holds zeroes, which an emptied array alone would not show.
        bytes.removeAll(keepingCapacity: true)
    }

    /// Cleanses raw memory in place.
    static func cleanse(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        OPENSSL_cleanse(base, buffer.count)
    }

    public var description: String { "SecretBytes(\(count) bytes, redacted)" }
    public var debugDescription: String { description }
}
