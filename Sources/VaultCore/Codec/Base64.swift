// SPDX-License-Identifier: Apache-2.0

/// Base64 (RFC 4648) encoding and a bounded, position-reporting decoder.
///
/// The decoder is shaped by what the Python session readers accept (docs/formats.md, "Base64 and
/// padding"): they use `base64.urlsafe_b64decode`, which also takes the standard alphabet
/// (`+` `/`), so decoding here accepts **both** alphabets (even mixed). It is otherwise strict
/// where Python is silently lenient: whitespace, other ASCII junk and `=` anywhere but at the
/// end are errors that report the 0-based position of the first bad character (never the
/// character itself), and non-zero unused bits in the last character are refused (RFC 4648
/// §3.5). Whether and how much `=` padding is allowed is a per-format decision, so the core
/// reports the padding it found and the session-string decoders decide.
public enum Base64 {
    /// The two RFC 4648 alphabets. They differ only in the characters for 62 and 63.
    public enum Alphabet: Sendable {
        /// `+` and `/` (RFC 4648 §4).
        case standard
        /// `-` and `_` (RFC 4648 §5), what every session-string writer uses.
        case urlSafe
    }

    /// Longest input the generic ``decode(_:maxLength:)`` accepts by default.
    public static let defaultMaxLength = 4096

    private static let standardDigits = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let urlSafeDigits = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    // Byte classes in ``decodeTable`` besides the digit values 0…63. All are ≥ 64, so
    // `value < 64` alone tells a digit from anything else.
    private static let padding: UInt8 = 0x40
    private static let space: UInt8 = 0x41
    private static let invalid: UInt8 = 0x42
    private static let nonASCII: UInt8 = 0x43

