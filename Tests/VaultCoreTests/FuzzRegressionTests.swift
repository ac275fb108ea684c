// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import VaultCore

/// Reproductions of the failures FuzzSessionFile found (inputs in Fuzz/FailCases/FuzzSessionFile,
/// see its README). Each test states the invariant the fuzzer checks, on the smallest session
/// that breaks it.
@Suite struct FuzzRegressionTests {
    static let now: Int64 = 1_700_000_000

    static func key() throws -> AuthKey {
        try AuthKey((0..<256).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) })
    }

    /// A Pyrogram session (so every export format can be written) with one peer.
    static func session(phone: String?, name: String? = nil) throws -> (TelegramSession, [Peer]) {
        let session = TelegramSession(
            dcID: 2, apiID: 12_345, testMode: false, authKey: try key(), userID: 5_000_000_001, isBot: false,
            date: now)
        let peer = Peer(
            id: 100_000_001, accessHash: 42, type: .user, usernames: ["alice"], phoneNumber: phone, name: name,
            lastUpdateOn: now)
        return (session, [peer])
    }

    /// FailCases/FuzzSessionFile/telethon-phone-leading-zero: a peer phone of digits with a
    /// leading zero ("07775000000", read from a pyrogram v3 file) is written to a Telethon file as
    /// TEXT, but `entities.phone` is declared `integer`, so SQLite's INTEGER affinity converts it
    /// to 7775000000 and the zero is lost (SessionFileWriter.telethonPhone assumes "not a plain
    /// decimal stays TEXT", which SQLite does not do for "0…", "+…", " 1", "1e3", "12.0").
    /// Fixed by writing such phones as NULL (documented lossy mapping): never a different number.
    @Test(arguments: ["07775000000", "+15550000001", " 15550000001", "1e3", "12.0"])
    func telethonFileNeverRewritesAPhone(phone: String) throws {
        let (session, peers) = try Self.session(phone: phone)
        let bytes = try SessionFileWriter.write(session, peers: peers, as: .telethonFile, now: Self.now)
        let back = try SessionFileReader.read(bytes: bytes)
        #expect(back.peers.first?.phoneNumber == nil)
        #expect(back.peers.first?.id == 100_000_001)
        // The Pyrogram-family files keep the text as it was.
        for format in [ExportFormat.pyrogramFile, .kurigramFile] {
            let other = try SessionFileReader.read(bytes: try SessionFileWriter.write(session, peers: peers, as: format, now: Self.now))
            #expect(other.peers.first?.phoneNumber == phone)
        }
    }

    @Test func telethonFileKeepsACanonicalPhone() throws {
        let (session, peers) = try Self.session(phone: "15550000001")
        let bytes = try SessionFileWriter.write(session, peers: peers, as: .telethonFile, now: Self.now)
        #expect(try SessionFileReader.read(bytes: bytes).peers.first?.phoneNumber == "15550000001")
    }

    /// Same cause: text SQLite reads as a REAL ("1.5", or a digit string beyond Int64) is stored
    /// as REAL, and the reader then refuses the file the writer just produced
    /// (`entities.phone: is not text`).
    @Test(arguments: ["1.5", "92233720368547758080"])
    func telethonFileWithRealLookingPhoneReadsBack(phone: String) throws {
        let (session, peers) = try Self.session(phone: phone)
        let bytes = try SessionFileWriter.write(session, peers: peers, as: .telethonFile, now: Self.now)
        let back = try SessionFileReader.read(bytes: bytes)
        #expect(back.peers.first?.phoneNumber == nil)
    }

    /// FailCases/FuzzSessionFile/text-embedded-nul-truncated: the reader keeps an embedded NUL in
    /// a TEXT value (a Telethon `entities.name` "NoUsername \u{1}\0\0…"), the writer then stores
    /// only the part before the first NUL: `SQLiteStatement.bind(.text)` passes length -1 to
    /// `sqlite3_bind_text`, which makes SQLite stop at the NUL. Every TEXT value written through
    /// that wrapper is affected (session files and the store alike).
    @Test(arguments: [ExportFormat.pyrogramFile, .kurigramFile, .telethonFile])
    func textWithEmbeddedNULSurvivesAWrite(format: ExportFormat) throws {
        let (session, peers) = try Self.session(phone: "123\u{0}456", name: "a\u{0}b")
        let bytes = try SessionFileWriter.write(session, peers: peers, as: format, now: Self.now)
        let back = try SessionFileReader.read(bytes: bytes)
        #expect(back.peers.first?.phoneNumber == "123\u{0}456")
        if format == .telethonFile { #expect(back.peers.first?.name == "a\u{0}b") }
    }

    /// FailCases/FuzzSessionFile/damaged-id-index-order (the file as found: a pyrogram v3 file
    /// whose `peers` schema text was damaged so that `id` is no longer the rowid, leaving the
    /// `idx_peers_id` index in a different order from the ids the reader gets). The reader's
    /// `ORDER BY id` followed the index, so the peers came out in another order than the same
    /// peers written to a Telethon file and read back. The reader now returns peers in id order
    /// whatever the file's indexes say.
    @Test func peersComeBackInIDOrderWhateverTheFilesIndexSays() throws {
        let path = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/FailCases/FuzzSessionFile/damaged-id-index-order")
        let bytes = Array(try Data(contentsOf: path))
        let imported = try SessionFileReader.read(bytes: bytes, limits: SessionFileReader.Limits())
        let ids = imported.peers.map(\.id)
        #expect(ids.count == 9)
        #expect(ids == ids.sorted())
        let written = try SessionFileWriter.write(imported.session, peers: imported.peers, as: .telethonFile, now: Self.now)
        let back = try SessionFileReader.read(bytes: written, limits: SessionFileReader.Limits())
        #expect(back.peers.map(\.id) == ids)
        #expect(back.peers.map(\.accessHash) == imported.peers.map(\.accessHash))
    }
}
