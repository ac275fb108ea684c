// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import VaultCore

/// Damaged, foreign and hostile inputs give a clear typed error, never a crash.
@Suite struct SessionFileHostileTests {
    private func readError(_ bytes: [UInt8], limits: SessionFileReader.Limits = .init()) -> SessionFileError? {
        sessionFileError { () throws(SessionFileError) in try SessionFileReader.read(bytes: bytes, limits: limits) }
    }

    // MARK: - Not SQLite, truncated, damaged

    @Test func emptyAndTinyInputsAreNotSQLite() {
        #expect(readError([]) == .notSQLite)
        #expect(readError([0x53]) == .notSQLite)
        #expect(readError(Array("SQLite format 2\0".utf8)) == .notSQLite)
        #expect(readError(Array("SQLite format 3".utf8)) == .notSQLite)
        #expect(readError(Array("SQLite format 3\0".utf8)) == .corrupt)
    }

    @Test(arguments: SessionFileVector.names)
    func truncatedCopiesAreRejected(name: String) throws {
        let bytes = try SessionFileVector.load(name).bytes
        let n = bytes.count
        let cuts = [0, 1, 15, 16, 17, 99, 100, 101, 511, 512, 1000, 4095, 4096, 4097, 8192, n / 2, n - 4096, n - 100, n - 1]
        for cut in cuts {
            let error = readError(Array(bytes[0..<cut]))
            #expect(error == (cut < 16 ? .notSQLite : .corrupt), "cut at \(cut)")
        }
    }

    @Test(arguments: SessionFileVector.names)
    func truncationIsCaughtEvenWhenTheHeaderCannotTell(name: String) throws {
        // With "version-valid-for" != change counter SQLite ignores the in-header page count,
        // so only SQLite itself (quick_check / page reads) can notice the missing pages.
        var bytes = try SessionFileVector.load(name).bytes
        bytes[95] ^= 0xFF
        #expect(readError(bytes) == nil)
        for pages in 1...3 {
            #expect(readError(Array(bytes[0..<(bytes.count - pages * 4096)])) == .corrupt, "minus \(pages) pages")
        }
    }

    @Test(arguments: ["pyrogram_user", "hydrogram_user", "kurigram_user", "telethon_user"])
    func flippedHeaderBytes(name: String) throws {
        let bytes = try SessionFileVector.load(name).bytes
        let original = try SessionFileReader.read(bytes: bytes)
        for offset in 0..<100 {
            var damaged = bytes
            damaged[offset] ^= 0xFF
            do {
                // Some header fields do not matter to a reader (change counter, user version,
                // application id, reserved space…): then the content must be unchanged.
                let imported = try SessionFileReader.read(bytes: damaged)
                #expect(imported == original, "offset \(offset)")
            } catch {
                if offset < 16 {
                    #expect(error == .notSQLite, "offset \(offset)")
                } else {
                    #expect(error == .corrupt || error.isSchemaRefusal, "offset \(offset): \(error)")
                }
            }
        }
        // Page size (16–17) and read version (19). The write version (18) only makes SQLite
        // treat the file as read-only, which a reader does not mind.
        for offset in [16, 17, 19] {
            var damaged = bytes
            damaged[offset] ^= 0xFF
            #expect(readError(damaged) == .corrupt, "offset \(offset)")
        }
    }

    @Test(arguments: ["pyrogram_user", "kurigram_user", "pyrofork_user", "telethon_user"])
    func flippedBodyBytesNeverCrash(name: String) throws {
        let bytes = try SessionFileVector.load(name).bytes
        var random = SessionFileRandom(state: 0x5E55_1011)
        var failures = 0
        for _ in 0..<300 {
            var damaged = bytes
            let offset = Int.random(in: 100..<bytes.count, using: &random)
            damaged[offset] ^= UInt8.random(in: 1...255, using: &random)
            if readError(damaged) != nil { failures += 1 }
        }
        // Most single-byte flips land in b-tree structure or record headers and are caught;
        // the rest changed a value or unused space. Either way: a value or a typed error.
        #expect(failures > 0)
    }

