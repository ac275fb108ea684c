// SPDX-License-Identifier: Apache-2.0

/// Base64 (RFC 4648) for key material: encodes from raw buffers and decodes strictly straight
/// into ``SecretBytes``, so no intermediate array of secret bytes is left behind.
///
/// Decoding accepts only the canonical standard form: alphabet `A–Z a–z 0–9 + /`, length a
/// multiple of 4, `=` padding exactly where required (RFC 4648 §4) and zero pad bits
/// (§3.5), so every key has exactly one text form.
enum SecretBase64 {
    private static let standard = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let url = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Standard base64 with padding (`url == false`) or base64url without padding
    /// (`url == true`, RFC 4648 §5), as used in tokens.
    static func encode(_ bytes: UnsafeRawBufferPointer, url: Bool) -> String {
        let alphabet = url ? Self.url : standard
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let b0 = UInt32(bytes[i])
            let b1 = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0
            let b2 = i + 2 < bytes.count ? UInt32(bytes[i + 2]) : 0
            let group = b0 << 16 | b1 << 8 | b2
            let produced = Swift.min(bytes.count - i, 3) + 1  // 2, 3 or 4 characters carry data
            for k in 0..<4 {
                if k < produced {
                    out.append(alphabet[Int((group >> UInt32(18 - 6 * k)) & 0x3F)])
                } else if !url {
                    out.append(UInt8(ascii: "="))
                }
            }
            i += 3
        }
        let text = String(decoding: out, as: UTF8.self)
        // The ASCII array held the encoded secret too.
        SecretBytes.wipe(&out)
        return text
    }

    /// Decodes canonical standard base64 into secret storage; `nil` if the text is not
    /// canonical standard base64.
    static func decode(_ text: some Collection<UInt8>) -> SecretBytes? {
        let n = text.count
        guard n % 4 == 0 else { return nil }
        var padding = 0
        if n >= 1, text.dropFirst(n - 1).first == UInt8(ascii: "=") { padding += 1 }
        if n >= 2, text.dropFirst(n - 2).first == UInt8(ascii: "=") { padding += 1 }
        let outCount = n / 4 * 3 - padding
        var valid = true
        let secret = SecretBytes(count: outCount) { out in
            var accumulator: UInt32 = 0
            var sextets = 0
            var written = 0
            for (index, c) in text.enumerated() {
                if index >= n - padding {
                    guard c == UInt8(ascii: "=") else { valid = false; return }
                    continue
                }
                guard let v = value(c) else { valid = false; return }
                accumulator = accumulator << 6 | v
                sextets += 1
                if sextets == 4 {
                    out[written] = UInt8(truncatingIfNeeded: accumulator >> 16)
                    out[written + 1] = UInt8(truncatingIfNeeded: accumulator >> 8)
                    out[written + 2] = UInt8(truncatingIfNeeded: accumulator)
                    written += 3
                    accumulator = 0
                    sextets = 0
                }
            }
            switch sextets {
            case 0:
                break
            case 2:  // 12 bits: one byte, 4 pad bits that must be zero
                guard accumulator & 0xF == 0 else { valid = false; return }
                out[written] = UInt8(truncatingIfNeeded: accumulator >> 4)
            case 3:  // 18 bits: two bytes, 2 pad bits that must be zero
                guard accumulator & 0x3 == 0 else { valid = false; return }
                out[written] = UInt8(truncatingIfNeeded: accumulator >> 10)
                out[written + 1] = UInt8(truncatingIfNeeded: accumulator >> 2)
            default:
                valid = false
            }
            accumulator = 0
        }
        return valid ? secret : nil
    }

    /// The 6-bit value of a standard-alphabet character, `nil` for anything else (including
    /// `=`, `-`, `_` and whitespace).
    private static func value(_ c: UInt8) -> UInt32? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return UInt32(c - UInt8(ascii: "A"))
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return UInt32(c - UInt8(ascii: "a") + 26)
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(c - UInt8(ascii: "0") + 52)
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}
