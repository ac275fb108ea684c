// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import VaultCore

/// Every session-file vector imports to exactly what the library wrote (docs/formats.md,
/// "Pyrogram-family .session files", "Telethon .session files").
@Suite struct SessionFileReaderVectorTests {
    @Test(arguments: SessionFileVector.names)
    func importsVectorExactly(name: String) throws {
        let vector = try SessionFileVector.load(name)
        let imported = try SessionFileReader.read(bytes: vector.bytes)

        #expect(imported.format == expectedFormat(vector))
        let expected = try expectedSession(vector)
        let got = imported.session
        #expect(got.dcID == expected.dcID)
        #expect(got.apiID == expected.apiID)
        #expect(got.testMode == expected.testMode)
        #expect(got.authKey == expected.authKey)
        #expect(got.authKey != nil)
        #expect(got.userID == expected.userID)
        #expect(got.isBot == expected.isBot)
        #expect(got.serverAddress == expected.serverAddress)
        #expect(got.port == expected.port)
        #expect(got.date == expected.date)
        #expect(got == expected)

        let peers = expectedPeers(vector)
        #expect(imported.peers.map(\.id) == peers.map(\.id))
        for (have, want) in zip(imported.peers, peers) {
            #expect(have == want, "peer \(want.id)")
        }
    }

    @Test(arguments: SessionFileVector.names)
    func expectedLookupsResolve(name: String) throws {
        let vector = try SessionFileVector.load(name)
        let peers = try SessionFileReader.read(bytes: vector.bytes).peers
        let lookups = try #require(vector.json["expected_peer_lookups"])
        let ids = Set(peers.map(\.id))
        for id in lookups["peer_ids"]?.array ?? [] {
            let id = try #require(id.int64)
            #expect(ids.contains(id), "peer id \(id)")
        }
        let phones = Set(peers.compactMap(\.phoneNumber))
        for phone in lookups["phones"]?.array ?? [] {
            let phone = try #require(phone.string)
            #expect(phones.contains(phone), "phone \(phone)")
        }
        // `usernames` lists every username fed to the writer; some formats keep only the first
        // one per peer (pyrogram v3, Telethon; docs/formats.md, "Schema v2 and v3 (pyrogram,
        // hydrogram)", "Rows and values"). A look-up must resolve exactly when the file itself
        // holds the username.
        let stored = storedUsernames(vector)
        let resolved = Set(peers.flatMap(\.usernames))
        for username in lookups["usernames"]?.array ?? [] {
            let username = try #require(username.string)
            #expect(resolved.contains(username) == stored.contains(username), "username \(username)")
        }
    }

