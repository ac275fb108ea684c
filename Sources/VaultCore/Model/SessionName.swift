// SPDX-License-Identifier: Apache-2.0

/// The unique name of a vaulted session: 1–64 characters of `[A-Za-z0-9._-]`.
public struct SessionName: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Longest valid name.
    public static let maxLength = 64

    /// The validated name.
    public let rawValue: String

    /// - Throws: ``ModelError/invalidField(_:_:)`` naming `name`.
    public init(_ text: String) throws(ModelError) {
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
