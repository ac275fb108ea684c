// SPDX-License-Identifier: Apache-2.0

/// ``LeaseRepository`` on the SQLite engines (file and memory): the `session_leases` table and
/// `sessions.exclusive` of schema version 3. Every write goes through the writer's group
/// commit; every lease write is conditional on the epoch in one statement.
extension SQLiteSessionStore {
    public func leaseStates() throws(StorageError) -> [LeaseSessionState] {
        try read { connection in
            let statement = try connection.cached(LeaseSQL.allStates)
            defer { statement.reset() }
            var rows: [LeaseSessionState] = []
            while try statement.step() { rows.append(try Self.decodeLeaseState(statement)) }
            return rows
        }
    }

    public func leaseState(of name: SessionName) throws(StorageError) -> LeaseSessionState? {
        try read { connection in
            let statement = try connection.cached(LeaseSQL.stateByName)
            defer { statement.reset() }
            try statement.bind([.text(name.rawValue)])
            return try statement.step() ? try Self.decodeLeaseState(statement) : nil
        }
    }

    public func acquireLease(
        _ lease: LeaseRecord, in name: SessionName, ifEpoch expectedEpoch: Int64,
        completion: @escaping @Sendable (Result<Bool, StorageError>) -> Void
    ) {
        guard lease.state == .held, lease.epoch == expectedEpoch + 1, !lease.idHash.isEmpty, expectedEpoch >= 0 else {
            completion(.failure(.invalidArgument(field: "epoch", reason: "a new lease is held at the next epoch")))
            return
        }
        writeLater({ connection in
            let seq = try Self.liveLeaseSeq(name, on: connection)
            let values: [SQLiteValue] = [
                .integer(seq), .integer(lease.epoch), .blob(lease.idHash), .text(lease.holder),
                .integer(Int64(lease.ttlSeconds)), .integer(lease.acquiredAt), .integer(expectedEpoch),
            ]
            let statement = try connection.cached(LeaseSQL.acquire)
            defer { statement.reset() }
            try statement.bind(values)
            while try statement.step() {}
            return connection.changes == 1
        }, completion: completion)
    }

    @discardableResult
    public func setLease(in name: SessionName, epoch: Int64, state: LeaseRecord.State, ttlSeconds: Int?) throws(StorageError) -> Bool {
        try write { connection in
            guard let seq = try Self.leaseSeq(name, on: connection) else { throw StorageError.notFound }
            let statement = try connection.cached(state == .held ? LeaseSQL.renew : LeaseSQL.end)
            defer { statement.reset() }
            if state == .held {
                try statement.bind([.integer(seq), .integer(epoch), ttlSeconds.map { .integer(Int64($0)) } ?? .null])
            } else {
                try statement.bind([.integer(seq), .integer(epoch), .text(state.rawValue)])
            }
            while try statement.step() {}
            return connection.changes == 1
        }
    }

    public func setExclusive(_ exclusive: Bool, for name: SessionName) throws(StorageError) {
        try write { connection in try Self.writeExclusive(exclusive, name, on: connection) }
    }

    public func setExclusive(
        _ exclusive: Bool, for name: SessionName, completion: @escaping @Sendable (Result<Void, StorageError>) -> Void
    ) {
        writeLater({ connection in try Self.writeExclusive(exclusive, name, on: connection) }, completion: completion)
    }

    // MARK: Rows

    private static func writeExclusive(_ exclusive: Bool, _ name: SessionName, on connection: SQLiteConnection) throws {
        _ = try liveLeaseSeq(name, on: connection)
        let statement = try connection.cached(LeaseSQL.setExclusive)
        defer { statement.reset() }
        try statement.bind([.integer(exclusive ? 1 : 0), .text(name.rawValue)])
        while try statement.step() {}
    }

    /// The internal key of a session (live or not); writer only.
    private static func leaseSeq(_ name: SessionName, on connection: SQLiteConnection) throws -> Int64? {
        let statement = try connection.cached(LeaseSQL.seqAndRevoked)
        defer { statement.reset() }
        try statement.bind([.text(name.rawValue)])
        return try statement.step() ? statement.int64(0) : nil
    }

