// SPDX-License-Identifier: Apache-2.0

/// The session names a scoped token may see, as a few disjoint parts in name order: exact names
/// and name prefixes. A listing walks the parts from its cursor, one index range (or one point
/// look-up) each, so a page costs the parts it passes plus the rows it returns, however many
/// sessions outside the scope sit between them; neither its rows nor its cursor ever name a
/// session outside the scope.
///
/// Names compare as bytes (SQLite's BINARY collation; names are ASCII).
public struct NameScope: Sendable, Equatable {
    /// One part of a scope.
    public enum Part: Sendable, Equatable {
        /// Exactly this name.
        case name(String)
        /// Every name starting with this prefix.
        case prefix(String)

        /// The smallest name the part covers.
        var lowerBound: String {
            switch self {
            case .name(let n): return n
            case .prefix(let p): return p
            }
        }
    }

    /// Disjoint parts in ascending name order: no prefix starts with another, and no name starts
    /// with a prefix.
    public let parts: [Part]

    /// The scope covering exactly `names` and every name starting with one of `prefixes`.
    public init(names: some Sequence<String>, prefixes: some Sequence<String>) {
        // Shortest prefixes first: a prefix starting with a kept one adds nothing.
        var kept: [String] = []
        for p in Set(prefixes).sorted(by: { $0.utf8.count < $1.utf8.count }) where !kept.contains(where: { p.hasBytePrefix($0) }) {
            kept.append(p)
        }
        var parts = kept.map(Part.prefix)
        for n in Set(names) where !kept.contains(where: { n.hasBytePrefix($0) }) {
            parts.append(.name(n))
        }
        // Disjoint parts: ordering by lower bound orders them whole.
        parts.sort { Self.precedes($0.lowerBound, $1.lowerBound) }
        self.parts = parts
    }

    /// The part of this scope whose names also start with `prefix` (all of it when nil).
    public func narrowed(toPrefix prefix: String?) -> NameScope {
        guard let prefix else { return self }
        var names: [String] = []
        var prefixes: [String] = []
        for part in parts {
            switch part {
            case .name(let n):
                if n.hasBytePrefix(prefix) { names.append(n) }
            case .prefix(let p):
                if p.hasBytePrefix(prefix) {
                    prefixes.append(p)
                } else if prefix.hasBytePrefix(p) {
                    prefixes.append(prefix)
                }
            }
        }
        return NameScope(names: names, prefixes: prefixes)
    }

    /// True when the scope covers `name`.
    public func contains(_ name: String) -> Bool {
        parts.contains { part in
            switch part {
            case .name(let n): return n == name
            case .prefix(let p): return name.hasBytePrefix(p)
            }
        }
    }

    /// Byte-wise `a < b`, as SQLite's BINARY collation orders text.
    static func precedes(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }
}

extension String {
    /// `hasPrefix` on bytes (names and prefixes are ASCII; no Unicode rules apply).
    func hasBytePrefix(_ prefix: String) -> Bool {
        utf8.starts(with: prefix.utf8)
    }
}
