// SPDX-License-Identifier: Apache-2.0
internal import CSQLite
import Synchronization

/// A failure reported by SQLite. Carries the result codes and SQLite's own message, which names
/// tables and constraints but never bound values (we never inline values into SQL text).
public struct SQLiteError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Primary result code (`SQLITE_BUSY`, `SQLITE_CONSTRAINT`, …).
    public let code: Int32
    /// Extended result code (`SQLITE_CONSTRAINT_UNIQUE`, …).
    public let extendedCode: Int32
    /// SQLite's message.
    public let message: String

    public var description: String { "SQLite error \(extendedCode): \(message)" }

    /// True for a UNIQUE or PRIMARY KEY violation.
    public var isUniqueViolation: Bool {
        // SQLITE_CONSTRAINT_UNIQUE / _PRIMARYKEY are composite macros Swift cannot import.
        extendedCode == SQLITE_CONSTRAINT | (8 << 8) || extendedCode == SQLITE_CONSTRAINT | (6 << 8)
    }

    /// True when the file is not a database, is corrupt, or is truncated.
    public var isNotADatabase: Bool {
        code == SQLITE_NOTADB || code == SQLITE_CORRUPT || code == SQLITE_CANTOPEN
    }
}

/// A value bound to or read from SQLite.
enum SQLiteValue: Equatable, Sendable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
}

/// One SQLite connection. Owns its `sqlite3*` and closes it in `deinit`.
///
/// Not thread-safe by itself (opened with `SQLITE_OPEN_NOMUTEX`): each connection is confined to
/// one thread or serial queue at a time by its owner, as GRDB's `SerializedDatabase` does.
final class SQLiteConnection {
    /// How to open a database.
    struct OpenOptions: Sendable {
        var readOnly = false
        var create = true
        /// Interpret `path` as a URI (`file:…?mode=ro`, `file:/name?vfs=memdb`).
        var uri = false
    }

    private(set) var handle: OpaquePointer?
    private var statementCache: [String: SQLiteStatement] = [:]
    /// Statements cached under ``SQLiteStatementKey``s, indexed by key.
    private var keyedCache: [SQLiteStatement?] = []

    /// Process-wide settings applied once, before SQLite initialises (see `shim.h`): memory
    /// statistics off, which removes a global mutex from every SQLite allocation.
    private static let processConfiguration: Void = {
        _ = csqlite_config_memstatus(0)
    }()

