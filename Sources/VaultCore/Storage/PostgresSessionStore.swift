// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Synchronization
#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// The PostgreSQL engine of ``SessionStore``: several vault instances on one database behave
/// as one vault, because every read goes to the database (nothing is cached here) and every
/// write is a transaction of its own.
///
/// - **Connections**: a ``PGPool`` of libpq connections (``PostgresConnectionSettings/poolSize``),
///   each used by one thread at a time; statements are prepared per connection and take their
///   values as parameters only.
/// - **Writes** run on the caller's thread in `BEGIN … COMMIT` on a pooled connection, and
///   return once committed. Row locks (`SELECT … FOR UPDATE`) order a write against a revoke of
///   the same session on another instance; keyring writes take a transaction advisory lock.
/// - **Deferred writes and non-blocking inserts** go to one writer queue that commits whatever
///   is queued in one transaction (a SAVEPOINT per write, so one failure spoils no other).
/// - **Faults**: a lost server makes calls fail with ``StorageError/unavailable(reason:)``
///   (503) while ``health()`` says why; connections are re-opened with backoff, so the vault
///   serves again as soon as the database is back, without a restart.
///
/// `@unchecked Sendable`: the stored properties are immutable references to thread-safe types.
public final class PostgresSessionStore: SessionStore, @unchecked Sendable {
    public let location: StoreLocation
    let pool: PGPool
    let writer: PGWriter
    let deferredFailureCount = Atomic<Int>(0)

    /// Connects, migrates (under the advisory lock) and opens the pool.
    /// - Throws: ``StorageError/unavailable(reason:)`` when the database cannot be reached;
    ///   ``StorageError/notAVaultDatabase``, ``StorageError/newerSchema(found:supported:)``.
    public init(_ settings: PostgresConnectionSettings) throws(StorageError) {
        location = .server(engine: "postgres", address: Self.address(of: settings.url))
        pool = PGPool(settings)
        writer = PGWriter(pool: pool)
        try pool.withConnection { connection in try PostgresSchema.migrate(connection) }
    }

    deinit { close() }

    /// The URL without its scheme (never holds a password: the factory refuses one).
    static func address(of url: String) -> String {
        if let range = url.firstRange(of: "://") { return String(url[range.upperBound...]) }
        return url
    }

    // MARK: Plumbing

    func read<T>(_ body: (PGConnection) throws -> T) throws(StorageError) -> T {
        try pool.withConnection(body)
    }

    func write<T>(_ body: (PGConnection) throws -> T) throws(StorageError) -> T {
        try pool.withConnection { connection in
            try connection.execute("BEGIN")
            do {
                let value = try body(connection)
                connection.commitSent = true
                try connection.execute("COMMIT")
                return value
            } catch {
                if connection.isHealthy { _ = try? connection.execute("ROLLBACK") }
                throw error
            }
        }
    }

    // MARK: Sessions

    @discardableResult
    public func insert(_ session: StoredSession, peers: [Peer], states: [UpdateState]) throws(StorageError) -> StoredSession {
        let operation = try Self.insertOperation(session, peers: peers, states: states)
        return try write(operation)
    }

    public func insert(
        _ session: StoredSession, peers: [Peer], states: [UpdateState],
        completion: @escaping @Sendable (Result<StoredSession, StorageError>) -> Void
    ) {
        let operation: @Sendable (PGConnection) throws -> StoredSession
        do {
            operation = try Self.insertOperation(session, peers: peers, states: states)
        } catch {
            completion(.failure(error))
            return
        }
        let box = PGBox<StoredSession>()
        writer.submit({ connection in box.value = try operation(connection) }) { error in
            if let error {
                completion(.failure(error))
            } else if let value = box.value {
                completion(.success(value))
            } else {
                completion(.failure(.closed))
            }
        }
    }

    private static func insertOperation(_ session: StoredSession, peers: [Peer], states: [UpdateState])
        throws(StorageError) -> @Sendable (PGConnection) throws -> StoredSession
    {
        guard (session.sealedAuthKey == nil) == (session.sealedKeyTerm == nil) else {
            throw .invalidArgument(field: "sealed_key_term", reason: "must be set exactly when sealed_auth_key is")
        }
        guard session.revokedAt == nil else {
            throw .invalidArgument(field: "revoked_at", reason: "a new session cannot be revoked")
        }
        let peers = peers.map(Self.normalized)
        return { connection in
            let rows = try connection.query(PGSQL.insertSession, Self.sessionValues(session))
            guard rows.count == 1 else {
                let nameTaken = try connection.query(PGSQL.sessionExistsByName, [.text(session.name.rawValue)]).count > 0
                throw StorageError.conflict(field: nameTaken ? "name" : "id")
            }
            let seq = rows.int64(0, 0)
            if let exported = session.lastExportedAt {
                try connection.query(PGSQL.markExportedBySeq, [.int(seq), .int(exported)])
            }
            var stored = session
            stored.version = 1
            stored.peerCount = 0
            if !peers.isEmpty { stored.peerCount = try Self.upsert(peers, seq: seq, on: connection) }
            if !states.isEmpty { try Self.upsert(states, seq: seq, on: connection) }
            return stored
        }
    }

    public func session(named name: SessionName) throws(StorageError) -> StoredSession? {
        try read { c in try Self.firstSession(try c.query(PGSQL.sessionByName, [.text(name.rawValue)])) }
    }

    public func session(id: SessionID) throws(StorageError) -> StoredSession? {
        try read { c in try Self.firstSession(try c.query(PGSQL.sessionByID, [.bytes(id.bytes)])) }
    }

