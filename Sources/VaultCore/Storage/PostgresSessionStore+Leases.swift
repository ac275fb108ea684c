// SPDX-License-Identifier: Apache-2.0

/// ``LeaseRepository`` on PostgreSQL: `session_leases` and `sessions.exclusive` (schema version 2
/// of ``PostgresSchema``), with the SQLite engine's meaning. Every lease write is conditional on
/// the epoch in one statement, under the session row's lock.
///
/// The vault uses the ``SharedLeaseRepository`` half: several instances share one database, so
/// the database decides and its clock times every lease (docs/postgres.md). The
/// ``LeaseRepository`` half (the stored copy of one process's ``LeaseBook``) stays for the store
/// contract tests.
extension PostgresSessionStore: SharedLeaseRepository {
    public func sharedLease(of name: SessionName, lockDelaySeconds: Int) throws(StorageError) -> SharedLeaseView? {
        try read { c -> SharedLeaseView? in
            let r = try c.query(PGLeaseSQL.judgeByName, [.text(name.rawValue)])
            guard r.count > 0 else { return nil }
            let revoked = r.bool(0, 0)
            let now = r.int64(0, 2)
            var row = Self.judgedRow(r, offset: 3)
            if revoked {
                _ = SharedLeaseJudge.apply(.endOnRevoke, to: &row, now: now, lockDelaySeconds: lockDelaySeconds)
            } else {
                _ = SharedLeaseJudge.settle(&row, now: now, lockDelaySeconds: lockDelaySeconds)
            }
            return Self.view(row, exclusive: r.int64(0, 1) != 0 && !revoked, revoked: revoked, now: now)
        }
    }

    public func changeSharedLease(_ operation: SharedLeaseOperation, in name: SessionName, lockDelaySeconds: Int)
        throws(StorageError) -> SharedLeaseChange
    {
        try write { c -> SharedLeaseChange in
            // The session row's lock serialises every instance's lease operations on it. The
            // clock is read after it is taken (clock_timestamp(), not the transaction's now()),
            // so a wait for the lock never makes the judgement early.
            let found = try c.query(PGLeaseSQL.lockSession, [.text(name.rawValue)])
            guard found.count > 0 else { throw StorageError.notFound }
            let seq = found.int64(0, 0)
            let revoked = found.bool(0, 1)
            if revoked, case .acquire = operation { throw StorageError.revoked }
            let r = try c.query(PGLeaseSQL.judgeBySeq, [.int(seq)])
            let now = r.int64(0, 0)
            var row = Self.judgedRow(r, offset: 1)
            let before = row
            let outcome: (done: Bool, expired: Int64?)
            if revoked, operation != .endOnRevoke {
                // A revoked session's lease has ended (its revoke's endOnRevoke may not have run yet).
                _ = SharedLeaseJudge.apply(.endOnRevoke, to: &row, now: now, lockDelaySeconds: lockDelaySeconds)
                outcome = (false, nil)
            } else {
                outcome = SharedLeaseJudge.apply(operation, to: &row, now: now, lockDelaySeconds: lockDelaySeconds)
            }
            if row != before {
                try c.query(PGLeaseSQL.store, [
                    .int(seq), .int(row.epoch), .text(row.state.rawValue), row.idHash.isEmpty ? .null : .bytes(row.idHash),
                    .text(row.holder), .int(Int64(row.ttlSeconds)), .int(row.acquiredAt), .int(row.deadline),
                ])
            }
            let view = Self.view(row, exclusive: found.int64(0, 2) != 0 && !revoked, revoked: revoked, now: now)
            return SharedLeaseChange(done: outcome.done, view: view, expiredEpoch: outcome.expired)
        }
    }

    public func sharedLeasesHeld() throws(StorageError) -> Int {
        try read { c in Int(try c.query(PGLeaseSQL.countHeld).int64(0, 0)) }
    }

    /// The lease columns of ``PGLeaseSQL/judgeColumns`` from column `o` of row 0 (NULLs: never acquired).
    private static func judgedRow(_ r: PGRows, offset o: Int) -> SharedLeaseJudge.Row {
        guard !r.isNull(0, o) else { return .never }
        let state = r.text(0, o + 1).flatMap(LeaseRecord.State.init(rawValue:)) ?? .free
        let ttl = r.int64(0, o + 4)
        let acquiredAt = r.int64(0, o + 5)
        // A row written by the LeaseRepository half has no deadline: a held one's is its TTL
        // from its acquisition.
        let deadline = r.int64OrNil(0, o + 6) ?? (state == .held ? acquiredAt &+ ttl &* 1000 : 0)
        return SharedLeaseJudge.Row(
            state: state, epoch: r.int64(0, o), idHash: state == .held ? r.bytes(0, o + 2) ?? [] : [],
            holder: r.text(0, o + 3) ?? "", ttlSeconds: Int(truncatingIfNeeded: ttl), acquiredAt: acquiredAt, deadline: deadline)
    }

    private static func view(_ row: SharedLeaseJudge.Row, exclusive: Bool, revoked: Bool, now: Int64) -> SharedLeaseView {
        SharedLeaseView(exclusive: exclusive, revoked: revoked, state: row.state, epoch: row.epoch, idHash: row.idHash,
                        holder: row.holder, ttlSeconds: row.ttlSeconds, acquiredAt: row.acquiredAt, deadline: row.deadline, now: now)
    }
}

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
        holder = excluded.holder, ttl_seconds = excluded.ttl_seconds, acquired_at = excluded.acquired_at, deadline_ms = NULL \
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

    // The SharedLeaseRepository half. Every time is the database's clock, Unix milliseconds.
    static let clock = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    static let judgeColumns = "l.epoch, l.state, l.id_hash, l.holder, l.ttl_seconds, l.acquired_at, l.deadline_ms"
    /// Revoked, exclusive, the clock, the lease (columns 3–9; never acquired: NULLs).
    static let judgeByName = """
        SELECT s.revoked_at IS NOT NULL, s.exclusive, \(clock), \(judgeColumns) \
        FROM sessions s LEFT JOIN session_leases l ON l.session_seq = s.seq WHERE s.name = $1
        """
    static let lockSession = "SELECT seq, revoked_at IS NOT NULL, exclusive FROM sessions WHERE name = $1 FOR UPDATE"
    /// The clock, then the lease (columns 1–7; never acquired: NULLs), read after the session row's lock.
    static let judgeBySeq = """
        SELECT \(clock), \(judgeColumns) FROM (SELECT 1) one LEFT JOIN session_leases l ON l.session_seq = $1::bigint
        """
    static let store = """
        INSERT INTO session_leases (session_seq, epoch, state, id_hash, holder, ttl_seconds, acquired_at, deadline_ms) \
        VALUES ($1::bigint, $2::bigint, $3::text, $4::bytea, $5::text, $6::bigint, $7::bigint, $8::bigint) \
        ON CONFLICT (session_seq) DO UPDATE SET epoch = excluded.epoch, state = excluded.state, id_hash = excluded.id_hash, \
        holder = excluded.holder, ttl_seconds = excluded.ttl_seconds, acquired_at = excluded.acquired_at, \
        deadline_ms = excluded.deadline_ms
        """
    static let countHeld = "SELECT count(*) FROM session_leases WHERE state = 'held' AND deadline_ms > \(clock)"
}