    @Test func randomBytesAreRejected() {
        var random = SessionFileRandom(state: 42)
        for size in [1, 100, 4096, 3 * 4096, 65_536] {
            let noise = (0..<size).map { _ in UInt8.random(in: 0...255, using: &random) }
            #expect(readError(noise) == .notSQLite, "size \(size)")
            var withMagic = noise
            if size >= 16 { withMagic.replaceSubrange(0..<16, with: Array("SQLite format 3\0".utf8)) }
            #expect(readError(withMagic) != nil, "size \(size) with magic")
            if size >= 100 {
                // A plausible header (4096-byte pages, rollback) over noise.
                withMagic[16] = 0x10
                withMagic[17] = 0x00
                withMagic[18] = 1
                withMagic[19] = 1
                #expect(readError(withMagic) != nil, "size \(size) with header")
            }
        }
    }

    // MARK: - Foreign or unknown schemas

    @Test func unrelatedDatabaseIsRefused() throws {
        let bytes = try sessionFileCreated("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes VALUES (1, 'hi');")
        guard case .unsupportedSchema = readError(bytes) else {
            Issue.record("expected unsupportedSchema, got \(String(describing: readError(bytes)))")
            return
        }
        let empty = try sessionFileCreated("PRAGMA user_version = 1;")
        #expect(readError(empty)?.isSchemaRefusal == true)
    }

    @Test func unknownVersionsAreNamed() throws {
        let pyrogram = try SessionFileVector.load("pyrogram_user").bytes
        for version in [0, 1, 5, 8, 99] {
            let bytes = try sessionFileModified(pyrogram, "UPDATE version SET number = \(version)")
            #expect(readError(bytes) == .unsupportedSchema("Pyrogram-family schema version \(version)"))
            #expect(readError(bytes)?.description.contains("\(version)") == true)
        }
        let telethon = try SessionFileVector.load("telethon_user").bytes
        for version in [6, 9, 99] {
            let bytes = try sessionFileModified(telethon, "UPDATE version SET version = \(version)")
            #expect(readError(bytes) == .unsupportedSchema("Telethon schema version \(version)"))
        }
        let kurigram = try SessionFileVector.load("kurigram_user").bytes
        let kurigramV4 = try sessionFileModified(kurigram, "UPDATE version SET number = 4")
        #expect(readError(kurigramV4)?.isSchemaRefusal == true)
    }

    @Test func missingOrMalformedCoreTables() throws {
        let onlyVersion = try sessionFileCreated("CREATE TABLE version (number INTEGER PRIMARY KEY); INSERT INTO version VALUES (3);")
        #expect(readError(onlyVersion) == .missingTable("sessions"))
        let pyrogram = try SessionFileVector.load("pyrogram_user").bytes
        #expect(readError(try sessionFileModified(pyrogram, "DROP TABLE version")) == .missingTable("version"))
        #expect(readError(try sessionFileModified(pyrogram, "DELETE FROM sessions"))?.field == "sessions")
        #expect(readError(try sessionFileModified(pyrogram, "INSERT INTO sessions (dc_id, date) VALUES (5, 0)"))?.field == "sessions")
        #expect(readError(try sessionFileModified(pyrogram, "INSERT INTO version VALUES (4)"))?.field == "version")
        let textVersion = try sessionFileModified(
            pyrogram, "DROP TABLE version; CREATE TABLE version (number TEXT); INSERT INTO version VALUES ('three')")
        #expect(readError(textVersion)?.field == "version")
        let neither = try sessionFileModified(
            pyrogram, "DROP TABLE version; CREATE TABLE version (v INTEGER); INSERT INTO version VALUES (3)")
        #expect(readError(neither)?.isSchemaRefusal == true)
        // No peers table at all: a session without peers (absent tables read as nothing).
        let noPeers = try SessionFileReader.read(bytes: try sessionFileModified(pyrogram, "DROP TABLE peers"))
        #expect(noPeers.peers.isEmpty)
        #expect(noPeers.session.authKey != nil)
    }