    @Test(arguments: SessionFileVector.names)
    func readingLeavesTheFileAndItsDirectoryUntouched(name: String) throws {
        let vector = try SessionFileVector.load(name)
        try withSessionFileTempDir { dir in
            let url = dir.appendingPathComponent("\(name).session")
            try Data(vector.bytes).write(to: url)
            let listing = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
            let modified = try FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date

            let fromPath = try SessionFileReader.read(path: url.path)
            let fromBytes = try SessionFileReader.read(bytes: vector.bytes)

            #expect(fromPath == fromBytes)
            #expect(try [UInt8](Data(contentsOf: url)) == vector.bytes)
            // No -wal, -shm or -journal appears next to the file (hydrogram's is in WAL mode).
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == listing)
            #expect(try FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date == modified)
        }
    }

    @Test func walHeaderIsPatchedOnlyInTheCopy() throws {
        let vector = try SessionFileVector.load("hydrogram_user")
        #expect(vector.bytes[18] == 2 && vector.bytes[19] == 2)
        let copy = vector.bytes
        _ = try SessionFileReader.read(bytes: copy)
        #expect(copy == vector.bytes)
    }

    // MARK: - Expectations taken from the vector JSON

    private func expectedFormat(_ vector: SessionFileVector) -> SourceFormat? {
        switch (vector.isTelethon, vector.json["schema_version"]?.int64) {
        case (false, 2): return .pyrogramFileV2
        case (false, 3): return .pyrogramFileV3
        case (false, 4): return .pyroforkFileV4
        case (false, 6): return .kurigramFileV6
        case (false, 7): return .kurigramFileV7
        case (true, 7): return .telethonFileV7
        case (true, 8): return .telethonFileV8
        default: return nil
        }
    }

    private func expectedSession(_ vector: SessionFileVector) throws -> TelegramSession {
        let s = try #require(vector.expected["session"])
        let keyHex = try #require(s["auth_key_hex"]?.string)
        let keyBytes = try #require(Hex.decode(keyHex))
        var session = TelegramSession(
            dcID: Int(try #require(s["dc_id"]?.int64)),
            apiID: s["api_id"]?.int64, testMode: s["test_mode"]?.bool, authKey: try AuthKey(keyBytes),
            userID: s["user_id"]?.int64, isBot: s["is_bot"]?.bool, serverAddress: s["server_address"]?.string,
            port: s["port"]?.int64.map { Int($0) }, date: s["date"]?.int64)
        if vector.isTelethon {
            // Own user id: the pseudo entity id 0 (docs/formats.md, "Rows and values"), which is the
            // input self_user_id.
            let pseudo = try #require(vector.expectedRows("entities").first { $0["id"]?.int64 == 0 })
            session.userID = pseudo["hash"]?.int64
            #expect(session.userID == vector.json["input"]?["self_user_id"]?.int64)
            // Telethon stores no test flag; both vectors use the production address of their DC
            // (dc 2 149.154.167.51, dc 4 149.154.167.91), which settles it.
            session.testMode = false
        }
        return session
    }

    private func expectedPeers(_ vector: SessionFileVector) -> [Peer] {
        if vector.isTelethon {
            return vector.dumpRows("entities").compactMap { row -> Peer? in
                guard let id = row["id"]?.int64, id != 0 else { return nil }
                return Peer(
                    id: id, accessHash: row["hash"]?.int64 ?? -1, type: nil,
                    usernames: row["username"]?.string.map { [$0] } ?? [],
                    phoneNumber: row["phone"]?.int64.map { String($0) }, name: row["name"]?.string,
                    lastUpdateOn: row["date"]?.int64)
            }
        }
        let version = vector.json["schema_version"]?.int64 ?? 0
        let usernameRows = vector.expectedRows("usernames")
        return vector.dumpRows("peers").compactMap { row -> Peer? in
            guard let id = row["id"]?.int64 else { return nil }
            var usernames: [String] = []
            switch version {
            case 2, 3: usernames = row["username"]?.string.map { [$0] } ?? []
            case 4:
                usernames = row["username"]?.string.map { [$0] } ?? []
                for extra in usernameRows where extra["peer_id"]?.int64 == id {
                    if let name = extra["id"]?.string, !usernames.contains(name) { usernames.append(name) }
                }
            default:
                usernames = usernameRows.filter { $0["id"]?.int64 == id }.compactMap { $0["username"]?.string }
            }
            return Peer(
                id: id, accessHash: row["access_hash"]?.int64 ?? -1,
                type: row["type"]?.string.flatMap { PeerType(rawValue: $0) }, usernames: usernames,
                phoneNumber: row["phone_number"]?.string, lastUpdateOn: row["last_update_on"]?.int64)
        }
    }

    /// Every username the file holds anywhere, straight from the dump.
    private func storedUsernames(_ vector: SessionFileVector) -> Set<String> {
        var names = Set<String>()
        for row in vector.expectedRows("peers") + vector.expectedRows("entities") {
            if let name = row["username"]?.string { names.insert(name) }
        }
        for row in vector.expectedRows("usernames") {
            if let name = row["username"]?.string ?? row["id"]?.string { names.insert(name) }
        }
        return names
    }
}
