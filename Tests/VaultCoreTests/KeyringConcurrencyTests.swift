// SPDX-License-Identifier: Apache-2.0
import Foundation
import Primitives
import Testing
@testable import VaultCore

/// Issue 14 item 1: whatever rekey and rotate do, in this process or another, exactly one master
/// key opens every stored key term. Two services on one database file stand for two processes
/// (the process lock keeps real ones apart; this is the guard behind it).
@Suite struct KeyringConcurrencyTests {
    static let ctx = RequestContext(accessor: "root", remoteAddress: "127.0.0.1")

    static func session() throws -> ImportedSession {
        ImportedSession(
            session: TelegramSession(dcID: 2, apiID: 1, testMode: false, authKey: try AuthKey(randomBytes(256)), userID: 1, isBot: false),
            peers: [], format: .pyrogramString)
    }

    /// Rekeyed under K2 by one process, then rotated by the other that still holds K1: the
    /// rotation must not write a term sealed under K1 (the bug left K1's term in K2's keyring, so
    /// neither key opened the vault). The stale process seals itself instead.
    @Test func aRotationAfterAnotherProcessRekeyedNeverWritesUnderTheOldKey() throws {
        let k1 = try MasterKey.generate(), k2 = try MasterKey.generate()
        let two = try TwoProcesses(master: k1)
        defer { two.close() }
        let (storeB, a, b) = (two.storeB, two.a, two.b)
        let name = try SessionName("kept")
        _ = try a.create(name: name, imported: try Self.session(), context: Self.ctx)
        let exported = try a.export(name, as: ExportFormat.pyrogram, context: Self.ctx)

        try b.rekey(to: k2)
        #expect(throws: VaultError.self) { try a.rotate(context: Self.ctx) }
        #expect(a.sealedReason != nil)

        // Exactly one master key opens every term: K2.
        let reopenedK2 = try VaultService(store: storeB, master: k2)
        #expect(reopenedK2.sealedReason == nil)
        #expect(try reopenedK2.export(name, as: ExportFormat.pyrogram, context: Self.ctx) == exported)
        #expect(try VaultService(store: storeB, master: k1).sealedReason != nil)
        #expect(try storeB.loadKeyTerms().count == 1)
    }

    /// Both hold K1; each rotates after the other: the second reloads the keyring and adds the
    /// next term instead of failing with a term conflict, and both terms open under K1.
    @Test func rotationsFromTwoProcessesBothLand() throws {
        let k1 = try MasterKey.generate()
        let two = try TwoProcesses(master: k1)
        defer { two.close() }
        let (storeA, a, b) = (two.storeA, two.a, two.b)
        #expect(try b.rotate(context: Self.ctx) == 2)
        #expect(try a.rotate(context: Self.ctx) == 3)
        #expect(try a.keyTerms().current == 3)
        let name = try SessionName("after")
        _ = try a.create(name: name, imported: try Self.session(), context: Self.ctx)
        let fresh = try VaultService(store: storeA, master: k1)
        #expect(try fresh.keyTerms().terms.map { $0.term } == [1, 2, 3])
        _ = try fresh.export(name, as: ExportFormat.pyrogram, context: Self.ctx)
    }

    /// A rekey from a stale view (another process rotated since) changes nothing and says so.
    @Test func aRekeyFromAStaleKeyringIsRefused() throws {
        let k1 = try MasterKey.generate(), k2 = try MasterKey.generate()
        let two = try TwoProcesses(master: k1)
        defer { two.close() }
        let (storeA, a, b) = (two.storeA, two.a, two.b)
        _ = try b.rotate(context: Self.ctx)
        #expect(throws: VaultError.keyringChanged) { try a.rekey(to: k2) }
        #expect(try VaultService(store: storeA, master: k1).keyTerms().terms.count == 2)
        #expect(try VaultService(store: storeA, master: k2).sealedReason != nil)
    }

    /// Sixteen rotations at once in one process each get their own term (they answered 409).
    @Test func concurrentRotationsInOneProcessSerialise() throws {
        try withStore(.file) { store, _ in
            let vault = try VaultService(store: store, master: try MasterKey.generate())
            let terms = LockedArray()
            DispatchQueue.concurrentPerform(iterations: 16) { _ in
                terms.append(Result { try vault.rotate(context: Self.ctx) })
            }
            let got = terms.values.compactMap { try? $0.get() }.sorted()
            #expect(got == Array(2...17))
        }
    }
}

/// Two stores and two services on one database file, both opened with `master`: two processes.
private struct TwoProcesses {
    let dir: TempDir
    let storeA: SQLiteSessionStore
    let storeB: SQLiteSessionStore
    let a: VaultService
    let b: VaultService

    init(master: MasterKey) throws {
        dir = try TempDir()
        storeA = try SQLiteSessionStore(.file(dir.file("vault.db")))
        storeB = try SQLiteSessionStore(.file(dir.file("vault.db")))
        a = try VaultService(store: storeA, master: master)
        b = try VaultService(store: storeB, master: master)
    }

    func close() {
        storeA.close()
        storeB.close()
    }
}

private final class LockedArray: Sendable {
    private let items = Locked<[Result<UInt32, any Error>]>([])
    func append(_ item: Result<UInt32, any Error>) { items.withLock { $0.append(item) } }
    var values: [Result<UInt32, any Error>] { items.withLock { $0 } }
}
