// SPDX-License-Identifier: Apache-2.0
internal import COpenSSL
internal import CSQLite

/// An SQLite database that lives only in memory: either a read-only view of a private copy of a
/// `.session` file's bytes, or an empty database the writer fills and then serializes.
///
/// Why memory and not a temp file: a `.session` file holds the account's auth key in plaintext.
/// Opening the image with `sqlite3_deserialize` means the key never touches disk, there is no
/// temp file, `-journal`, `-wal` or `-shm` to clean up (nothing to leak on a crash or an early
/// error), and the caller's bytes are never modified because SQLite works on our own copy.
/// The copy is wiped with `OPENSSL_cleanse` once the connection is closed.
///
/// Owns its ``SQLiteConnection`` and the image buffer; `deinit` closes the connection first,
/// then wipes and frees the buffer. Confined to one thread like the connection.
final class SessionFileDatabase {
    /// The connection; use only while this object is alive.
    let connection: SQLiteConnection
    /// Our copy of the file image (read-only databases only).
    private let image: UnsafeMutableRawBufferPointer?

    /// Opens a read-only database over a private copy of `bytes`, hardened for hostile input.
    ///
    /// If the header says WAL (bytes 18/19 = 2, as hydrogram leaves its files; docs/formats.md,
    /// "Hydrogram and WAL"), the **copy** is patched to 1 (rollback journal). A `.session` upload
    /// is a single file: whatever an un-checkpointed `-wal` held is not part of it anyway, and the
    /// in-memory VFS cannot provide the shared-memory index WAL mode needs. The caller's bytes stay as they are.
    init(readOnlyCopyOf bytes: [UInt8]) throws(SQLiteError) {
        let connection = try SQLiteConnection(path: ":memory:")
        let image = UnsafeMutableRawBufferPointer.allocate(
            byteCount: Swift.max(bytes.count, 1), alignment: 16)
        image.initializeMemory(as: UInt8.self, repeating: 0)
        bytes.withUnsafeBytes { image.copyMemory(from: $0) }
        if bytes.count > 19 {
            if image[18] == 2 { image[18] = 1 }
            if image[19] == 2 { image[19] = 1 }
        }
        self.connection = connection
        self.image = image
        guard let db = connection.handle else { throw connection.lastError(SQLITE_MISUSE) }
        Self.harden(db)
        // READONLY: SQLite never writes to or resizes our buffer; we keep ownership (no
        // FREEONCLOSE) so that we can wipe it after close.
        let rc = sqlite3_deserialize(
            db, "main", image.baseAddress?.assumingMemoryBound(to: UInt8.self),
            sqlite3_int64(bytes.count), sqlite3_int64(bytes.count),
            UInt32(SQLITE_DESERIALIZE_READONLY))
        guard rc == SQLITE_OK else { throw connection.lastError(rc) }
        // Stronger corruption detection while reading b-tree pages; no writes, ever.
        try connection.execute("PRAGMA cell_size_check = ON; PRAGMA query_only = ON")
    }

    /// Opens an empty, writable in-memory database for the writer.
    init() throws(SQLiteError) {
        connection = try SQLiteConnection(path: ":memory:")
        image = nil
    }

    deinit {
        connection.close()
        if let image {
            OPENSSL_cleanse(image.baseAddress, image.count)
            image.deallocate()
        }
    }

    /// The database image as bytes, as it would be written to a file. SQLite's own buffer is
    /// wiped before it is freed.
    func serialize() throws(SQLiteError) -> [UInt8] {
        guard let db = connection.handle else { throw connection.lastError(SQLITE_MISUSE) }
        var size: sqlite3_int64 = 0
        guard let buffer = sqlite3_serialize(db, "main", &size, 0) else {
            throw SQLiteError(code: SQLITE_NOMEM, extendedCode: SQLITE_NOMEM, message: "serialize failed")
        }
        defer {
            OPENSSL_cleanse(buffer, Int(size))
            sqlite3_free(buffer)
        }
        return Array(UnsafeBufferPointer(start: buffer, count: Int(size)))
    }

    /// Settings from SQLite's "Defense Against The Dark Arts" for untrusted database files:
    /// no triggers, views, extension loading or untrusted schema functions, and tight limits so
    /// that a crafted schema or record cannot make parsing or reading expensive. Our own
    /// queries are tiny; a legitimate session file stays far below every limit.
    private static func harden(_ db: OpaquePointer) {
        _ = csqlite_db_config_int(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0)
        _ = csqlite_db_config_int(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0)
        _ = csqlite_db_config_int(db, SQLITE_DBCONFIG_ENABLE_VIEW, 0)
        _ = csqlite_db_config_int(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0)
        let limits: [(Int32, Int32)] = [
            (SQLITE_LIMIT_LENGTH, 1_000_000),  // largest string/blob/row we will look at
            (SQLITE_LIMIT_SQL_LENGTH, 100_000),  // each CREATE statement in sqlite_master
            (SQLITE_LIMIT_COLUMN, 100),
            (SQLITE_LIMIT_EXPR_DEPTH, 20),
            (SQLITE_LIMIT_COMPOUND_SELECT, 3),
            (SQLITE_LIMIT_VDBE_OP, 25_000),
            (SQLITE_LIMIT_FUNCTION_ARG, 8),
            (SQLITE_LIMIT_ATTACHED, 0),
            (SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 50),
            (SQLITE_LIMIT_VARIABLE_NUMBER, 10),
            (SQLITE_LIMIT_TRIGGER_DEPTH, 10),
            (SQLITE_LIMIT_WORKER_THREADS, 0),
        ]
        for (limit, value) in limits { _ = sqlite3_limit(db, limit, value) }
    }
}
