// SPDX-License-Identifier: Apache-2.0
import HTTPServer

/// The reverse proxies whose `X-Forwarded-For` the vault believes (`SESSION_VAULT_TRUSTED_PROXIES`:
/// addresses or CIDR ranges, IPv4 or IPv6, separated by commas or spaces).
///
/// The client address used for the audit log and the failed-authentication throttle is the
/// connection's peer, unless that peer is a trusted proxy: then it is the rightmost address of
/// `X-Forwarded-For` that is not itself a trusted proxy (each proxy appends the address it saw,
/// so everything left of that one was written by the client and proves nothing). A request from
/// anyone else has its `X-Forwarded-For` ignored. The server's per-address connection slots stay
/// on the socket's address.
public struct TrustedProxies: Sendable, Equatable {
    /// One range: the address bytes (4 or 16) and the prefix length.
    struct Range: Sendable, Equatable {
        var bytes: [UInt8]
        var prefix: Int

        func contains(_ address: [UInt8]) -> Bool {
            guard address.count == bytes.count else { return false }
            var bits = prefix
            var i = 0
            while bits > 0 {
                let mask: UInt8 = bits >= 8 ? 0xFF : ~(0xFF >> UInt8(bits))
                if address[i] & mask != bytes[i] & mask { return false }
                bits -= 8
                i += 1
            }
            return true
        }
    }

    /// The ranges; empty: no proxy is trusted.
    let ranges: [Range]

    /// No trusted proxy (the default): `X-Forwarded-For` is always ignored.
    public static let none = TrustedProxies(ranges: [])

    init(ranges: [Range]) { self.ranges = ranges }

    /// Whether no proxy is trusted.
    public var isEmpty: Bool { ranges.isEmpty }

    /// Parses `10.0.0.0/8, 127.0.0.1 ::1 fd00::/8`.
    /// - Throws: ``ServiceConfiguration/Error`` naming the entry that is not an address or range.
    public static func parse(_ text: String) throws(ServiceConfiguration.Error) -> TrustedProxies {
        var ranges: [Range] = []
        for entry in text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }) {
            let parts = entry.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2, let bytes = address(String(parts[0])) else {
                throw ServiceConfiguration.Error(
                    "SESSION_VAULT_TRUSTED_PROXIES: '\(entry)' is not an IP address or CIDR range (like 10.0.0.0/8 or ::1)")
            }
            var prefix = bytes.count * 8
            if parts.count == 2 {
                guard let p = ServiceConfiguration.parseDecimal(String(parts[1])), p <= bytes.count * 8 else {
                    throw ServiceConfiguration.Error(
                        "SESSION_VAULT_TRUSTED_PROXIES: '\(entry)' has a bad prefix length (0…\(bytes.count * 8))")
                }
                prefix = p
            }
            ranges.append(Range(bytes: bytes, prefix: prefix))
        }
        return TrustedProxies(ranges: ranges)
    }

    /// Whether `host` (an address without port) is a trusted proxy.
    public func trusts(_ host: String) -> Bool {
        guard !ranges.isEmpty, let bytes = Self.address(host) else { return false }
        return ranges.contains { $0.contains(Self.unmapped(bytes)) || $0.contains(bytes) }
    }

    /// The client's host for a request whose connection came from `peerHost`, given the values
    /// of its `X-Forwarded-For` fields (see the type's description).
    public func clientHost(peerHost: String, forwardedFor: [String]) -> String {
        guard trusts(peerHost) else { return peerHost }
        var nearest = peerHost
        for value in forwardedFor.reversed() {
            for item in value.split(separator: ",").reversed() {
                let candidate = Self.stripped(item)
                // Not an address: our proxy did not write it; stop at the last hop we believe.
                guard Self.address(candidate) != nil else { return nearest }
                if !trusts(candidate) { return candidate }
                nearest = candidate
            }
        }
        return nearest
    }

    // MARK: - Address parsing (no C library in this module)

    /// An entry without spaces, brackets or an IPv4 port (`[::1]:80` → `::1`, `1.2.3.4:5` → `1.2.3.4`).
    static func stripped(_ item: Substring) -> String {
        var s = item.trimmingCharacters(in: " \t")
        if s.hasPrefix("["), let close = s.firstIndex(of: "]") {
            s = String(s[s.index(after: s.startIndex)..<close])
        } else if s.filter({ $0 == ":" }).count == 1, let colon = s.firstIndex(of: ":") {
            s = String(s[..<colon])
        }
        return s
    }

    /// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as its IPv4 bytes; anything else unchanged.
    static func unmapped(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF else {
            return bytes
        }
        return Array(bytes[12..<16])
    }

    /// The 4 or 16 bytes of a textual IPv4 or IPv6 address, or nil.
    static func address(_ text: String) -> [UInt8]? {
        if !text.contains(":") { return ipv4(Substring(text)) }
        var s = Substring(text)
        if let percent = s.firstIndex(of: "%") { s = s[..<percent] }  // A zone id.
        var tail: [UInt8] = []
        if let lastColon = s.lastIndex(of: ":"), s[s.index(after: lastColon)...].contains(".") {
            guard let v4 = ipv4(s[s.index(after: lastColon)...]) else { return nil }
            tail = v4
            s = s[...lastColon]
            if s.hasSuffix("::") == false { s = s.dropLast() }
        }
        var halves = [String(s)]
        if let gap = s.indices.first(where: { s[$0] == ":" && s.index(after: $0) < s.endIndex && s[s.index(after: $0)] == ":" }) {
            halves = [String(s[..<gap]), String(s[s.index(gap, offsetBy: 2)...])]
            if halves[1].contains("::") { return nil }
        }
        func groups(_ part: String) -> [UInt8]? {
            if part.isEmpty { return [] }
            var out: [UInt8] = []
            for g in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(g.count), let v = UInt16(g, radix: 16) else { return nil }
                out += [UInt8(v >> 8), UInt8(v & 0xFF)]
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        let wanted = 16 - tail.count
        if halves.count == 1 {
            guard head.count == wanted else { return nil }
            return head + tail
        }
        guard let rest = groups(halves[1]), head.count + rest.count < wanted else { return nil }
        return head + [UInt8](repeating: 0, count: wanted - head.count - rest.count) + rest + tail
    }

    /// The 4 bytes of a dotted-quad IPv4 address, or nil.
    static func ipv4(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard (1...3).contains(p.count), p.allSatisfy({ $0.isASCII && $0.isNumber }), let v = UInt8(p) else { return nil }
            out.append(v)
        }
        return out
    }
}

extension String {
    /// The string without leading and trailing characters of `set`.
    fileprivate func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String { String(self).trimmingCharacters(in: set) }
}
