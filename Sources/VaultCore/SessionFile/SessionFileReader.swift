// SPDX-License-Identifier: Apache-2.0
internal import COpenSSL
internal import CSQLite

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// Reads Telegram client `.session` files (SQLite) of every schema in docs/formats.md
/// ("Pyrogram-family .session files", "Telethon .session files"):
/// Pyrogram v2/v3 (pyrogram 1.x/2.x, hydrogram, also in WAL mode), pyrofork v4, kurigram v6/v7,
/// Telethon v7/v8, peers included.
///
/// The input is treated as hostile. The reader
/// * bounds the size (``Limits/maxBytes``) and the rows it will look at (``Limits/maxRows``);
/// * checks the SQLite header itself before SQLite sees the bytes (`.notSQLite`, `.corrupt`);
/// * opens a **private in-memory copy** read-only (`sqlite3_deserialize`), so the caller's bytes
///   are never modified, the auth key never reaches disk and nothing is left behind — see
///   ``SessionFileDatabase``; a WAL-mode header is patched to rollback on that copy only;
/// * hardens the connection (defensive mode, no triggers/views/extensions, untrusted schema,
///   tight `sqlite3_limit`s) and runs `PRAGMA quick_check` before reading anything;
/// * detects the schema from the `version` table and reads every value by column name with its
///   storage class checked (docs/formats.md, "How the vault reads and writes them").
///
/// Lossy by design (the formats do not carry more): Pyrogram v2 has no `api_id`; Telethon has no
/// `api_id`, `is_bot`, `date` or peer types; Telethon `takeout_id`, `tmp_auth_key` and `sent_files`
/// are ignored. `update_state` rows (Kurigram v6/v7, Pyrofork v4, Telethon) are read as the file
/// has them.
public enum SessionFileReader {
    /// Resource bounds for one read. Named configuration so that callers can tune them.
    public struct Limits: Sendable, Equatable {
        /// Largest accepted file, in bytes. Default 64 MiB: real session files are tens of KiB,
        /// and 10,000 cached peers take 0.5–1.2 MiB depending on the schema.
        public var maxBytes: Int
        /// Most rows read from any one table (`peers`, `usernames`, `entities`).
        /// Default 1,000,000.
        public var maxRows: Int

        public init(maxBytes: Int = 64 << 20, maxRows: Int = 1_000_000) {
            self.maxBytes = maxBytes
            self.maxRows = maxRows
        }
    }

    /// Reads a `.session` file from its bytes. `bytes` is never modified.
    /// - Throws: ``SessionFileError``: `.tooLarge`, `.notSQLite`, `.corrupt`, `.unsupportedSchema`
    ///   (naming the unknown version or layout), `.missingTable`, `.missingField`,
    ///   `.invalidField` (naming the field), `.tooManyRows`.
    public static func read(bytes: [UInt8], limits: Limits = Limits()) throws(SessionFileError) -> ImportedSession {
        guard bytes.count <= limits.maxBytes else { throw .tooLarge(max: limits.maxBytes) }
        try checkHeader(bytes)
        let database = try SessionFileSQL.run { () throws(SQLiteError) in
            try SessionFileDatabase(readOnlyCopyOf: bytes)
        }
        // The connection belongs to `database`; keep it alive until the reading is done.
        defer { withExtendedLifetime(database) {} }
        let db = database.connection
        try quickCheck(db)
        let tables = try SessionFileTables(db)
        guard tables.has("version") || tables.has("sessions") else {
            throw .unsupportedSchema("no version or sessions table; not a Telegram session file")
        }
        guard tables.has("version") else { throw .missingTable("version") }
        guard tables.has("sessions") else { throw .missingTable("sessions") }
        let versionColumns = tables.columns("version")
        switch (versionColumns.contains("number"), versionColumns.contains("version")) {
        case (true, false):
            let version = try readVersion(db, column: "number", present: versionColumns)
            return try readPyrogramFamily(db, tables: tables, version: version, limits: limits)
        case (false, true):
            let version = try readVersion(db, column: "version", present: versionColumns)
            return try readTelethon(db, tables: tables, version: version, limits: limits)
        default:
            throw .unsupportedSchema("the version table has neither a number (Pyrogram) nor a version (Telethon) column")
        }
    }

