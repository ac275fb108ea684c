// SPDX-License-Identifier: Apache-2.0

/// Byte classes of RFC 9110 §5.6.2 (token), §5.5 (field values) and RFC 3986 (targets, Host),
/// as 256-entry lookup tables: one load per byte and no branches on character ranges.
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

    // Bit flags stored per byte in `table`.
    /// `tchar` (field names, methods).
    static let tcharBit: UInt8 = 1 << 0
    /// Allowed inside a field value.
    static let fieldValueBit: UInt8 = 1 << 1
    /// Allowed in a request-target.
    static let targetBit: UInt8 = 1 << 2
    /// Allowed in a `Host` value.
    static let hostBit: UInt8 = 1 << 3
    /// SP or HTAB (OWS).
    static let whitespaceBit: UInt8 = 1 << 4
    /// An ASCII hex digit.
    static let hexBit: UInt8 = 1 << 5

    /// One byte of flags per possible byte value.
    static let table: [UInt8] = {
        var t = [UInt8](repeating: 0, count: 256)
        for b in 0..<256 {
            let c = UInt8(b)
            var flags: UInt8 = 0
            let isAlpha = (0x41...0x5A).contains(c) || (0x61...0x7A).contains(c)
            let isDigit = (0x30...0x39).contains(c)
            // tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
            if isAlpha || isDigit || Array("!#$%&'*+-.^_`|~".utf8).contains(c) { flags |= tcharBit }
            // field-value bytes: VCHAR / obs-text / SP / HTAB (RFC 9110 §5.5); CTLs and DEL excluded.
            if (0x21...0x7E).contains(c) || c >= 0x80 || c == sp || c == htab { flags |= fieldValueBit }
            // request-target bytes: visible ASCII only (no CTL, SP, DEL or non-ASCII).
            if (0x21...0x7E).contains(c) { flags |= targetBit }
            // Host: uri-host [":" port] with reg-name / IPv4 / IP-literal (RFC 3986 §3.2.2).
            if isAlpha || isDigit || Array("-._~!$&'()*+,;=%:[]".utf8).contains(c) { flags |= hostBit }
            if c == sp || c == htab { flags |= whitespaceBit }
            if isDigit || (0x41...0x46).contains(c) || (0x61...0x66).contains(c) { flags |= hexBit }
            t[b] = flags
        }
        return t
    }()

    /// True for `tchar` bytes.
    @inline(__always) static func isTchar(_ b: UInt8) -> Bool { table[Int(b)] & tcharBit != 0 }
    /// True for bytes allowed in a field value (VCHAR, obs-text, SP, HTAB).
    @inline(__always) static func isFieldValueByte(_ b: UInt8) -> Bool { table[Int(b)] & fieldValueBit != 0 }
    /// True for bytes allowed in a request-target (visible ASCII).
    @inline(__always) static func isTargetByte(_ b: UInt8) -> Bool { table[Int(b)] & targetBit != 0 }
    /// True for bytes allowed in a `Host` value.
    @inline(__always) static func isHostByte(_ b: UInt8) -> Bool { table[Int(b)] & hostBit != 0 }
    /// True for SP and HTAB.
    @inline(__always) static func isWhitespace(_ b: UInt8) -> Bool { table[Int(b)] & whitespaceBit != 0 }
    /// True for ASCII hex digits.
    @inline(__always) static func isHexDigit(_ b: UInt8) -> Bool { table[Int(b)] & hexBit != 0 }

    /// True if `name` is a non-empty token (valid header field name).
    static func isToken(_ name: some Collection<UInt8>) -> Bool {
        !name.isEmpty && name.allSatisfy(isTchar)
    }

    /// True if `value` may be sent as a field value: no CR, LF or NUL (response splitting guard,
    /// RFC 9110 §5.5). Other bytes are passed through as the handler wrote them.
    static func isSafeOutgoingValue(_ value: some Collection<UInt8>) -> Bool {
        !value.contains { $0 == cr || $0 == lf || $0 == 0 }
    }
}