    public func exportRecord(named name: SessionName) throws(StorageError) -> ExportRecord? {
        try read { c in
            let r = try c.query(PGSQL.exportRecordByName, [.text(name.rawValue)])
            guard r.count > 0 else { return nil }
            guard let id = r.bytes(0, 0), id.count == SessionID.byteCount else { throw StorageError.corrupt }
            return ExportRecord(
                id: SessionID(unchecked: id), dcID: Int(truncatingIfNeeded: r.int64(0, 1)), apiID: r.int64OrNil(0, 2),
                testMode: r.int64OrNil(0, 3).map { $0 != 0 }, userID: r.int64OrNil(0, 4),
                isBot: r.int64OrNil(0, 5).map { $0 != 0 }, serverAddress: r.text(0, 6),
                port: r.int64OrNil(0, 7).map { Int(truncatingIfNeeded: $0) }, date: r.int64OrNil(0, 8),
                sealedAuthKey: r.bytes(0, 9), revokedAt: r.int64OrNil(0, 10), sourceFormat: r.text(0, 11))
        }
    }

    public func listSessions(after cursor: SessionName?, limit: Int, prefix: String?) throws(StorageError) -> SessionPage {
        guard limit >= 1 else { throw .invalidArgument(field: "limit", reason: "must be at least 1") }
        let prefix = prefix ?? ""
        guard prefix.utf8.count <= SessionName.maxLength, prefix.utf8.allSatisfy(SessionName.isAllowed) else {
            throw .invalidArgument(field: "prefix", reason: "may contain only letters, digits, '.', '_' and '-'")
        }
        let upper = prefix + "~"
        let fromCursor = cursor.map { $0.rawValue >= prefix } ?? false
        let lower = fromCursor ? cursor?.rawValue ?? prefix : prefix
        let wanted = Int64(min(limit, 1 << 30)) + 1
        let rows = try read { c in
            try Self.sessions(try c.query(fromCursor ? PGSQL.listAfter : PGSQL.listFrom, [.text(lower), .text(upper), .int(wanted)]))
        }
        return Self.page(rows, limit: limit)
    }

    public func listSessions(after cursor: SessionName?, limit: Int, within scope: NameScope) throws(StorageError) -> SessionPage {
        guard limit >= 1 else { throw .invalidArgument(field: "limit", reason: "must be at least 1") }
        let wanted = min(limit, 1 << 30) + 1
        let after = cursor?.rawValue
        let rows = try read { c in
            var rows: [StoredSession] = []
            for part in scope.parts where rows.count < wanted {
                switch part {
                case .name(let name):
                    if let after, !NameScope.precedes(after, name) { continue }
                    if let row = try Self.firstSession(try c.query(PGSQL.sessionByName, [.text(name)])) { rows.append(row) }
                case .prefix(let prefix):
                    let upper = prefix + "~"
                    if let after, !NameScope.precedes(after, upper) { continue }
                    let fromCursor = after.map { !NameScope.precedes($0, prefix) } ?? false
                    let values: [PGValue] = [.text(fromCursor ? after ?? prefix : prefix), .text(upper), .int(Int64(wanted - rows.count))]
                    rows += try Self.sessions(try c.query(fromCursor ? PGSQL.listAfter : PGSQL.listFrom, values))
                }
            }
            return rows
        }
        return Self.page(rows, limit: limit)
    }

    private static func page(_ rows: [StoredSession], limit: Int) -> SessionPage {
        if rows.count > limit {
            let page = Array(rows.prefix(limit))
            return SessionPage(sessions: page, nextCursor: page.last?.name)
        }
        return SessionPage(sessions: rows, nextCursor: nil)
    }

    public func update(_ session: StoredSession, expectedVersion: Int64) throws(StorageError) -> StoredSession {
        try write { c in
            var values = Self.mutableValues(session)
            values += [.text(session.name.rawValue), .int(expectedVersion)]
            if let stored = try Self.firstSession(try c.query(PGSQL.updateSession, values)) { return stored }
            throw try Self.whyNotUpdated(session.name, on: c)
        }
    }

    public func updateReplacingKey(_ session: StoredSession, expectedVersion: Int64) throws(StorageError) -> StoredSession {
        guard let sealed = session.sealedAuthKey, let term = session.sealedKeyTerm, let keyID = session.authKeyID else {
            throw StorageError.invalidArgument(field: "auth_key", reason: "a new key needs its envelope")
        }
        return try write { c in
            var values = Self.mutableValues(session)
            values += [.text(session.name.rawValue), .int(expectedVersion), .text(keyID), .bytes(sealed), .int(Int64(term))]
            if let stored = try Self.firstSession(try c.query(PGSQL.updateSessionAndKey, values)) { return stored }
            throw try Self.whyNotUpdated(session.name, on: c)
        }
    }

    private static func whyNotUpdated(_ name: SessionName, on c: PGConnection) throws -> StorageError {
        let r = try c.query(PGSQL.versionByName, [.text(name.rawValue)])
        guard r.count > 0 else { return .notFound }
        if r.bool(0, 1) { return .revoked }
        return .versionMismatch(current: r.int64(0, 0))
    }

    public func markExported(_ name: SessionName, at time: Int64) throws(StorageError) {
        try write { c in
            let r = try c.query(PGSQL.markExported + " RETURNING session_seq", [.int(time), .text(name.rawValue)])
            if r.count == 0 { throw StorageError.notFound }
        }
    }

    /// Deletes the peers and rewrites the row without its envelope. PostgreSQL keeps the old
    /// row version (with the sealed envelope: ciphertext, never a plaintext key) until VACUUM
    /// reclaims it; docs/postgres.md says so.
    public func revoke(_ name: SessionName, at time: Int64) throws(StorageError) -> StoredSession {
        try write { c in
            let r = try c.query(PGSQL.lockByName, [.text(name.rawValue)])
            guard r.count > 0 else { throw StorageError.notFound }
            let seq = r.int64(0, 0)
            try c.query(PGSQL.deleteUsernames, [.int(seq)])
            try c.query(PGSQL.deletePeers, [.int(seq)])
            try c.query(PGSQL.deleteUpdateStates, [.int(seq)])
            if let stored = try Self.firstSession(try c.query(PGSQL.revoke, [.int(time), .int(seq)])) { return stored }
            guard let stored = try Self.firstSession(try c.query(PGSQL.sessionBySeq, [.int(seq)])) else {
                throw StorageError.notFound
            }
            return stored
        }
    }

