// SPDX-License-Identifier: Apache-2.0
internal import CSQLite

/// A storage failure, as a value the service maps to a status in one switch.
///
/// Cases carry field names, versions, paths and SQLite result codes, never a bound value: no
/// sealed blob, token hash or meta value can reach a message through this type.
public enum StorageError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A unique value already exists; `field` names it (`name`, `id`, `term`, `accessor`, `hash`).
    case conflict(field: String)
    /// The addressed record (session, token) does not exist.
    case notFound
    /// A compare-and-set update found another version; `current` is the stored one (for ETags).
    case versionMismatch(current: Int64)
    /// The session is a revoked tombstone and the operation would bring secrets back to it.
    case revoked
    /// An argument breaks the store's rules; `field` names it, `reason` says why.
    case invalidArgument(field: String, reason: String)
    /// The file cannot be opened or created at `path` (missing directory, permissions, …).
    /// The caller may fall back to the memory engine.
    case cannotOpen(path: String)
    /// The database (or its directory, which WAL needs) is read-only.
    case readOnly
    /// The file is not an SQLite database at all (garbage, encrypted, truncated header).
    case notADatabase
    /// The file is an SQLite database of some other application (e.g. a client `.session`).
    case notAVaultDatabase
    /// The database was written by a newer session-vault: its schema `found` is above the
    /// `supported` one. Nothing was changed.
    case newerSchema(found: Int64, supported: Int64)
    /// SQLite reports the file as malformed (`SQLITE_CORRUPT`), or a stored row breaks an
    /// invariant the schema guarantees.
    case corrupt
    /// The disk is full (`SQLITE_FULL`); the failed write changed nothing.
    case diskFull
    /// The store was closed.
    case closed
    /// The data is no longer where the store opened it (the database file was removed or
    /// replaced while the vault ran): every write is refused until a restart; `reason` says what.
    case unavailable(reason: String)
    /// Any other SQLite failure, with its extended result code.
    case sqlite(SQLiteError)

    public var description: String {
        switch self {
        case .conflict(let field): return "conflict: a record with this \(field) already exists"
        case .notFound: return "not found"
        case .versionMismatch(let current): return "version mismatch: current version is \(current)"
        case .revoked: return "the session is revoked"
        case .invalidArgument(let field, let reason): return "invalid \(field): \(reason)"
        case .cannotOpen(let path): return "cannot open or create the database at \(path)"
        case .readOnly: return "the database is read-only"
        case .notADatabase: return "the file is not an SQLite database"
        case .notAVaultDatabase: return "the file is an SQLite database of another application"
        case .newerSchema(let found, let supported):
            return "the database schema version \(found) is newer than the supported \(supported)"
        case .corrupt: return "the database is corrupt"
        case .diskFull: return "the disk is full"
        case .closed: return "the store is closed"
        case .unavailable(let reason): return "storage unavailable: \(reason)"
        case .sqlite(let error): return error.description
        }
    }

    /// True for a failure that says the storage cannot take writes right now (full disk,
    /// read-only file, I/O error, data gone), as opposed to a failure of one write's own input.
    public var meansNotWritable: Bool {
        switch self {
        case .diskFull, .readOnly, .unavailable, .cannotOpen: return true
        case .sqlite(let e): return e.code == SQLITE_IOERR || e.code == SQLITE_CANTOPEN
        default: return false
        }
    }

    /// Classifies an SQLite failure by its primary result code.
    init(_ error: SQLiteError) {
        switch error.code {
        case SQLITE_CORRUPT: self = .corrupt
        case SQLITE_NOTADB: self = .notADatabase
        case SQLITE_READONLY: self = .readOnly
        case SQLITE_FULL: self = .diskFull
        default: self = .sqlite(error)
        }
    }

    /// Maps anything thrown inside the engine to a storage error. Engine code throws only
    /// ``StorageError`` and ``SQLiteError``; anything else is a programming error reported as a
    /// generic SQLite misuse rather than a crash.
    static func wrap(_ error: any Error) -> StorageError {
        if let error = error as? StorageError { return error }
        if let error = error as? SQLiteError { return StorageError(error) }
        return .sqlite(SQLiteError(code: SQLITE_MISUSE, extendedCode: SQLITE_MISUSE, message: "internal error"))
    }
}