    /// Reads the file at `path` (at most ``Limits/maxBytes``; must be a regular file) and parses
    /// it with ``read(bytes:limits:)``. The file is opened read-only and never modified. Only
    /// the main file is read: content still sitting in a `-wal` next to it is not included
    /// (the libraries checkpoint it on a clean close; docs/formats.md, "Hydrogram and WAL").
    /// - Throws: ``SessionFileError/io(_:)`` when the file cannot be opened or read, plus
    ///   everything ``read(bytes:limits:)`` throws.
    public static func read(path: String, limits: Limits = Limits()) throws(SessionFileError) -> ImportedSession {
        var bytes = try readFile(path, maxBytes: limits.maxBytes)
        defer { bytes.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, $0.count) } }
        return try read(bytes: bytes, limits: limits)
    }

    // MARK: - Header and integrity

    private static let magic: [UInt8] = Array("SQLite format 3".utf8) + [0]

    /// Checks the 100-byte database header (sqlite.org/fileformat2.html §1.3) before SQLite sees
    /// the bytes: magic, page size, whole pages, and the in-header page count against the size
    /// (a truncated file is reported here rather than as zero-filled pages).
    static func checkHeader(_ bytes: [UInt8]) throws(SessionFileError) {
        guard bytes.count >= magic.count, bytes[0..<magic.count].elementsEqual(magic) else { throw .notSQLite }
        guard bytes.count >= 100 else { throw .corrupt }
        let rawPageSize = Int(bytes[16]) << 8 | Int(bytes[17])
        let pageSize = rawPageSize == 1 ? 65_536 : rawPageSize
        guard pageSize >= 512, pageSize <= 65_536, pageSize & (pageSize - 1) == 0 else { throw .corrupt }
        guard bytes.count % pageSize == 0 else { throw .corrupt }
        func be32(_ at: Int) -> Int {
            Int(bytes[at]) << 24 | Int(bytes[at + 1]) << 16 | Int(bytes[at + 2]) << 8 | Int(bytes[at + 3])
        }
        // The in-header size is authoritative only when "version-valid-for" matches the change
        // counter (fileformat2 §1.3.8); then the file must hold that many pages.
        let pageCount = be32(28)
        if pageCount != 0, be32(92) == be32(24), pageCount * pageSize > bytes.count { throw .corrupt }
    }

    private static func quickCheck(_ db: SQLiteConnection) throws(SessionFileError) {
        let rows = try SessionFileSQL.run { () throws(SQLiteError) in try db.query("PRAGMA quick_check(1)") }
        guard rows.count == 1, rows[0] == [.text("ok")] else { throw .corrupt }
    }

    private static func readVersion(
        _ db: SQLiteConnection, column: String, present: Set<String>
    ) throws(SessionFileError) -> Int64 {
        let row = try SessionFileRow(db, table: "version", wanted: [column], present: present, suffix: "LIMIT 2")
        guard try row.step(), let version = try row.integer(column, field: "version") else {
            throw .invalidField("version", "must hold exactly one integer row")
        }
        guard try !row.step() else { throw .invalidField("version", "must hold exactly one row") }
        return version
    }

    // MARK: - Pyrogram family (docs/formats.md, "Pyrogram-family .session files")

    private static func readPyrogramFamily(
        _ db: SQLiteConnection, tables: SessionFileTables, version: Int64, limits: Limits
    ) throws(SessionFileError) -> ImportedSession {
        let format: SourceFormat
        switch version {
        case 2: format = .pyrogramFileV2
        case 3: format = .pyrogramFileV3
        case 4: format = .pyroforkFileV4
        case 6: format = .kurigramFileV6
        case 7: format = .kurigramFileV7
        default: throw .unsupportedSchema("Pyrogram-family schema version \(version)")
        }
        // Which table holds the usernames (docs/formats.md, "Schema v4 (pyrofork)" and "Schema v6
        // and v7 (kurigram)"): pyrogram/pyrofork keep the first one in peers.username, pyrofork
        // the others in usernames(id = username, peer_id);
        // kurigram keeps all of them in usernames(id = peer id, username) and none in peers.
        let usernameColumns = tables.columns("usernames")
        let extraUsernames: UsernameTable?
        switch format {
        case .pyroforkFileV4:
            if usernameColumns.isEmpty {
                extraUsernames = nil  // migrated from v3: created lazily by pyrofork
            } else if usernameColumns.isSuperset(of: ["id", "peer_id"]) {
                extraUsernames = .pyrofork
            } else {
                throw .unsupportedSchema("schema version 4 with a usernames table pyrofork does not write (kurigram v4?)")
            }
        case .kurigramFileV6, .kurigramFileV7:
            if usernameColumns.isEmpty {
                extraUsernames = nil
            } else if usernameColumns.isSuperset(of: ["id", "username"]) {
                extraUsernames = .kurigram
            } else {
                throw .unsupportedSchema("schema version \(version) with a usernames table kurigram does not write")
            }
        default:
            extraUsernames = nil
        }
        let session = try readPyrogramSession(db, columns: tables.columns("sessions"))
        var peers = PeerCollector()
        if tables.has("peers") {
            // kurigram v6/v7 never reads a leftover peers.username (kept by its v3→v4 migration),
            // and neither do we: those values are stale (docs/formats.md, "Schema v6 and v7 (kurigram)").
            let usePeersUsername = extraUsernames != .kurigram && version <= 4
            try readPyrogramPeers(db, columns: tables.columns("peers"), usePeersUsername: usePeersUsername,
                                  limits: limits, into: &peers)
            if let extraUsernames {
                try readUsernames(db, layout: extraUsernames, columns: usernameColumns, limits: limits, into: &peers)
            }
        }
        return ImportedSession(session: session, peers: peers.peers, format: format,
                               updateStates: try readUpdateStates(db, tables: tables, limits: limits))
    }

    /// The `update_state` rows, when the file has the table: every column an integer or NULL.
    private static func readUpdateStates(
        _ db: SQLiteConnection, tables: SessionFileTables, limits: Limits
    ) throws(SessionFileError) -> [UpdateState] {
        guard tables.has("update_state") else { return [] }
        let columns = tables.columns("update_state")
        guard columns.contains("id") else { throw .missingField("update_state.id") }
        let row = try SessionFileRow(
            db, table: "update_state", wanted: ["id", "pts", "qts", "date", "seq"], present: columns, suffix: "ORDER BY id")
        var states: [UpdateState] = []
        while try row.step() {
            guard states.count < limits.maxRows else { throw .tooManyRows(table: "update_state", max: limits.maxRows) }
            guard let id = try row.integer("id", field: "update_state.id") else {
                throw .invalidField("update_state.id", "is not an integer")
            }
            states.append(UpdateState(
                id: id, pts: try row.integer("pts", field: "update_state.pts"), qts: try row.integer("qts", field: "update_state.qts"),
                date: try row.integerOrSeconds("date", field: "update_state.date"), seq: try row.integer("seq", field: "update_state.seq")))
        }
        return states
    }

    private enum UsernameTable: Equatable { case pyrofork, kurigram }

    private static func readPyrogramSession(
        _ db: SQLiteConnection, columns: Set<String>
    ) throws(SessionFileError) -> TelegramSession {
        let row = try SessionFileRow(
            db, table: "sessions",
            wanted: ["dc_id", "api_id", "test_mode", "auth_key", "date", "user_id", "is_bot", "server_address", "port"],
            present: columns, suffix: "LIMIT 2")
        guard try row.step() else { throw .invalidField("sessions", "holds no row") }
        var session = TelegramSession(dcID: try dcID(row))
        if let apiID = try row.integer("api_id", field: "api_id") {
            guard (0...Int64(UInt32.max)).contains(apiID) else {
                throw .invalidField("api_id", "must be 0…4294967295")
            }
            session.apiID = apiID
        }
        session.testMode = try row.integer("test_mode", field: "test_mode").map { $0 != 0 }
        session.authKey = try authKey(row, zeroMeansNone: false)
        session.date = try row.integer("date", field: "date")
        if let userID = try row.integer("user_id", field: "user_id") {
            guard userID >= 0 else { throw .invalidField("user_id", "must be 0…9223372036854775807") }
            session.userID = userID
        }
        session.isBot = try row.integer("is_bot", field: "is_bot").map { $0 != 0 }
        try readAddress(row, into: &session)
        guard try !row.step() else { throw .invalidField("sessions", "must hold exactly one row") }
        return session
    }

    private static func readPyrogramPeers(
        _ db: SQLiteConnection, columns: Set<String>, usePeersUsername: Bool, limits: Limits,
        into peers: inout PeerCollector
    ) throws(SessionFileError) {
        guard columns.contains("id") else { throw .missingField("peers.id") }
        var wanted = ["id", "access_hash", "type", "phone_number", "last_update_on"]
        if usePeersUsername { wanted.append("username") }
        let row = try SessionFileRow(db, table: "peers", wanted: wanted, present: columns, suffix: "ORDER BY id")
        var count = 0
        while try row.step() {
            count += 1
            guard count <= limits.maxRows else { throw .tooManyRows(table: "peers", max: limits.maxRows) }
            guard let id = try row.integer("id"), id != 0 else {
                throw .invalidField("peers.id", "must be a non-zero integer")
            }
            // Unknown type text (a newer fork's kind) or a non-text value: kind unknown (nil);
            // exporters infer it from the marked id. Pyrogram itself fails only on look-up.
            let type = row.textIfText("type").flatMap { PeerType(rawValue: $0) }
            var peer = Peer(
                id: id, accessHash: try row.integer("access_hash") ?? 0, type: type,
                phoneNumber: try row.text("phone_number", allowInteger: true),
                lastUpdateOn: try row.integer("last_update_on"))
            if let username = try row.text("username"), !username.isEmpty {
                peer.usernames = [username.lowercased()]
            }
            peers.append(peer)
        }
    }

    private static func readUsernames(
        _ db: SQLiteConnection, layout: UsernameTable, columns: Set<String>, limits: Limits,
        into peers: inout PeerCollector
    ) throws(SessionFileError) {
        // rowid order is insertion order: the order the library wrote the usernames in.
        let wanted = layout == .pyrofork ? ["id", "peer_id"] : ["id", "username"]
        let row = try SessionFileRow(db, table: "usernames", wanted: wanted, present: columns, suffix: "ORDER BY rowid")
        var count = 0
        while try row.step() {
            count += 1
            guard count <= limits.maxRows else { throw .tooManyRows(table: "usernames", max: limits.maxRows) }
            let peerID: Int64?
            let username: String?
            switch layout {
            case .pyrofork:
                username = try row.text("id", field: "usernames.id")
                peerID = try row.integer("peer_id", field: "usernames.peer_id")
            case .kurigram:
                username = try row.text("username", field: "usernames.username")
                peerID = try row.integer("id", field: "usernames.id")
            }
            // Rows for peers that are not cached (or NULLs) carry nothing usable: skip them.
            guard let peerID, let username, !username.isEmpty else { continue }
            peers.addUsername(username.lowercased(), to: peerID)
        }
    }

    // MARK: - Telethon (docs/formats.md, "Telethon .session files")

    private static func readTelethon(
        _ db: SQLiteConnection, tables: SessionFileTables, version: Int64, limits: Limits
    ) throws(SessionFileError) -> ImportedSession {
        let format: SourceFormat
        switch version {
        case 7: format = .telethonFileV7
        case 8: format = .telethonFileV8
        default: throw .unsupportedSchema("Telethon schema version \(version)")
        }
        let row = try SessionFileRow(
            db, table: "sessions", wanted: ["dc_id", "server_address", "port", "auth_key"],
            present: tables.columns("sessions"), suffix: "LIMIT 2")
        guard try row.step() else { throw .invalidField("sessions", "holds no row") }
        var session = TelegramSession(dcID: try dcID(row))
        // Telethon writes an empty blob when there is no key, and its strings use an all-zero
        // key for the same thing (docs/formats.md, "Rows and values"): both mean "no key".
        session.authKey = try authKey(row, zeroMeansNone: true)
        try readAddress(row, into: &session)
        guard try !row.step() else { throw .invalidField("sessions", "must hold exactly one row") }
        // Telethon does not store test mode. The test and production DC addresses are disjoint,
        // so an address that is exactly the table's address for this DC settles it; any other
        // address (IPv6, one learnt from help.getConfig) leaves it unknown.
        if let host = session.serverAddress {
            session.testMode = SessionFileDataCenters.testMode(dcID: session.dcID, host: host)
        }

        var peers = PeerCollector()
        if tables.has("entities") {
            let columns = tables.columns("entities")
            guard columns.contains("id") else { throw .missingField("entities.id") }
            let entities = try SessionFileRow(
                db, table: "entities", wanted: ["id", "hash", "username", "phone", "name", "date"],
                present: columns, suffix: "ORDER BY id")
            var count = 0
            while try entities.step() {
                count += 1
                guard count <= limits.maxRows else { throw .tooManyRows(table: "entities", max: limits.maxRows) }
                guard let id = try entities.integer("id") else { throw .invalidField("entities.id", "is not an integer") }
                let hash = try entities.integer("hash")
                if id == 0 {
                    // The client's pseudo entity for the own account: hash = own user id.
                    if let hash {
                        guard hash >= 0 else { throw .invalidField("user_id", "must be 0…9223372036854775807") }
                        session.userID = hash
                    }
                    continue
                }
                var peer = Peer(
                    id: id, accessHash: hash ?? 0, type: nil,
                    phoneNumber: try entities.text("phone", allowInteger: true),
                    name: try entities.text("name"), lastUpdateOn: try entities.integer("date"))
                if let username = try entities.text("username"), !username.isEmpty {
                    peer.usernames = [username.lowercased()]
                }
                peers.append(peer)
            }
        }
        return ImportedSession(session: session, peers: peers.peers, format: format,
                               updateStates: try readUpdateStates(db, tables: tables, limits: limits))
    }

    // MARK: - Shared field readers

    private static func dcID(_ row: SessionFileRow) throws(SessionFileError) -> Int {
        guard let dc = try row.integer("dc_id", field: "dc_id") else { throw .missingField("dc_id") }
        guard (0...Int64(Int32.max)).contains(dc) else { throw .invalidField("dc_id", "must be 0…2147483647") }
        return Int(dc)
    }

    private static func authKey(_ row: SessionFileRow, zeroMeansNone: Bool) throws(SessionFileError) -> AuthKey? {
        guard let secret = try row.secretBlob("auth_key", field: "auth_key"), secret.count > 0 else { return nil }
        guard secret.count == AuthKey.byteCount else {
            throw .invalidField("auth_key", "must be exactly 256 bytes, got \(secret.count)")
        }
        if zeroMeansNone && secret.isAllZero { return nil }
        do {
            return try AuthKey(secret: secret)
        } catch {
            throw .invalidField("auth_key", "is not a valid auth key")
        }
    }

    private static func readAddress(_ row: SessionFileRow, into session: inout TelegramSession) throws(SessionFileError) {
        if let address = try row.text("server_address", field: "server_address"), !address.isEmpty {
            guard address.utf8.count <= 255 else { throw .invalidField("server_address", "is longer than 255 bytes") }
            session.serverAddress = address
        }
        if let port = try row.integer("port", field: "port") {
            guard (1...65_535).contains(port) else { throw .invalidField("port", "must be 1…65535") }
            session.port = Int(port)
        }
    }

    // MARK: - File input

    private static func readFile(_ path: String, maxBytes: Int) throws(SessionFileError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io("cannot open file: \(errnoText())") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .io("cannot stat file: \(errnoText())") }
        guard info.st_mode & mode_t(S_IFMT) == mode_t(S_IFREG) else { throw .io("not a regular file") }
        guard Int(info.st_size) <= maxBytes else { throw .tooLarge(max: maxBytes) }
        // Read up to one byte more than allowed, in case the file grew since fstat.
        var bytes = [UInt8](repeating: 0, count: maxBytes + 1)
        var filled = 0
        while filled < bytes.count {
            let n = bytes.withUnsafeMutableBytes { buf in
                systemRead(fd, buf.baseAddress.map { $0 + filled }, buf.count - filled)
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io("cannot read file: \(errnoText())")
            }
            if n == 0 { break }
            filled += n
        }
        guard filled <= maxBytes else { throw .tooLarge(max: maxBytes) }
        bytes.removeSubrange(filled...)
        return bytes
    }

    private static func errnoText() -> String {
        String(cString: strerror(errno))
    }
}

