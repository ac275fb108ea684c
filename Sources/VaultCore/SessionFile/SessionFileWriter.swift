// SPDX-License-Identifier: Apache-2.0
internal import CSQLite
import Primitives

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// Writes `.session` files that the Python clients open as their own (docs/formats.md,
/// "What the vault reads and writes"):
///
/// * ``ExportFormat/pyrogramFile``: pyrogram 2.0.106 schema **v3**, opened by pyrogram,
///   hydrogram, pyrofork (→ v4) and kurigram (→ v7);
/// * ``ExportFormat/kurigramFile``: kurigram 2.2.26 schema **v7**;
/// * ``ExportFormat/telethonFile``: Telethon 1.42 schema **v7**, opened by old and new Telethon.
///
/// Tables, indexes and the trigger are created with the libraries' own `CREATE` text
/// (``SessionFileSchema``), so `sqlite_master` equals the library's. The file uses the rollback
/// journal (header bytes 18/19 = 1), has no `-wal`/`-shm` and is `VACUUM`ed.
///
/// The database is built **in memory** and serialized (see ``SessionFileDatabase``): the auth key
/// never touches disk and there is no temp file to clean up.
///
/// Nothing is invented: a field the target format needs and the session lacks is refused with
/// ``SessionFileError/missingField(_:)`` naming it. Only the server address and port are derived,
/// from the published DC table (docs/formats.md, "Data centers"), exactly as the libraries do
/// themselves.
///
/// Lossy mappings (the target formats cannot hold more):
/// * Pyrogram v3 keeps one username per peer (the first) and the types user, bot, group,
///   channel, supergroup: `forum`, `direct` and `community` are written as `supergroup` (what
///   pyrogram itself writes for them; look-ups only need "channel-like"). No address, no names.
/// * Kurigram v7 keeps every username and type; no peer names.
/// * Telethon v7 keeps one username per peer, the name, and the phone as an INTEGER; it has no
///   `api_id`, `test_mode`, `is_bot`, `date` or peer types.
/// * A peer without a type gets the one implied by its marked id (``PeerType/inferred(fromMarkedID:)``).
public enum SessionFileWriter {
    /// Writes `update_state` rows, each channel id in the file's own convention; the account's
    /// row (id 0) as is. Rows whose id names no channel in either convention are left out.
    private static func insertUpdateStates(
        _ db: SQLiteConnection, _ states: [UpdateState], channelID convert: (Int64) -> Int64?
    ) throws(SQLiteError) {
        for s in states {
            guard let id = s.id == 0 ? 0 : convert(s.id) else { continue }
            func value(_ v: Int64?) -> SQLiteValue { v.map(SQLiteValue.integer) ?? .null }
            try db.run("INSERT OR REPLACE INTO update_state (id, pts, qts, date, seq) VALUES (?, ?, ?, ?, ?)",
                       [.integer(id), value(s.pts), value(s.qts), value(s.date), value(s.seq)])
        }
    }

