// SPDX-License-Identifier: Apache-2.0

// The SQLite engine's update state rows (table `update_states`, see VaultSchema).

enum UpdateStateSQL {
    static let all = SQLiteStatementKey("""
        SELECT u.id, u.pts, u.qts, u.date, u.seq FROM update_states u JOIN sessions s ON s.seq = u.session_seq \
        WHERE s.name = ?1 ORDER BY u.id
        """)
    static let upsert = SQLiteStatementKey("""
        INSERT INTO update_states (session_seq, id, pts, qts, date, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
        ON CONFLICT (session_seq, id) DO UPDATE SET pts = excluded.pts, qts = excluded.qts, date = excluded.date, \
        seq = excluded.seq
        """)
    static let count = SQLiteStatementKey("SELECT count(*) FROM update_states WHERE session_seq = ?1")
    static let deleteOne = SQLiteStatementKey("DELETE FROM update_states WHERE session_seq = ?1 AND id = ?2")
    static let deleteAll = SQLiteStatementKey("DELETE FROM update_states WHERE session_seq = ?1")
    static let sessionExists = SQLiteStatementKey("SELECT 1 FROM sessions WHERE name = ?1")
}

extension SQLiteSessionStore {
    public func updateStates(in session: SessionName) throws(StorageError) -> [UpdateState] {
        try read { connection in
            let rows = try connection.all(UpdateStateSQL.all, [.text(session.rawValue)]) {
                UpdateState(id: $0.int64(0), pts: $0.int64OrNil(1), qts: $0.int64OrNil(2), date: $0.int64OrNil(3),
                            seq: $0.int64OrNil(4))
            }
            if rows.isEmpty, !(try connection.exists(UpdateStateSQL.sessionExists, [.text(session.rawValue)])) {
                throw StorageError.notFound
            }
            return rows
        }
    }

    public func upsertUpdateStates(_ states: [UpdateState], in session: SessionName) throws(StorageError) -> Int {
        try write { connection in
            let seq = try Self.liveSeq(session, on: connection)
            try Self.upsert(states, seq: seq, on: connection)
            return Int(try connection.first(UpdateStateSQL.count, [.integer(seq)]) { $0.int64(0) } ?? 0)
        }
    }

    public func deleteUpdateState(id: Int64, in session: SessionName) throws(StorageError) -> Bool {
        try write { connection in
            let seq = try Self.liveSeq(session, on: connection)
            try connection.run(UpdateStateSQL.deleteOne, [.integer(seq), .integer(id)])
            return connection.changes > 0
        }
    }

    /// Upserts rows of session `seq`; writer only.
    static func upsert(_ states: [UpdateState], seq: Int64, on connection: SQLiteConnection) throws {
        for s in states {
            try connection.run(UpdateStateSQL.upsert, [
                .integer(seq), .integer(s.id), .init(s.pts), .init(s.qts), .init(s.date), .init(s.seq),
            ])
        }
    }
}