    public func countSessions() throws(StorageError) -> SessionCounts {
        try read { c in
            let r = try c.query(PGSQL.countSessions)
            return SessionCounts(total: Int(r.int64(0, 0)), revoked: Int(r.int64(0, 1)))
        }
    }

    public func purge(_ name: SessionName) throws(StorageError) {
        try write { c in
            let r = try c.query(PGSQL.lockByName, [.text(name.rawValue)])
            guard r.count > 0 else { throw StorageError.notFound }
            guard r.bool(0, 1) else { throw StorageError.conflict(field: "name") }
            let seq = r.int64(0, 0)
            try c.query(PGSQL.deleteUsernames, [.int(seq)])
            try c.query(PGSQL.deletePeers, [.int(seq)])
            try c.query(PGSQL.deleteExportTime, [.int(seq)])
            try c.query(PGSQL.deleteSession, [.int(seq)])
        }
    }

    // MARK: Peers

    public func upsertPeers(_ peers: [Peer], in session: SessionName) throws(StorageError) {
        let peers = peers.map(Self.normalized)
        try write { c in
            let seq = try Self.liveSeq(session, on: c)
            _ = try Self.upsert(peers, seq: seq, on: c)
        }
    }

    public func peer(id: Int64, in session: SessionName) throws(StorageError) -> Peer? {
        try read { c in Self.peers(try c.query(PGSQL.peerByID, [.text(session.rawValue), .int(id)])).first }
    }

    public func peer(username: String, in session: SessionName) throws(StorageError) -> Peer? {
        let username = username.lowercased()
        return try read { c in Self.peers(try c.query(PGSQL.peerByUsername, [.text(session.rawValue), .text(username)])).first }
    }

    public func peers(phoneNumber: String, in session: SessionName) throws(StorageError) -> [Peer] {
        let peers = try read { c in Self.peers(try c.query(PGSQL.peersByPhone, [.text(session.rawValue), .text(phoneNumber)])) }
        return peers.sorted { a, b in
            a.lastUpdateOn == b.lastUpdateOn ? a.id < b.id : (a.lastUpdateOn ?? Int64.min) > (b.lastUpdateOn ?? Int64.min)
        }
    }

    public func peers(in session: SessionName) throws(StorageError) -> [Peer] {
        try read { c in
            let peers = Self.peers(try c.query(PGSQL.allPeers, [.text(session.rawValue)]))
            if peers.isEmpty, try c.query(PGSQL.sessionExistsByName, [.text(session.rawValue)]).count == 0 {
                throw StorageError.notFound
            }
            return peers
        }
    }

    public func deletePeers(in session: SessionName) throws(StorageError) -> Int {
        try write { c in
            let r = try c.query(PGSQL.lockByName, [.text(session.rawValue)])
            guard r.count > 0 else { throw StorageError.notFound }
            let seq = r.int64(0, 0)
            try c.query(PGSQL.deleteUsernames, [.int(seq)])
            let deleted = try c.query(PGSQL.deletePeers + " RETURNING peer_id", [.int(seq)]).count
            try c.query(PGSQL.refreshPeerCount, [.int(seq)])
            return deleted
        }
    }

    // MARK: Update states

    public func updateStates(in session: SessionName) throws(StorageError) -> [UpdateState] {
        try read { c in
            let r = try c.query(PGSQL.updateStates, [.text(session.rawValue)])
            let rows = (0..<r.count).map { i in
                UpdateState(id: r.int64(i, 0), pts: r.int64OrNil(i, 1), qts: r.int64OrNil(i, 2), date: r.int64OrNil(i, 3),
                            seq: r.int64OrNil(i, 4))
            }
            if rows.isEmpty, try c.query(PGSQL.sessionExistsByName, [.text(session.rawValue)]).count == 0 {
                throw StorageError.notFound
            }
            return rows
        }
    }

    public func upsertUpdateStates(_ states: [UpdateState], in session: SessionName) throws(StorageError) -> Int {
        try write { c in
            let seq = try Self.liveSeq(session, on: c)
            try Self.upsert(states, seq: seq, on: c)
            return Int(try c.query(PGSQL.countUpdateStates, [.int(seq)]).int64(0, 0))
        }
    }

    public func deleteUpdateState(id: Int64, in session: SessionName) throws(StorageError) -> Bool {
        try write { c in
            let seq = try Self.liveSeq(session, on: c)
            return try c.query(PGSQL.deleteUpdateState, [.int(seq), .int(id)]).count > 0
        }
    }

    // MARK: Keyring

    public func loadKeyring() throws(StorageError) -> StoredKeyring {
        try read { c in
            // One transaction, generation first (see the protocol).
            try c.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            do {
                let g = try c.query(PGSQL.getMeta, [.text(Self.keyringGenerationKey)])
                let generation = g.count > 0 ? g.bytes(0, 0) : nil
                let r = try c.query(PGSQL.keyTerms)
                let terms = (0..<r.count).map { i in
                    KeyTermRecord(term: UInt32(truncatingIfNeeded: r.int64(i, 0)), createdAt: r.int64(i, 1), sealedKey: r.bytes(i, 2) ?? [])
                }
                try c.execute("COMMIT")
                return StoredKeyring(generation: SQLiteSessionStore.decodeGeneration(generation), terms: terms)
            } catch {
                if c.isHealthy { _ = try? c.execute("ROLLBACK") }
                throw error
            }
        }
    }

    public func appendKeyTerm(_ term: KeyTermRecord, ifGeneration generation: Int64) throws(StorageError) -> Int64? {
        try write { c in
            guard let next = try Self.advanceKeyringGeneration(from: generation, on: c) else { return nil }
            let r = try c.query(PGSQL.insertKeyTerm + " ON CONFLICT DO NOTHING RETURNING term", Self.keyTermValues(term))
            if r.count == 0 { throw StorageError.conflict(field: "term") }
            return next
        }
    }

