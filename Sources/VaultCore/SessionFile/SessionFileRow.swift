// SPDX-License-Identifier: Apache-2.0
internal import CSQLite

/// A `SELECT` over the columns of one table that actually exist, read by column **name**.
///
/// Session files of the same family differ in column order (migrations append columns with
/// `ALTER TABLE`; docs/formats.md, "Pyrogram-family .session files") and in which columns exist
/// at all, so the reader never relies on positions: it asks for the columns it knows, skips the
/// absent ones (they read as `nil`), and checks each value's storage class. Column names come
/// from this module's fixed lists, never from the file, so quoting them is safe.
struct SessionFileRow {
    private let statement: SQLiteStatement
    private let positions: [String: Int32]
    private let table: String

    /// Prepares `SELECT <wanted ∩ present> FROM table <suffix>`.
    init(
        _ db: SQLiteConnection, table: String, wanted: [String], present: Set<String>,
        suffix: String = ""
    ) throws(SessionFileError) {
        let columns = wanted.filter { present.contains($0) }
        var positions: [String: Int32] = [:]
        for (offset, column) in columns.enumerated() { positions[column] = Int32(offset) }
        let list = columns.isEmpty ? "NULL" : columns.map { "\"\($0)\"" }.joined(separator: ", ")
        let sql = "SELECT \(list) FROM \"\(table)\" \(suffix)"
        statement = try SessionFileSQL.run { () throws(SQLiteError) in try db.prepare(sql) }
        self.positions = positions
        self.table = table
    }

    /// Advances to the next row; false when there is none.
    func step() throws(SessionFileError) -> Bool {
        try SessionFileSQL.run { () throws(SQLiteError) in try statement.step() }
    }

    /// True when the column exists in the table.
    func has(_ column: String) -> Bool { positions[column] != nil }

    /// An INTEGER column; nil for NULL or an absent column.
    /// - Throws: ``SessionFileError/invalidField(_:_:)`` for any other storage class.
    func integer(_ column: String, field: String? = nil) throws(SessionFileError) -> Int64? {
        guard let i = positions[column] else { return nil }
        switch statement.type(i) {
        case SQLITE_NULL: return nil
        case SQLITE_INTEGER: return statement.int64(i)
        default: throw .invalidField(field ?? "\(table).\(column)", "is not an integer")
        }
    }

    /// An INTEGER column, or a REAL one truncated to whole seconds: Telethon writes
    /// `update_state.date` as `datetime.timestamp()`, a float (docs/formats.md, "Update state").
    /// - Throws: ``SessionFileError/invalidField(_:_:)`` for text, a blob, or a REAL that is not
    ///   a finite number within the 64-bit range.
    func integerOrSeconds(_ column: String, field: String? = nil) throws(SessionFileError) -> Int64? {
        guard let i = positions[column] else { return nil }
        guard statement.type(i) == SQLITE_FLOAT else { return try integer(column, field: field) }
        let value = statement.double(i)
        guard value.isFinite, value >= -9.2e18, value <= 9.2e18 else {
            throw .invalidField(field ?? "\(table).\(column)", "is not a number of seconds")
        }
        return Int64(value.rounded(.towardZero))
    }

    /// A TEXT column (an INTEGER is rendered in decimal when `allowInteger`, for phone numbers
    /// that Telethon stores as integers; docs/formats.md, "Rows and values"); nil for NULL or an absent column.
    /// - Throws: ``SessionFileError/invalidField(_:_:)`` for any other storage class.
    func text(
        _ column: String, field: String? = nil, allowInteger: Bool = false
    ) throws(SessionFileError) -> String? {
        guard let i = positions[column] else { return nil }
        switch statement.type(i) {
        case SQLITE_NULL: return nil
        case SQLITE_TEXT: return statement.text(i)
        case SQLITE_INTEGER where allowInteger: return String(statement.int64(i))
        default: throw .invalidField(field ?? "\(table).\(column)", "is not text")
        }
    }

    /// The column's text if it is TEXT, else nil (for `peers.type`, whose declared type is
    /// INTEGER but whose values are TEXT; docs/formats.md, "Pyrogram-family .session files").
    func textIfText(_ column: String) -> String? {
        guard let i = positions[column], statement.type(i) == SQLITE_TEXT else { return nil }
        return statement.text(i)
    }

    /// A BLOB column read straight into secret storage; nil for NULL or an absent column.
    /// - Throws: ``SessionFileError/invalidField(_:_:)`` for any other storage class.
    func secretBlob(_ column: String, field: String) throws(SessionFileError) -> SecretBytes? {
        guard let i = positions[column] else { return nil }
        switch statement.type(i) {
        case SQLITE_NULL: return nil
        case SQLITE_BLOB: return statement.secretBlob(i)
        default: throw .invalidField(field, "is not a blob")
        }
    }
}

/// Maps SQLite failures met while reading an untrusted file to ``SessionFileError``.
enum SessionFileSQL {
    /// Runs `body`, translating a thrown ``SQLiteError``.
    static func run<T>(_ body: () throws(SQLiteError) -> T) throws(SessionFileError) -> T {
        do {
            return try body()
        } catch {
            throw map(error)
        }
    }

    /// Corruption, a short read of a truncated image, a bad header: `.corrupt`. A hit on the
    /// hardening limits: `.unsupportedSchema`. Out of memory: `.io`. Anything else SQLite can
    /// say about a file that passed our header checks means it is damaged: `.corrupt`.
    static func map(_ error: SQLiteError) -> SessionFileError {
        switch error.code {
        case SQLITE_TOOBIG: return .unsupportedSchema("a value or the schema exceeds the reader's limits")
        case SQLITE_NOMEM: return .io("out of memory")
        default: return .corrupt
        }
    }
}
