// SPDX-License-Identifier: Apache-2.0

/// Lower-case hexadecimal encoding and strict decoding.
public enum Hex {

    /// Lower-case hex of `bytes`.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        // Written straight into the string's storage: one allocation, and no UTF-8 validation of
        // digits that are ASCII by construction (the exported auth key's context takes this path).
        String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            var o = 0
            for b in bytes where o + 1 < out.count {
                out[o] = digit(b >> 4)
                out[o + 1] = digit(b & 0x0F)
                o += 2
            }
            return o
        }
    }

    /// The lower-case digit of a nibble (`0...15`).
    @inline(__always)
    private static func digit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? 0x30 &+ nibble : 0x57 &+ nibble  // "0"... or "a" - 10...
    }

    /// Decodes hex (either case). Returns nil on odd length or a non-hex character.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let hi = value(utf8[i]), let lo = value(utf8[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    private static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
