// SPDX-License-Identifier: Apache-2.0

/// ``LeaseRepository`` on PostgreSQL: `session_leases` and `sessions.exclusive` (schema version 2
/// of ``PostgresSchema``), with the SQLite engine's meaning. Every lease write is conditional on
/// the epoch in one statement, under the session row's lock.
///
/// Limit (docs/postgres.md): lease *timing* is judged by each vault process's ``LeaseBook`` on its
/// monotonic clock, as with SQLite. Several instances on one database share the stored epochs
/// (a stale instance's acquisition fails its compare-and-set), but not the expiry clock.
extension PostgresSessionStore {
    public func leaseStates() throws(StorageError) -> [LeaseSessionState] {
        try read { c in
            let r = try c.query(PGLeaseSQL.allStates)
            return try (0..<r.count).map { try Self.decodeLeaseState(r, $0) }
        }
    }

    public func leaseState(of name: SessionName) throws(StorageError) -> LeaseSessionState? {
        try read { c in
            let r = try c.query(PGLeaseSQL.stateByName, [.text(name.rawValue)])
            return r.count > 0 ? try Self.decodeLeaseState(r, 0) : nil
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
        let box = PGBox<Bool>()
        writer.submit({ c in
            let seq = try Self.liveSeq(name, on: c)
            let values: [PGValue] = [
                .int(seq), .int(lease.epoch), .bytes(lease.idHash), .text(lease.holder),
                .int(Int64(lease.ttlSeconds)), .int(lease.acquiredAt), .int(expectedEpoch),
            ]
            box.value = try c.query(PGLeaseSQL.acquire, values).count == 1
        }) { error in
            if let error {
                completion(.failure(error))
            } else {
                completion(.success(box.value ?? false))
            }
        }
    }

    @discardableResult
    public func setLease(in name: SessionName, epoch: Int64, state: LeaseRecord.State, ttlSeconds: Int?) throws(StorageError) -> Bool {
        try write { c in
            let found = try c.query(PGSQL.lockByName, [.text(name.rawValue)])
            guard found.count > 0 else { throw StorageError.notFound }
            let seq = found.int64(0, 0)
            let r: PGRows
            if state == .held {
                r = try c.query(PGLeaseSQL.renew, [.int(seq), .int(epoch), .init(ttlSeconds.map(Int64.init))])
            } else {
                r = try c.query(PGLeaseSQL.end, [.int(seq), .int(epoch), .text(state.rawValue)])
            }
            return r.count == 1
        }
    }

    public func setExclusive(_ exclusive: Bool, for name: SessionName) throws(StorageError) {
        try write { c in try Self.writeExclusive(exclusive, name, on: c) }
    }

    public func setExclusive(
        _ exclusive: Bool, for name: SessionName, completion: @escaping @Sendable (Result<Void, StorageError>) -> Void
    ) {
        writer.submit({ c in try Self.writeExclusive(exclusive, name, on: c) }) { error in
            if let error { completion(.failure(error)) } else { completion(.success(())) }
        }
    }

    private static func writeExclusive(_ exclusive: Bool, _ name: SessionName, on c: PGConnection) throws {
        let seq = try liveSeq(name, on: c)
        try c.query(PGLeaseSQL.setExclusive, [.int(exclusive ? 1 : 0), .int(seq)])
    }

    /// Columns of ``PGLeaseSQL/stateColumns`` in row `i`.
    private static func decodeLeaseState(_ r: PGRows, _ i: Int) throws -> LeaseSessionState {
        guard let text = r.text(i, 0), let name = try? SessionName(stored: text) else { throw StorageError.corrupt }
        let lease: LeaseRecord
        if r.isNull(i, 3) {
            lease = LeaseRecord(state: .free, epoch: 0)
        } else {
            guard let stateText = r.text(i, 4), let state = LeaseRecord.State(rawValue: stateText) else { throw StorageError.corrupt }
            lease = LeaseRecord(
                state: state, epoch: r.int64(i, 3), idHash: r.bytes(i, 5) ?? [], holder: r.text(i, 6) ?? "",
                ttlSeconds: Int(truncatingIfNeeded: r.int64(i, 7)), acquiredAt: r.int64(i, 8))
        }
        return LeaseSessionState(name: name, exclusive: r.int64(i, 1) != 0, revoked: r.bool(i, 2), lease: lease)
    }
}

/// The lease statements (parameters cast explicitly: one parameter is used in two contexts).
enum PGLeaseSQL {
    static let stateColumns = """
        s.name, s.exclusive, s.revoked_at IS NOT NULL, l.epoch, l.state, l.id_hash, l.holder, l.ttl_seconds, l.acquired_at
        """
    static let allStates = """
        SELECT \(stateColumns) FROM sessions s LEFT JOIN session_leases l ON l.session_seq = s.seq \
        WHERE s.exclusive = 1 OR l.session_seq IS NOT NULL ORDER BY s.name
        """
    static let stateByName = """
        SELECT \(stateColumns) FROM sessions s LEFT JOIN session_leases l ON l.session_seq = s.seq WHERE s.name = $1
        """
    /// A new lease at epoch $2 if the stored epoch is $7 (no row: epoch 0).
    static let acquire = """
        INSERT INTO session_leases (session_seq, epoch, state, id_hash, holder, ttl_seconds, acquired_at) \
        SELECT $1::bigint, $2::bigint, 'held', $3::bytea, $4::text, $5::bigint, $6::bigint \
        WHERE $7::bigint = 0 OR EXISTS (SELECT 1 FROM session_leases WHERE session_seq = $1::bigint) \
        ON CONFLICT (session_seq) DO UPDATE SET epoch = excluded.epoch, state = 'held', id_hash = excluded.id_hash, \
        holder = excluded.holder, ttl_seconds = excluded.ttl_seconds, acquired_at = excluded.acquired_at \
        WHERE session_leases.epoch = $7::bigint RETURNING epoch
        """
    static let renew = """
        UPDATE session_leases SET ttl_seconds = coalesce($3::bigint, ttl_seconds) \
        WHERE session_seq = $1::bigint AND epoch = $2::bigint AND state = 'held' RETURNING epoch
        """
    static let end = """
        UPDATE session_leases SET state = $3::text, id_hash = NULL, \
        holder = CASE WHEN $3::text = 'free' THEN '' ELSE holder END \
        WHERE session_seq = $1::bigint AND epoch = $2::bigint AND state <> 'free' RETURNING epoch
        """
    static let setExclusive = "UPDATE sessions SET exclusive = $1::bigint WHERE seq = $2::bigint"
}
