// SPDX-License-Identifier: Apache-2.0

/// The vault's SQLite schema and its migrations (`PRAGMA user_version`).
///
/// A vault database is recognised by its `application_id` (header offset 68), so a client's
/// `.session` file or any other SQLite file is refused untouched instead of being "migrated".
/// Migration `n` (1-based) brings `user_version` from `n − 1` to `n`; every migration of one
/// open runs in a single `BEGIN IMMEDIATE` transaction together with the version bump.
enum VaultSchema {
    /// `application_id` of every vault database: ASCII "SVLT".
    static let applicationID: Int64 = 0x5356_4C54

    /// Newest schema version this build knows.
    static var currentVersion: Int64 { Int64(migrations.count) }

    /// Migration scripts, index 0 = version 1.
    static let migrations: [String] = [version1, version2, versionUpdateStates, versionLeases]

    /// Version 1: the initial schema.
    ///
    /// - `sessions` is a rowid table (its rows, ~0.4 KiB with the envelope, are too large for a
    ///   WITHOUT ROWID b-tree, whose interior pages would hold whole rows); `seq` is the compact
    ///   internal key the peers tables reference. `name` and `id` have unique indexes.
    /// - Peers and usernames are small rows keyed by (session, …): WITHOUT ROWID saves the
    ///   second b-tree lookup.
    /// - Every table is STRICT (SQLite ≥ 3.37), so a wrongly typed value is an error.
    static let version1 = """
        CREATE TABLE sessions (
            seq INTEGER PRIMARY KEY,
            id BLOB NOT NULL UNIQUE CHECK (length(id) = 16),
            name TEXT NOT NULL UNIQUE,
            dc_id INTEGER NOT NULL,
            api_id INTEGER,
            test_mode INTEGER CHECK (test_mode IN (0, 1)),
            user_id INTEGER,
            is_bot INTEGER CHECK (is_bot IN (0, 1)),
            server_address TEXT,
            port INTEGER,
            date INTEGER,
            auth_key_id TEXT,
            sealed_auth_key BLOB,
            sealed_key_term INTEGER CHECK (sealed_key_term BETWEEN 0 AND 4294967295),
            source_format TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            last_exported_at INTEGER,
            version INTEGER NOT NULL CHECK (version >= 1),
            revoked_at INTEGER,
            peer_count INTEGER NOT NULL DEFAULT 0,
            CHECK ((sealed_auth_key IS NULL) = (sealed_key_term IS NULL)),
            CHECK (revoked_at IS NULL OR sealed_auth_key IS NULL)
        ) STRICT;

        CREATE TABLE peers (
            session_seq INTEGER NOT NULL REFERENCES sessions (seq),
            peer_id INTEGER NOT NULL,
            access_hash INTEGER NOT NULL,
            type TEXT,
            phone_number TEXT,
            name TEXT,
            last_update_on INTEGER,
            PRIMARY KEY (session_seq, peer_id)
        ) STRICT, WITHOUT ROWID;

        CREATE INDEX peers_by_phone ON peers (session_seq, phone_number)
            WHERE phone_number IS NOT NULL;

        CREATE TABLE peer_usernames (
            session_seq INTEGER NOT NULL,
            username TEXT NOT NULL,
            peer_id INTEGER NOT NULL,
            position INTEGER NOT NULL,
            PRIMARY KEY (session_seq, username, peer_id),
            FOREIGN KEY (session_seq, peer_id) REFERENCES peers (session_seq, peer_id)
                ON DELETE CASCADE
        ) STRICT, WITHOUT ROWID;

        CREATE INDEX peer_usernames_by_peer ON peer_usernames (session_seq, peer_id, position);

        CREATE TABLE key_terms (
            term INTEGER PRIMARY KEY CHECK (term BETWEEN 0 AND 4294967295),
            created_at INTEGER NOT NULL,
            sealed_key BLOB NOT NULL
        ) STRICT;

        CREATE TABLE tokens (
            accessor TEXT PRIMARY KEY,
            hash BLOB NOT NULL UNIQUE,
            policy TEXT NOT NULL,
            display_name TEXT,
            created_at INTEGER NOT NULL,
            expires_at INTEGER,
            revoked_at INTEGER
        ) STRICT, WITHOUT ROWID;

        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value BLOB NOT NULL
        ) STRICT, WITHOUT ROWID;

        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            time INTEGER NOT NULL,
            accessor TEXT,
            action TEXT NOT NULL,
            session_name TEXT,
            remote_address TEXT,
            outcome TEXT NOT NULL,
            detail TEXT
        ) STRICT;
        """

    /// Version 2: `last_exported_at` moves out of the session row into `session_exports`.
    ///
    /// Export times are written in a flush a second, one row per exported session. In the
    /// session row (about 0.5 KiB with the sealed key) every flush rewrote most leaf pages of
    /// the table into the WAL: about 5 MB a second when 10,000 sessions were exported, and
    /// every reader then found those pages in the WAL. A row of two integers is 1/40 of that.
    /// Reads select the time with a correlated subquery at the column's old position.
    static let version2 = """
        CREATE TABLE session_exports (
            session_seq INTEGER PRIMARY KEY REFERENCES sessions (seq) ON DELETE CASCADE,
            last_exported_at INTEGER NOT NULL
        ) STRICT;

        INSERT INTO session_exports (session_seq, last_exported_at)
            SELECT seq, last_exported_at FROM sessions WHERE last_exported_at IS NOT NULL;

        ALTER TABLE sessions DROP COLUMN last_exported_at;
        """