    /// Opens `path` (`":memory:"` for a private in-memory database).
    /// - Throws: ``SQLiteError`` if SQLite cannot open it.
    init(path: String, options: OpenOptions = OpenOptions()) throws(SQLiteError) {
        Self.processConfiguration
        var flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        flags |= options.readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE
        if options.create && !options.readOnly { flags |= SQLITE_OPEN_CREATE }
        if options.uri { flags |= SQLITE_OPEN_URI }
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open database"
            let extended = db.map { sqlite3_extended_errcode($0) } ?? rc
            sqlite3_close_v2(db)
            throw SQLiteError(code: rc & 0xFF, extendedCode: extended, message: message)
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)
        // Defensive mode: no writes to the schema through PRAGMA writable_schema and friends.
        _ = csqlite_db_config_int(db, SQLITE_DBCONFIG_DEFENSIVE, 1)
        // No double-quoted string literals (a classic source of silent bugs).
        _ = csqlite_db_config_int(db, SQLITE_DBCONFIG_DQS_DDL, 0)
        _ = csqlite_db_config_int(db, SQLITE_DBCONFIG_DQS_DML, 0)
    }

    deinit { close() }

    /// Finalizes cached statements and closes the connection. Idempotent.
    func close() {
        statementCache.removeAll()
        keyedCache.removeAll()
        if let handle {
            sqlite3_close_v2(handle)
            self.handle = nil
        }
    }

    /// The error for the connection's last failure, as a value.
    func lastError(_ rc: Int32) -> SQLiteError {
        guard let handle else {
            return SQLiteError(code: rc & 0xFF, extendedCode: rc, message: "connection closed")
        }
        return SQLiteError(
            code: rc & 0xFF, extendedCode: sqlite3_extended_errcode(handle),
            message: String(cString: sqlite3_errmsg(handle)))
    }

    /// Runs one or more SQL statements that take no parameters (schema, pragmas, BEGIN/COMMIT).
    func execute(_ sql: String) throws(SQLiteError) {
        guard let handle else { throw lastError(SQLITE_MISUSE) }
        let rc = sqlite3_exec(handle, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw lastError(rc) }
    }

    /// Compiles one statement (not cached).
    func prepare(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        guard let handle else { throw lastError(SQLITE_MISUSE) }
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw lastError(rc) }
        return SQLiteStatement(stmt, connection: self)
    }

    /// A prepared statement reused across calls (reset and unbound before it is returned).
    func cached(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        if let stmt = statementCache[sql] {
            stmt.reset()
            return stmt
        }
        let stmt = try prepare(sql)
        statementCache[sql] = stmt
        return stmt
    }

    /// Sets how long a statement waits for a lock held by another connection before it fails
    /// with `SQLITE_BUSY` (SQLite's own sleeping busy handler).
    func setBusyTimeout(milliseconds: Int32) {
        if let handle { sqlite3_busy_timeout(handle, milliseconds) }
    }

    /// True when the main database was opened read-only, either on request or because the file
    /// (or its directory) is not writable: `SQLITE_OPEN_READWRITE` silently falls back to reading.
    var isReadOnly: Bool { handle.map { sqlite3_db_readonly($0, "main") == 1 } ?? true }

    /// A prepared statement reused across calls, found by its key's index instead of by hashing
    /// the SQL text (hot paths run one of these per request). Reset and unbound when returned.
    func cached(_ key: SQLiteStatementKey) throws(SQLiteError) -> SQLiteStatement {
        if key.index < keyedCache.count, let stmt = keyedCache[key.index] {
            stmt.reset()
            return stmt
        }
        let stmt = try prepare(key.sql)
        if key.index >= keyedCache.count {
            keyedCache.append(contentsOf: repeatElement(nil, count: key.index + 1 - keyedCache.count))
        }
        keyedCache[key.index] = stmt
        return stmt
    }

    /// Rows changed by the last INSERT/UPDATE/DELETE.
    var changes: Int { handle.map { Int(sqlite3_changes64($0)) } ?? 0 }

    /// Rowid of the last INSERT.
    var lastInsertRowID: Int64 { handle.map { sqlite3_last_insert_rowid($0) } ?? 0 }

    /// True while a transaction is open.
    var inTransaction: Bool { handle.map { sqlite3_get_autocommit($0) == 0 } ?? false }

    /// Runs `body` in `BEGIN IMMEDIATE … COMMIT`, rolling back if it throws.
    func transaction<T, E: Error>(_ body: () throws(E) -> T) throws(StorageTransactionError<E>) -> T {
        do { try execute("BEGIN IMMEDIATE") } catch { throw .sqlite(error) }
        let value: T
        do {
            value = try body()
        } catch {
            try? execute("ROLLBACK")
            throw .body(error)
        }
        do { try execute("COMMIT") } catch {
            try? execute("ROLLBACK")
            throw .sqlite(error)
        }
        return value
    }

    /// Convenience: runs `sql` with `values` bound and returns every row as values.
    func query(_ sql: String, _ values: [SQLiteValue] = []) throws(SQLiteError) -> [[SQLiteValue]] {
        let stmt = try prepare(sql)
        try stmt.bind(values)
        var rows: [[SQLiteValue]] = []
        while try stmt.step() {
            rows.append((0..<stmt.columnCount).map { stmt.value($0) })
        }
        return rows
    }

    /// Convenience: runs a statement that returns no rows, with `values` bound; uses the cache.
    func run(_ sql: String, _ values: [SQLiteValue] = []) throws(SQLiteError) {
        let stmt = try cached(sql)
        defer { stmt.reset() }
        try stmt.bind(values)
        while try stmt.step() {}
    }
}

/// SQL text with a process-unique small integer, so that connections can cache its prepared
/// statement in an array slot. Create each key once (a `static let`) and reuse it.
struct SQLiteStatementKey: Sendable {
    private static let counter = Atomic<Int>(0)

    /// Index of the statement in every connection's keyed cache.
    let index: Int
    /// The statement's SQL.
    let sql: String

    init(_ sql: String) {
        self.sql = sql
        self.index = Self.counter.wrappingAdd(1, ordering: .relaxed).oldValue
    }
}

/// Failure of ``SQLiteConnection/transaction(_:)``: either SQLite itself or the body's error.
enum StorageTransactionError<E: Error>: Error {
    case sqlite(SQLiteError)
    case body(E)
}

/// One prepared statement. Owns its `sqlite3_stmt*` and finalizes it in `deinit`.
/// Confined to its connection's thread.
final class SQLiteStatement {
    private let stmt: OpaquePointer
    private unowned let connection: SQLiteConnection

    fileprivate init(_ stmt: OpaquePointer, connection: SQLiteConnection) {
        self.stmt = stmt
        self.connection = connection
    }

    deinit { sqlite3_finalize(stmt) }

    /// Resets the statement and clears its bindings (which also drops SQLite's copies of any
    /// bound secret ciphertext).
    func reset() {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
    }

    /// Binds `values` to parameters 1…n.
    func bind(_ values: [SQLiteValue]) throws(SQLiteError) {
        for (offset, value) in values.enumerated() {
            try bind(value, at: Int32(offset + 1))
        }
    }

