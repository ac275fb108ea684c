// SPDX-License-Identifier: Apache-2.0
import Primitives
import Testing
import VaultCore

/// The `SessionStore` contract, run against every engine in ``StoreEngine/all`` (a new engine
/// runs all of it by adding one line there).
@Suite("Store contract")
struct StoreContractTests {
    /// The export's read is the export's view of the full row, for live and revoked sessions.
    @Test(arguments: StoreEngine.all)
    func theExportRecordIsTheExportsViewOfTheRow(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            var session = try StoredSession.make("alpha")
            session.lastExportedAt = 1_234
            session.testMode = true
            session.isBot = nil
            let stored = try store.insert(session)
            #expect(try store.exportRecord(named: name("alpha")) == ExportRecord(stored))
            #expect(try store.exportRecord(named: name("beta")) == nil)
            let revoked = try store.revoke(name("alpha"), at: 2_000)
            let record = try #require(try store.exportRecord(named: name("alpha")))
            #expect(record == ExportRecord(revoked))
            #expect(record.isRevoked && record.sealedAuthKey == nil && record.revokedAt == 2_000)
        }
    }

    @Test(arguments: StoreEngine.all)
    func insertThenGetByNameAndID(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            var session = try StoredSession.make("alpha")
            session.version = 7  // ignored: a new session starts at 1
            let stored = try store.insert(session)
            #expect(stored.version == 1)
            #expect(stored.peerCount == 0)
            let byName = try #require(try store.session(named: name("alpha")))
            #expect(byName == stored)
            #expect(byName.userID == Int64.max - 7)
            #expect(byName.sealedAuthKey == session.sealedAuthKey)
            #expect(try store.session(id: session.id) == stored)
            #expect(try store.session(named: name("beta")) == nil)
            #expect(try store.session(id: .random()) == nil)
            #expect(try store.countSessions() == SessionCounts(total: 1, revoked: 0))
        }
    }

    @Test(arguments: StoreEngine.all)
    func optionalFieldsRoundTripAsNil(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            let session = StoredSession(
                id: .random(), name: try name("bare"), dcID: 4, sourceFormat: "telethon", createdAt: 1)
            try store.insert(session)
            let stored = try #require(try store.session(named: name("bare")))
            #expect(stored == session)
            #expect(stored.apiID == nil && stored.testMode == nil && stored.isBot == nil && stored.port == nil)
            #expect(stored.sealedAuthKey == nil && stored.sealedKeyTerm == nil && stored.lastExportedAt == nil)
        }
    }

    @Test(arguments: StoreEngine.all)
    func duplicateNameOrIDIsAConflictThatChangesNothing(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            let first = try StoredSession.make("dup")
            try store.insert(first)
            #expect(throws: StorageError.conflict(field: "name")) { try store.insert(try StoredSession.make("dup")) }
            let sameID = StoredSession(
                id: first.id, name: try name("other"), dcID: 1, sourceFormat: "pyrogram", createdAt: 1)
            #expect(throws: StorageError.conflict(field: "id")) { try store.insert(sameID) }
            #expect(try store.session(named: name("dup"))?.sealedAuthKey == first.sealedAuthKey)
            #expect(try store.countSessions().total == 1)
        }
    }

    @Test(arguments: StoreEngine.all)
    func inconsistentRecordsAreRefused(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            var noTerm = try StoredSession.make("a")
            noTerm.sealedKeyTerm = nil
            #expect(throws: StorageError.invalidArgument(
                field: "sealed_key_term", reason: "must be set exactly when sealed_auth_key is")) {
                try store.insert(noTerm)
            }
            var revoked = try StoredSession.make("b", sealed: nil)
            revoked.revokedAt = 5
            #expect(throws: StorageError.self) { try store.insert(revoked) }
            #expect(try store.countSessions().total == 0)
        }
    }

    @Test(arguments: StoreEngine.all)
    func updateIsACompareAndSetOnVersion(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            let original = try store.insert(try StoredSession.make("cas"))
            var change = original
            change.apiID = 999
            change.dcID = 5
            change.updatedAt = original.createdAt + 10
            // The envelope is not writable through update (rewrap owns it).
            change.sealedAuthKey = randomBytes(300)
            change.sealedKeyTerm = 9
            change.authKeyID = "ffffffffffffffff"
            let updated = try store.update(change, expectedVersion: 1)
            #expect(updated.sealedAuthKey == original.sealedAuthKey)
            #expect(updated.sealedKeyTerm == original.sealedKeyTerm)
            #expect(updated.authKeyID == original.authKeyID)
            #expect(updated.version == 2)
            #expect(updated.apiID == 999 && updated.dcID == 5)
            #expect(updated.updatedAt == original.createdAt + 10)
            #expect(updated.createdAt == original.createdAt)
            #expect(try store.session(named: name("cas")) == updated)

            change.apiID = 1
            #expect(throws: StorageError.versionMismatch(current: 2)) { try store.update(change, expectedVersion: 1) }
            #expect(try store.session(named: name("cas"))?.apiID == 999)

            let ghost = try StoredSession.make("ghost")
            #expect(throws: StorageError.notFound) { try store.update(ghost, expectedVersion: 1) }

            _ = try store.revoke(name("cas"), at: 99)
            var resurrect = updated
            resurrect.sealedAuthKey = randomBytes(300)
            resurrect.sealedKeyTerm = 1
            #expect(throws: StorageError.revoked) { try store.update(resurrect, expectedVersion: 3) }
            #expect(try store.session(named: name("cas"))?.sealedAuthKey == nil)
        }
    }

    @Test(arguments: StoreEngine.all)
    func listPagesByNameWithAStableCursor(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            let names = (0..<25).map { "s\(String($0, radix: 10)).x" }.shuffled()
            for text in names { try store.insert(try StoredSession.make(text, sealed: nil)) }
            try store.insert(try StoredSession.make("other", sealed: nil))

            var seen: [String] = []
            var cursor: SessionName?
            var pages = 0
            repeat {
                let page = try store.listSessions(after: cursor, limit: 10, prefix: "s")
                seen += page.sessions.map(\.name.rawValue)
                cursor = page.nextCursor
                pages += 1
                if pages == 1 {
                    // A name sorting before the cursor, added between pages, does not shift the next page.
                    try store.insert(try StoredSession.make("s0.a", sealed: nil))
                }
            } while cursor != nil
            #expect(pages == 3)
            #expect(seen == names.sorted())
            #expect(seen.count == 25)

            let all = try store.listSessions(after: nil, limit: 100, prefix: nil)
            #expect(all.sessions.count == 27)
            #expect(all.nextCursor == nil)
            #expect(all.sessions.map(\.name) == all.sessions.map(\.name).sorted())
            let exact = try store.listSessions(after: nil, limit: 2, prefix: "other")
            #expect(exact.sessions.map(\.name.rawValue) == ["other"])
            // A cursor before the prefix range starts at the prefix.
            let fromCursor = try store.listSessions(after: name("a"), limit: 1, prefix: "s1")
            #expect(fromCursor.sessions.map(\.name.rawValue) == ["s1.x"])

            #expect(throws: StorageError.invalidArgument(field: "limit", reason: "must be at least 1")) {
                try store.listSessions(after: nil, limit: 0, prefix: nil)
            }
            #expect(throws: StorageError.self) { try store.listSessions(after: nil, limit: 5, prefix: "a%") }
        }
    }

    @Test(arguments: StoreEngine.all)
    func markExportedNeverMovesBackAndKeepsTheVersion(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            try store.insert(try StoredSession.make("exp"))
            try store.markExported(name("exp"), at: 500)
            try store.markExported(name("exp"), at: 400)
            let stored = try #require(try store.session(named: name("exp")))
            #expect(stored.lastExportedAt == 500)
            #expect(stored.version == 1)
            #expect(throws: StorageError.notFound) { try store.markExported(name("nope"), at: 1) }

            try store.markExported([(stored.id, 900), (SessionID.random(), 900)])  // a missing id is ignored
            #expect(try store.session(named: name("exp"))?.lastExportedAt == 900)
            #expect(store.deferredFailures == 0)
        }
    }

    @Test(arguments: StoreEngine.all)
    func revokeDestroysTheBlobKeepsATombstoneAndDeletesPeers(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            let session = try StoredSession.make("rev")
            try store.insert(session, peers: [Peer(id: 1, accessHash: 2, type: .user, usernames: ["Bob"])])
            #expect(try store.session(named: name("rev"))?.peerCount == 1)

            let tombstone = try store.revoke(name("rev"), at: 1234)
            #expect(tombstone.sealedAuthKey == nil)
            #expect(tombstone.sealedKeyTerm == nil)
            #expect(tombstone.revokedAt == 1234)
            #expect(tombstone.isRevoked)
            #expect(tombstone.version == 2)
            #expect(tombstone.updatedAt == 1234)
            #expect(tombstone.authKeyID == session.authKeyID)
            #expect(tombstone.userID == session.userID)
            #expect(tombstone.peerCount == 0)
            #expect(try store.session(named: name("rev")) == tombstone)
            #expect(try store.peers(in: name("rev")).isEmpty)
            #expect(try store.peer(id: 1, in: name("rev")) == nil)
            #expect(try store.peer(username: "bob", in: name("rev")) == nil)
            #expect(throws: StorageError.revoked) {
                try store.upsertPeers([Peer(id: 3, accessHash: 4, type: nil)], in: name("rev"))
            }
            #expect(try store.revoke(name("rev"), at: 9999) == tombstone)
            #expect(throws: StorageError.notFound) { try store.revoke(name("nope"), at: 1) }
            #expect(try store.countSessions() == SessionCounts(total: 1, revoked: 1))
            #expect(try store.countSessions().active == 0)
        }
    }

    @Test(arguments: StoreEngine.all)
    func peersUpsertReplaceAndLookUp(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            let s = try name("peers")
            try store.insert(try StoredSession.make("peers"))
            let alice = Peer(
                id: 42, accessHash: -9_000_000_000_000_000_000, type: .user, usernames: ["Alice", "alice_alt", "ALICE"],
                phoneNumber: "15551234567", name: "Alice", lastUpdateOn: 100)
            let channel = Peer(id: -1_001_234_567_890, accessHash: 77, type: .channel, usernames: ["news"])
            let group = Peer(id: -555, accessHash: 0, type: .group)
            try store.upsertPeers([alice, channel, group], in: s)

            var expectedAlice = alice
            expectedAlice.usernames = ["alice", "alice_alt"]
            #expect(try store.peer(id: 42, in: s) == expectedAlice)
            #expect(try store.peer(username: "ALICE_ALT", in: s) == expectedAlice)
            #expect(try store.peer(username: "alice", in: s) == expectedAlice)
            #expect(try store.peers(phoneNumber: "15551234567", in: s) == [expectedAlice])
            #expect(try store.peer(username: "news", in: s)?.id == -1_001_234_567_890)
            #expect(try store.peer(id: -555, in: s) == group)
            #expect(try store.peer(id: 7, in: s) == nil)
            #expect(try store.peer(username: "nobody", in: s) == nil)
            #expect(try store.peers(phoneNumber: "0", in: s).isEmpty)
            #expect(try store.peers(in: s).map(\.id) == [-1_001_234_567_890, -555, 42])
            #expect(try store.session(named: s)?.peerCount == 3)

            // Replace by marked id: every field and the usernames.
            let renamed = Peer(id: 42, accessHash: 5, type: .bot, usernames: ["alice_bot"], lastUpdateOn: 200)
            try store.upsertPeers([renamed], in: s)
            #expect(try store.peer(id: 42, in: s) == renamed)
            #expect(try store.peer(username: "alice", in: s) == nil)
            #expect(try store.peers(phoneNumber: "15551234567", in: s).isEmpty)
            #expect(try store.session(named: s)?.peerCount == 3)

            // A stale cache can give one username to two peers: the most recent one wins.
            try store.upsertPeers(
                [
                    Peer(id: 1, accessHash: 1, type: .user, usernames: ["shared"], lastUpdateOn: 10),
                    Peer(id: 2, accessHash: 2, type: .user, usernames: ["shared"], lastUpdateOn: 20),
                ], in: s)
            #expect(try store.peer(username: "shared", in: s)?.id == 2)

            // ... and one phone number to several: every one, the most recent first, one without a
            // time last, then by marked id.
            try store.upsertPeers(
                [
                    Peer(id: 3, accessHash: 3, type: .user, phoneNumber: "155500", lastUpdateOn: 10),
                    Peer(id: 4, accessHash: 4, type: .user, phoneNumber: "155500"),
                    Peer(id: 5, accessHash: 5, type: .user, phoneNumber: "155500", lastUpdateOn: 30),
                    Peer(id: 6, accessHash: 6, type: .user, phoneNumber: "155500", lastUpdateOn: 10),
                ], in: s)
            #expect(try store.peers(phoneNumber: "155500", in: s).map(\.id) == [5, 3, 6, 4])
            #expect(try store.peers(phoneNumber: "155500", in: name("missing")).isEmpty)

            #expect(try store.deletePeers(in: s) == 9)
            #expect(try store.peers(in: s).isEmpty)
            #expect(try store.session(named: s)?.peerCount == 0)

            let missing = try name("missing")
            #expect(throws: StorageError.notFound) { try store.upsertPeers([group], in: missing) }
            #expect(throws: StorageError.notFound) { try store.peers(in: missing) }
            #expect(throws: StorageError.notFound) { try store.deletePeers(in: missing) }
            #expect(try store.peer(id: -555, in: missing) == nil)
        }
    }

    @Test(arguments: StoreEngine.all)
    func insertWithPeersIsAtomic(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            let peers = (1...50).map { Peer(id: Int64($0), accessHash: Int64($0) * 3, type: .user, usernames: ["u\($0)"]) }
            let stored = try store.insert(try StoredSession.make("bulk"), peers: peers)
            #expect(stored.peerCount == 50)
            #expect(try store.peers(in: name("bulk")) == peers)
            // A conflicting insert leaves no orphan peers behind.
            let clash = try StoredSession.make("bulk")
            #expect(throws: StorageError.conflict(field: "name")) { try store.insert(clash, peers: peers) }
            #expect(try store.peers(in: name("bulk")).count == 50)
        }
    }

    @Test(arguments: StoreEngine.all)
    func tokens(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            let hash = randomBytes(32)
            let token = TokenRecord(
                accessor: "acc-1", hash: hash, policy: #"{"operations":["read"],"names":["a"]}"#,
                displayName: "ci", createdAt: 10, expiresAt: 1000)
            try store.insertToken(token)
            #expect(try store.token(accessor: "acc-1") == token)
            #expect(try store.token(hash: hash) == token)
            #expect(try store.token(hash: randomBytes(32)) == nil)
            #expect(try store.token(accessor: "acc-2") == nil)

            var sameAccessor = token
            sameAccessor.hash = randomBytes(32)
            #expect(throws: StorageError.conflict(field: "accessor")) { try store.insertToken(sameAccessor) }
            var sameHash = token
            sameHash.accessor = "acc-2"
            #expect(throws: StorageError.conflict(field: "hash")) { try store.insertToken(sameHash) }

            let second = TokenRecord(accessor: "acc-0", hash: randomBytes(32), policy: "{}", createdAt: 20)
            try store.insertToken(second)
            #expect(try store.listTokens() == [token, second])

            let revoked = try store.revokeToken(accessor: "acc-1", at: 50)
            #expect(revoked.revokedAt == 50)
            #expect(try store.revokeToken(accessor: "acc-1", at: 60).revokedAt == 50)
            #expect(try store.token(hash: hash)?.revokedAt == 50)
            #expect(throws: StorageError.notFound) { try store.revokeToken(accessor: "none", at: 1) }
        }
    }

    @Test(arguments: StoreEngine.all)
    func keyringTermsAndMeta(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            #expect(try store.loadKeyring() == StoredKeyring(generation: 0, terms: []))
            let t2 = KeyTermRecord(term: 2, createdAt: 20, sealedKey: randomBytes(60))
            let t1 = KeyTermRecord(term: 1, createdAt: 10, sealedKey: randomBytes(60))
            #expect(try store.appendKeyTerm(t2, ifGeneration: 0) == 1)
            #expect(try store.appendKeyTerm(t1, ifGeneration: 1) == 2)
            #expect(try store.loadKeyTerms() == [t1, t2])
            #expect(throws: StorageError.conflict(field: "term")) {
                try store.appendKeyTerm(KeyTermRecord(term: 2, createdAt: 30, sealedKey: [1]), ifGeneration: 2)
            }
            let big = KeyTermRecord(term: UInt32.max, createdAt: 1, sealedKey: [9])
            #expect(try store.appendKeyTerm(big, ifGeneration: 2) == 3)
            #expect(try store.loadKeyTerms().last == big)

            // Issue 14 item 1: a write from a stale view of the keyring changes nothing.
            #expect(try store.appendKeyTerm(KeyTermRecord(term: 7, createdAt: 1, sealedKey: [7]), ifGeneration: 2) == nil)
            #expect(try store.loadKeyring() == StoredKeyring(generation: 3, terms: [t1, t2, big]))

            // Rekey: the new terms replace the old in one transaction.
            let rekeyed = [KeyTermRecord(term: 1, createdAt: 10, sealedKey: randomBytes(60)),
                           KeyTermRecord(term: 2, createdAt: 20, sealedKey: randomBytes(60))]
            #expect(try store.replaceKeyTerms(rekeyed, ifGeneration: 1) == nil)
            #expect(try store.loadKeyring() == StoredKeyring(generation: 3, terms: [t1, t2, big]))
            #expect(try store.replaceKeyTerms(rekeyed, ifGeneration: 3) == 4)
            #expect(try store.loadKeyring() == StoredKeyring(generation: 4, terms: rekeyed))
            #expect(throws: StorageError.self) { try store.replaceKeyTerms([t1, t1], ifGeneration: 4) }
            #expect(try store.loadKeyTerms() == rekeyed)

            #expect(try store.meta("root") == nil)
            try store.setMeta("root", value: [7])
            try store.setMeta("root", value: [8, 9])
            #expect(try store.meta("root") == [8, 9])
            try store.setMeta("empty", value: [])
            #expect(try store.meta("empty") == [])
            try store.setMeta("root", value: nil)
            #expect(try store.meta("root") == nil)
        }
    }

    @Test(arguments: StoreEngine.all)
    func rewrapFindsOldTermsAndReplacesByCompareAndSet(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            var old: [StoredSession] = []
            for i in 0..<7 {
                let session = try StoredSession.make("old\(i)", term: 1)
                try store.insert(session)
                old.append(session)
            }
            try store.insert(try StoredSession.make("current", term: 2))
            try store.insert(try StoredSession.make("keyless", sealed: nil))
            try store.insert(try StoredSession.make("gone", term: 1))
            _ = try store.revoke(name("gone"), at: 5)

            var found: [RewrapCandidate] = []
            var cursor: SessionID?
            while true {
                let batch = try store.sessionsNeedingRewrap(currentTerm: 2, after: cursor, limit: 3)
                if batch.isEmpty { break }
                found += batch
                cursor = batch.last?.id
            }
            let expectedIDs = old.map(\.id).sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) }
            #expect(found.map(\.id) == expectedIDs)
            #expect(found.allSatisfy { $0.term == 1 })

            let target = try #require(found.first)
            let newEnvelope = randomBytes(300)
            #expect(try store.replaceSealedAuthKey(id: target.id, expected: randomBytes(300), new: newEnvelope, term: 2) == false)
            #expect(try store.replaceSealedAuthKey(id: target.id, expected: target.sealedAuthKey, new: newEnvelope, term: 2))
            #expect(try store.replaceSealedAuthKey(id: target.id, expected: target.sealedAuthKey, new: randomBytes(300), term: 2) == false)
            let rewrapped = try #require(try store.session(id: target.id))
            #expect(rewrapped.sealedAuthKey == newEnvelope)
            #expect(rewrapped.sealedKeyTerm == 2)
            #expect(rewrapped.version == 1)
            #expect(try store.sessionsNeedingRewrap(currentTerm: 2, after: nil, limit: 100).count == 6)
            #expect(throws: StorageError.self) { try store.sessionsNeedingRewrap(currentTerm: 2, after: nil, limit: 0) }
        }
    }

    @Test(arguments: StoreEngine.all)
    func auditAppendsAndListsNewestFirst(engine: StoreEngine) throws {
        try withStore(engine) { store, _ in
            var ids: [Int64] = []
            for i in 0..<5 {
                ids.append(
                    try store.appendAudit(
                        AuditEvent(
                            time: Int64(i), accessor: "acc", action: "session.export", sessionName: "s\(i)",
                            remoteAddress: "127.0.0.1", outcome: "ok", detail: i == 0 ? nil : "d")))
            }
            #expect(ids == ids.sorted())
            let newest = try store.auditEvents(before: nil, limit: 3)
            #expect(newest.map(\.id) == Array(ids.reversed().prefix(3)))
            #expect(newest.first?.event.sessionName == "s4")
            let older = try store.auditEvents(before: newest.last?.id, limit: 10)
            #expect(older.map(\.id) == [ids[1], ids[0]])
            #expect(older.last?.event == AuditEvent(
                time: 0, accessor: "acc", action: "session.export", sessionName: "s0",
                remoteAddress: "127.0.0.1", outcome: "ok"))

            store.enqueue(.audit(AuditEvent(time: 9, action: "deferred", outcome: "ok")))
            try store.flush()
            #expect(try store.auditEvents(before: nil, limit: 1).first?.event.action == "deferred")
        }
    }

    /// One failing write in a batch rolls back alone (its SAVEPOINT); the others commit.
    @Test(arguments: StoreEngine.all)
    func aFailingWriteInABatchDoesNotSpoilTheOthers(engine: StoreEngine) async throws {
        let dir = try TempDir()
        let store = try engine.open(dir)
        defer { store.close() }
        try store.insert(try StoredSession.make("taken"))
        let outcomes = Locked<[String: StorageError?]>([:])
        await onThreads(8) { index in
            for round in 0..<25 {
                // Every 5th insert reuses a taken name.
                let text = round % 5 == 0 ? "taken" : "t\(index)-\(round)"
                do {
                    try store.insert(try StoredSession.make(text))
                    outcomes.withLock { $0["\(index)-\(round)"] = .some(nil) }
                } catch let error as StorageError {
                    outcomes.withLock { $0["\(index)-\(round)"] = .some(error) }
                } catch {
                    outcomes.withLock { $0["\(index)-\(round)"] = .some(.notFound) }
                }
            }
        }
        let all = outcomes.withLock { $0 }
        let failures = all.values.compactMap { $0 }
        #expect(all.count == 200)
        #expect(failures.count == 40)
        #expect(failures.allSatisfy { $0 == .conflict(field: "name") })
        #expect(try store.countSessions().total == 161)
    }

    @Test(arguments: StoreEngine.all)
    func closedStoreRefusesWorkAndCloseIsIdempotent(engine: StoreEngine) throws {
        let dir = try TempDir()
        let store = try engine.open(dir)
        try store.insert(try StoredSession.make("x"))
        store.close()
        store.close()
        #expect(throws: StorageError.closed) { try store.session(named: name("x")) }
        #expect(throws: StorageError.closed) { try store.insert(try StoredSession.make("y")) }
        #expect(throws: StorageError.closed) { try store.flush() }
        store.enqueue(.audit(AuditEvent(time: 1, action: "late", outcome: "ok")))
        #expect(store.deferredFailures == 1)
    }
}