    public func replaceKeyTerms(_ terms: [KeyTermRecord], ifGeneration generation: Int64) throws(StorageError) -> Int64? {
        guard Set(terms.map(\.term)).count == terms.count else {
            throw .invalidArgument(field: "term", reason: "terms must be distinct")
        }
        return try write { c in
            guard let next = try Self.advanceKeyringGeneration(from: generation, on: c) else { return nil }
            try c.query(PGSQL.deleteKeyTerms)
            for term in terms { try c.query(PGSQL.insertKeyTerm, Self.keyTermValues(term)) }
            return next
        }
    }

    static let keyringGenerationKey = "keyring_generation"

    /// Inside a write transaction: the advisory lock serialises keyring writes of every instance.
    private static func advanceKeyringGeneration(from expected: Int64, on c: PGConnection) throws -> Int64? {
        try c.query("SELECT pg_advisory_xact_lock($1)", [.int(PostgresSchema.keyringLockKey)])
        let g = try c.query(PGSQL.getMeta, [.text(keyringGenerationKey)])
        let stored = SQLiteSessionStore.decodeGeneration(g.count > 0 ? g.bytes(0, 0) : nil)
        guard stored == expected, expected < Int64.max else { return nil }
        let next = expected + 1
        try c.query(PGSQL.setMeta, [.text(keyringGenerationKey), .bytes(SQLiteSessionStore.encodeGeneration(next))])
        return next
    }

    public func sessionsNeedingRewrap(currentTerm: UInt32, after cursor: SessionID?, limit: Int)
        throws(StorageError) -> [RewrapCandidate]
    {
        guard limit >= 1 else { throw .invalidArgument(field: "limit", reason: "must be at least 1") }
        let after: [UInt8] = cursor?.bytes ?? []
        return try read { c in
            let r = try c.query(PGSQL.needingRewrap, [.int(Int64(currentTerm)), .bytes(after), .int(Int64(limit))])
            return try (0..<r.count).map { i in
                guard let id = r.bytes(i, 0), id.count == SessionID.byteCount,
                    let name = r.text(i, 1).flatMap({ try? SessionName(stored: $0) }), let envelope = r.bytes(i, 3)
                else { throw StorageError.corrupt }
                return RewrapCandidate(
                    id: SessionID(unchecked: id), name: name, term: UInt32(truncatingIfNeeded: r.int64(i, 2)), sealedAuthKey: envelope)
            }
        }
    }

    public func replaceSealedAuthKey(id: SessionID, expected: [UInt8], new: [UInt8], term: UInt32) throws(StorageError) -> Bool {
        try write { c in
            try c.query(PGSQL.replaceEnvelope, [.bytes(new), .int(Int64(term)), .bytes(id.bytes), .bytes(expected)]).count == 1
        }
    }

    // MARK: Tokens

    public func insertToken(_ token: TokenRecord) throws(StorageError) {
        try write { c in
            let r = try c.query(PGSQL.insertToken, [
                .text(token.accessor), .bytes(token.hash), .text(token.policy), .init(token.displayName),
                .int(token.createdAt), .init(token.expiresAt), .init(token.revokedAt),
            ])
            if r.count == 0 {
                let accessorTaken = try c.query(PGSQL.tokenExists, [.text(token.accessor)]).count > 0
                throw StorageError.conflict(field: accessorTaken ? "accessor" : "hash")
            }
        }
    }

    public func token(accessor: String) throws(StorageError) -> TokenRecord? {
        try read { c in try Self.tokens(try c.query(PGSQL.tokenByAccessor, [.text(accessor)])).first }
    }

    public func token(hash: [UInt8]) throws(StorageError) -> TokenRecord? {
        try read { c in try Self.tokens(try c.query(PGSQL.tokenByHash, [.bytes(hash)])).first }
    }

    public func listTokens() throws(StorageError) -> [TokenRecord] {
        try read { c in try Self.tokens(try c.query(PGSQL.allTokens)) }
    }

    public func revokeToken(accessor: String, at time: Int64) throws(StorageError) -> TokenRecord {
        try write { c in
            if let token = try Self.tokens(try c.query(PGSQL.revokeToken, [.int(time), .text(accessor)])).first { return token }
            guard let token = try Self.tokens(try c.query(PGSQL.tokenByAccessor, [.text(accessor)])).first else {
                throw StorageError.notFound
            }
            return token
        }
    }

    public func listTokens(after cursor: String?, limit: Int) throws(StorageError) -> TokenPage {
        guard limit >= 1 else { throw .invalidArgument(field: "limit", reason: "must be at least 1") }
        let wanted = Int64(min(limit, 1 << 30)) + 1
        let rows = try read { c -> [TokenRecord]? in
            guard let cursor else { return try Self.tokens(try c.query(PGSQL.tokensFirst, [.int(wanted)])) }
            let created = try c.query(PGSQL.tokenCreatedAt, [.text(cursor)])
            guard created.count > 0 else { return nil }
            return try Self.tokens(try c.query(PGSQL.tokensAfter, [.int(created.int64(0, 0)), .text(cursor), .int(wanted)]))
        }
        guard let rows else { throw .invalidArgument(field: "after", reason: "no token has this accessor") }
        if rows.count > limit {
            let page = Array(rows.prefix(limit))
            return TokenPage(tokens: page, nextCursor: page.last?.accessor)
        }
        return TokenPage(tokens: rows, nextCursor: nil)
    }

    // MARK: Meta and audit

    public func meta(_ key: String) throws(StorageError) -> [UInt8]? {
        try read { c in
            let r = try c.query(PGSQL.getMeta, [.text(key)])
            return r.count > 0 ? r.bytes(0, 0) ?? [] : nil
        }
    }

    public func setMeta(_ key: String, value: [UInt8]?) throws(StorageError) {
        try write { c -> Void in
            if let value {
                try c.query(PGSQL.setMeta, [.text(key), .bytes(value)])
            } else {
                try c.query(PGSQL.deleteMeta, [.text(key)])
            }
        }
    }