    /// Builds the `.session` file for `format` and returns its bytes.
    ///
    /// - Parameters:
    ///   - session: the session; its `date` becomes the `date` column (now when nil).
    ///   - peers: the peers cache; `lastUpdateOn` becomes `last_update_on` / `entities.date`
    ///     (now when nil).
    ///   - format: one of the file formats.
    ///   - now: the current Unix time (tests pass a fixed value); the system clock when nil.
    /// - Throws: ``SessionFileError/missingField(_:)`` naming the field the format needs
    ///   (`auth_key`, `api_id`, `user_id`, `is_bot`, `test_mode`, `port`, `server_address`),
    ///   ``SessionFileError/invalidField(_:_:)`` for a value the format cannot hold (`format`
    ///   for a string format, `dc_id`, `api_id`, `user_id`, `port`, `auth_key` all zeros,
    ///   `peers.id`, `peers.type`), ``SessionFileError/io(_:)`` if SQLite itself fails.
    public static func write(
        _ session: TelegramSession, peers: [Peer], as format: ExportFormat, updateStates: [UpdateState] = [],
        now: Int64? = nil
    ) throws(SessionFileError) -> [UInt8] {
        let now = now ?? WallClock.nowSeconds()
        let key = try validKey(session)
        let flavour: Flavour
        switch format {
        case .pyrogramFile:
            flavour = .pyrogram(try pyrogramFields(session, needsAddress: false))
        case .kurigramFile:
            flavour = .kurigram(try pyrogramFields(session, needsAddress: true))
        case .telethonFile:
            flavour = .telethon(try telethonAddress(session))
        case .pyrogram, .telethon:
            throw .invalidField("format", "\(format.rawValue) is a session string, not a file")
        }
        try checkPeers(peers, typed: format != .telethonFile)

        let database: SessionFileDatabase
        do { database = try SessionFileDatabase() } catch { throw ioError(error) }
        defer { withExtendedLifetime(database) {} }
        let db = database.connection
        do {
            for statement in flavour.schema { try db.execute(statement) }
            try db.execute("BEGIN")
            switch flavour {
            case .pyrogram(let fields):
                try insertPyrogramSession(db, fields, key: key, date: session.date ?? now, withAddress: false)
                try db.run("INSERT INTO version (number) VALUES (?)", [.integer(3)])
                for peer in peers {
                    try db.run(
                        "INSERT INTO peers (id, access_hash, type, username, phone_number, last_update_on) "
                            + "VALUES (?, ?, ?, ?, ?, ?)",
                        [.integer(peer.id), .integer(peer.accessHash), .text(pyrogramV3Type(peer).rawValue),
                         peer.usernames.first.map { .text($0) } ?? .null,
                         peer.phoneNumber.map { .text($0) } ?? .null, .integer(peer.lastUpdateOn ?? now)])
                }
            case .kurigram(let fields):
                try insertPyrogramSession(db, fields, key: key, date: session.date ?? now, withAddress: true)
                try db.run("INSERT INTO version (number) VALUES (?)", [.integer(7)])
                for peer in peers {
                    try db.run(
                        "INSERT INTO peers (id, access_hash, type, phone_number, last_update_on) VALUES (?, ?, ?, ?, ?)",
                        [.integer(peer.id), .integer(peer.accessHash), .text(inferredType(peer).rawValue),
                         peer.phoneNumber.map { .text($0) } ?? .null, .integer(peer.lastUpdateOn ?? now)])
                    for username in peer.usernames {
                        try db.run("INSERT INTO usernames (id, username) VALUES (?, ?)",
                                   [.integer(peer.id), .text(username)])
                    }
                }
                try insertUpdateStates(db, updateStates, channelID: UpdateStateIDs.marked)
            case .telethon(let address):
                try db.run("INSERT INTO version (version) VALUES (?)", [.integer(7)])
                let insert = try db.prepare(
                    "INSERT INTO sessions (dc_id, server_address, port, auth_key, takeout_id) VALUES (?, ?, ?, ?, NULL)")
                try insert.bind([.integer(Int64(session.dcID)), .text(address.host), .integer(Int64(address.port))])
                try insert.bind(secret: key.bytes, at: 4)
                _ = try insert.step()
                insert.reset()
                // The client's pseudo entity for the own account (docs/formats.md, "Rows and values").
                if let userID = session.userID {
                    try db.run(
                        "INSERT INTO entities (id, hash, username, phone, name, date) VALUES (0, ?, NULL, NULL, NULL, ?)",
                        [.integer(userID), .integer(now)])
                }
                for peer in peers {
                    let phone = telethonPhone(peer.phoneNumber)
                    try db.run(
                        "INSERT INTO entities (id, hash, username, phone, name, date) VALUES (?, ?, ?, ?, ?, ?)",
                        [.integer(peer.id), .integer(peer.accessHash), peer.usernames.first.map { .text($0) } ?? .null,
                         phone, peer.name.map { .text($0) } ?? .null, .integer(peer.lastUpdateOn ?? now)])
                    if case .text(let text) = phone {
                        // SQLite's INTEGER affinity may have rewritten it ("07…", "1e3", "1.5"):
                        // then it is no longer the same phone, so drop it (see telethonPhone).
                        try db.run("UPDATE entities SET phone = NULL WHERE id = ? AND (typeof(phone) <> 'text' OR phone <> ?)",
                                   [.integer(peer.id), .text(text)])
                    }
                }
                try insertUpdateStates(db, updateStates, channelID: UpdateStateIDs.bare)
            }
            try db.execute("COMMIT")
            try db.execute("VACUUM")
            return try database.serialize()
        } catch {
            throw ioError(error)
        }
    }