    /// Binds one value to a 1-based parameter index.
    func bind(_ value: SQLiteValue, at index: Int32) throws(SQLiteError) {
        let rc: Int32
        switch value {
        case .null: rc = sqlite3_bind_null(stmt, index)
        case .integer(let v): rc = sqlite3_bind_int64(stmt, index, v)
        case .real(let v): rc = sqlite3_bind_double(stmt, index, v)
        case .text(let v):
            // Bind by byte length, never as a C string: an embedded NUL must not cut the value short.
            var text = v
            rc = text.withUTF8 { utf8 in
                guard let base = utf8.baseAddress, !utf8.isEmpty else {
                    return sqlite3_bind_text(stmt, index, "", 0, csqlite_transient())
                }
                return base.withMemoryRebound(to: CChar.self, capacity: utf8.count) {
                    sqlite3_bind_text64(stmt, index, $0, sqlite3_uint64(utf8.count), csqlite_transient(), UInt8(SQLITE_UTF8))
                }
            }
        case .blob(let v):
            rc = v.withUnsafeBytes { raw in
                // A zero-length blob must still be a blob, not NULL: use zeroblob(0).
                raw.baseAddress == nil || raw.isEmpty
                    ? sqlite3_bind_zeroblob(stmt, index, 0)
                    : sqlite3_bind_blob64(stmt, index, raw.baseAddress, sqlite3_uint64(raw.count), csqlite_transient())
            }
        }
        guard rc == SQLITE_OK else { throw connection.lastError(rc) }
    }

    /// Binds secret bytes without creating an intermediate array.
    func bind(secret: SecretBytes, at index: Int32) throws(SQLiteError) {
        let rc = secret.withUnsafeBytes { raw in
            sqlite3_bind_blob64(stmt, index, raw.baseAddress, sqlite3_uint64(raw.count), csqlite_transient())
        }
        guard rc == SQLITE_OK else { throw connection.lastError(rc) }
    }

    /// Advances; returns true when a row is available, false when done.
    func step() throws(SQLiteError) -> Bool {
        let rc = sqlite3_step(stmt)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw connection.lastError(rc)
        }
    }

    var columnCount: Int32 { sqlite3_column_count(stmt) }

    func columnName(_ i: Int32) -> String {
        sqlite3_column_name(stmt, i).map { String(cString: $0) } ?? ""
    }

    func isNull(_ i: Int32) -> Bool { sqlite3_column_type(stmt, i) == SQLITE_NULL }

    /// The storage class of column `i` in the current row.
    func type(_ i: Int32) -> Int32 { sqlite3_column_type(stmt, i) }

    func int64(_ i: Int32) -> Int64 { sqlite3_column_int64(stmt, i) }
    func double(_ i: Int32) -> Double { sqlite3_column_double(stmt, i) }

    func int64OrNil(_ i: Int32) -> Int64? { isNull(i) ? nil : int64(i) }

    func text(_ i: Int32) -> String? {
        guard let p = sqlite3_column_text(stmt, i) else { return nil }
        let n = Int(sqlite3_column_bytes(stmt, i))
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }

    func blob(_ i: Int32) -> [UInt8]? {
        if isNull(i) { return nil }
        let n = Int(sqlite3_column_bytes(stmt, i))
        guard n > 0, let p = sqlite3_column_blob(stmt, i) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }

    /// Reads a blob straight into secret storage.
    func secretBlob(_ i: Int32) -> SecretBytes? {
        if isNull(i) { return nil }
        let n = Int(sqlite3_column_bytes(stmt, i))
        let p = sqlite3_column_blob(stmt, i)
        return SecretBytes(count: n) { dst in
            if let p, n > 0 { dst.copyMemory(from: UnsafeRawBufferPointer(start: p, count: n)) }
        }
    }

    /// Column `i` as a value.
    func value(_ i: Int32) -> SQLiteValue {
        switch sqlite3_column_type(stmt, i) {
        case SQLITE_INTEGER: return .integer(sqlite3_column_int64(stmt, i))
        case SQLITE_FLOAT: return .real(sqlite3_column_double(stmt, i))
        case SQLITE_TEXT: return .text(text(i) ?? "")
        case SQLITE_BLOB: return .blob(blob(i) ?? [])
        default: return .null
        }
    }
}

extension StorageError {
    /// The SQLite engine's mapping of its failures to backend-neutral errors (by primary code).
    init(_ error: SQLiteError) {
        switch error.code {
        case SQLITE_CORRUPT: self = .corrupt
        case SQLITE_NOTADB: self = .notADatabase
        case SQLITE_READONLY: self = .readOnly
        case SQLITE_FULL: self = .diskFull
        case SQLITE_BUSY, SQLITE_LOCKED: self = .busy
        case SQLITE_IOERR, SQLITE_CANTOPEN: self = .ioError(detail: error.description)
        default: self = .engine(detail: error.description)
        }
    }

    /// Maps anything thrown inside the SQLite engine to a storage error. Engine code throws only
    /// ``StorageError`` and ``SQLiteError``; anything else is a programming error reported as an
    /// engine failure rather than a crash.
    static func wrap(_ error: any Error) -> StorageError {
        if let error = error as? StorageError { return error }
        if let error = error as? SQLiteError { return StorageError(error) }
        return .engine(detail: "internal error")
    }
}
