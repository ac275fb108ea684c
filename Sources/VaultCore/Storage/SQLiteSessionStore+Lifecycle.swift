// SPDX-License-Identifier: Apache-2.0

/// Filters of the audit log (`GET /v1/audit?session=&accessor=&action=`): every field given
/// must equal the event's; none given matches every event.
public struct AuditFilter: Sendable, Equatable {
    public var session: String?
    public var accessor: String?
    public var action: String?

    public init(session: String? = nil, accessor: String? = nil, action: String? = nil) {
        self.session = session
        self.accessor = accessor
        self.action = action
    }

    public var isEmpty: Bool { session == nil && accessor == nil && action == nil }
}

/// A page of tokens and the cursor of the next one (the last accessor of the page), if any.
public struct TokenPage: Sendable, Equatable {
    public var tokens: [TokenRecord]
    public var nextCursor: String?

    public init(tokens: [TokenRecord], nextCursor: String?) {
        self.tokens = tokens
        self.nextCursor = nextCursor
    }
}

// The lifecycle operations of the SQLite engines (file and memory): purge a tombstone, page
// the tokens, filter the audit log.
extension SQLiteSessionStore {
    public func purge(_ name: SessionName) throws(StorageError) {
        try write(purgesWAL: true) { connection in
            guard let (seq, revoked) = try connection.first(
                LifecycleSQL.seqAndRevokedByName, [.text(name.rawValue)], { ($0.int64(0), $0.int64(1) != 0) })
            else { throw StorageError.notFound }
            guard revoked else { throw StorageError.conflict(field: "name") }
            // Revocation deleted the peers already; a row from an older build may still have some.
            try connection.run(LifecycleSQL.deleteUsernames, [.integer(seq)])
            try connection.run(LifecycleSQL.deletePeers, [.integer(seq)])
            try connection.run(LifecycleSQL.deleteExportTime, [.integer(seq)])
            // The lease row (kept after a release so the epoch never repeats) goes with the
            // session: a name created again is a new session with epochs of its own.
            try connection.run(LifecycleSQL.deleteLease, [.integer(seq)])
            try connection.run(LifecycleSQL.deleteSession, [.integer(seq)])
        }
    }

    public func listTokens(after cursor: String?, limit: Int) throws(StorageError) -> TokenPage {
        guard limit >= 1 else { throw .invalidArgument(field: "limit", reason: "must be at least 1") }
        let wanted = Int64(min(limit, 1 << 30)) + 1
        let rows = try read { connection -> [TokenRecord]? in
            guard let cursor else {
                return try connection.all(LifecycleSQL.tokensFirst, [.integer(wanted)], Self.decodeToken)
            }
            guard let created = try connection.first(LifecycleSQL.tokenCreatedAt, [.text(cursor)], { $0.int64(0) }) else {
                return nil
            }
            return try connection.all(
                LifecycleSQL.tokensAfter, [.integer(created), .text(cursor), .integer(wanted)], Self.decodeToken)
        }
        guard let rows else { throw .invalidArgument(field: "after", reason: "no token has this accessor") }
        if rows.count > limit {
            let page = Array(rows.prefix(limit))
            return TokenPage(tokens: page, nextCursor: page.last?.accessor)
        }
        return TokenPage(tokens: rows, nextCursor: nil)
    }

    public func auditEvents(before id: Int64?, limit: Int, matching filter: AuditFilter) throws(StorageError) -> [AuditRecord] {
        guard limit >= 1 else { throw .invalidArgument(field: "limit", reason: "must be at least 1") }
        let values: [SQLiteValue] = [
            .integer(id ?? Int64.max), .init(filter.session), .init(filter.accessor), .init(filter.action),
            .integer(Int64(min(limit, 1 << 30))),
        ]
        return try read { connection in
            try connection.all(LifecycleSQL.auditMatching, values) { s in
                AuditRecord(
                    id: s.int64(0),
                    event: AuditEvent(
                        time: s.int64(1), accessor: s.text(2), action: s.text(3) ?? "", sessionName: s.text(4),
                        remoteAddress: s.text(5), outcome: s.text(6) ?? "", detail: s.text(7)))
            }
        }
    }
}

/// The statements of the lifecycle operations. Values are always bound, never inlined.
private enum LifecycleSQL {
    static let seqAndRevokedByName = SQLiteStatementKey(
        "SELECT seq, revoked_at IS NOT NULL FROM sessions WHERE name = ?1")
    static let deleteUsernames = SQLiteStatementKey("DELETE FROM peer_usernames WHERE session_seq = ?1")
    static let deletePeers = SQLiteStatementKey("DELETE FROM peers WHERE session_seq = ?1")
    static let deleteExportTime = SQLiteStatementKey("DELETE FROM session_exports WHERE session_seq = ?1")
    static let deleteLease = SQLiteStatementKey("DELETE FROM session_leases WHERE session_seq = ?1")
    static let deleteSession = SQLiteStatementKey(
        "DELETE FROM sessions WHERE seq = ?1 AND revoked_at IS NOT NULL AND sealed_auth_key IS NULL")

    static let tokenColumns = "accessor, hash, policy, display_name, created_at, expires_at, revoked_at"
    static let tokenCreatedAt = SQLiteStatementKey("SELECT created_at FROM tokens WHERE accessor = ?1")
    static let tokensFirst = SQLiteStatementKey(
        "SELECT \(tokenColumns) FROM tokens ORDER BY created_at, accessor LIMIT ?1")
    /// Row values: the tokens after (created_at, accessor) of the cursor, in the same order.
    static let tokensAfter = SQLiteStatementKey("""
        SELECT \(tokenColumns) FROM tokens WHERE (created_at, accessor) > (?1, ?2) \
        ORDER BY created_at, accessor LIMIT ?3
        """)

    /// Newest first below the cursor; a filter left NULL matches every row. Without an index on
    /// the filtered columns this walks the audit table backwards from the cursor until `limit`
    /// rows match (the rowid order is the time order).
    static let auditMatching = SQLiteStatementKey("""
        SELECT id, time, accessor, action, session_name, remote_address, outcome, detail FROM audit \
        WHERE id < ?1 AND (?2 IS NULL OR session_name = ?2) AND (?3 IS NULL OR accessor = ?3) \
        AND (?4 IS NULL OR action = ?4) ORDER BY id DESC LIMIT ?5
        """)
}
