// SPDX-License-Identifier: Apache-2.0

/// A storage failure, as a value the service maps to a status in one switch. Backend-neutral:
/// each case names what happened (a constraint, busy, full, read-only, corrupt, unavailable, an
/// I/O error); an engine's own code and message go in a `detail` string. Every engine maps its
/// errors to these (the SQLite engine in `SQLiteErrorMapping.swift`).
///
/// Cases carry field names, versions, paths and engine codes, never a bound value: no sealed
/// blob, token hash or meta value can reach a message through this type.
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
    /// The file is not a database of the engine at all (garbage, encrypted, truncated header).
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
    /// Another writer holds the lock longer than the engine waits (`SQLITE_BUSY`, a lock timeout).
    case busy
    /// The storage failed to read or write (`SQLITE_IOERR`, a lost connection); the engine's
    /// code and message are in `detail`.
    case ioError(detail: String)
    /// Any other failure of the engine, described by `detail` (its code and message).
    case engine(detail: String)
    /// The data is no longer where the store opened it (the database file was removed or
    /// replaced while the vault ran): every write is refused until a restart; `reason` says what.
    case unavailable(reason: String)

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
        case .busy: return "the storage is busy (locked by another writer)"
        case .ioError(let detail): return "storage I/O error: \(detail)"
        case .engine(let detail): return detail
        }
    }

    /// True for a failure that says the storage cannot take writes right now (full disk,
    /// read-only file, I/O error, data gone), as opposed to a failure of one write's own input.
    public var meansNotWritable: Bool {
        switch self {
        case .diskFull, .readOnly, .unavailable, .cannotOpen, .ioError: return true
        default: return false
        }
    }
}