    @Test func badFieldValuesAreNamed() throws {
        let pyrogram = try SessionFileVector.load("pyrogram_user").bytes
        let cases: [(String, SessionFileError)] = [
            ("UPDATE sessions SET auth_key = x'0102'", .invalidField("auth_key", "must be exactly 256 bytes, got 2")),
            ("UPDATE sessions SET auth_key = 'text'", .invalidField("auth_key", "is not a blob")),
            ("UPDATE sessions SET user_id = -5", .invalidField("user_id", "must be 0…9223372036854775807")),
            ("UPDATE sessions SET user_id = 'me'", .invalidField("user_id", "is not an integer")),
            ("UPDATE sessions SET api_id = 4294967296", .invalidField("api_id", "must be 0…4294967295")),
            ("UPDATE sessions SET is_bot = x'01'", .invalidField("is_bot", "is not an integer")),
            ("UPDATE sessions SET dc_id = -1", .invalidField("dc_id", "must be 0…2147483647")),
            ("UPDATE peers SET access_hash = 'x' WHERE id = 100000001", .invalidField("peers.access_hash", "is not an integer")),
            ("UPDATE peers SET username = x'00' WHERE id = 100000001", .invalidField("peers.username", "is not text")),
        ]
        for (sql, expected) in cases {
            #expect(readError(try sessionFileModified(pyrogram, sql)) == expected, "\(sql)")
        }
        let kurigram = try SessionFileVector.load("kurigram_user").bytes
        #expect(readError(try sessionFileModified(kurigram, "UPDATE sessions SET port = 70000"))?.field == "port")
    }

    @Test func lenientWhereTheLibrariesAre() throws {
        let pyrogram = try SessionFileVector.load("pyrogram_user").bytes
        // An unknown type string (a newer fork's kind) leaves the kind unknown.
        let odd = try SessionFileReader.read(
            bytes: try sessionFileModified(pyrogram, "UPDATE peers SET type = 'martian' WHERE id = 100000001"))
        #expect(odd.peers.first { $0.id == 100000001 }?.type == nil)
        // pyrogram keeps an all-zero key as a key; Telethon means "no key" by it, or an empty blob.
        let zeroPyrogram = try SessionFileReader.read(bytes: try sessionFileModified(pyrogram, "UPDATE sessions SET auth_key = zeroblob(256)"))
        #expect(zeroPyrogram.session.authKey?.isAllZero == true)
        let telethon = try SessionFileVector.load("telethon_user").bytes
        for sql in ["UPDATE sessions SET auth_key = zeroblob(256)", "UPDATE sessions SET auth_key = x''", "UPDATE sessions SET auth_key = NULL"] {
            let imported = try SessionFileReader.read(bytes: try sessionFileModified(telethon, sql))
            #expect(imported.session.authKey == nil, "\(sql)")
        }
        // A fresh Telethon file: DC 0, no address, an empty key (docs/formats.md, "Rows and values").
        let fresh = try SessionFileReader.read(bytes: try sessionFileModified(
            telethon, "DELETE FROM sessions; INSERT INTO sessions VALUES (0, NULL, NULL, x'', NULL, x''); DELETE FROM entities"))
        #expect(fresh.session == TelegramSession(dcID: 0))
        #expect(fresh.peers.isEmpty)
        // Telethon phone stored as text is read as text.
        let textPhone = try SessionFileReader.read(
            bytes: try sessionFileModified(telethon, "UPDATE entities SET phone = CAST('15550000001' AS TEXT) WHERE id = 100000001"))
        #expect(textPhone.peers.first { $0.id == 100000001 }?.phoneNumber == "15550000001")
        // A pyrofork file migrated from v3 has no usernames table until the first peer update.
        let pyrofork = try SessionFileVector.load("pyrofork_user").bytes
        let migrated = try SessionFileReader.read(bytes: try sessionFileModified(pyrofork, "DROP TABLE usernames"))
        #expect(migrated.peers.first { $0.id == -1_001_500_000_000 }?.usernames == ["multia"])
        // Columns in another order (ALTER TABLE appends): read by name.
        let reordered = try sessionFileModified(
            pyrogram,
            """
            CREATE TABLE s2 (is_bot INTEGER, user_id INTEGER, date INTEGER NOT NULL, auth_key BLOB, test_mode INTEGER,
                             api_id INTEGER, dc_id INTEGER PRIMARY KEY);
            INSERT INTO s2 (is_bot, user_id, date, auth_key, test_mode, api_id, dc_id)
                SELECT is_bot, user_id, date, auth_key, test_mode, api_id, dc_id FROM sessions;
            DROP TABLE sessions; ALTER TABLE s2 RENAME TO sessions;
            """)
        #expect(try SessionFileReader.read(bytes: reordered).session == SessionFileReader.read(bytes: pyrogram).session)
    }