    // MARK: - Validation

    /// What the target needs, validated.
    private enum Flavour {
        case pyrogram(PyrogramFields)
        case kurigram(PyrogramFields)
        case telethon(SessionFileDataCenters.Address)

        var schema: [String] {
            switch self {
            case .pyrogram: return SessionFileSchema.pyrogramV3
            case .kurigram: return SessionFileSchema.kurigramV7
            case .telethon: return SessionFileSchema.telethonV7
            }
        }
    }

    private struct PyrogramFields {
        var dcID: Int
        var apiID: Int64
        var testMode: Bool
        var userID: Int64
        var isBot: Bool
        var address: SessionFileDataCenters.Address?
    }

    private static func validKey(_ session: TelegramSession) throws(SessionFileError) -> AuthKey {
        guard let key = session.authKey else { throw .missingField("auth_key") }
        guard !key.isAllZero else { throw .invalidField("auth_key", "is all zeros") }
        return key
    }

    /// The Pyrogram-family session fields (docs/formats.md, "Conversions and exports"): the
    /// libraries need every one of them to start a client from the file without asking.
    private static func pyrogramFields(
        _ session: TelegramSession, needsAddress: Bool
    ) throws(SessionFileError) -> PyrogramFields {
        guard let apiID = session.apiID else { throw .missingField("api_id") }
        guard (1...Int64(UInt32.max)).contains(apiID) else {
            throw .invalidField("api_id", "must be 1…4294967295")
        }
        guard let userID = session.userID else { throw .missingField("user_id") }
        guard userID >= 0 else { throw .invalidField("user_id", "must be 0…9223372036854775807") }
        guard let isBot = session.isBot else { throw .missingField("is_bot") }
        guard let testMode = session.testMode else { throw .missingField("test_mode") }
        var fields = PyrogramFields(
            dcID: session.dcID, apiID: apiID, testMode: testMode, userID: userID, isBot: isBot)
        if needsAddress, session.serverAddress != nil {
            // kurigram v7 connects to the stored address (docs/formats.md, "Schema v6 and v7 (kurigram)").
            fields.address = try explicitAddress(session)
        } else {
            // pyrogram looks the DC up in its table; kurigram fills the address from the same one.
            guard let address = SessionFileDataCenters.address(dcID: session.dcID, testMode: testMode) else {
                throw .invalidField(
                    "dc_id", "\(session.dcID) is not a \(testMode ? "test" : "production") data center")
            }
            fields.address = needsAddress ? address : nil
        }
        return fields
    }

    /// Telethon needs an address and port (docs/formats.md, "Rows and values"); derived from the
    /// DC table when absent, which needs to know the network.
    private static func telethonAddress(_ session: TelegramSession) throws(SessionFileError) -> SessionFileDataCenters.Address {
        if session.serverAddress != nil { return try explicitAddress(session) }
        guard let testMode = session.testMode else { throw .missingField("test_mode") }
        guard let address = SessionFileDataCenters.address(dcID: session.dcID, testMode: testMode) else {
            throw .missingField("server_address")
        }
        return address
    }

    private static func explicitAddress(_ session: TelegramSession) throws(SessionFileError) -> SessionFileDataCenters.Address {
        guard let host = session.serverAddress, !host.isEmpty, host.utf8.count <= 255 else {
            throw .invalidField("server_address", "must be 1…255 bytes")
        }
        guard let port = session.port else { throw .missingField("port") }
        guard (1...65_535).contains(port) else { throw .invalidField("port", "must be 1…65535") }
        // Session strings carry the DC as one byte; keep files within what strings can hold.
        guard (1...255).contains(session.dcID) else { throw .invalidField("dc_id", "must be 1…255") }
        return SessionFileDataCenters.Address(host: host, port: port)
    }

