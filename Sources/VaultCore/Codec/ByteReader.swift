// SPDX-License-Identifier: Apache-2.0
internal import COpenSSL

/// Reads big-endian integers and byte runs from a buffer, checking every bound.
///
/// The session strings are Python `struct` layouts with `>` (big-endian, no alignment), so this
/// is all the codecs need. A read past the end throws instead of trapping, which keeps a decoder
/// crash-free even if a length check upstream is ever wrong.
///
/// Generic over the storage so it can read from `[UInt8]` as well as from the secret buffer of a
/// ``SecretBytes`` (`UnsafeRawBufferPointer`) without copying key material.
public struct ByteReader<Bytes: RandomAccessCollection<UInt8>> where Bytes.Index == Int {
    private let bytes: Bytes
    /// Index of the next unread byte.
    public private(set) var offset: Int

    /// Starts reading at the first byte of `bytes`.
    public init(_ bytes: Bytes) {
        self.bytes = bytes
        self.offset = bytes.startIndex
    }

    /// Bytes left to read.
    public var remaining: Int { bytes.endIndex - offset }

    /// True when every byte has been read.
    public var isAtEnd: Bool { offset == bytes.endIndex }

    /// - Throws: ``CodecError/invalidLength(_:expected:)`` when fewer than `count` bytes remain.
    private func require(_ count: Int) throws(CodecError) {
        guard count >= 0, remaining >= count else {
            throw .invalidLength(bytes.count, expected: "at least \(offset - bytes.startIndex + count) bytes")
        }
    }

    /// Reads one byte.
    /// - Throws: ``CodecError/invalidLength(_:expected:)`` at the end of the buffer.
    public mutating func readUInt8() throws(CodecError) -> UInt8 {
        try require(1)
        defer { offset += 1 }
        return bytes[offset]
    }

    /// Reads a big-endian integer of `T.bitWidth / 8` bytes.
    /// - Throws: ``CodecError/invalidLength(_:expected:)`` when the buffer is too short.
    public mutating func readBigEndian<T: FixedWidthInteger & UnsignedInteger>(
        _: T.Type = T.self
    ) throws(CodecError) -> T {
        let size = T.bitWidth / 8
        try require(size)
        var value: T = 0
        for index in offset..<(offset + size) {
            value = value << 8 | T(bytes[index])
        }
        offset += size
        return value
    }

    /// Reads a big-endian `u16`.
    public mutating func readUInt16() throws(CodecError) -> UInt16 { try readBigEndian() }
    /// Reads a big-endian `u32`.
    public mutating func readUInt32() throws(CodecError) -> UInt32 { try readBigEndian() }
    /// Reads a big-endian `u64`.
    public mutating func readUInt64() throws(CodecError) -> UInt64 { try readBigEndian() }

    /// Returns the next `count` bytes as a slice of the underlying storage (no copy).
    /// - Throws: ``CodecError/invalidLength(_:expected:)`` when fewer than `count` bytes remain.
    public mutating func readBytes(_ count: Int) throws(CodecError) -> Bytes.SubSequence {
        try require(count)
        defer { offset += count }
        return bytes[offset..<(offset + count)]
    }
}

/// Appends big-endian integers and byte runs to a growing buffer.
///
/// When the buffer holds key material, create it with the exact ``init(capacity:)`` so the array
/// never reallocates (a reallocation would leave an unwiped copy behind) and call ``wipe()``
/// when done.
public struct ByteWriter: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8]

    /// An empty writer that will not reallocate before `capacity` bytes have been written.
    public init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Number of bytes written.
    public var count: Int { bytes.count }

    /// Appends one byte.
    public mutating func write(_ value: UInt8) { bytes.append(value) }

    /// Appends `value` big-endian in `T.bitWidth / 8` bytes.
    public mutating func writeBigEndian<T: FixedWidthInteger & UnsignedInteger>(_ value: T) {
        var shift = T.bitWidth - 8
        while shift >= 0 {
            bytes.append(UInt8(truncatingIfNeeded: value >> shift))
            shift -= 8
        }
    }

    /// Appends raw bytes.
    public mutating func write(contentsOf data: some Sequence<UInt8>) {
        bytes.append(contentsOf: data)
    }

    /// Overwrites the buffer with zeros (`OPENSSL_cleanse`, which the optimiser cannot drop) and
    /// empties it.
    public mutating func wipe() {
        bytes.withUnsafeMutableBytes { raw in
            OPENSSL_cleanse(raw.baseAddress, raw.count)
        }
        bytes.removeAll(keepingCapacity: false)
    }
}