    // MARK: - Hostile schema objects

    @Test func viewsAndVirtualTablesAreRefused() throws {
        let pyrogram = try SessionFileVector.load("pyrogram_user").bytes
        let view = try sessionFileModified(
            pyrogram,
            """
            DROP TABLE peers;
            CREATE VIEW peers AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x AS id FROM c;
            """)
        #expect(readError(view) == .unsupportedSchema("peers is not an ordinary table"))
        let virtual = try sessionFileModified(pyrogram, "DROP TABLE peers; CREATE VIRTUAL TABLE peers USING fts5(id, username)")
        #expect(readError(virtual) == .unsupportedSchema("peers is not an ordinary table"))
    }

    @Test func generatedColumnsCannotProduceHugeValues() throws {
        // Generated columns are evaluated on read; the length limit stops a crafted expression
        // from materialising a huge value. (Non-deterministic functions are refused in them when
        // the file is made; trusted_schema=OFF refuses direct-only ones when it is read.)
        let pyrogram = try SessionFileVector.load("pyrogram_user").bytes
        for expression in ["zeroblob(50000000)", "printf('%.*c', 50000000, 'x')"] {
            let bytes = try sessionFileModified(
                pyrogram,
                """
                DROP TABLE peers;
                CREATE TABLE peers (id INTEGER PRIMARY KEY, access_hash INTEGER, type TEXT,
                                    username TEXT AS (\(expression)), phone_number TEXT);
                INSERT INTO peers (id, access_hash, type) VALUES (1, 2, 'user');
                """)
            switch sessionFileError({ () throws(SessionFileError) in try SessionFileReader.read(bytes: bytes) }) {
            case .some(let error):
                #expect(error.isSchemaRefusal, "\(expression): \(error)")
            case .none:
                // SQLite's printf stops at the length limit instead of failing: still small.
                let imported = try SessionFileReader.read(bytes: bytes)
                #expect(imported.peers.allSatisfy { $0.usernames.allSatisfy { $0.utf8.count <= 1_000_000 } })
            }
        }
    }

    @Test func triggersInTheFileNeverRun() throws {
        // Reading only SELECTs, triggers are disabled and the copy is read-only: a trigger
        // that would fail loudly if it ever fired is inert.
        let pyrogram = try SessionFileVector.load("pyrogram_user").bytes
        let bytes = try sessionFileModified(
            pyrogram, "CREATE TRIGGER evil AFTER UPDATE ON sessions BEGIN SELECT load_extension('/nonexistent/evil'); END")
        #expect(try SessionFileReader.read(bytes: bytes).session == SessionFileReader.read(bytes: pyrogram).session)
    }

    // MARK: - Bounds