    /// Byte → 6-bit value for both alphabets, or a byte class. 256 entries, so indexing with any
    /// `UInt8` is in bounds; one look-up per character classifies it.
    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: invalid, count: 256)
        for byte in 0x80...0xFF { table[byte] = nonASCII }
        for byte in [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20] { table[byte] = space }
        table[Int(UInt8(ascii: "="))] = padding
        for (value, digit) in standardDigits.enumerated() { table[Int(digit)] = UInt8(value) }
        for (value, digit) in urlSafeDigits.enumerated() { table[Int(digit)] = UInt8(value) }
        return table
    }()

    // MARK: Encoding

    /// Number of characters ``encode(_:alphabet:padded:)`` produces for `byteCount` bytes.
    public static func encodedCount(byteCount: Int, padded: Bool) -> Int {
        padded ? (byteCount + 2) / 3 * 4 : (byteCount * 4 + 2) / 3
    }

    /// Encodes `bytes`; `padded` appends `=` to a multiple of 4 characters.
    public static func encode(
        _ bytes: some Collection<UInt8>, alphabet: Alphabet, padded: Bool
    ) -> String {
        if let text = bytes.withContiguousStorageIfAvailable({
            encode(UnsafeRawBufferPointer($0), alphabet: alphabet, padded: padded)
        }) {
            return text
        }
        return Array(bytes).withUnsafeBytes { encode($0, alphabet: alphabet, padded: padded) }
    }

    /// Encodes raw memory (lets callers encode secret buffers without copying them).
    public static func encode(
        _ bytes: UnsafeRawBufferPointer, alphabet: Alphabet, padded: Bool
    ) -> String {
        let table = alphabet == .standard ? standardDigits : urlSafeDigits
        let count = encodedCount(byteCount: bytes.count, padded: padded)
        // Through raw pointers: the digit table's bounds checks and retains cost more than the
        // arithmetic (the `& 63` keeps every index in the 64-entry table).
        return table.withUnsafeBufferPointer { digitBuffer in
            guard let digits = digitBuffer.baseAddress, digitBuffer.count == 64 else { return "" }
            return String(unsafeUninitializedCapacity: count) { out in
                var o = 0
                var i = 0
                while i + 3 <= bytes.count {
                    let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
                    out[o] = digits[Int(v >> 18 & 63)]
                    out[o + 1] = digits[Int(v >> 12 & 63)]
                    out[o + 2] = digits[Int(v >> 6 & 63)]
                    out[o + 3] = digits[Int(v & 63)]
                    i += 3
                    o += 4
                }
                let rest = bytes.count - i
                if rest > 0 {
                    let b1 = rest == 2 ? UInt32(bytes[i + 1]) : 0
                    let v = UInt32(bytes[i]) << 16 | b1 << 8
                    out[o] = digits[Int(v >> 18 & 63)]
                    out[o + 1] = digits[Int(v >> 12 & 63)]
                    o += 2
                    if rest == 2 {
                        out[o] = digits[Int(v >> 6 & 63)]
                        o += 1
                    }
                    if padded {
                        while o % 4 != 0 {
                            out[o] = UInt8(ascii: "=")
                            o += 1
                        }
                    }
                }
                return o
            }
        }
    }

    // MARK: Decoding

    /// Where the base64 digits end and how much `=` padding follows them.
    struct Shape: Equatable {
        /// Number of base64 digits (everything before the trailing `=` run).
        var digitCount: Int
        /// Number of trailing `=`.
        var paddingCount: Int
    }

    /// Checks every character and splits the text into digits and trailing padding.
    ///
    /// Reports the *first* problem from the left: non-ASCII, whitespace, a non-alphabet
    /// character, or an `=` followed by more digits.
    static func scan(_ utf8: UnsafeBufferPointer<UInt8>) throws(CodecError) -> Shape {
        let table = decodeTable  // one global access, not one per character
        var firstPad: Int? = nil
        for (position, byte) in utf8.enumerated() {
            let value = table[Int(byte)]
            if value < 64 {
                // A digit after `=`: the padding was not at the end, so the `=` is the bad one.
                if let firstPad { throw .invalidCharacter(position: firstPad) }
                continue
            }
            switch value {
            case padding: if firstPad == nil { firstPad = position }
            case space: throw .whitespace(position: position)
            case nonASCII: throw .nonASCII(position: position)
            default: throw .invalidCharacter(position: position)
            }
        }
        let digits = firstPad ?? utf8.count
        return Shape(digitCount: digits, paddingCount: utf8.count - digits)
    }

    /// Bytes encoded by `digitCount` digits, or nil for a count no encoder produces
    /// (`4k + 1` digits carry only 6 bits of a byte).
    static func decodedCount(digitCount: Int) -> Int? {
        let rest = digitCount % 4
        guard rest != 1 else { return nil }
        return digitCount / 4 * 3 + (rest == 0 ? 0 : rest - 1)
    }

    /// Decodes digits already validated by ``scan(_:)`` into `out`, whose size must be
    /// ``decodedCount(digitCount:)``. Returns false if the last digit has non-zero unused bits
    /// or the sizes disagree; never traps.
    static func decodeDigits(
        _ digits: UnsafeBufferPointer<UInt8>, into out: UnsafeMutableRawBufferPointer
    ) -> Bool {
        guard let expected = decodedCount(digitCount: digits.count), expected == out.count else {
            return false
        }
        let table = decodeTable
        let count = digits.count
        var i = 0
        var o = 0
        // Whole quanta: 4 digits → 3 bytes.
        while i + 4 <= count {
            let a = table[Int(digits[i])], b = table[Int(digits[i + 1])]
            let c = table[Int(digits[i + 2])], d = table[Int(digits[i + 3])]
            guard a | b | c | d < 64 else { return false }
            let v = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
            out[o] = UInt8(truncatingIfNeeded: v >> 16)
            out[o + 1] = UInt8(truncatingIfNeeded: v >> 8)
            out[o + 2] = UInt8(truncatingIfNeeded: v)
            i += 4
            o += 3
        }
        // The partial last quantum; its unused low bits must be zero (RFC 4648 §3.5).
        switch count - i {
        case 0:
            return true
        case 2:
            let a = table[Int(digits[i])], b = table[Int(digits[i + 1])]
            guard a | b < 64, b & 0x0F == 0 else { return false }
            out[o] = a << 2 | b >> 4
            return true
        case 3:
            let a = table[Int(digits[i])], b = table[Int(digits[i + 1])], c = table[Int(digits[i + 2])]
            guard a | b | c < 64, c & 0x03 == 0 else { return false }
            out[o] = a << 2 | b >> 4
            out[o + 1] = (b & 0x0F) << 4 | c >> 2
            return true
        default:
            return false
        }
    }

    /// Decodes base64 text in either alphabet, with or without correct `=` padding.
    ///
    /// For non-secret data; the session-string codecs decode straight into ``SecretBytes``.
    /// - Throws: ``CodecError/tooLong(max:)``, ``CodecError/nonASCII(position:)``,
    ///   ``CodecError/whitespace(position:)``, ``CodecError/invalidCharacter(position:)``,
    ///   ``CodecError/invalidPadding``, ``CodecError/invalidLength(_:expected:)`` or
    ///   ``CodecError/nonCanonicalEncoding``.
    public static func decode(
        _ text: String, maxLength: Int = defaultMaxLength
    ) throws(CodecError) -> [UInt8] {
        try withUTF8(of: text, maxLength: maxLength) { (utf8) throws(CodecError) -> [UInt8] in
            let shape = try scan(utf8)
            guard let count = decodedCount(digitCount: shape.digitCount) else {
                throw .invalidLength(utf8.count, expected: "not 4k+1 base64 digits")
            }
            // Padding is optional, but when present it must complete the last quantum.
            guard shape.paddingCount == 0 || (shape.digitCount + shape.paddingCount) % 4 == 0,
                shape.paddingCount <= 2
            else { throw .invalidPadding }
            let digits = UnsafeBufferPointer(rebasing: utf8[0..<shape.digitCount])
            var ok = false
            let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
                buffer.initialize(repeating: 0)
                ok = decodeDigits(digits, into: UnsafeMutableRawBufferPointer(buffer))
                initialized = count
            }
            guard ok else { throw .nonCanonicalEncoding }
            return bytes
        }
    }
}