    @discardableResult
    public func appendAudit(_ event: AuditEvent) throws(StorageError) -> Int64 {
        try write { c in try c.query(PGSQL.insertAudit + " RETURNING id", Self.auditValues(event)).int64(0, 0) }
    }

    public func auditEvents(before id: Int64?, limit: Int) throws(StorageError) -> [AuditRecord] {
        try auditEvents(before: id, limit: limit, matching: AuditFilter())
    }

    public func auditEvents(before id: Int64?, limit: Int, matching filter: AuditFilter) throws(StorageError) -> [AuditRecord] {
        guard limit >= 1 else { throw .invalidArgument(field: "limit", reason: "must be at least 1") }
        let values: [PGValue] = [
            .int(id ?? Int64.max), .init(filter.session), .init(filter.accessor), .init(filter.action),
            .int(Int64(min(limit, 1 << 30))),
        ]
        return try read { c in
            let r = try c.query(PGSQL.auditMatching, values)
            return (0..<r.count).map { i in
                AuditRecord(
                    id: r.int64(i, 0),
                    event: AuditEvent(
                        time: r.int64(i, 1), accessor: r.text(i, 2), action: r.text(i, 3) ?? "", sessionName: r.text(i, 4),
                        remoteAddress: r.text(i, 5), outcome: r.text(i, 6) ?? "", detail: r.text(i, 7)))
            }
        }
    }

    public func pruneAudit(before time: Int64, limit: Int) throws(StorageError) -> Int {
        guard limit >= 1 else { throw .invalidArgument(field: "limit", reason: "must be at least 1") }
        return try write { c in try c.query(PGSQL.pruneAudit, [.int(time), .int(Int64(limit))]).count }
    }

    // MARK: Lifecycle

    public func enqueue(_ write: DeferredWrite) {
        let body: @Sendable (PGConnection) throws -> Void
        switch write {
        case .audit(let event):
            let values = Self.auditValues(event)
            body = { c in try c.query(PGSQL.insertAudit, values) }
        case .expireToken(let accessor, let time):
            body = { c in try c.query(PGSQL.expireToken, [.int(time), .text(accessor)]) }
        }
        writer.submit(body) { [self] error in
            if error != nil { deferredFailureCount.add(1, ordering: .relaxed) }
        }
    }

    public var deferredFailures: Int { deferredFailureCount.load(ordering: .relaxed) }

    public func markExported(_ rows: [(id: SessionID, time: Int64)]) throws(StorageError) {
        guard !rows.isEmpty else { return }
        let values = rows.map { (id: $0.id.bytes, time: $0.time) }
        try write { c in
            for row in values { try c.query(PGSQL.markExportedByID, [.bytes(row.id), .int(row.time)]) }
        }
    }

    public func flush() throws(StorageError) {
        if pool.isClosed { throw .closed }
        writer.flush()
    }

    /// Not writable while the database cannot be reached (the reason says why); never `failed`:
    /// the pool reconnects by itself when the database is back.
    public func health() -> StoreHealth {
        if let failure = pool.failure { return StoreHealth(writable: false, reason: failure) }
        return StoreHealth()
    }

    public func close() {
        if pool.isClosed { return }
        writer.close()
        pool.close()
    }
}

// MARK: - Rows

extension PostgresSessionStore {
    fileprivate static func mutableValues(_ s: StoredSession) -> [PGValue] {
        [
            .int(Int64(s.dcID)), .init(s.apiID), .init(s.testMode), .init(s.userID), .init(s.isBot),
            .init(s.serverAddress), .init(s.port.map(Int64.init)), .init(s.date), .text(s.sourceFormat), .int(s.updatedAt),
        ]
    }

    fileprivate static func sessionValues(_ s: StoredSession) -> [PGValue] {
        [.bytes(s.id.bytes), .text(s.name.rawValue)] + mutableValues(s) + [
            .init(s.authKeyID), s.sealedAuthKey.map(PGValue.bytes) ?? .null, .init(s.sealedKeyTerm.map(Int64.init)),
            .int(s.createdAt),
        ]
    }

    fileprivate static func keyTermValues(_ t: KeyTermRecord) -> [PGValue] {
        [.int(Int64(t.term)), .int(t.createdAt), .bytes(t.sealedKey)]
    }

    fileprivate static func auditValues(_ e: AuditEvent) -> [PGValue] {
        [.int(e.time), .init(e.accessor), .text(e.action), .init(e.sessionName), .init(e.remoteAddress), .text(e.outcome), .init(e.detail)]
    }

    static func session(_ r: PGRows, _ i: Int) throws -> StoredSession {
        guard let id = r.bytes(i, 0), id.count == SessionID.byteCount, let nameText = r.text(i, 1),
            let name = try? SessionName(stored: nameText), let sourceFormat = r.text(i, 13)
        else { throw StorageError.corrupt }
        return StoredSession(
            id: SessionID(unchecked: id), name: name, dcID: Int(truncatingIfNeeded: r.int64(i, 2)),
            apiID: r.int64OrNil(i, 3), testMode: r.int64OrNil(i, 4).map { $0 != 0 }, userID: r.int64OrNil(i, 5),
            isBot: r.int64OrNil(i, 6).map { $0 != 0 }, serverAddress: r.text(i, 7),
            port: r.int64OrNil(i, 8).map { Int(truncatingIfNeeded: $0) }, date: r.int64OrNil(i, 9),
            authKeyID: r.text(i, 10), sealedAuthKey: r.bytes(i, 11),
            sealedKeyTerm: r.int64OrNil(i, 12).map { UInt32(truncatingIfNeeded: $0) }, sourceFormat: sourceFormat,
            createdAt: r.int64(i, 14), updatedAt: r.int64(i, 15), lastExportedAt: r.int64OrNil(i, 16), version: r.int64(i, 17),
            revokedAt: r.int64OrNil(i, 18), peerCount: Int(truncatingIfNeeded: r.int64(i, 19)))
    }

    static func firstSession(_ r: PGRows) throws -> StoredSession? {
        r.count > 0 ? try session(r, 0) : nil
    }

