// SPDX-License-Identifier: Apache-2.0

/// The exact `CREATE` statements the writers emit, in `sqlite_master` order.
///
/// These strings are copied from the `sqlite_master` dumps of the vectors written by the real
/// libraries (Tests/VaultCoreTests/Vectors/sessions/*.json, key `sqlite.sqlite_master`), so that
/// the `sqlite_master` of a file we write is text-for-text the one the library itself writes.
/// SQLite keeps the text as given; whitespace matters. Tests compare them with the vectors.
enum SessionFileSchema {
    /// pyrogram 2.0.106 schema v3 (docs/formats.md, "Schema v2 and v3 (pyrogram, hydrogram)"),
    /// from `pyrogram_user.session`.
    static let pyrogramV3: [String] = [
        """
        CREATE TABLE sessions
        (
            dc_id     INTEGER PRIMARY KEY,
            api_id    INTEGER,
            test_mode INTEGER,
            auth_key  BLOB,
            date      INTEGER NOT NULL,
            user_id   INTEGER,
            is_bot    INTEGER
        )
        """,
        """
        CREATE TABLE peers
        (
            id             INTEGER PRIMARY KEY,
            access_hash    INTEGER,
            type           INTEGER NOT NULL,
            username       TEXT,
            phone_number   TEXT,
            last_update_on INTEGER NOT NULL DEFAULT (CAST(STRFTIME('%s', 'now') AS INTEGER))
        )
        """,
        """
        CREATE TABLE version
        (
            number INTEGER PRIMARY KEY
        )
        """,
        "CREATE INDEX idx_peers_id ON peers (id)",
        "CREATE INDEX idx_peers_username ON peers (username)",
        "CREATE INDEX idx_peers_phone_number ON peers (phone_number)",
        """
        CREATE TRIGGER trg_peers_last_update_on
            AFTER UPDATE
            ON peers
        BEGIN
            UPDATE peers
            SET last_update_on = CAST(STRFTIME('%s', 'now') AS INTEGER)
            WHERE id = NEW.id;
        END
        """,
    ]

    /// kurigram 2.2.26 schema v7 (docs/formats.md, "Schema v6 and v7 (kurigram)"), from `kurigram_user.session`.
    static let kurigramV7: [String] = [
        """
        CREATE TABLE sessions
        (
            dc_id          INTEGER PRIMARY KEY,
            server_address TEXT,
            port           INTEGER,
            api_id         INTEGER,
            test_mode      INTEGER,
            auth_key       BLOB,
            date           INTEGER NOT NULL,
            user_id        INTEGER,
            is_bot         INTEGER
        )
        """,
        """
        CREATE TABLE peers
        (
            id             INTEGER PRIMARY KEY,
            access_hash    INTEGER,
            type           INTEGER NOT NULL,
            phone_number   TEXT,
            last_update_on INTEGER NOT NULL DEFAULT (CAST(STRFTIME('%s', 'now') AS INTEGER))
        )
        """,
        """
        CREATE TABLE usernames
        (
            id       INTEGER,
            username TEXT,
            FOREIGN KEY (id) REFERENCES peers(id)
        )
        """,
        """
        CREATE TABLE update_state
        (
            id   INTEGER PRIMARY KEY,
            pts  INTEGER,
            qts  INTEGER,
            date INTEGER,
            seq  INTEGER
        )
        """,
        """
        CREATE TABLE version
        (
            number INTEGER PRIMARY KEY
        )
        """,
        "CREATE INDEX idx_peers_id ON peers (id)",
        "CREATE INDEX idx_peers_phone_number ON peers (phone_number)",
        "CREATE INDEX idx_usernames_id ON usernames (id)",
        "CREATE INDEX idx_usernames_username ON usernames (username)",
        """
        CREATE TRIGGER trg_peers_last_update_on
            AFTER UPDATE
            ON peers
        BEGIN
            UPDATE peers
            SET last_update_on = CAST(STRFTIME('%s', 'now') AS INTEGER)
            WHERE id = NEW.id;
        END
        """,
    ]

    /// Telethon 1.42 schema v7 (docs/formats.md, "Schema v7 and v8"), from
    /// `telethon-1.42_user.session`. Telethon reads `sessions` with `SELECT *` and unpacks by
    /// position, so this column order is load-bearing.
    static let telethonV7: [String] = [
        "CREATE TABLE version (version integer primary key)",
        """
        CREATE TABLE sessions (
                            dc_id integer primary key,
                            server_address text,
                            port integer,
                            auth_key blob,
                            takeout_id integer
                        )
        """,
        """
        CREATE TABLE entities (
                            id integer primary key,
                            hash integer not null,
                            username text,
                            phone integer,
                            name text,
                            date integer
                        )
        """,
        """
        CREATE TABLE sent_files (
                            md5_digest blob,
                            file_size integer,
                            type integer,
                            id integer,
                            hash integer,
                            primary key(md5_digest, file_size, type)
                        )
        """,
        """
        CREATE TABLE update_state (
                            id integer primary key,
                            pts integer,
                            qts integer,
                            date integer,
                            seq integer
                        )
        """,
    ]
}
