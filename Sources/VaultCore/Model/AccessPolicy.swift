// SPDX-License-Identifier: Apache-2.0

/// What a token may do: operations × session names or name prefixes, until an expiry.
///
/// The root token has ``root``. Scoped tokens never get more than root gives them; only root
/// manages tokens.
public struct AccessPolicy: Equatable, Sendable {
    /// One kind of access.
    public enum Operation: String, CaseIterable, Sendable, Comparable {
        /// Metadata, listing, peers look-ups.
        case read
        /// Session strings and files (the secret).
        case export
        /// Create, change, revoke, peers upsert.
        case write
        /// Audit log, status, key rotation.
        case admin
        /// Acquire, renew, release and read a session's lease (`docs/leases.md`).
        case lease

        public static func < (a: Operation, b: Operation) -> Bool { a.rawValue < b.rawValue }
    }

    /// Allowed operations.
    public var operations: Set<Operation>
    /// Exact session names covered.
    public var sessions: Set<String>
    /// Name prefixes covered.
    public var prefixes: [String]
    /// True for the root token: every operation on every session, plus token management.
    public var isRoot: Bool

    public init(operations: Set<Operation>, sessions: Set<String> = [], prefixes: [String] = [], isRoot: Bool = false) {
        self.operations = operations
        self.sessions = sessions
        self.prefixes = prefixes
        self.isRoot = isRoot
    }

    /// The root policy.
    public static let root = AccessPolicy(operations: Set(Operation.allCases), isRoot: true)

    /// True when the policy covers `operation` on the session `name`.
    public func allows(_ operation: Operation, session name: String) -> Bool {
        if isRoot { return true }
        guard operations.contains(operation) else { return false }
        return covers(name)
    }

    /// True when the policy allows `operation` at all (on some session, or globally for admin).
    public func allows(_ operation: Operation) -> Bool {
        isRoot || operations.contains(operation)
    }

    /// True when `name` is within the policy's sessions or prefixes.
    public func covers(_ name: String) -> Bool {
        if isRoot { return true }
        if sessions.contains(name) { return true }
        return prefixes.contains { name.hasPrefix($0) }
    }

    /// True when the policy can see every session (root, or an empty-string prefix).
    public var coversEverything: Bool { isRoot || prefixes.contains("") }
}
