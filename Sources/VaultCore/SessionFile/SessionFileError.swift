// SPDX-License-Identifier: Apache-2.0

/// Why a `.session` file could not be read or written.
///
/// Every case names what went wrong in plain words and, where there is one, the offending field
/// or table. No case ever carries a secret: auth keys, session strings and raw file bytes never
/// appear in a payload or in ``description``. Table and field names are the fixed names this
/// module asks for, never text taken from the file.
public enum SessionFileError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input is larger than the reader accepts (``SessionFileReader/Limits/maxBytes``).
    case tooLarge(max: Int)
    /// A table holds more rows than the reader accepts (``SessionFileReader/Limits/maxRows``).
    case tooManyRows(table: String, max: Int)
    /// The bytes do not start with the SQLite header (`"SQLite format 3\0"`), or are empty.
    case notSQLite
    /// An SQLite file that is truncated or damaged (SQLite reported corruption, the header is
    /// inconsistent with the size, or `PRAGMA quick_check` failed).
    case corrupt
    /// A readable SQLite file that is not a session file this reader knows (unknown or newer
    /// schema version, unrelated tables, a view where a table is expected…). Says which.
    case unsupportedSchema(String)
    /// A table every session file of the detected family has is missing (`sessions`, `version`).
    case missingTable(String)
    /// A value the operation needs is absent (reader: a required column or row; writer: a
    /// session field the target format needs, e.g. `api_id` for a Pyrogram file).
    case missingField(String)
    /// A value is present but unusable (`auth_key` not 256 bytes, negative `user_id`, …).
    case invalidField(_ field: String, _ reason: String)
    /// Reading the input file, or SQLite itself, failed for a reason unrelated to the content.
    case io(String)

    /// The field (or table) the error is about, when there is one.
    public var field: String? {
        switch self {
        case .missingField(let field), .invalidField(let field, _): return field
        case .missingTable(let table), .tooManyRows(let table, _): return table
        case .tooLarge, .notSQLite, .corrupt, .unsupportedSchema, .io: return nil
        }
    }

    public var description: String {
        switch self {
        case .tooLarge(let max): return "session file is larger than \(max) bytes"
        case .tooManyRows(let table, let max): return "table \(table) has more than \(max) rows"
        case .notSQLite: return "not an SQLite database"
        case .corrupt: return "SQLite database is truncated or corrupt"
        case .unsupportedSchema(let what): return "unsupported session file: \(what)"
        case .missingTable(let table): return "session file has no \(table) table"
        case .missingField(let field): return "\(field) is required but missing"
        case .invalidField(let field, let reason): return "\(field): \(reason)"
        case .io(let what): return "I/O error: \(what)"
        }
    }
}
