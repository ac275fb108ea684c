// SPDX-License-Identifier: Apache-2.0

/// Strict parsing and canonical rendering of IP addresses, as Telethon's `StringSession` needs
/// them (it packs `ipaddress.ip_address(text).packed` and renders `.compressed`).
///
/// Written by hand so the codec stays pure (no `inet_pton`, no locale, no resolver).
public enum IPAddressText {
    /// Longest text accepted: a full IPv6 address with an embedded IPv4 tail is 45 characters.
    public static let maxLength = 45

    // MARK: Rendering

    /// Dotted-quad text of 4 bytes; nil for any other count.
    public static func formatIPv4(_ bytes: some Collection<UInt8>) -> String? {
        guard bytes.count == 4 else { return nil }
        return bytes.map { String($0) }.joined(separator: ".")
    }

    /// RFC 5952 §4 text of 16 bytes; nil for any other count.
    ///
    /// Lower-case hex without leading zeros, and the longest run of two or more zero groups
    /// (the first one on a tie) replaced by `::` — exactly Python's `IPv6Address.compressed`.
    /// IPv4-mapped addresses stay in hex (`::ffff:102:304`), as Python ≤ 3.12 (used to make the
    /// vectors) renders them; RFC 5952 §5 would print the tail dotted.
    public static func formatIPv6(_ bytes: some Collection<UInt8>) -> String? {
        guard bytes.count == 16 else { return nil }
        let raw = Array(bytes)
        var groups = [UInt16](repeating: 0, count: 8)
        for index in 0..<8 {
            groups[index] = UInt16(raw[2 * index]) << 8 | UInt16(raw[2 * index + 1])
        }
        // Longest run of zero groups (length ≥ 2, RFC 5952 §4.2.2), first on a tie (§4.2.3).
        var bestStart = -1
        var bestLength = 1
        var index = 0
        while index < 8 {
            guard groups[index] == 0 else {
                index += 1
                continue
            }
            let start = index
            while index < 8 && groups[index] == 0 { index += 1 }
            if index - start > bestLength {
                bestStart = start
                bestLength = index - start
            }
        }
        func hex(_ range: Range<Int>) -> String {
            groups[range].map { String($0, radix: 16) }.joined(separator: ":")
        }
        guard bestStart >= 0 else { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }

    // MARK: Parsing

    /// The 4 bytes of a dotted quad: exactly four decimal parts 0–255, no leading zeros (as
    /// Python's `ipaddress` since 3.9.5), no sign, no whitespace. Nil otherwise.
    public static func parseIPv4(_ text: some StringProtocol) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count <= maxLength else { return nil }
        return parseIPv4(utf8[...])
    }

    /// Dotted-quad parser over bytes, shared with the IPv4 tail of an IPv6 address.
    /// Digits accumulate per part; a part may not start with `0` unless it is exactly `0`, and
    /// the 3-digit / 255 limits are checked on every digit so `value` never overflows.
    private static func parseIPv4(_ utf8: ArraySlice<UInt8>) -> [UInt8]? {
        var out = [UInt8]()
        out.reserveCapacity(4)
        var value = 0
        var digits = 0
        var leadingZero = false
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                if digits == 1 && leadingZero { return nil }
                if digits == 0 { leadingZero = byte == UInt8(ascii: "0") }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
                digits += 1
                guard digits <= 3, value <= 255 else { return nil }
            case UInt8(ascii: "."):
                guard digits > 0, out.count < 3 else { return nil }
                out.append(UInt8(value))
                value = 0
                digits = 0
            default:
                return nil
            }
        }
        guard digits > 0, out.count == 3 else { return nil }
        out.append(UInt8(value))
        return out
    }

    /// The 16 bytes of an IPv6 address (RFC 4291 §2.2): 1–4 hex digits per group, at most one
    /// `::` standing for one or more zero groups, optionally a dotted-quad tail. No zone id,
    /// no brackets, no whitespace. Nil otherwise.
    public static func parseIPv6(_ text: some StringProtocol) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count >= 2, utf8.count <= maxLength else { return nil }
        // Split around the single `::`, if any (RFC 4291 §2.2 form 2); a second one is ambiguous.
        var gap: Int? = nil
        var index = 0
        while index + 1 < utf8.count {
            if utf8[index] == UInt8(ascii: ":") && utf8[index + 1] == UInt8(ascii: ":") {
                guard gap == nil else { return nil }
                gap = index
                index += 2
            } else {
                index += 1
            }
        }
        let head: [UInt16]
        let tail: [UInt16]
        if let gap {
            guard let h = parseGroups(utf8[0..<gap], allowIPv4Tail: false),
                let t = parseGroups(utf8[(gap + 2)...], allowIPv4Tail: true),
                h.count + t.count <= 7
            else { return nil }
            head = h
            tail = t
        } else {
            guard let all = parseGroups(utf8[...], allowIPv4Tail: true), all.count == 8 else {
                return nil
            }
            head = all
            tail = []
        }
        let groups = head + [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        var out = [UInt8]()
        out.reserveCapacity(16)
        for group in groups {
            out.append(UInt8(group >> 8))
            out.append(UInt8(group & 0xFF))
        }
        return out
    }

    /// Groups separated by single colons; empty input gives no groups. A dotted quad is allowed
    /// as the last element (two groups).
    private static func parseGroups(_ utf8: ArraySlice<UInt8>, allowIPv4Tail: Bool) -> [UInt16]? {
        guard !utf8.isEmpty else { return [] }
        var groups = [UInt16]()
        var start = utf8.startIndex
        while true {
            let end = utf8[start...].firstIndex(of: UInt8(ascii: ":")) ?? utf8.endIndex
            let part = utf8[start..<end]
            let isLast = end == utf8.endIndex
            if isLast, allowIPv4Tail, part.contains(UInt8(ascii: ".")) {
                guard let v4 = parseIPv4(part) else { return nil }
                groups.append(UInt16(v4[0]) << 8 | UInt16(v4[1]))
                groups.append(UInt16(v4[2]) << 8 | UInt16(v4[3]))
            } else {
                guard let group = parseHexGroup(part) else { return nil }
                groups.append(group)
            }
            guard groups.count <= 8 else { return nil }
            if isLast { return groups }
            start = end + 1
        }
    }

    /// One IPv6 group: 1–4 hex digits of either case (RFC 4291 §2.2 allows leading zeros).
    private static func parseHexGroup(_ utf8: ArraySlice<UInt8>) -> UInt16? {
        guard (1...4).contains(utf8.count) else { return nil }
        var value: UInt16 = 0
        for byte in utf8 {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt16(digit)
        }
        return value
    }

    /// The canonical text of an address given in any accepted form (`2001:067c::000a` →
    /// `2001:67c::a`), or nil when it is not an IP address.
    public static func canonical(_ text: some StringProtocol) -> String? {
        if let v4 = parseIPv4(text) { return formatIPv4(v4) }
        if let v6 = parseIPv6(text) { return formatIPv6(v6) }
        return nil
    }
}