    static func sessions(_ r: PGRows) throws -> [StoredSession] {
        try (0..<r.count).map { try session(r, $0) }
    }

    static func tokens(_ r: PGRows) throws -> [TokenRecord] {
        try (0..<r.count).map { i in
            guard let accessor = r.text(i, 0), let hash = r.bytes(i, 1), let policy = r.text(i, 2) else {
                throw StorageError.corrupt
            }
            return TokenRecord(
                accessor: accessor, hash: hash, policy: policy, displayName: r.text(i, 3), createdAt: r.int64(i, 4),
                expiresAt: r.int64OrNil(i, 5), revokedAt: r.int64OrNil(i, 6))
        }
    }

    /// Folds rows (one per username, ordered by peer then position) into peers.
    fileprivate static func peers(_ r: PGRows) -> [Peer] {
        var peers: [Peer] = []
        for i in 0..<r.count {
            let id = r.int64(i, 0)
            let username = r.text(i, 6)
            if let last = peers.last, last.id == id {
                if let username { peers[peers.count - 1].usernames.append(username) }
                continue
            }
            peers.append(Peer(
                id: id, accessHash: r.int64(i, 1), type: r.text(i, 2).flatMap(PeerType.init(rawValue:)),
                usernames: username.map { [$0] } ?? [], phoneNumber: r.text(i, 3), name: r.text(i, 4),
                lastUpdateOn: r.int64OrNil(i, 5)))
        }
        return peers
    }

    fileprivate static func normalized(_ peer: Peer) -> Peer {
        var peer = peer
        var seen = Set<String>()
        peer.usernames = peer.usernames.map { $0.lowercased() }.filter { !$0.isEmpty && seen.insert($0).inserted }
        return peer
    }

    /// The internal key of a live session, its row locked until the transaction ends (so a
    /// revoke on another instance waits, or goes first and this write sees the tombstone).
    static func liveSeq(_ name: SessionName, on c: PGConnection) throws -> Int64 {
        let r = try c.query(PGSQL.lockByName, [.text(name.rawValue)])
        guard r.count > 0 else { throw StorageError.notFound }
        if r.bool(0, 1) { throw StorageError.revoked }
        return r.int64(0, 0)
    }

    fileprivate static func upsert(_ peers: [Peer], seq: Int64, on c: PGConnection) throws -> Int {
        for peer in peers {
            try c.query(PGSQL.upsertPeer, [
                .int(seq), .int(peer.id), .int(peer.accessHash), .init(peer.type?.rawValue), .init(peer.phoneNumber),
                .init(peer.name), .init(peer.lastUpdateOn),
            ])
            try c.query(PGSQL.deletePeerUsernames, [.int(seq), .int(peer.id)])
            for (position, username) in peer.usernames.enumerated() {
                try c.query(PGSQL.insertUsername, [.int(seq), .text(username), .int(peer.id), .int(Int64(position))])
            }
        }
        return Int(try c.query(PGSQL.refreshPeerCount, [.int(seq)]).int64(0, 0))
    }

    fileprivate static func upsert(_ states: [UpdateState], seq: Int64, on c: PGConnection) throws {
        for s in states {
            try c.query(PGSQL.upsertUpdateState, [.int(seq), .int(s.id), .init(s.pts), .init(s.qts), .init(s.date), .init(s.seq)])
        }
    }
}

/// A value handed from the writer thread to a completion.
final class PGBox<T>: @unchecked Sendable {
    var value: T?
}

/// The queue of writes nobody waits for (deferred writes) or that answer through a completion
/// (non-blocking inserts). One drain at a time takes everything queued (up to 256) and commits
/// it in one transaction, a SAVEPOINT per write. `flush()` waits for what was queued before it.
///
/// `@unchecked Sendable`: the mutable state is only touched with `mutex` held.
final class PGWriter: @unchecked Sendable {
    typealias Job = (body: @Sendable (PGConnection) throws -> Void, done: @Sendable (StorageError?) -> Void)
    private let pool: PGPool
    private let queue = DispatchQueue(label: "session-vault.postgres.writer")
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let changed: UnsafeMutablePointer<pthread_cond_t>
    private var jobs: [Job] = []
    private var draining = false
    private var closed = false
    private var submitted: UInt64 = 0
    private var completed: UInt64 = 0

    init(pool: PGPool) {
        self.pool = pool
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        changed = .allocate(capacity: 1)
        changed.initialize(to: pthread_cond_t())
        pthread_cond_init(changed, nil)
    }

