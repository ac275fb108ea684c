// SPDX-License-Identifier: Apache-2.0

/// The PostgreSQL engine's schema and migrations: the same tables, columns and meaning as the
/// SQLite schema (``VaultSchema`` at its current version), with PostgreSQL's types: `bigint` for
/// every integer, `bytea` for ids and sealed envelopes, `text COLLATE "C"` where the API orders
/// by the value (names, accessors, usernames: bytewise, as SQLite compares).
///
/// The version lives in `vault_schema` (one row); migration `n` (1-based) brings it from `n − 1`
/// to `n`. Every instance migrates at start holding the session advisory lock
/// ``advisoryLockKey``, inside one transaction, so instances starting together migrate once.
enum PostgresSchema {
    /// "SVLT", as the SQLite `application_id`.
    static let advisoryLockKey: Int64 = 0x5356_4C54
    /// The advisory lock keyring writes take (transaction-scoped), so a compare-and-set of the
    /// keyring generation is atomic across instances.
    static let keyringLockKey: Int64 = 0x5356_4C55

    static var currentVersion: Int64 { Int64(migrations.count) }

    static let migrations: [String] = [version1, version2, version3]

    /// Version 3: leases judged by the database (``SharedLeaseRepository``): `deadline_ms`, by the
    /// database's clock, is a held lease's expiry or a lock-delay's end. Rows from version 2 had
    /// their timing in one process's memory: a held lease gets its TTL afresh, a lock-delay the
    /// default delay (15 s), as a restart of that process gave them.
    static let version3 = """
        ALTER TABLE session_leases ADD COLUMN deadline_ms bigint;
        UPDATE session_leases SET deadline_ms = (extract(epoch FROM clock_timestamp()) * 1000)::bigint + \
        CASE state WHEN 'held' THEN ttl_seconds * 1000 WHEN 'delay' THEN 15000 ELSE 0 END;
        """

    /// Version 2: session leases, as the SQLite schema's leases migration (`docs/leases.md`):
    /// `sessions.exclusive` and one `session_leases` row per session whose lease was ever
    /// acquired (kept after a release so the epoch never repeats; the lease id only as its keyed
    /// hash). It goes with its session when a tombstone is purged.
    static let version2 = """
        ALTER TABLE sessions ADD COLUMN exclusive bigint NOT NULL DEFAULT 0 CHECK (exclusive IN (0, 1));

        CREATE TABLE session_leases (
            session_seq bigint PRIMARY KEY REFERENCES sessions (seq) ON DELETE CASCADE,
            epoch bigint NOT NULL CHECK (epoch >= 1),
            state text NOT NULL CHECK (state IN ('free', 'held', 'delay')),
            id_hash bytea CHECK ((state = 'held') = (id_hash IS NOT NULL)),
            holder text NOT NULL,
            ttl_seconds bigint NOT NULL,
            acquired_at bigint NOT NULL
        );
        """

