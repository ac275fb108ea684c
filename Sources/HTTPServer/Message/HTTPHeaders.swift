// SPDX-License-Identifier: Apache-2.0

/// An ordered list of header fields with case-insensitive name lookup (RFC 9110 §5.1).
///
/// Order and duplicates are preserved exactly as received (or as added), which matters for
/// fields such as `Set-Cookie`. Lookups compare ASCII case-insensitively without allocating.
///
/// ```swift
/// var headers: HTTPHeaders = ["Content-Type": "application/json"]
/// headers.add(name: "Set-Cookie", value: "a=1")
/// headers["content-type"]                              // "application/json"
/// headers.containsToken("close", in: "Connection")     // false
/// ```
public struct HTTPHeaders: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral,
    CustomStringConvertible
{
    /// One field line.
    public typealias Field = (name: String, value: String)

    /// The fields in order.
    @usableFromInline var fields: [Field]

    /// Creates an empty header list.
    public init() { fields = [] }

    /// Creates a header list from `(name, value)` pairs, in order.
    public init(_ fields: [(String, String)]) {
        self.fields = fields.map { (name: $0.0, value: $0.1) }
    }

    /// Creates a header list from a literal; order is kept and duplicate names are allowed.
    public init(dictionaryLiteral elements: (String, String)...) {
        fields = elements.map { (name: $0.0, value: $0.1) }
    }

    /// An empty list with room for `capacity` fields.
    init(reservingCapacity capacity: Int) {
        fields = []
        fields.reserveCapacity(capacity)
    }

    /// Number of field lines.
    public var count: Int { fields.count }
    /// True when there is no field.
    public var isEmpty: Bool { fields.isEmpty }

    /// The value of the first field named `name` (case-insensitive), or nil.
    public subscript(name: String) -> String? {
        for field in fields where HTTPHeaders.namesEqual(field.name, name) { return field.value }
        return nil
    }

    /// Every value of the fields named `name` (case-insensitive), in order.
    public func values(for name: String) -> [String] {
        fields.compactMap { HTTPHeaders.namesEqual($0.name, name) ? $0.value : nil }
    }

    /// True if at least one field is named `name` (case-insensitive).
    public func contains(_ name: String) -> Bool {
        fields.contains { HTTPHeaders.namesEqual($0.name, name) }
    }

    /// Appends a field, keeping any existing fields with the same name.
    public mutating func add(name: String, value: String) { fields.append((name: name, value: value)) }

    /// Removes every field named `name`, then appends `name: value`.
    public mutating func replaceOrAdd(name: String, value: String) {
        remove(name: name)
        add(name: name, value: value)
    }

    /// Removes every field named `name` (case-insensitive).
    public mutating func remove(name: String) {
        fields.removeAll { HTTPHeaders.namesEqual($0.name, name) }
    }

    /// True if any comma-separated element of any `name` field equals `token`, case-insensitively
    /// (the list syntax of RFC 9110 §5.6.1, used by `Connection`).
    public func containsToken(_ token: String, in name: String) -> Bool {
        for field in fields where HTTPHeaders.namesEqual(field.name, name) {
            if HTTPHeaders.listContainsToken(Array(field.value.utf8), token) { return true }
        }
        return false
    }

    /// True if the comma-separated list `list` has an element equal to `token` (ASCII
    /// case-insensitive, optional whitespace around elements ignored).
    static func listContainsToken(_ list: [UInt8], _ token: String) -> Bool {
        let want = Array(token.utf8)
        var start = 0
        while start <= list.count {
            var end = start
            while end < list.count && list[end] != UInt8(ascii: ",") { end += 1 }
            var lo = start, hi = end
            while lo < hi && (list[lo] == 0x20 || list[lo] == 0x09) { lo += 1 }
            while hi > lo && (list[hi - 1] == 0x20 || list[hi - 1] == 0x09) { hi -= 1 }
            if hi - lo == want.count {
                var same = true
                for i in 0..<want.count where asciiLower(list[lo + i]) != asciiLower(want[i]) {
                    same = false
                    break
                }
                if same { return true }
            }
            start = end + 1
        }
        return false
    }

    /// Iterates the fields in order.
    public func makeIterator() -> IndexingIterator<[Field]> { fields.makeIterator() }

    /// Equal when both hold the same fields in the same order (names compared exactly).
    public static func == (lhs: HTTPHeaders, rhs: HTTPHeaders) -> Bool {
        lhs.fields.count == rhs.fields.count
            && zip(lhs.fields, rhs.fields).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    /// `[Name: value, …]`, for debugging (may contain credentials: do not log in production).
    public var description: String {
        "[" + fields.map { "\($0.name): \($0.value)" }.joined(separator: ", ") + "]"
    }

    /// ASCII case-insensitive comparison of two field names.
    @inlinable
    public static func namesEqual(_ a: String, _ b: String) -> Bool {
        var a = a, b = b
        return a.withUTF8 { pa in
            b.withUTF8 { pb in
                guard pa.count == pb.count else { return false }
                for i in 0..<pa.count where asciiLower(pa[i]) != asciiLower(pb[i]) { return false }
                return true
            }
        }
    }
}

/// Lowercases an ASCII letter byte; every other byte is returned unchanged.
@inlinable @inline(__always)
func asciiLower(_ b: UInt8) -> UInt8 { (b &- 0x41) < 26 ? b | 0x20 : b }