    deinit {
        pthread_cond_destroy(changed)
        changed.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func submit(_ body: @escaping @Sendable (PGConnection) throws -> Void, done: @escaping @Sendable (StorageError?) -> Void) {
        pthread_mutex_lock(mutex)
        if closed {
            pthread_mutex_unlock(mutex)
            done(.closed)
            return
        }
        jobs.append((body, done))
        submitted += 1
        let start = !draining
        draining = true
        pthread_mutex_unlock(mutex)
        if start { queue.async { self.drain() } }
    }

    private func drain() {
        while true {
            pthread_mutex_lock(mutex)
            if jobs.isEmpty {
                draining = false
                pthread_mutex_unlock(mutex)
                return
            }
            let batch = Array(jobs.prefix(256))
            jobs.removeFirst(batch.count)
            pthread_mutex_unlock(mutex)
            let outcomes: [StorageError?]
            do {
                outcomes = try pool.withConnection { c in try Self.run(batch, on: c) }
            } catch {
                outcomes = Array(repeating: error, count: batch.count)
            }
            for (job, outcome) in zip(batch, outcomes) { job.done(outcome) }
            pthread_mutex_lock(mutex)
            completed += UInt64(batch.count)
            pthread_cond_broadcast(changed)
            pthread_mutex_unlock(mutex)
        }
    }

    private static func run(_ batch: [Job], on c: PGConnection) throws -> [StorageError?] {
        try c.execute("BEGIN")
        do {
            var outcomes: [StorageError?] = []
            for job in batch {
                if batch.count == 1 {
                    try job.body(c)
                    outcomes.append(nil)
                    continue
                }
                try c.execute("SAVEPOINT job")
                do {
                    try job.body(c)
                    try c.execute("RELEASE SAVEPOINT job")
                    outcomes.append(nil)
                } catch let error as StorageError {
                    try c.execute("ROLLBACK TO SAVEPOINT job")
                    outcomes.append(error)
                } catch let error as PGError where !error.connectionLost && c.isHealthy {
                    try c.execute("ROLLBACK TO SAVEPOINT job")
                    outcomes.append(error.storageError)
                }
            }
            c.commitSent = true
            try c.execute("COMMIT")
            return outcomes
        } catch let error as StorageError where batch.count == 1 {
            if c.isHealthy { _ = try? c.execute("ROLLBACK") }
            return [error]
        } catch let error as PGError where batch.count == 1 && !error.connectionLost && c.isHealthy {
            _ = try? c.execute("ROLLBACK")
            return [error.storageError]
        } catch {
            if c.isHealthy { _ = try? c.execute("ROLLBACK") }
            throw error
        }
    }

    /// Waits until everything submitted before the call has finished.
    func flush() {
        pthread_mutex_lock(mutex)
        let target = submitted
        while completed < target { pthread_cond_wait(changed, mutex) }
        pthread_mutex_unlock(mutex)
    }

    /// Finishes what is queued, then refuses new writes.
    func close() {
        flush()
        pthread_mutex_lock(mutex)
        closed = true
        pthread_mutex_unlock(mutex)
        flush()
    }
}

/// Every statement of the engine. Values are always parameters (`$n`), never inlined.
enum PGSQL {
    static let sessionColumns = """
        id, name, dc_id, api_id, test_mode, user_id, is_bot, server_address, port, date, auth_key_id, \
        sealed_auth_key, sealed_key_term, source_format, created_at, updated_at, \
        (SELECT last_exported_at FROM session_exports WHERE session_seq = sessions.seq), version, \
        revoked_at, peer_count
        """
    static let insertSession = """
        INSERT INTO sessions (id, name, dc_id, api_id, test_mode, user_id, is_bot, server_address, port, date, \
        source_format, updated_at, auth_key_id, sealed_auth_key, sealed_key_term, created_at, version, peer_count) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 1, 0) \
        ON CONFLICT DO NOTHING RETURNING seq
        """
    static let sessionByName = "SELECT \(sessionColumns) FROM sessions WHERE name = $1"
    static let sessionByID = "SELECT \(sessionColumns) FROM sessions WHERE id = $1"
    static let sessionBySeq = "SELECT \(sessionColumns) FROM sessions WHERE seq = $1"
    static let exportRecordByName = """
        SELECT id, dc_id, api_id, test_mode, user_id, is_bot, server_address, port, date, sealed_auth_key, \
        revoked_at, source_format FROM sessions WHERE name = $1
        """
    static let sessionExistsByName = "SELECT 1 FROM sessions WHERE name = $1"
    static let lockByName = "SELECT seq, revoked_at IS NOT NULL FROM sessions WHERE name = $1 FOR UPDATE"
    static let versionByName = "SELECT version, revoked_at IS NOT NULL FROM sessions WHERE name = $1"
    static let listAfter = "SELECT \(sessionColumns) FROM sessions WHERE name > $1 AND name < $2 ORDER BY name LIMIT $3"
    static let listFrom = "SELECT \(sessionColumns) FROM sessions WHERE name >= $1 AND name < $2 ORDER BY name LIMIT $3"
    static let updateSession = """
        UPDATE sessions SET dc_id = $1, api_id = $2, test_mode = $3, user_id = $4, is_bot = $5, \
        server_address = $6, port = $7, date = $8, source_format = $9, updated_at = $10, version = version + 1 \
        WHERE name = $11 AND version = $12 AND revoked_at IS NULL RETURNING \(sessionColumns)
        """
    static let updateSessionAndKey = """
        UPDATE sessions SET dc_id = $1, api_id = $2, test_mode = $3, user_id = $4, is_bot = $5, \
        server_address = $6, port = $7, date = $8, source_format = $9, updated_at = $10, version = version + 1, \
        auth_key_id = $13, sealed_auth_key = $14, sealed_key_term = $15 \
        WHERE name = $11 AND version = $12 AND revoked_at IS NULL RETURNING \(sessionColumns)
        """
    static let keepLater =
        " ON CONFLICT (session_seq) DO UPDATE SET last_exported_at = greatest(session_exports.last_exported_at, excluded.last_exported_at)"
    static let markExported =
        "INSERT INTO session_exports (session_seq, last_exported_at) SELECT seq, $1 FROM sessions WHERE name = $2" + keepLater
    static let markExportedByID =
        "INSERT INTO session_exports (session_seq, last_exported_at) SELECT seq, $2 FROM sessions WHERE id = $1" + keepLater
    static let markExportedBySeq = "INSERT INTO session_exports (session_seq, last_exported_at) VALUES ($1, $2)" + keepLater
    static let revoke = """
        UPDATE sessions SET sealed_auth_key = NULL, sealed_key_term = NULL, revoked_at = $1, updated_at = $1, \
        version = version + 1, peer_count = 0 WHERE seq = $2 AND revoked_at IS NULL RETURNING \(sessionColumns)
        """
    static let countSessions = "SELECT count(*), count(revoked_at) FROM sessions"
    static let deleteExportTime = "DELETE FROM session_exports WHERE session_seq = $1"
    static let deleteSession = "DELETE FROM sessions WHERE seq = $1 AND revoked_at IS NOT NULL AND sealed_auth_key IS NULL"