/// `read(2)`, spelled through the module because `SessionFileReader.read` shadows it.
private func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    #if canImport(Glibc)
        Glibc.read(fd, buffer, count)
    #else
        Darwin.read(fd, buffer, count)
    #endif
}

/// The `sqlite_master` entries a session reader cares about, with their column names.
struct SessionFileTables {
    /// Lower-cased table name → lower-cased column names.
    private var columnsByTable: [String: Set<String>] = [:]

    private static let interesting: Set<String> = ["sessions", "peers", "usernames", "version", "entities", "update_state"]

    init(_ db: SQLiteConnection) throws(SessionFileError) {
        let objects = try SessionFileSQL.run { () throws(SQLiteError) in
            try db.query("SELECT type, name, sql FROM sqlite_master WHERE type IN ('table', 'view')")
        }
        for object in objects {
            guard object.count == 3, case .text(let type) = object[0], case .text(let name) = object[1] else { continue }
            let key = name.lowercased()
            guard Self.interesting.contains(key) else { continue }
            var sql = ""
            if case .text(let text) = object[2] { sql = text }
            // A view or virtual table in place of a session table is not something any client
            // writes; refuse it rather than run its code.
            guard type == "table", !sql.uppercased().hasPrefix("CREATE VIRTUAL") else {
                throw .unsupportedSchema("\(key) is not an ordinary table")
            }
            let columns = try SessionFileSQL.run { () throws(SQLiteError) in
                try db.query("SELECT name FROM pragma_table_info(?)", [.text(name)])
            }
            var names = Set<String>()
            for column in columns {
                if case .text(let columnName) = column.first { names.insert(columnName.lowercased()) }
            }
            columnsByTable[key] = names
        }
    }

