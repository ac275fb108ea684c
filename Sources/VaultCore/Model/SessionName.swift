// SPDX-License-Identifier: Apache-2.0

/// The unique name of a vaulted session: 1–64 characters of `[A-Za-z0-9._-]`, not made only of
/// dots (`.`, `..` and `...` are refused: proxies and clients normalise dot segments of a path,
/// so `/v1/sessions/..` would reach another resource than the one named).
public struct SessionName: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Longest valid name.
    public static let maxLength = 64

    /// The validated name.
    public let rawValue: String

    /// - Throws: ``ModelError/invalidField(_:_:)`` naming `name`.
    public init(_ text: String) throws(ModelError) {
        try self.init(stored: text)
        guard !Self.isOnlyDots(text) else { throw .invalidField("name", "must not be made only of dots") }
    }

    /// A name as the store may hold it: the rules of ``init(_:)`` less the one about dots, which
    /// came later. For rows read back and for paging cursors (which are stored names), so that a
    /// session named before the rule still lists; never for a new name.
    /// - Throws: ``ModelError/invalidField(_:_:)`` naming `name`.
    public init(stored text: String) throws(ModelError) {
        let utf8 = text.utf8
        guard !utf8.isEmpty else { throw .invalidField("name", "must not be empty") }
        guard utf8.count <= Self.maxLength else {
            throw .invalidField("name", "must be at most \(Self.maxLength) characters")
        }
        // Checked on the contiguous bytes when there are some (every native string): a name is
        // validated on every request that names a session.
        let allowed = utf8.withContiguousStorageIfAvailable { $0.allSatisfy(Self.isAllowed) } ?? utf8.allSatisfy(Self.isAllowed)
        guard allowed else {
            throw .invalidField("name", "may contain only letters, digits, '.', '_' and '-'")
        }
        rawValue = text
    }

    /// True when every byte of `text` is `.` (and there is at least one).
    static func isOnlyDots(_ text: String) -> Bool {
        !text.utf8.isEmpty && text.utf8.allSatisfy { $0 == UInt8(ascii: ".") }
    }

    /// True for the bytes `[A-Za-z0-9._-]`.
    public static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    public static func < (lhs: SessionName, rhs: SessionName) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { rawValue }
}