    @Test func sizeBound() throws {
        let max = SessionFileReader.Limits().maxBytes
        #expect(max == 64 << 20)
        #expect(readError([UInt8](repeating: 0, count: max + 1)) == .tooLarge(max: max))
        let pyrogram = try SessionFileVector.load("pyrogram_user").bytes
        #expect(readError(pyrogram, limits: .init(maxBytes: pyrogram.count - 1)) == .tooLarge(max: pyrogram.count - 1))
        #expect(readError(pyrogram, limits: .init(maxBytes: pyrogram.count)) == nil)
        try withSessionFileTempDir { dir in
            // A sparse file over the bound is refused from its size, before it is read.
            let url = dir.appendingPathComponent("huge.session")
            #expect(FileManager.default.createFile(atPath: url.path, contents: Data(pyrogram)))
            let handle = try FileHandle(forWritingTo: url)
            try handle.truncate(atOffset: UInt64(max) + 1)
            try handle.close()
            #expect(
                sessionFileError { () throws(SessionFileError) in try SessionFileReader.read(path: url.path) }
                    == .tooLarge(max: max))
        }
    }

    @Test func rowBounds() throws {
        let pyrogram = try SessionFileVector.load("pyrogram_user").bytes
        #expect(readError(pyrogram, limits: .init(maxRows: 3)) == .tooManyRows(table: "peers", max: 3))
        #expect(readError(pyrogram, limits: .init(maxRows: 9)) == nil)
        let kurigram = try SessionFileVector.load("kurigram_user").bytes
        let manyNames = try sessionFileModified(
            kurigram, "INSERT INTO usernames (id, username) SELECT id, 'extra' || abs(id) FROM peers LIMIT 5")
        #expect(readError(manyNames, limits: .init(maxRows: 10)) == .tooManyRows(table: "usernames", max: 10))
        let telethon = try SessionFileVector.load("telethon_user").bytes
        #expect(readError(telethon, limits: .init(maxRows: 2)) == .tooManyRows(table: "entities", max: 2))
    }

    @Test func pathErrors() throws {
        try withSessionFileTempDir { dir in
            let missing = sessionFileError { () throws(SessionFileError) in
                try SessionFileReader.read(path: dir.appendingPathComponent("nope.session").path)
            }
            guard case .io = missing else {
                Issue.record("expected io, got \(String(describing: missing))")
                return
            }
            #expect(sessionFileError { () throws(SessionFileError) in try SessionFileReader.read(path: dir.path) }
                == .io("not a regular file"))
            // A damaged file is refused and leaves nothing behind.
            let url = dir.appendingPathComponent("bad.session")
            let bytes = Array(try SessionFileVector.load("hydrogram_user").bytes.prefix(5000))
            try Data(bytes).write(to: url)
            #expect(sessionFileError { () throws(SessionFileError) in try SessionFileReader.read(path: url.path) } == .corrupt)
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["bad.session"])
            #expect(try [UInt8](Data(contentsOf: url)) == bytes)
        }
    }

    // MARK: - Errors are secret-free

    @Test func errorsNameTheFieldAndCarryNoSecret() throws {
        let vector = try SessionFileVector.load("pyrogram_user")
        let keyHex = try #require(vector.expected["session"]?["auth_key_hex"]?.string)
        let errors: [SessionFileError] = [
            .tooLarge(max: 1), .tooManyRows(table: "peers", max: 2), .notSQLite, .corrupt, .unsupportedSchema("x"),
            .missingTable("sessions"), .missingField("api_id"), .invalidField("auth_key", "must be exactly 256 bytes, got 2"),
            .io("out of memory"),
        ]
        #expect(errors.map(\.field) == [nil, "peers", nil, nil, nil, "sessions", "api_id", "auth_key", nil])
        for error in errors {
            #expect(!error.description.isEmpty)
            #expect(!error.description.contains(keyHex.prefix(16)))
        }
        // Every error produced from real damaged files stays free of the key.
        for cut in stride(from: 16, to: vector.bytes.count, by: 1021) {
            if let error = readError(Array(vector.bytes[0..<cut])) {
                #expect(!error.description.contains(keyHex.prefix(16)))
            }
        }
    }
}

extension SessionFileError {
    /// True for the "readable, but not a session file we take" family of errors.
    fileprivate var isSchemaRefusal: Bool {
        switch self {
        case .unsupportedSchema, .missingTable: return true
        default: return false
        }
    }
}