    /// True when the table exists.
    func has(_ table: String) -> Bool { columnsByTable[table] != nil }

    /// The table's column names (empty when the table does not exist).
    func columns(_ table: String) -> Set<String> { columnsByTable[table] ?? [] }
}

/// Collects peers and attaches extra usernames by id.
private struct PeerCollector {
    private var collected: [Peer] = []
    private var indexByID: [Int64: Int] = [:]

    /// The peers in ascending id order (rows of one id in file order). The queries ask SQLite
    /// for `ORDER BY id`, which it answers from the id index; in a damaged file whose index
    /// disagrees with its table (which `quick_check` does not compare) that order is not id
    /// order, and the same peers written to another format and read back came out in a
    /// different order (found by the session-file fuzzer).
    var peers: [Peer] {
        var inIDOrder = true
        for i in collected.indices.dropFirst() where collected[i - 1].id > collected[i].id {
            inIDOrder = false
            break
        }
        if inIDOrder { return collected }
        return collected.enumerated()
            .sorted { ($0.element.id, $0.offset) < ($1.element.id, $1.offset) }
            .map(\.element)
    }

    mutating func append(_ peer: Peer) {
        indexByID[peer.id] = collected.count
        collected.append(peer)
    }

    /// Adds `username` to the peer `id` unless it already has it; ignores unknown peers.
    mutating func addUsername(_ username: String, to id: Int64) {
        guard let index = indexByID[id], !collected[index].usernames.contains(username) else { return }
        collected[index].usernames.append(username)
    }
}