    static let version1 = """
        CREATE TABLE vault_schema (
            application text NOT NULL CHECK (application = 'session-vault'),
            version bigint NOT NULL
        );

        CREATE TABLE sessions (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id bytea NOT NULL UNIQUE CHECK (length(id) = 16),
            name text COLLATE "C" NOT NULL UNIQUE,
            dc_id bigint NOT NULL,
            api_id bigint,
            test_mode bigint CHECK (test_mode IN (0, 1)),
            user_id bigint,
            is_bot bigint CHECK (is_bot IN (0, 1)),
            server_address text,
            port bigint,
            date bigint,
            auth_key_id text,
            sealed_auth_key bytea,
            sealed_key_term bigint CHECK (sealed_key_term BETWEEN 0 AND 4294967295),
            source_format text NOT NULL,
            created_at bigint NOT NULL,
            updated_at bigint NOT NULL,
            version bigint NOT NULL CHECK (version >= 1),
            revoked_at bigint,
            peer_count bigint NOT NULL DEFAULT 0,
            CHECK ((sealed_auth_key IS NULL) = (sealed_key_term IS NULL)),
            CHECK (revoked_at IS NULL OR sealed_auth_key IS NULL)
        );

        CREATE TABLE session_exports (
            session_seq bigint PRIMARY KEY REFERENCES sessions (seq) ON DELETE CASCADE,
            last_exported_at bigint NOT NULL
        );

        CREATE TABLE peers (
            session_seq bigint NOT NULL REFERENCES sessions (seq),
            peer_id bigint NOT NULL,
            access_hash bigint NOT NULL,
            type text,
            phone_number text,
            name text,
            last_update_on bigint,
            PRIMARY KEY (session_seq, peer_id)
        );

        CREATE INDEX peers_by_phone ON peers (session_seq, phone_number) WHERE phone_number IS NOT NULL;

        CREATE TABLE peer_usernames (
            session_seq bigint NOT NULL,
            username text COLLATE "C" NOT NULL,
            peer_id bigint NOT NULL,
            position bigint NOT NULL,
            PRIMARY KEY (session_seq, username, peer_id),
            FOREIGN KEY (session_seq, peer_id) REFERENCES peers (session_seq, peer_id) ON DELETE CASCADE
        );

        CREATE INDEX peer_usernames_by_peer ON peer_usernames (session_seq, peer_id, position);

        CREATE TABLE update_states (
            session_seq bigint NOT NULL REFERENCES sessions (seq) ON DELETE CASCADE,
            id bigint NOT NULL,
            pts bigint,
            qts bigint,
            date bigint,
            seq bigint,
            PRIMARY KEY (session_seq, id)
        );

        CREATE TABLE key_terms (
            term bigint PRIMARY KEY CHECK (term BETWEEN 0 AND 4294967295),
            created_at bigint NOT NULL,
            sealed_key bytea NOT NULL
        );

        CREATE TABLE tokens (
            accessor text COLLATE "C" PRIMARY KEY,
            hash bytea NOT NULL UNIQUE,
            policy text NOT NULL,
            display_name text,
            created_at bigint NOT NULL,
            expires_at bigint,
            revoked_at bigint
        );

        CREATE TABLE meta (
            key text COLLATE "C" PRIMARY KEY,
            value bytea NOT NULL
        );

        CREATE TABLE audit (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            time bigint NOT NULL,
            accessor text,
            action text NOT NULL,
            session_name text,
            remote_address text,
            outcome text NOT NULL,
            detail text
        );
        """

    /// Brings the database (the first schema of the connection's `search_path`) to
    /// ``currentVersion``, holding the advisory lock so that concurrent starts migrate once.
    /// - Throws: ``StorageError/notAVaultDatabase`` when the schema holds a `sessions` table of
    ///   something else; ``StorageError/newerSchema(found:supported:)``; the database's errors.
    static func migrate(_ connection: PGConnection) throws {
        try connection.query("SELECT pg_advisory_lock($1)", [.int(advisoryLockKey)])
        defer { _ = try? connection.query("SELECT pg_advisory_unlock($1)", [.int(advisoryLockKey)]) }
        let probe = try connection.query(
            "SELECT to_regclass('vault_schema') IS NOT NULL, to_regclass('sessions') IS NOT NULL")
        let hasVersion = probe.bool(0, 0)
        let hasSessions = probe.bool(0, 1)
        var from: Int64 = 0
        if hasVersion {
            let rows = try connection.query("SELECT version FROM vault_schema")
            from = rows.count == 1 ? rows.int64(0, 0) : 0
            if from > currentVersion { throw StorageError.newerSchema(found: from, supported: currentVersion) }
        } else if hasSessions {
            throw StorageError.notAVaultDatabase
        }
        guard from < currentVersion else { return }
        try connection.execute("BEGIN")
        do {
            for version in Int(from + 1)...Int(currentVersion) {
                try connection.execute(migrations[version - 1])
            }
            try connection.query("DELETE FROM vault_schema")
            try connection.query(
                "INSERT INTO vault_schema (application, version) VALUES ('session-vault', $1)", [.int(currentVersion)])
            try connection.execute("COMMIT")
        } catch {
            _ = try? connection.execute("ROLLBACK")
            throw error
        }
    }
}