// MARK: - Helpers shared by the session-string codecs

extension Base64 {
    /// Runs `body` on the UTF-8 bytes of `text` in place (no copy of the secret text for native
    /// strings) after enforcing the length cap, keeping typed errors.
    /// - Throws: ``CodecError/tooLong(max:)`` before looking at any character, or what `body`
    ///   throws.
    static func withUTF8<R>(
        of text: String, maxLength: Int,
        _ body: (UnsafeBufferPointer<UInt8>) throws(CodecError) -> R
    ) throws(CodecError) -> R {
        // `utf8.count` is O(1) for native strings: the cap is checked before any work.
        guard text.utf8.count <= maxLength else { throw .tooLong(max: maxLength) }
        var text = text
        let result = text.withUTF8 { utf8 in Result { () throws(CodecError) -> R in try body(utf8) } }
        return try result.get()
    }

    /// Decodes validated digits straight into wiped-on-release storage of `byteCount` bytes.
    /// - Throws: ``CodecError/nonCanonicalEncoding`` (or a length error if the caller's
    ///   arithmetic is ever wrong).
    static func decodeSecret(
        _ digits: UnsafeBufferPointer<UInt8>, byteCount: Int
    ) throws(CodecError) -> SecretBytes {
        guard decodedCount(digitCount: digits.count) == byteCount else {
            throw .invalidLength(digits.count, expected: "\(byteCount) bytes of base64")
        }
        var ok = false
        let secret = SecretBytes(count: byteCount) { out in ok = decodeDigits(digits, into: out) }
        guard ok else { throw .nonCanonicalEncoding }
        return secret
    }
}