    /// The internal key of a live session; writer only.
    private static func liveLeaseSeq(_ name: SessionName, on connection: SQLiteConnection) throws -> Int64 {
        let statement = try connection.cached(LeaseSQL.seqAndRevoked)
        defer { statement.reset() }
        try statement.bind([.text(name.rawValue)])
        guard try statement.step() else { throw StorageError.notFound }
        if statement.int64(1) != 0 { throw StorageError.revoked }
        return statement.int64(0)
    }

    /// Columns of `LeaseSQL.stateColumns`.
    private static func decodeLeaseState(_ s: SQLiteStatement) throws -> LeaseSessionState {
        guard let text = s.text(0), let name = try? SessionName(stored: text) else { throw StorageError.corrupt }
        let lease: LeaseRecord
        if s.isNull(3) {
            lease = LeaseRecord(state: .free, epoch: 0)
        } else {
            guard let stateText = s.text(4), let state = LeaseRecord.State(rawValue: stateText) else { throw StorageError.corrupt }
            lease = LeaseRecord(
                state: state, epoch: s.int64(3), idHash: s.blob(5) ?? [], holder: s.text(6) ?? "",
                ttlSeconds: Int(truncatingIfNeeded: s.int64(7)), acquiredAt: s.int64(8))
        }
        return LeaseSessionState(name: name, exclusive: s.int64(1) != 0, revoked: s.int64(2) != 0, lease: lease)
    }
}

/// The lease statements.
enum LeaseSQL {
    static let stateColumns = """
        s.name, s.exclusive, s.revoked_at IS NOT NULL, l.epoch, l.state, l.id_hash, l.holder, l.ttl_seconds, l.acquired_at
        """
    static let allStates = SQLiteStatementKey("""
        SELECT \(stateColumns) FROM sessions s LEFT JOIN session_leases l ON l.session_seq = s.seq \
        WHERE s.exclusive = 1 OR l.session_seq IS NOT NULL ORDER BY s.name
        """)
    static let stateByName = SQLiteStatementKey("""
        SELECT \(stateColumns) FROM sessions s LEFT JOIN session_leases l ON l.session_seq = s.seq WHERE s.name = ?1
        """)
    static let seqAndRevoked = SQLiteStatementKey("SELECT seq, revoked_at IS NOT NULL FROM sessions WHERE name = ?1")
    /// A new lease at epoch ?2 if the stored epoch is ?7 (no row: epoch 0): a first lease
    /// inserts, a later one updates the row on the condition of its epoch. The `WHERE` of the
    /// `SELECT` also keeps the parser from reading `ON CONFLICT` as a join constraint.
    static let acquire = SQLiteStatementKey("""
        INSERT INTO session_leases (session_seq, epoch, state, id_hash, holder, ttl_seconds, acquired_at) \
        SELECT ?1, ?2, 'held', ?3, ?4, ?5, ?6 \
        WHERE ?7 = 0 OR EXISTS (SELECT 1 FROM session_leases WHERE session_seq = ?1) \
        ON CONFLICT (session_seq) DO UPDATE SET epoch = excluded.epoch, state = 'held', id_hash = excluded.id_hash, \
        holder = excluded.holder, ttl_seconds = excluded.ttl_seconds, acquired_at = excluded.acquired_at \
        WHERE session_leases.epoch = ?7
        """)
    static let renew = SQLiteStatementKey("""
        UPDATE session_leases SET ttl_seconds = coalesce(?3, ttl_seconds) \
        WHERE session_seq = ?1 AND epoch = ?2 AND state = 'held'
        """)
    static let end = SQLiteStatementKey("""
        UPDATE session_leases SET state = ?3, id_hash = NULL, holder = CASE WHEN ?3 = 'free' THEN '' ELSE holder END \
        WHERE session_seq = ?1 AND epoch = ?2 AND state <> 'free'
        """)
    static let setExclusive = SQLiteStatementKey("UPDATE sessions SET exclusive = ?1 WHERE name = ?2")
}
