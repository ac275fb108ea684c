// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import VaultCore

/// Files we write have exactly the library's schema and rows (compared with the vectors' raw
/// `sqlite` dumps), round-trip through the reader, and refuse what the target cannot hold.
@Suite struct SessionFileWriterTests {
    /// (export format, vector written by the library that format imitates).
    static let flavours: [(ExportFormat, String)] = [
        (.pyrogramFile, "pyrogram_user"), (.kurigramFile, "kurigram_user"), (.telethonFile, "telethon-1.42_user"),
    ]

    // MARK: - Schema and content equal the library's

    @Test(arguments: flavours)
    func schemaEqualsTheLibrarysSchema(format: ExportFormat, vectorName: String) throws {
        let vector = try SessionFileVector.load(vectorName)
        let imported = try SessionFileReader.read(bytes: vector.bytes)
        let bytes = try SessionFileWriter.write(imported.session, peers: imported.peers, as: format, now: 1_700_000_000)
        try withSessionFileTempDir { dir in
            let db = try sessionFileOpen(bytes, in: dir)
            defer { db.close() }
            #expect(try db.query("PRAGMA integrity_check") == [[.text("ok")]])
            #expect(try db.query("PRAGMA journal_mode") == [[.text("delete")]])
            // sqlite_master, entry by entry, in order: type, name, tbl_name and the CREATE text.
            let master = try db.query("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid")
            let expected = vector.sqlite["sqlite_master"]?.array ?? []
            #expect(master.count == expected.count)
            for (row, want) in zip(master, expected) {
                #expect(row.map(json) == [want["type"], want["name"], want["tbl_name"], want["sql"]].map { $0 ?? .null })
            }
            // PRAGMA table_info of every table.
            guard case .object(let tables) = vector.sqlite["tables"] ?? .null else {
                Issue.record("vector has no table dump")
                return
            }
            #expect(tables.count >= 3)
            for (table, dump) in tables {
                let info = try db.query(
                    "SELECT cid, name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?)", [.text(table)])
                let want = dump["columns"]?.array ?? []
                #expect(info.count == want.count, "columns of \(table)")
                for (column, expect) in zip(info, want) {
                    let notNull: SessionFileJSON = (expect["notnull"]?.bool ?? false) ? .int(1) : .int(0)
                    #expect(
                        column.map(json) == [expect["cid"], expect["name"], expect["type"], notNull, expect["default"], expect["pk"]]
                            .map { $0 ?? .null }, "\(table) column")
                }
            }
        }
        // Header: same page size, rollback journal (never WAL), schema format and encoding.
        let header = vector.bytes
        #expect(bytes[16] == header[16] && bytes[17] == header[17])
        #expect(bytes[18] == 1 && bytes[19] == 1)
        #expect(bytes[44..<48].elementsEqual(header[44..<48]))
        #expect(bytes[56..<60].elementsEqual(header[56..<60]))
    }

    @Test(arguments: flavours)
    func rowsEqualTheLibrarysRows(format: ExportFormat, vectorName: String) throws {
        let vector = try SessionFileVector.load(vectorName)
        let imported = try SessionFileReader.read(bytes: vector.bytes)
        // Telethon's pseudo entity carries the insert time; reuse the vector's so rows compare exactly.
        let now = vector.dumpRows("entities").first { $0["id"]?.int64 == 0 }?["date"]?.int64 ?? 1_700_000_000
        let bytes = try SessionFileWriter.write(imported.session, peers: imported.peers, as: format, now: now)
        try withSessionFileTempDir { dir in
            let db = try sessionFileOpen(bytes, in: dir)
            defer { db.close() }
            // update_state and sent_files are not carried (documented); every other table is.
            for table in ["sessions", "peers", "usernames", "version", "entities"] {
                let want = vector.dumpRows(table)
                guard let columns = vector.sqlite["tables"]?[table]?["columns"]?.array.compactMap({ $0["name"]?.string })
                else { continue }
                let list = columns.map { "\"\($0)\", typeof(\"\($0)\")" }.joined(separator: ", ")
                let have = try db.query("SELECT \(list) FROM \"\(table)\" ORDER BY rowid").map { row in
                    var values: [String: SessionFileJSON] = [:]
                    var types: [String: SessionFileJSON] = [:]
                    for (i, column) in columns.enumerated() {
                        values[column] = json(row[2 * i])
                        types[column] = json(row[2 * i + 1])
                    }
                    values["_sqlite_types"] = .object(types)
                    return SessionFileJSON.object(values)
                }
                // kurigram's usernames rows follow the library's fetch order, ours the peers
                // order: the same rows per peer, in the same per-peer order.
                if table == "usernames" {
                    #expect(groupedByPeer(have) == groupedByPeer(want), "rows of \(table)")
                } else {
                    #expect(have == want, "rows of \(table)")
                }
            }
        }
    }

    // MARK: - Round trip

    @Test(arguments: SessionFileVector.names, [ExportFormat.pyrogramFile, .kurigramFile, .telethonFile])
    func roundTrip(vectorName: String, format: ExportFormat) throws {
        let vector = try SessionFileVector.load(vectorName)
        let imported = try SessionFileReader.read(bytes: vector.bytes)
        let now: Int64 = 1_712_345_678
        let result = Result { () throws(SessionFileError) in
            try SessionFileWriter.write(imported.session, peers: imported.peers, as: format, now: now)
        }
        // Telethon files and pyrogram 1.x (v2) files have no api_id: a Pyrogram-family file
        // cannot be made from them without inventing one (docs/formats.md, "Conversions and exports").
        if format != .telethonFile && imported.session.apiID == nil {
            #expect(throws: SessionFileError.missingField("api_id")) { try result.get() }
            return
        }
        let back = try SessionFileReader.read(bytes: try result.get())
        let expected = expectedAfterRoundTrip(imported, format, now: now)
        #expect(back.format == expected.format)
        #expect(back.session == expected.session)
        #expect(back.peers == expected.peers)
    }

    @Test(arguments: [0, 1, 2])
    func telethonAddressComesFromTheDCTableLikeTheLibraries(pair: Int) throws {
        // conversion_pairs.json: the same key as a pyrogram and a Telethon session.
        let dir = try SessionFileVector.directory().deletingLastPathComponent()
        let data = try Data(contentsOf: dir.appendingPathComponent("conversion_pairs.json"))
        let entry = try JSONDecoder().decode(SessionFileJSON.self, from: data).array[pair]
        let py = try #require(entry["pyrogram_fields"])
        let telethon = try #require(entry["telethon_fields"])
        let keyHex = try #require(py["auth_key_hex"]?.string)
        let session = TelegramSession(
            dcID: Int(try #require(py["dc_id"]?.int64)), apiID: py["api_id"]?.int64, testMode: py["test_mode"]?.bool,
            authKey: try AuthKey(try #require(Hex.decode(keyHex))), userID: py["user_id"]?.int64, isBot: py["is_bot"]?.bool)
        let back = try SessionFileReader.read(bytes: try SessionFileWriter.write(session, peers: [], as: .telethonFile))
        #expect(back.session.serverAddress == telethon["server_address"]?.string)
        #expect(back.session.port == telethon["port"]?.int64.map { Int($0) })
        #expect(back.session.testMode == py["test_mode"]?.bool)
        #expect(back.session.authKey == session.authKey)
        #expect(back.session.userID == session.userID)
    }

    @Test func sameInputGivesTheSameBytes() throws {
        let vector = try SessionFileVector.load("kurigram_user")
        let imported = try SessionFileReader.read(bytes: vector.bytes)
        for format in [ExportFormat.pyrogramFile, .kurigramFile, .telethonFile] {
            let a = try SessionFileWriter.write(imported.session, peers: imported.peers, as: format, now: 42)
            let b = try SessionFileWriter.write(imported.session, peers: imported.peers, as: format, now: 42)
            #expect(a == b)
        }
    }

    // MARK: - Validation: refuse, naming the field, never invent

    private func session(_ change: (inout TelegramSession) -> Void = { _ in }) throws -> TelegramSession {
        var s = TelegramSession(
            dcID: 2, apiID: 12_345, testMode: false, authKey: try sessionFileTestKey(), userID: 5_000_000_000,
            isBot: false, date: 1_700_000_000)
        change(&s)
        return s
    }

    private func writeError(
        _ s: TelegramSession, _ format: ExportFormat, peers: [Peer] = []
    ) -> SessionFileError? {
        sessionFileError { () throws(SessionFileError) in try SessionFileWriter.write(s, peers: peers, as: format) }
    }

    @Test func pyrogramFamilyNeedsEveryField() throws {
        for format in [ExportFormat.pyrogramFile, .kurigramFile] {
            #expect(writeError(try session(), format) == nil)
            #expect(writeError(try session { $0.apiID = nil }, format) == .missingField("api_id"))
            #expect(writeError(try session { $0.userID = nil }, format) == .missingField("user_id"))
            #expect(writeError(try session { $0.isBot = nil }, format) == .missingField("is_bot"))
            #expect(writeError(try session { $0.testMode = nil }, format) == .missingField("test_mode"))
            #expect(writeError(try session { $0.authKey = nil }, format) == .missingField("auth_key"))
            #expect(writeError(try session { $0.apiID = 0 }, format)?.field == "api_id")
            #expect(writeError(try session { $0.apiID = 1 << 32 }, format)?.field == "api_id")
            #expect(writeError(try session { $0.apiID = (1 << 32) - 1 }, format) == nil)
            #expect(writeError(try session { $0.userID = -1 }, format)?.field == "user_id")
            #expect(writeError(try session { $0.userID = Int64.max }, format) == nil)
            #expect(writeError(try session { $0.dcID = 6 }, format)?.field == "dc_id")
            #expect(writeError(try session { $0.dcID = 203 }, format) == nil)
            #expect(writeError(try session { $0.dcID = 4; $0.testMode = true }, format)?.field == "dc_id")
        }
    }

    @Test func allZeroKeyIsRefusedEverywhere() throws {
        let zero = try AuthKey([UInt8](repeating: 0, count: 256))
        for format in [ExportFormat.pyrogramFile, .kurigramFile, .telethonFile] {
            #expect(writeError(try session { $0.authKey = zero }, format) == .invalidField("auth_key", "is all zeros"))
        }
    }

    @Test func stringFormatsAreNotFiles() throws {
        #expect(writeError(try session(), .pyrogram)?.field == "format")
        #expect(writeError(try session(), .telethon)?.field == "format")
    }

    @Test func telethonNeedsOnlyKeyDCAndAddress() throws {
        let bare = TelegramSession(dcID: 4, authKey: try sessionFileTestKey())
        #expect(writeError(bare, .telethonFile) == .missingField("test_mode"))
        var withMode = bare
        withMode.testMode = false
        let back = try SessionFileReader.read(bytes: try SessionFileWriter.write(withMode, peers: [], as: .telethonFile))
        #expect(back.session.serverAddress == "149.154.167.91")
        #expect(back.session.port == 443)
        #expect(back.session.userID == nil)
        var unknownDC = withMode
        unknownDC.dcID = 7
        #expect(writeError(unknownDC, .telethonFile) == .missingField("server_address"))
        var explicit = bare
        explicit.dcID = 7
        explicit.serverAddress = "2001:db8::1"
        explicit.port = 443
        let explicitBack = try SessionFileReader.read(bytes: try SessionFileWriter.write(explicit, peers: [], as: .telethonFile))
        #expect(explicitBack.session.serverAddress == "2001:db8::1")
        #expect(explicitBack.session.testMode == nil)
        explicit.port = nil
        #expect(writeError(explicit, .telethonFile) == .missingField("port"))
        explicit.port = 0
        #expect(writeError(explicit, .telethonFile)?.field == "port")
        #expect(writeError(try session { $0.authKey = nil }, .telethonFile) == .missingField("auth_key"))
    }

    @Test func kurigramFillsTheAddressFromTheDCTable() throws {
        let test = try SessionFileReader.read(
            bytes: try SessionFileWriter.write(try session { $0.testMode = true }, peers: [], as: .kurigramFile))
        #expect(test.session.serverAddress == "149.154.167.40")
        #expect(test.session.port == 80)
        let own = try SessionFileReader.read(
            bytes: try SessionFileWriter.write(
                try session { $0.serverAddress = "10.0.0.1"; $0.port = 8443 }, peers: [], as: .kurigramFile))
        #expect(own.session.serverAddress == "10.0.0.1")
        #expect(own.session.port == 8443)
        #expect(writeError(try session { $0.serverAddress = "10.0.0.1" }, .kurigramFile) == .missingField("port"))
    }

    @Test func peersAreCheckedAndMapped() throws {
        let s = try session()
        let dup = [Peer(id: 1, accessHash: 1, type: .user), Peer(id: 1, accessHash: 2, type: .user)]
        #expect(writeError(s, .pyrogramFile, peers: dup)?.field == "peers.id")
        #expect(writeError(s, .telethonFile, peers: dup)?.field == "peers.id")
        #expect(writeError(s, .kurigramFile, peers: [Peer(id: 0, accessHash: 0, type: nil)])?.field == "peers.id")
        #expect(writeError(s, .pyrogramFile, peers: [Peer(id: -5, accessHash: 0, type: .user)])?.field == "peers.type")
        #expect(writeError(s, .kurigramFile, peers: [Peer(id: 5, accessHash: 0, type: .channel)])?.field == "peers.type")
        // Telethon has no types, so a wrong one cannot hurt there.
        #expect(writeError(s, .telethonFile, peers: [Peer(id: 5, accessHash: 0, type: .channel)]) == nil)

        let peers = [
            Peer(id: -1_001_000_000_001, accessHash: 11, type: .forum, usernames: ["a", "b"], lastUpdateOn: 5),
            Peer(id: -1_001_000_000_002, accessHash: 12, type: .direct),
            Peer(id: -1_001_000_000_003, accessHash: 13, type: .community),
            Peer(id: -1_001_000_000_004, accessHash: 14, type: nil),
            Peer(id: -77, accessHash: 0, type: nil),
            Peer(id: 42, accessHash: 15, type: nil, phoneNumber: "+1 555", name: "Odd phone"),
            Peer(id: 43, accessHash: 16, type: .bot, phoneNumber: "15550000001"),
        ]
        let pyro = try SessionFileReader.read(bytes: try SessionFileWriter.write(s, peers: peers, as: .pyrogramFile, now: 9))
        #expect(pyro.peers.map(\.type) == [.supergroup, .supergroup, .supergroup, .channel, .group, .user, .bot].reversedByID(peers))
        let kuri = try SessionFileReader.read(bytes: try SessionFileWriter.write(s, peers: peers, as: .kurigramFile, now: 9))
        #expect(kuri.peers.map(\.type) == [.forum, .direct, .community, .channel, .group, .user, .bot].reversedByID(peers))
        #expect(kuri.peers.first { $0.id == -1_001_000_000_001 }?.usernames == ["a", "b"])
        #expect(pyro.peers.first { $0.id == -1_001_000_000_001 }?.usernames == ["a"])
        #expect(kuri.peers.first { $0.id == -1_001_000_000_001 }?.lastUpdateOn == 5)
        #expect(kuri.peers.first { $0.id == -77 }?.lastUpdateOn == 9)

        let telethonBytes = try SessionFileWriter.write(s, peers: peers, as: .telethonFile, now: 9)
        let tele = try SessionFileReader.read(bytes: telethonBytes)
        #expect(tele.peers.first { $0.id == 42 }?.phoneNumber == "+1 555")
        #expect(tele.peers.first { $0.id == 42 }?.name == "Odd phone")
        #expect(tele.peers.first { $0.id == 43 }?.phoneNumber == "15550000001")
        try withSessionFileTempDir { dir in
            let db = try sessionFileOpen(telethonBytes, in: dir)
            defer { db.close() }
            // Telethon stores digit phones as INTEGER (docs/formats.md, "Rows and values"); anything
            // else stays TEXT.
            #expect(try db.query("SELECT typeof(phone) FROM entities WHERE id = 43") == [[.text("integer")]])
            #expect(try db.query("SELECT typeof(phone) FROM entities WHERE id = 42") == [[.text("text")]])
            #expect(try db.query("SELECT hash FROM entities WHERE id = 0") == [[.integer(5_000_000_000)]])
        }
    }

    // MARK: - Helpers

    private func json(_ value: SQLiteValue) -> SessionFileJSON {
        switch value {
        case .null: return .null
        case .integer(let v): return .int(v)
        case .real(let v): return .double(v)
        case .text(let v): return .string(v)
        case .blob(let v): return .object(["blob_hex": .string(Hex.encode(v))])
        }
    }

    private func groupedByPeer(_ rows: [SessionFileJSON]) -> [Int64: [SessionFileJSON]] {
        Dictionary(grouping: rows) { $0["id"]?.int64 ?? 0 }
    }

    /// What the reader must give back after `write(format)`, stating the documented lossy
    /// mappings of ``SessionFileWriter`` independently of its code.
    private func expectedAfterRoundTrip(_ imported: ImportedSession, _ format: ExportFormat, now: Int64) -> ImportedSession {
        var s = imported.session
        let address = SessionFileDataCenters.address(dcID: s.dcID, testMode: s.testMode ?? false)
        switch format {
        case .pyrogramFile:
            s.serverAddress = nil
            s.port = nil
            s.date = s.date ?? now
            let peers = imported.peers.map { p in
                var type = p.type ?? .inferred(fromMarkedID: p.id)
                if [.forum, .direct, .community].contains(type) { type = .supergroup }
                return Peer(
                    id: p.id, accessHash: p.accessHash, type: type, usernames: Array(p.usernames.prefix(1)),
                    phoneNumber: p.phoneNumber, lastUpdateOn: p.lastUpdateOn ?? now)
            }
            return ImportedSession(session: s, peers: peers, format: .pyrogramFileV3)
        case .kurigramFile:
            if s.serverAddress == nil {
                s.serverAddress = address?.host
                s.port = address?.port
            }
            s.date = s.date ?? now
            let peers = imported.peers.map { p in
                Peer(
                    id: p.id, accessHash: p.accessHash, type: p.type ?? .inferred(fromMarkedID: p.id),
                    usernames: p.usernames, phoneNumber: p.phoneNumber, lastUpdateOn: p.lastUpdateOn ?? now)
            }
            return ImportedSession(session: s, peers: peers, format: .kurigramFileV7)
        default:
            if s.serverAddress == nil {
                s.serverAddress = address?.host
                s.port = address?.port
            }
            s.apiID = nil
            s.isBot = nil
            s.date = nil
            // Every vector uses a production DC address from the table, which the reader
            // recognises as production.
            s.testMode = false
            let peers = imported.peers.map { p in
                Peer(
                    id: p.id, accessHash: p.accessHash, type: nil, usernames: Array(p.usernames.prefix(1)),
                    phoneNumber: p.phoneNumber, name: p.name, lastUpdateOn: p.lastUpdateOn ?? now)
            }
            return ImportedSession(session: s, peers: peers, format: .telethonFileV7)
        }
    }
}

extension Array where Element == PeerType {
    /// `self` lists types in the order of `peers`; the reader returns peers by ascending id.
    fileprivate func reversedByID(_ peers: [Peer]) -> [PeerType?] {
        zip(peers, self).sorted { $0.0.id < $1.0.id }.map { $0.1 }
    }
}