    static let upsertPeer = """
        INSERT INTO peers (session_seq, peer_id, access_hash, type, phone_number, name, last_update_on) \
        VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (session_seq, peer_id) DO UPDATE SET \
        access_hash = excluded.access_hash, type = excluded.type, phone_number = excluded.phone_number, \
        name = excluded.name, last_update_on = excluded.last_update_on
        """
    static let deletePeerUsernames = "DELETE FROM peer_usernames WHERE session_seq = $1 AND peer_id = $2"
    static let insertUsername = "INSERT INTO peer_usernames (session_seq, username, peer_id, position) VALUES ($1, $2, $3, $4)"
    static let deleteUsernames = "DELETE FROM peer_usernames WHERE session_seq = $1"
    static let deletePeers = "DELETE FROM peers WHERE session_seq = $1"
    static let refreshPeerCount = """
        UPDATE sessions SET peer_count = (SELECT count(*) FROM peers WHERE session_seq = $1) WHERE seq = $1 RETURNING peer_count
        """

    private static func peersOf(_ target: String) -> String {
        """
        WITH target (session_seq, peer_id) AS (\(target)) \
        SELECT p.peer_id, p.access_hash, p.type, p.phone_number, p.name, p.last_update_on, u.username \
        FROM target t JOIN peers p ON p.session_seq = t.session_seq AND p.peer_id = t.peer_id \
        LEFT JOIN peer_usernames u ON u.session_seq = p.session_seq AND u.peer_id = p.peer_id \
        ORDER BY p.peer_id, u.position
        """
    }
    static let peerByID = peersOf("SELECT seq, $2::bigint FROM sessions WHERE name = $1")
    static let peerByUsername = peersOf("""
        SELECT u.session_seq, u.peer_id FROM sessions s \
        JOIN peer_usernames u ON u.session_seq = s.seq AND u.username = $2 \
        JOIN peers q ON q.session_seq = u.session_seq AND q.peer_id = u.peer_id \
        WHERE s.name = $1 ORDER BY q.last_update_on DESC NULLS LAST, q.peer_id LIMIT 1
        """)
    static let peersByPhone = peersOf("""
        SELECT q.session_seq, q.peer_id FROM sessions s JOIN peers q ON q.session_seq = s.seq AND q.phone_number = $2 \
        WHERE s.name = $1
        """)
    static let allPeers = peersOf(
        "SELECT q.session_seq, q.peer_id FROM sessions s JOIN peers q ON q.session_seq = s.seq WHERE s.name = $1")

    static let updateStates = """
        SELECT u.id, u.pts, u.qts, u.date, u.seq FROM update_states u JOIN sessions s ON s.seq = u.session_seq \
        WHERE s.name = $1 ORDER BY u.id
        """
    static let upsertUpdateState = """
        INSERT INTO update_states (session_seq, id, pts, qts, date, seq) VALUES ($1, $2, $3, $4, $5, $6) \
        ON CONFLICT (session_seq, id) DO UPDATE SET pts = excluded.pts, qts = excluded.qts, date = excluded.date, \
        seq = excluded.seq
        """
    static let countUpdateStates = "SELECT count(*) FROM update_states WHERE session_seq = $1"
    static let deleteUpdateState = "DELETE FROM update_states WHERE session_seq = $1 AND id = $2 RETURNING id"
    static let deleteUpdateStates = "DELETE FROM update_states WHERE session_seq = $1"

    static let keyTerms = "SELECT term, created_at, sealed_key FROM key_terms ORDER BY term"
    static let insertKeyTerm = "INSERT INTO key_terms (term, created_at, sealed_key) VALUES ($1, $2, $3)"
    static let deleteKeyTerms = "DELETE FROM key_terms"
    static let needingRewrap = """
        SELECT id, name, sealed_key_term, sealed_auth_key FROM sessions \
        WHERE sealed_auth_key IS NOT NULL AND sealed_key_term <> $1 AND id > $2 ORDER BY id LIMIT $3
        """
    static let replaceEnvelope = """
        UPDATE sessions SET sealed_auth_key = $1, sealed_key_term = $2 \
        WHERE id = $3 AND sealed_auth_key = $4 AND revoked_at IS NULL RETURNING seq
        """

    static let tokenColumns = "accessor, hash, policy, display_name, created_at, expires_at, revoked_at"
    static let insertToken =
        "INSERT INTO tokens (\(tokenColumns)) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING accessor"
    static let tokenExists = "SELECT 1 FROM tokens WHERE accessor = $1"
    static let tokenByAccessor = "SELECT \(tokenColumns) FROM tokens WHERE accessor = $1"
    static let tokenByHash = "SELECT \(tokenColumns) FROM tokens WHERE hash = $1"
    static let allTokens = "SELECT \(tokenColumns) FROM tokens ORDER BY created_at, accessor"
    static let revokeToken =
        "UPDATE tokens SET revoked_at = $1 WHERE accessor = $2 AND revoked_at IS NULL RETURNING \(tokenColumns)"
    static let expireToken = "UPDATE tokens SET revoked_at = $1 WHERE accessor = $2 AND revoked_at IS NULL"
    static let tokenCreatedAt = "SELECT created_at FROM tokens WHERE accessor = $1"
    static let tokensFirst = "SELECT \(tokenColumns) FROM tokens ORDER BY created_at, accessor LIMIT $1"
    static let tokensAfter = """
        SELECT \(tokenColumns) FROM tokens WHERE (created_at, accessor) > ($1, $2) ORDER BY created_at, accessor LIMIT $3
        """

    static let getMeta = "SELECT value FROM meta WHERE key = $1"
    static let setMeta = "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    static let deleteMeta = "DELETE FROM meta WHERE key = $1"

    static let insertAudit = """
        INSERT INTO audit (time, accessor, action, session_name, remote_address, outcome, detail) \
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """
    static let pruneAudit = """
        DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE time < $1 ORDER BY id LIMIT $2) RETURNING id
        """
    static let auditMatching = """
        SELECT id, time, accessor, action, session_name, remote_address, outcome, detail FROM audit \
        WHERE id < $1 AND ($2::text IS NULL OR session_name = $2) AND ($3::text IS NULL OR accessor = $3) \
        AND ($4::text IS NULL OR action = $4) ORDER BY id DESC LIMIT $5
        """
}