    /// The update state of each session (``UpdateState``): the rows Kurigram, Pyrofork and
    /// Telethon keep in their `update_state` table, one per (session, id). Every counter may be
    /// NULL, as in the libraries' tables. Revoking deletes them with the peers.
    static let versionUpdateStates = """
        CREATE TABLE update_states (
            session_seq INTEGER NOT NULL REFERENCES sessions (seq) ON DELETE CASCADE,
            id INTEGER NOT NULL,
            pts INTEGER,
            qts INTEGER,
            date INTEGER,
            seq INTEGER,
            PRIMARY KEY (session_seq, id)
        ) STRICT, WITHOUT ROWID;
        """

    /// Version 4: session leases (`docs/leases.md`).
    ///
    /// - `sessions.exclusive`: exports and writes of the session need its current lease id.
    /// - `session_leases`: one row per session whose lease was ever acquired, kept after a
    ///   release (`state = 'free'`) so the epoch never repeats. The lease id itself is never
    ///   stored, only its keyed hash (as for tokens). No wall-clock deadline is stored: a
    ///   restart counts a held lease's TTL, or a lock-delay, afresh.
    static let versionLeases = """
        ALTER TABLE sessions ADD COLUMN exclusive INTEGER NOT NULL DEFAULT 0 CHECK (exclusive IN (0, 1));

        CREATE TABLE session_leases (
            session_seq INTEGER PRIMARY KEY REFERENCES sessions (seq),
            epoch INTEGER NOT NULL CHECK (epoch >= 1),
            state TEXT NOT NULL CHECK (state IN ('free', 'held', 'delay')),
            id_hash BLOB CHECK ((state = 'held') = (id_hash IS NOT NULL)),
            holder TEXT NOT NULL,
            ttl_seconds INTEGER NOT NULL,
            acquired_at INTEGER NOT NULL
        ) STRICT;
        """

    /// What an opened file turned out to be.
    enum Kind: Equatable {
        /// No schema at all (a new or zero-length file): create it.
        case empty
        /// A vault database at this schema version.
        case vault(version: Int64)
    }

    /// Reads the header fields and classifies the database without writing anything.
    /// - Throws: ``StorageError/notADatabase`` for garbage, ``StorageError/notAVaultDatabase``
    ///   for another application's database, ``StorageError/newerSchema(found:supported:)``.
    static func inspect(_ connection: SQLiteConnection) throws(StorageError) -> Kind {
        let applicationID: Int64
        let userVersion: Int64
        let objects: Int64
        do {
            // The first read parses the header: garbage fails here with SQLITE_NOTADB.
            applicationID = try scalar(connection, "PRAGMA application_id")
            userVersion = try scalar(connection, "PRAGMA user_version")
            objects = try scalar(connection, "SELECT count(*) FROM sqlite_schema")
        } catch {
            throw StorageError(error)
        }
        if applicationID == VaultSchema.applicationID {
            if userVersion > currentVersion {
                throw .newerSchema(found: userVersion, supported: currentVersion)
            }
            // The id and version are written in the same transaction as the schema, so a vault
            // with version 0 cannot hold tables unless something else wrote to it.
            if userVersion == 0 {
                guard objects == 0 else { throw .corrupt }
                return .empty
            }
            return .vault(version: userVersion)
        }
        if applicationID == 0 && userVersion == 0 && objects == 0 { return .empty }
        throw .notAVaultDatabase
    }

    /// Brings the database to ``currentVersion`` in one transaction. Re-inspects inside the
    /// transaction (another process could have raced us between open and here).
    /// - Throws: ``StorageError`` from inspection or SQLite.
    static func migrate(_ connection: SQLiteConnection) throws(StorageError) {
        do {
            try connection.execute("BEGIN IMMEDIATE")
        } catch {
            throw StorageError(error)
        }
        do {
            let from: Int64
            switch try inspect(connection) {
            case .empty: from = 0
            case .vault(let version): from = version
            }
            if from < currentVersion {
                for version in Int(from + 1)...Int(currentVersion) {
                    try connection.execute(migrations[version - 1])
                }
                // Integer literals only: PRAGMA takes no bound parameters.
                try connection.execute("PRAGMA user_version = \(currentVersion)")
                try connection.execute("PRAGMA application_id = \(applicationID)")
            }
            try connection.execute("COMMIT")
        } catch {
            try? connection.execute("ROLLBACK")
            throw StorageError.wrap(error)
        }
    }

    /// The first column of the first row of `sql` as an integer.
    static func scalar(_ connection: SQLiteConnection, _ sql: String) throws(SQLiteError) -> Int64 {
        let statement = try connection.prepare(sql)
        guard try statement.step() else { return 0 }
        return statement.int64(0)
    }
}
