// SPDX-License-Identifier: Apache-2.0

/// Byte classes of RFC 9110 §5.6.2 (token), §5.5 (field values) and RFC 3986 (targets, Host),
/// as ASCII bitmaps and ranges: a shift and a mask per byte, no table in memory.
enum HTTPSyntax {
    /// Carriage return.
    static let cr: UInt8 = 0x0D
    /// Line feed.
    static let lf: UInt8 = 0x0A
    /// Space.
    static let sp: UInt8 = 0x20
    /// Horizontal tab.
    static let htab: UInt8 = 0x09
    /// The field-name terminator.
    static let colon: UInt8 = 0x3A

    /// Whether ASCII byte `b` is in the set whose bit `n` of `low` marks byte `n` and bit `n` of
    /// `high` marks byte `64 + n`; bytes from 0x80 up are in no such set.
    ///
    /// Why bitmaps: the parser checks every byte of a request head, and a lookup table (a
    /// lazily initialised global array) cost a `swift_once` check and a bounds check per byte —
    /// 80 `swift_once` calls per request under callgrind. Integer literals fold into the code.
    /// `HTTPSyntaxTests` rebuilds every class from the grammar and compares all 256 bytes.
    @inline(__always) private static func inASCIISet(_ b: UInt8, low: UInt64, high: UInt64) -> Bool {
        if b < 64 { return (low >> UInt64(b)) & 1 != 0 }
        if b < 128 { return (high >> UInt64(b &- 64)) & 1 != 0 }
        return false
    }

    /// True for `tchar` bytes: `!#$%&'*+-.^_`|~`, digits and letters (RFC 9110 §5.6.2).
    @inline(__always) static func isTchar(_ b: UInt8) -> Bool {
        inASCIISet(b, low: 0x03FF_6CFA_0000_0000, high: 0x57FF_FFFF_C7FF_FFFE)
    }
    /// True for bytes allowed in a field value: VCHAR, obs-text, SP, HTAB (RFC 9110 §5.5); CTLs
    /// and DEL are not.
    @inline(__always) static func isFieldValueByte(_ b: UInt8) -> Bool {
        b &- 0x21 < 0x5E || b >= 0x80 || b == sp || b == htab
    }
    /// True for bytes allowed in a request-target: visible ASCII (no CTL, SP, DEL or non-ASCII).
    @inline(__always) static func isTargetByte(_ b: UInt8) -> Bool { b &- 0x21 < 0x5E }
    /// True for bytes allowed in a `Host` value: uri-host [":" port] with reg-name, IPv4 or
    /// IP-literal (RFC 3986 §3.2.2): letters, digits and `-._~!$&'()*+,;=%:[]`.
    @inline(__always) static func isHostByte(_ b: UInt8) -> Bool {
        inASCIISet(b, low: 0x2FFF_7FF2_0000_0000, high: 0x47FF_FFFE_AFFF_FFFE)
    }
    /// True for SP and HTAB.
    @inline(__always) static func isWhitespace(_ b: UInt8) -> Bool { b == sp || b == htab }
    /// True for ASCII hex digits.
    @inline(__always) static func isHexDigit(_ b: UInt8) -> Bool {
        inASCIISet(b, low: 0x03FF_0000_0000_0000, high: 0x0000_007E_0000_007E)
    }

    /// True if `name` is a non-empty token (valid header field name).
    static func isToken(_ name: some Collection<UInt8>) -> Bool {
        // The contiguous bytes when there are some: a `String.UTF8View` walked through its
        // iterator costs several times more per byte, and every response header is checked.
        if let result = name.withContiguousStorageIfAvailable({ !$0.isEmpty && $0.allSatisfy(isTchar) }) {
            return result
        }
        return !name.isEmpty && name.allSatisfy(isTchar)
    }

    /// True if `value` may be sent as a field value: no CR, LF or NUL (response splitting guard,
    /// RFC 9110 §5.5). Other bytes are passed through as the handler wrote them.
    static func isSafeOutgoingValue(_ value: some Collection<UInt8>) -> Bool {
        if let result = value.withContiguousStorageIfAvailable({ !$0.contains(where: isUnsafeOutgoing) }) {
            return result
        }
        return !value.contains(where: isUnsafeOutgoing)
    }

    /// CR, LF or NUL: the bytes a field value must not carry out.
    private static func isUnsafeOutgoing(_ byte: UInt8) -> Bool { byte == cr || byte == lf || byte == 0 }
}