    /// Peer ids are primary keys: non-zero, unique, and (for typed formats) consistent with the
    /// type, because the Pyrogram family builds `InputPeer*` from the type and the id.
    private static func checkPeers(_ peers: [Peer], typed: Bool) throws(SessionFileError) {
        var seen = Set<Int64>()
        seen.reserveCapacity(peers.count)
        for peer in peers {
            guard peer.id != 0 else { throw .invalidField("peers.id", "0 is not a peer id") }
            guard seen.insert(peer.id).inserted else {
                throw .invalidField("peers.id", "\(peer.id) appears more than once")
            }
            guard typed, let type = peer.type else { continue }
            let implied = PeerType.inferred(fromMarkedID: peer.id)
            let consistent: Bool
            switch type {
            case .user, .bot: consistent = implied == .user
            case .group: consistent = implied == .group
            case .channel, .supergroup, .forum, .direct, .community: consistent = implied == .channel
            }
            guard consistent else {
                throw .invalidField("peers.type", "\(type.rawValue) does not match the marked id \(peer.id)")
            }
        }
    }

    // MARK: - Mapping

    private static func inferredType(_ peer: Peer) -> PeerType {
        peer.type ?? .inferred(fromMarkedID: peer.id)
    }

    /// pyrogram 2.0.106 knows five type strings (docs/formats.md, "Pyrogram-family .session files").
    static func pyrogramV3Type(_ peer: Peer) -> PeerType {
        switch inferredType(peer) {
        case .forum, .direct, .community: return .supergroup
        case let type: return type
        }
    }

    /// Telethon declares `entities.phone` INTEGER and stores digit strings as integers
    /// (docs/formats.md, "Rows and values"): a canonical decimal phone is written as an integer.
    /// Anything else is written as text; where SQLite's INTEGER affinity would rewrite it ("07…"
    /// → 7…, "+1…", "1e3" → 1000, "1.5" → REAL) the writer replaces it with NULL after the insert
    /// (the peer still resolves by id and username): a Telethon file never carries a different
    /// phone number than the one given.
    private static func telethonPhone(_ phone: String?) -> SQLiteValue {
        guard let phone else { return .null }
        let digits = phone.utf8
        guard !digits.isEmpty, digits.count <= 18, digits.first != UInt8(ascii: "0"),
            digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
            let value = Int64(phone)
        else { return .text(phone) }
        return .integer(value)
    }

    private static func insertPyrogramSession(
        _ db: SQLiteConnection, _ fields: PyrogramFields, key: AuthKey, date: Int64, withAddress: Bool
    ) throws(SQLiteError) {
        let sql = withAddress
            ? "INSERT INTO sessions (dc_id, api_id, test_mode, auth_key, date, user_id, is_bot, server_address, port) "
                + "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            : "INSERT INTO sessions (dc_id, api_id, test_mode, auth_key, date, user_id, is_bot) VALUES (?, ?, ?, ?, ?, ?, ?)"
        let insert = try db.prepare(sql)
        var values: [SQLiteValue] = [
            .integer(Int64(fields.dcID)), .integer(fields.apiID), .integer(fields.testMode ? 1 : 0), .null,
            .integer(date), .integer(fields.userID), .integer(fields.isBot ? 1 : 0),
        ]
        if withAddress {
            values.append(fields.address.map { .text($0.host) } ?? .null)
            values.append(fields.address.map { .integer(Int64($0.port)) } ?? .null)
        }
        try insert.bind(values)
        try insert.bind(secret: key.bytes, at: 4)
        _ = try insert.step()
        insert.reset()
    }

    private static func ioError(_ error: SQLiteError) -> SessionFileError {
        .io("SQLite failed while building the file (code \(error.extendedCode))")
    }
}
