// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Primitives
import Synchronization
internal import CSQLite
#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Tuning of ``SQLiteSessionStore``. Every field has a documented default.
public struct SQLiteStoreConfiguration: Sendable, Equatable {
    /// `PRAGMA synchronous` of the file engine.
    public enum Synchronous: String, Sendable, CaseIterable {
        /// fsync at every commit: a write acknowledged is a write that survives power loss.
        case full = "FULL"
        /// fsync at checkpoints only (WAL): survives a process crash, but the last commits can
        /// be lost on power loss. Benchmarks compare both.
        case normal = "NORMAL"
    }

    /// Default `.full`: a vault loses nothing it acknowledged. Group commit pays for it.
    public var synchronous: Synchronous
    /// How long a connection waits for a lock held by another connection or process before
    /// failing. Default 5000 ms.
    public var busyTimeoutMilliseconds: Int32
    /// Idle read connections kept open (file engine), at most ``maxReaders``. Default 8.
    public var maxIdleReaders: Int
    /// Read connections open at once (file engine); further reads wait for one. Default 4: reads
    /// are single statements, a few microseconds each, and every reader costs ~130 KiB of RSS.
    public var maxReaders: Int
    /// Most writes committed in one transaction. Default 512.
    public var maxBatchSize: Int
    /// How long an idle writer waits before committing deferred writes, so a stream of them
    /// shares transactions. Default 5 ms.
    public var deferredWriteDelayMilliseconds: Int

    public init(
        synchronous: Synchronous = .full, busyTimeoutMilliseconds: Int32 = 5000, maxIdleReaders: Int = 8,
        maxBatchSize: Int = 512, deferredWriteDelayMilliseconds: Int = 5, maxReaders: Int = 4
    ) {
        self.synchronous = synchronous
        self.busyTimeoutMilliseconds = busyTimeoutMilliseconds
        self.maxIdleReaders = maxIdleReaders
        self.maxReaders = maxReaders
        self.maxBatchSize = maxBatchSize
        self.deferredWriteDelayMilliseconds = deferredWriteDelayMilliseconds
    }
}

/// The SQLite engines of ``SessionStore``: a file (WAL) or a private in-memory database.
///
/// - **Reads** run on the caller's thread: file — a pool of read-only connections
///   (``ReaderPool``), each with its own statement cache and no per-read transaction; memory —
///   the single connection under a lock.
/// - **Writes** go through one writer connection confined to a serial queue, with group commit
///   (``WriteCoordinator``): concurrent writes share one `BEGIN IMMEDIATE … COMMIT`, each in its
///   own SAVEPOINT, and every caller returns only once its transaction has committed.
/// - **File settings**: WAL, `synchronous=FULL` (configurable), `busy_timeout`,
///   `foreign_keys=ON`, `secure_delete=ON` (freed bytes are zeroed, so a revoked envelope does
///   not linger in free space), STRICT tables, migrations through `PRAGMA user_version`, and an
///   `application_id` so any other file is refused untouched.
///
/// `@unchecked Sendable`: all stored properties are immutable references to types that are
/// themselves safe to share (``ReaderPool``, ``SharedConnection``, ``WriteCoordinator``); the
/// connections behind them are confined as those types document.
public final class SQLiteSessionStore: SessionStore, StoreWaitHint, @unchecked Sendable {
    private enum Readers {
        case pool(ReaderPool)
        case shared(SharedConnection)
    }

    /// Newest schema version this build reads and writes.
    public static var schemaVersion: Int64 { VaultSchema.currentVersion }

    public let location: StoreLocation
    /// The configuration the store was opened with.
    public let configuration: SQLiteStoreConfiguration
    private let readers: Readers
    let coordinator: WriteCoordinator
    /// The file engine's database file as it was opened (nil for memory).
    private let fileIdentity: DatabaseFileIdentity?

    /// Opens (creating or migrating as needed) a store.
    ///
    /// For `.file(path)` the directory must exist: the caller creates it and decides whether to
    /// fall back to memory when this throws ``StorageError/cannotOpen(path:)`` or
    /// ``StorageError/readOnly``.
    /// - Throws: ``StorageError/cannotOpen(path:)``, ``StorageError/readOnly``,
    ///   ``StorageError/notADatabase`` (garbage), ``StorageError/notAVaultDatabase`` (another
    ///   application's SQLite file, left untouched), ``StorageError/newerSchema(found:supported:)``,
    ///   ``StorageError/corrupt``, or ``StorageError/sqlite(_:)``.
    public init(_ location: StoreLocation, configuration: SQLiteStoreConfiguration = .init()) throws(StorageError) {
        self.location = location
        self.configuration = configuration
        let delay = DispatchTimeInterval.milliseconds(max(0, configuration.deferredWriteDelayMilliseconds))
        switch location {
        case .file(let path):
            let writer = try Self.openWriter(path: path, configuration: configuration)
            let identity = DatabaseFileIdentity(path: path)
            fileIdentity = identity
            readers = .pool(
                ReaderPool(
                    path: path, busyTimeout: configuration.busyTimeoutMilliseconds,
                    maxIdle: configuration.maxIdleReaders, maxOpen: configuration.maxReaders))
            coordinator = WriteCoordinator(
                access: ConfinedWriter(writer), label: "session-vault.store.writer",
                maxBatch: configuration.maxBatchSize, deferredDelay: delay, hasWAL: true,
                promptAt: Self.maxDeferredBacklog / 2, merge: Self.writeMerged,
                precheck: { identity.check() })
        case .memory:
            fileIdentity = nil
            let connection: SQLiteConnection
            do {
                connection = try SQLiteConnection(path: ":memory:")
                try connection.execute("PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;")
            } catch {
                throw StorageError(error)
            }
            try VaultSchema.migrate(connection)
            let shared = SharedConnection(connection)
            readers = .shared(shared)
            coordinator = WriteCoordinator(
                access: shared, label: "session-vault.store.writer",
                maxBatch: configuration.maxBatchSize, deferredDelay: delay, hasWAL: false,
                promptAt: Self.maxDeferredBacklog / 2, merge: Self.writeMerged)
        case .server(let engine, _):
            throw .invalidArgument(field: "storage", reason: "the SQLite engine cannot open a \(engine) server")
        }
    }

    deinit { close() }

    /// Opens the writer connection of a file, refusing anything that is not a vault database
    /// before writing a single byte, then switches to WAL, sets the pragmas and migrates.
    private static func openWriter(path: String, configuration: SQLiteStoreConfiguration) throws(StorageError)
        -> SQLiteConnection
    {
        let connection: SQLiteConnection
        do {
            connection = try SQLiteConnection(path: path)
        } catch {
            throw error.code == SQLITE_CANTOPEN ? .cannotOpen(path: path) : StorageError(error)
        }
        // READWRITE silently falls back to read-only on a write-protected file.
        if connection.isReadOnly { throw .readOnly }
        connection.setBusyTimeout(milliseconds: configuration.busyTimeoutMilliseconds)
        _ = try VaultSchema.inspect(connection)
        do {
            // WAL: readers never block the writer and see a consistent snapshot per statement.
            // The writer touches the right edge of the audit table and a few index paths; 256 KiB
            // of private page cache holds them, the kernel caches the rest (a miss is one pread).
            // Under export load the cache fills with the leaves of export-time updates: at 1 MiB
            // peak RSS was ~0.9 MiB higher, with the same export and create req/s.
            let mode = try connection.query("PRAGMA journal_mode = WAL").first?.first
            guard mode == .text("wal") else { throw StorageError.cannotOpen(path: path) }
            try connection.execute(
                """
                PRAGMA synchronous = \(configuration.synchronous.rawValue);
                PRAGMA foreign_keys = ON;
                PRAGMA secure_delete = ON;
                PRAGMA temp_store = MEMORY;
                PRAGMA journal_size_limit = 16777216;
                PRAGMA cache_size = -256;
                """)
        } catch let error as SQLiteError {
            switch error.code {
            case SQLITE_CANTOPEN: throw .cannotOpen(path: path)
            default: throw StorageError(error)
            }
        } catch {
            throw StorageError.wrap(error)
        }
        try VaultSchema.migrate(connection)
        return connection
    }

    // MARK: Plumbing

    /// Runs a read on the caller's thread.
    func read<T: Sendable>(_ body: (SQLiteConnection) throws -> T) throws(StorageError) -> T {
        do {
            switch readers {
            case .pool(let pool): return try pool.read(body)
            case .shared(let shared): return try shared.read(body)
            }
        } catch {
            throw StorageError.wrap(error)
        }
    }

    /// Runs a write in the next group commit and returns its result once committed.
    func write<T: Sendable>(
        purgesWAL: Bool = false, _ body: @escaping @Sendable (SQLiteConnection) throws -> T
    ) throws(StorageError) -> T {
        let box = ResultBox<T>()
        let ticket = WriteTicket(waits: true, purgesWAL: purgesWAL) { connection in
            box.value = try body(connection)
        }
        try coordinator.perform(ticket)
        if let error = ticket.error { throw error }
        guard let value = box.value else { throw .closed }
        return value
    }

    /// Submits a write to the next group commit without waiting; `completion` receives its
    /// result after the transaction has finished (on the writer queue).
    func writeLater<T: Sendable>(
        atomic: Bool = false, _ body: @escaping @Sendable (SQLiteConnection) throws -> T,
        completion: @escaping @Sendable (Result<T, StorageError>) -> Void
    ) {
        let box = ResultBox<T>()
        let ticket = WriteTicket(atomic: atomic, body: { connection in box.value = try body(connection) }) { error in
            if let error {
                completion(.failure(error))
            } else if let value = box.value {
                completion(.success(value))
            } else {
                completion(.failure(.closed))
            }
        }
        coordinator.submit(ticket)
    }

    // MARK: Sessions

    /// Inserts the session and its peers in one write op of the next group commit. A duplicate
    /// name or id is detected by the unique indexes and classified by a follow-up look-up inside
    /// the same SAVEPOINT, which is then rolled back: nothing of the op remains.
    /// - Throws: see ``SessionStore/insert(_:peers:)``.
    @discardableResult
    public func insert(_ session: StoredSession, peers: [Peer], states: [UpdateState]) throws(StorageError) -> StoredSession {
        try write(try Self.insertOperation(session, peers: peers, states: states))
    }

    public func insert(
        _ session: StoredSession, peers: [Peer], states: [UpdateState],
        completion: @escaping @Sendable (Result<StoredSession, StorageError>) -> Void
    ) {
        let operation: @Sendable (SQLiteConnection) throws -> StoredSession
        do {
            operation = try Self.insertOperation(session, peers: peers, states: states)
        } catch {
            completion(.failure(error))
            return
        }
        // Without peers the op is one INSERT (a duplicate fails that statement alone, then only
        // reads follow): atomic, no SAVEPOINT needed.
        writeLater(atomic: peers.isEmpty && states.isEmpty, operation, completion: completion)
    }

    /// Validates a new session and returns the write op that inserts it (see ``insert(_:peers:)``).
    private static func insertOperation(_ session: StoredSession, peers: [Peer], states: [UpdateState]) throws(StorageError)
        -> @Sendable (SQLiteConnection) throws -> StoredSession
    {
        try Self.validate(session)
        guard session.revokedAt == nil else {
            throw .invalidArgument(field: "revoked_at", reason: "a new session cannot be revoked")
        }
        let peers = peers.map(Self.normalized)
        return { connection in
            let statement = try connection.cached(SQL.insertSession)
            defer { statement.reset() }
            try statement.bind(Self.sessionValues(session))
            do {
                _ = try statement.step()
            } catch let error as SQLiteError where error.isUniqueViolation {
                statement.reset()
                let nameTaken = try connection.exists(SQL.sessionExistsByName, [.text(session.name.rawValue)])
                throw StorageError.conflict(field: nameTaken ? "name" : "id")
            }
            let seq = connection.lastInsertRowID
            if let exported = session.lastExportedAt {
                try connection.run(SQL.markExportedBySeq, [.integer(seq), .integer(exported)])
            }
            var stored = session
            stored.version = 1
            stored.peerCount = 0
            if !peers.isEmpty {
                stored.peerCount = try Self.upsert(peers, seq: seq, on: connection)
            }
            if !states.isEmpty {
                try Self.upsert(states, seq: seq, on: connection)
            }
            return stored
        }
    }

    /// One cached statement on a pooled read connection, on the caller's thread: the hot path
    /// of export (no transaction wrapper, no thread hop).
    /// - Throws: ``StorageError/closed`` after close; ``StorageError/corrupt`` for a malformed row.
    public func session(named name: SessionName) throws(StorageError) -> StoredSession? {
        try read { connection in
            try connection.first(SQL.sessionByName, [.text(name.rawValue)], Self.decodeSession)
        }
    }

    public func exportRecord(named name: SessionName) throws(StorageError) -> ExportRecord? {
        try read { connection in
            try connection.first(SQL.exportRecordByName, [.text(name.rawValue)], Self.decodeExportRecord)
        }
    }

    public func session(id: SessionID) throws(StorageError) -> StoredSession? {
        try read { connection in
            try connection.first(SQL.sessionByID, [.blob(id.bytes)], Self.decodeSession)
        }
    }

    public func listSessions(after cursor: SessionName?, limit: Int, prefix: String?) throws(StorageError)
        -> SessionPage
    {
        guard limit >= 1 else { throw .invalidArgument(field: "limit", reason: "must be at least 1") }
        let prefix = prefix ?? ""
        guard prefix.utf8.count <= SessionName.maxLength, prefix.utf8.allSatisfy(SessionName.isAllowed) else {
            throw .invalidArgument(field: "prefix", reason: "may contain only letters, digits, '.', '_' and '-'")
        }
        // Names use only bytes below '~', so `prefix + "~"` bounds every name with the prefix
        // and both bounds make an index range scan. The effective lower bound is the larger of
        // the cursor (exclusive) and the prefix (inclusive).
        let upper = prefix + "~"
        let sql: SQLiteStatementKey
        let lower: String
        if let cursor, cursor.rawValue >= prefix {
            sql = SQL.listAfter
            lower = cursor.rawValue
        } else {
            sql = SQL.listFrom
            lower = prefix
        }
        let rows = try read { connection in
            // One row more than asked tells whether another page follows.
            let values: [SQLiteValue] = [.text(lower), .text(upper), .integer(Int64(min(limit, 1 << 30)) + 1)]
            return try connection.all(sql, values, Self.decodeSession)
        }
        if rows.count > limit {
            let page = Array(rows.prefix(limit))
            return SessionPage(sessions: page, nextCursor: page.last?.name)
        }
        return SessionPage(sessions: rows, nextCursor: nil)
    }

    public func listSessions(after cursor: SessionName?, limit: Int, within scope: NameScope) throws(StorageError)
        -> SessionPage
    {
        guard limit >= 1 else { throw .invalidArgument(field: "limit", reason: "must be at least 1") }
        // One row more than asked tells whether another page follows.
        let wanted = min(limit, 1 << 30) + 1
        let after = cursor?.rawValue
        let rows = try read { connection in
            var rows: [StoredSession] = []
            // The parts are disjoint and in name order, so the rows come out in name order.
            for part in scope.parts where rows.count < wanted {
                switch part {
                case .name(let name):
                    if let after, !NameScope.precedes(after, name) { continue }
                    if let row = try connection.first(SQL.sessionByName, [.text(name)], Self.decodeSession) { rows.append(row) }
                case .prefix(let prefix):
                    // As in the unscoped listing: `prefix + "~"` bounds every name with the prefix.
                    let upper = prefix + "~"
                    if let after, !NameScope.precedes(after, upper) { continue }
                    let fromCursor = after.map { !NameScope.precedes($0, prefix) } ?? false
                    let values: [SQLiteValue] = [.text(fromCursor ? after ?? prefix : prefix), .text(upper), .integer(Int64(wanted - rows.count))]
                    rows += try connection.all(fromCursor ? SQL.listAfter : SQL.listFrom, values, Self.decodeSession)
                }
            }
            return rows
        }
        if rows.count > limit {
            let page = Array(rows.prefix(limit))
            return SessionPage(sessions: page, nextCursor: page.last?.name)
        }
        return SessionPage(sessions: rows, nextCursor: nil)
    }

    /// One `UPDATE … WHERE name = ? AND version = ? … RETURNING`, so the check and the write
    /// are a single step of the single writer; a miss is then classified (gone, revoked, or
    /// another version).
    /// - Throws: see ``SessionStore/update(_:expectedVersion:)``.
    public func update(_ session: StoredSession, expectedVersion: Int64) throws(StorageError) -> StoredSession {
        try write { connection in
            var values = Self.mutableValues(session)
            values.append(.text(session.name.rawValue))
            values.append(.integer(expectedVersion))
            return try Self.compareAndSet(SQL.updateSession, values, name: session.name, on: connection)
        }
    }

    /// Runs an `UPDATE … WHERE name AND version … RETURNING` and, when it matched no row, says
    /// why: gone, revoked, or another version.
    private static func compareAndSet(
        _ sql: SQLiteStatementKey, _ values: [SQLiteValue], name: SessionName, on connection: SQLiteConnection
    ) throws -> StoredSession {
        if let stored = try connection.first(sql, values, Self.decodeSession) {
            return stored
        }
        guard let (version, revoked) = try connection.first(
            SQL.versionByName, [.text(name.rawValue)], { ($0.int64(0), $0.int64(1) != 0) })
        else { throw StorageError.notFound }
        if revoked { throw StorageError.revoked }
        throw StorageError.versionMismatch(current: version)
    }

    public func updateReplacingKey(_ session: StoredSession, expectedVersion: Int64) throws(StorageError) -> StoredSession {
        guard let sealed = session.sealedAuthKey, let term = session.sealedKeyTerm, let keyID = session.authKeyID else {
            throw StorageError.invalidArgument(field: "auth_key", reason: "a new key needs its envelope")
        }
        return try write(purgesWAL: true) { connection in
            var values = Self.mutableValues(session)
            values.append(.text(session.name.rawValue))
            values.append(.integer(expectedVersion))
            values += [.text(keyID), .blob(sealed), .integer(Int64(term))]
            return try Self.compareAndSet(SQL.updateSessionAndKey, values, name: session.name, on: connection)
        }
    }

    public func markExported(_ name: SessionName, at time: Int64) throws(StorageError) {
        try write { connection in
            try connection.run(SQL.markExported, [.integer(time), .text(name.rawValue)])
            if connection.changes == 0 { throw StorageError.notFound }
        }
    }

    /// Deletes the peers and rewrites the row without its envelope; with `secure_delete=ON`
    /// SQLite zeroes the freed bytes. The batch holding the revoke is followed by
    /// `wal_checkpoint(TRUNCATE)` before the caller is answered, so the old page images in the
    /// `-wal` file are gone too (retried after later commits if a reader held the WAL).
    /// - Throws: see ``SessionStore/revoke(_:at:)``.
    public func revoke(_ name: SessionName, at time: Int64) throws(StorageError) -> StoredSession {
        try write(purgesWAL: true) { connection in
            guard let seq = try connection.first(SQL.seqByName, [.text(name.rawValue)], { $0.int64(0) }) else {
                throw StorageError.notFound
            }
            // Peers first (they are not secret, but a tombstone keeps only metadata).
            try connection.run(SQL.deleteUsernames, [.integer(seq)])
            try connection.run(SQL.deletePeers, [.integer(seq)])
            try connection.run(UpdateStateSQL.deleteAll, [.integer(seq)])
            // Idempotent: a tombstone is not touched again (RETURNING yields no row).
            if let stored = try connection.first(SQL.revoke, [.integer(time), .integer(seq)], Self.decodeSession) {
                return stored
            }
            guard let stored = try connection.first(SQL.sessionBySeq, [.integer(seq)], Self.decodeSession) else {
                throw StorageError.notFound
            }
            return stored
        }
    }

    public func countSessions() throws(StorageError) -> SessionCounts {
        try read { connection in
            try connection.first(SQL.countSessions, []) {
                SessionCounts(total: Int($0.int64(0)), revoked: Int($0.int64(1)))
            } ?? SessionCounts(total: 0, revoked: 0)
        }
    }

    // MARK: Peers

    public func upsertPeers(_ peers: [Peer], in session: SessionName) throws(StorageError) {
        let peers = peers.map(Self.normalized)
        try write { connection in
            let seq = try Self.liveSeq(session, on: connection)
            _ = try Self.upsert(peers, seq: seq, on: connection)
        }
    }

    public func peer(id: Int64, in session: SessionName) throws(StorageError) -> Peer? {
        try read { connection in
            try Self.decodePeers(connection, SQL.peerByID, [.text(session.rawValue), .integer(id)]).first
        }
    }

    public func peer(username: String, in session: SessionName) throws(StorageError) -> Peer? {
        let username = username.lowercased()
        return try read { connection in
            try Self.decodePeers(connection, SQL.peerByUsername, [.text(session.rawValue), .text(username)]).first
        }
    }

    public func peers(phoneNumber: String, in session: SessionName) throws(StorageError) -> [Peer] {
        let peers = try read { connection in
            try Self.decodePeers(connection, SQL.peersByPhone, [.text(session.rawValue), .text(phoneNumber)])
        }
        // The most recently updated first (a peer without a time last), then by marked id.
        return peers.sorted { a, b in
            a.lastUpdateOn == b.lastUpdateOn ? a.id < b.id : (a.lastUpdateOn ?? Int64.min) > (b.lastUpdateOn ?? Int64.min)
        }
    }

    public func peers(in session: SessionName) throws(StorageError) -> [Peer] {
        try read { connection in
            let peers = try Self.decodePeers(connection, SQL.allPeers, [.text(session.rawValue)])
            if peers.isEmpty, !(try connection.exists(SQL.sessionExistsByName, [.text(session.rawValue)])) {
                throw StorageError.notFound
            }
            return peers
        }
    }

    public func deletePeers(in session: SessionName) throws(StorageError) -> Int {
        try write { connection in
            guard let seq = try connection.first(SQL.seqByName, [.text(session.rawValue)], { $0.int64(0) }) else {
                throw StorageError.notFound
            }
            try connection.run(SQL.deleteUsernames, [.integer(seq)])
            try connection.run(SQL.deletePeers, [.integer(seq)])
            let deleted = connection.changes
            try connection.run(SQL.refreshPeerCount, [.integer(seq)])
            return deleted
        }
    }

    // MARK: Keyring

    public func loadKeyring() throws(StorageError) -> StoredKeyring {
        try read { connection in
            // Generation first (see the protocol): a racing keyring write can then only make
            // this view look older than it is, and the writer's condition fails safe.
            let generation = try connection.first(SQL.getMeta, [.text(Self.keyringGenerationKey)]) { $0.blob(0) ?? [] }
            let terms = try connection.all(SQL.keyTerms, []) { statement in
                KeyTermRecord(
                    term: UInt32(truncatingIfNeeded: statement.int64(0)), createdAt: statement.int64(1),
                    sealedKey: statement.blob(2) ?? [])
            }
            return StoredKeyring(generation: Self.decodeGeneration(generation), terms: terms)
        }
    }

    public func appendKeyTerm(_ term: KeyTermRecord, ifGeneration generation: Int64) throws(StorageError) -> Int64? {
        try write { connection in
            guard let next = try Self.advanceKeyringGeneration(from: generation, on: connection) else { return nil }
            do {
                try connection.run(SQL.insertKeyTerm, Self.keyTermValues(term))
            } catch let error as SQLiteError where error.isUniqueViolation {
                throw StorageError.conflict(field: "term")
            }
            return next
        }
    }

    public func replaceKeyTerms(_ terms: [KeyTermRecord], ifGeneration generation: Int64) throws(StorageError) -> Int64? {
        guard Set(terms.map(\.term)).count == terms.count else {
            throw .invalidArgument(field: "term", reason: "terms must be distinct")
        }
        return try write { connection in
            guard let next = try Self.advanceKeyringGeneration(from: generation, on: connection) else { return nil }
            try connection.run(SQL.deleteKeyTerms)
            for term in terms { try connection.run(SQL.insertKeyTerm, Self.keyTermValues(term)) }
            return next
        }
    }

    /// Meta key of the keyring's generation (8 bytes, big-endian).
    static let keyringGenerationKey = "keyring_generation"

    /// Inside a write transaction (`BEGIN IMMEDIATE` holds the database's write lock, so no
    /// other process can change the keyring between the check and the write): bumps the
    /// generation if it is still `expected`. Returns the new one, or nil when it moved on.
    private static func advanceKeyringGeneration(from expected: Int64, on connection: SQLiteConnection) throws -> Int64? {
        let stored = try connection.first(SQL.getMeta, [.text(keyringGenerationKey)]) { $0.blob(0) ?? [] }
        guard decodeGeneration(stored) == expected, expected < Int64.max else { return nil }
        let next = expected + 1
        try connection.run(SQL.setMeta, [.text(keyringGenerationKey), .blob(encodeGeneration(next))])
        return next
    }

    static func encodeGeneration(_ value: Int64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * $0)) }
    }

    /// 0 when absent (a database from before generations were counted) or malformed.
    static func decodeGeneration(_ bytes: [UInt8]?) -> Int64 {
        guard let bytes, bytes.count == 8 else { return 0 }
        return bytes.reduce(Int64(0)) { $0 << 8 | Int64($1) }
    }

    public func sessionsNeedingRewrap(currentTerm: UInt32, after cursor: SessionID?, limit: Int)
        throws(StorageError) -> [RewrapCandidate]
    {
        guard limit >= 1 else { throw .invalidArgument(field: "limit", reason: "must be at least 1") }
        // An empty blob sorts before every id.
        let after: [UInt8] = cursor?.bytes ?? []
        return try read { connection in
            try connection.all(
                SQL.needingRewrap, [.integer(Int64(currentTerm)), .blob(after), .integer(Int64(limit))]
            ) { statement in
                guard let id = statement.blob(0), id.count == SessionID.byteCount,
                    let name = statement.text(1).flatMap({ try? SessionName(stored: $0) }),
                    let envelope = statement.blob(3)
                else { throw StorageError.corrupt }
                return RewrapCandidate(
                    id: SessionID(unchecked: id), name: name, term: UInt32(truncatingIfNeeded: statement.int64(2)),
                    sealedAuthKey: envelope)
            }
        }
    }

    public func replaceSealedAuthKey(id: SessionID, expected: [UInt8], new: [UInt8], term: UInt32)
        throws(StorageError) -> Bool
    {
        try write { connection in
            try connection.run(
                SQL.replaceEnvelope, [.blob(new), .integer(Int64(term)), .blob(id.bytes), .blob(expected)])
            return connection.changes == 1
        }
    }

    // MARK: Tokens

    public func insertToken(_ token: TokenRecord) throws(StorageError) {
        try write { connection in
            do {
                try connection.run(
                    SQL.insertToken,
                    [
                        .text(token.accessor), .blob(token.hash), .text(token.policy), .init(token.displayName),
                        .integer(token.createdAt), .init(token.expiresAt), .init(token.revokedAt),
                    ])
            } catch let error as SQLiteError where error.isUniqueViolation {
                let accessorTaken = try connection.exists(SQL.tokenExists, [.text(token.accessor)])
                throw StorageError.conflict(field: accessorTaken ? "accessor" : "hash")
            }
        }
    }

    public func token(accessor: String) throws(StorageError) -> TokenRecord? {
        try read { connection in try connection.first(SQL.tokenByAccessor, [.text(accessor)], Self.decodeToken) }
    }

    public func token(hash: [UInt8]) throws(StorageError) -> TokenRecord? {
        try read { connection in try connection.first(SQL.tokenByHash, [.blob(hash)], Self.decodeToken) }
    }

    public func listTokens() throws(StorageError) -> [TokenRecord] {
        try read { connection in try connection.all(SQL.allTokens, [], Self.decodeToken) }
    }

    public func revokeToken(accessor: String, at time: Int64) throws(StorageError) -> TokenRecord {
        try write { connection in
            if let token = try connection.first(SQL.revokeToken, [.integer(time), .text(accessor)], Self.decodeToken) {
                return token
            }
            guard let token = try connection.first(SQL.tokenByAccessor, [.text(accessor)], Self.decodeToken) else {
                throw StorageError.notFound
            }
            return token
        }
    }

    // MARK: Meta

    public func meta(_ key: String) throws(StorageError) -> [UInt8]? {
        try read { connection in try connection.first(SQL.getMeta, [.text(key)]) { $0.blob(0) ?? [] } }
    }

    public func setMeta(_ key: String, value: [UInt8]?) throws(StorageError) {
        try write { connection in
            if let value {
                try connection.run(SQL.setMeta, [.text(key), .blob(value)])
            } else {
                try connection.run(SQL.deleteMeta, [.text(key)])
            }
        }
    }

    // MARK: Audit

    public func appendAudit(_ event: AuditEvent) throws(StorageError) -> Int64 {
        try write { connection in
            try connection.run(SQL.insertAudit, Self.auditValues(event))
            return connection.lastInsertRowID
        }
    }

    public func auditEvents(before id: Int64?, limit: Int) throws(StorageError) -> [AuditRecord] {
        guard limit >= 1 else { throw .invalidArgument(field: "limit", reason: "must be at least 1") }
        return try read { connection in
            try connection.all(SQL.auditBefore, [.integer(id ?? Int64.max), .integer(Int64(limit))]) { s in
                AuditRecord(
                    id: s.int64(0),
                    event: AuditEvent(
                        time: s.int64(1), accessor: s.text(2), action: s.text(3) ?? "", sessionName: s.text(4),
                        remoteAddress: s.text(5), outcome: s.text(6) ?? "", detail: s.text(7)))
            }
        }
    }

    public func pruneAudit(before time: Int64, limit: Int) throws(StorageError) -> Int {
        guard limit >= 1 else { throw .invalidArgument(field: "limit", reason: "must be at least 1") }
        return try write { connection in
            try connection.run(SQL.pruneAudit, [.integer(time), .integer(Int64(limit))])
            return connection.changes
        }
    }

    // MARK: Lifecycle

    /// True when reads share the writer's connection (the memory engine: a read waits for the
    /// write batch in progress), when every reader is busy, or when the deferred backlog is
    /// within a quarter of the bound at which ``enqueue(_:)`` waits for a commit.
    public var mayWaitNow: Bool {
        switch readers {
        case .shared: return true
        case .pool(let pool):
            return pool.allBusy || coordinator.approximatePendingCount >= Self.maxDeferredBacklog * 3 / 4
        }
    }

    /// Appends a ticket nobody waits for to the writer's queue. If no write is in progress, a
    /// kick on the writer queue commits the queued tickets after
    /// ``SQLiteStoreConfiguration/deferredWriteDelayMilliseconds``.
    public func enqueue(_ write: DeferredWrite) {
        // Backpressure: past `maxDeferredBacklog` queued writes, the caller waits for its own
        // write to commit instead of queueing more. Nothing is dropped (audit rows are never
        // lost), and a sustained export load cannot grow memory or starve creates without bound.
        let waits = coordinator.pendingCount >= Self.maxDeferredBacklog
        let ticket: WriteTicket
        switch write {
        case .audit(let event):
            let values = Self.auditValues(event)
            ticket = WriteTicket(waits: waits, mergeable: .audit(values)) { connection in
                try connection.run(SQL.insertAudit, values)
            }
        case .expireToken(let accessor, let time):
            ticket = WriteTicket(waits: waits) { connection in
                try connection.run(SQL.expireToken, [.integer(time), .text(accessor)])
            }
        }
        if waits {
            backpressureWaits.add(1, ordering: .relaxed)
            do { try coordinator.perform(ticket) } catch { coordinator.deferredFailures.add(1, ordering: .relaxed) }
        } else {
            coordinator.submitDeferred(ticket)
        }
    }

    public func markExported(_ rows: [(id: SessionID, time: Int64)]) throws(StorageError) {
        guard !rows.isEmpty else { return }
        let values = rows.map { (key: SQLiteValue.blob($0.id.bytes), time: $0.time) }
        try write { connection in try MultiRow.markExported(values, by: MultiRow.markExportedByID, on: connection) }
    }

    /// Writes a run of deferred writes (two or more, in submission order) with few statements:
    /// the audit rows with multi-row INSERTs in order (so their ids ascend in submission order).
    static func writeMerged(_ writes: [MergeableWrite], on connection: SQLiteConnection) throws {
        try MultiRow.insertAudits(writes.map { write in
            switch write {
            case .audit(let values): values
            }
        }, on: connection)
    }

    /// Queued deferred writes beyond which ``enqueue(_:)`` waits for its write to commit.
    static let maxDeferredBacklog = 1024

    /// Runs of deferred writes the writer merged into multi-row statements (for tests).
    var mergedRuns: Int { coordinator.mergedRuns.load(ordering: .relaxed) }

    /// How often ``enqueue(_:)`` had to wait because the backlog was full (for statistics).
    let backpressureWaits = Atomic<Int>(0)

    /// Submits an empty write and waits for it: the queue is FIFO, so everything before it has
    /// committed (or failed) when it returns.
    /// - Throws: ``StorageError/closed`` after close.
    public func flush() throws(StorageError) {
        let ticket = WriteTicket(waits: true) { _ in }
        try coordinator.perform(ticket)
        if let error = ticket.error { throw error }
    }

    public func statistics() -> StoreStatistics {
        let readerConnections: Int
        switch readers {
        case .pool(let pool): readerConnections = pool.openCount
        case .shared: readerConnections = 0
        }
        return StoreStatistics(
            transactions: coordinator.transactions.load(ordering: .relaxed),
            committedWrites: coordinator.committedWrites.load(ordering: .relaxed),
            failedWrites: coordinator.failedWrites.load(ordering: .relaxed),
            deferredFailures: coordinator.deferredFailures.load(ordering: .relaxed),
            largestBatch: coordinator.largestBatch.load(ordering: .relaxed),
            readerConnections: readerConnections)
    }

    /// Not writable while the last writes failed for want of storage (until one commits), or for
    /// good once the database file was removed or replaced (checked here with one `stat`, and
    /// before every write transaction).
    public func health() -> StoreHealth {
        if let lost = fileIdentity?.check() {
            return StoreHealth(writable: false, reason: lost.description, failed: true)
        }
        if let failure = coordinator.lastStorageFailure.withLock({ $0 }) {
            return StoreHealth(writable: false, reason: failure.description)
        }
        return StoreHealth()
    }

    /// Closes idle readers, refuses new work, waits for queued writes, checkpoints with
    /// `TRUNCATE` and closes the writer (the last connection, so SQLite also removes `-wal` and
    /// `-shm`). Reads still in flight finish and close their connection. Idempotent.
    public func close() {
        // Readers first, so that the writer is the last connection: closing it checkpoints and
        // removes the WAL and shared-memory files.
        if case .pool(let pool) = readers { pool.close() }
        coordinator.close()
    }
}

// MARK: - Rows

extension SQLiteSessionStore {
    /// Enforces the record's internal consistency before it reaches SQL.
    private static func validate(_ session: StoredSession) throws(StorageError) {
        guard (session.sealedAuthKey == nil) == (session.sealedKeyTerm == nil) else {
            throw .invalidArgument(field: "sealed_key_term", reason: "must be set exactly when sealed_auth_key is")
        }
    }

    /// Values of the columns an update may change, in `SQL.updateSession` order.
    fileprivate static func mutableValues(_ s: StoredSession) -> [SQLiteValue] {
        [
            .integer(Int64(s.dcID)), .init(s.apiID), .init(s.testMode), .init(s.userID), .init(s.isBot),
            .init(s.serverAddress), .init(s.port.map(Int64.init)), .init(s.date), .text(s.sourceFormat),
            .integer(s.updatedAt),
        ]
    }

    /// Values for `SQL.insertSession`.
    fileprivate static func sessionValues(_ s: StoredSession) -> [SQLiteValue] {
        let envelope: [SQLiteValue] = [
            .init(s.authKeyID), s.sealedAuthKey.map(SQLiteValue.blob) ?? .null,
            .init(s.sealedKeyTerm.map(Int64.init)), .integer(s.createdAt),
        ]
        return [.blob(s.id.bytes), .text(s.name.rawValue)] + mutableValues(s) + envelope
    }

    fileprivate static func keyTermValues(_ t: KeyTermRecord) -> [SQLiteValue] {
        [.integer(Int64(t.term)), .integer(t.createdAt), .blob(t.sealedKey)]
    }

    fileprivate static func auditValues(_ e: AuditEvent) -> [SQLiteValue] {
        [
            .integer(e.time), .init(e.accessor), .text(e.action), .init(e.sessionName), .init(e.remoteAddress),
            .text(e.outcome), .init(e.detail),
        ]
    }

    /// Decodes `SQL.sessionColumns` starting at column 0.
    static func decodeSession(_ s: SQLiteStatement) throws -> StoredSession {
        guard let id = s.blob(0), id.count == SessionID.byteCount, let nameText = s.text(1),
            let name = try? SessionName(stored: nameText), let sourceFormat = s.text(13)
        else { throw StorageError.corrupt }
        return StoredSession(
            id: SessionID(unchecked: id), name: name, dcID: Int(truncatingIfNeeded: s.int64(2)),
            apiID: s.int64OrNil(3), testMode: s.int64OrNil(4).map { $0 != 0 }, userID: s.int64OrNil(5),
            isBot: s.int64OrNil(6).map { $0 != 0 }, serverAddress: s.text(7),
            port: s.int64OrNil(8).map { Int(truncatingIfNeeded: $0) }, date: s.int64OrNil(9),
            authKeyID: s.text(10), sealedAuthKey: s.blob(11),
            sealedKeyTerm: s.int64OrNil(12).map { UInt32(truncatingIfNeeded: $0) }, sourceFormat: sourceFormat,
            createdAt: s.int64(14), updatedAt: s.int64(15), lastExportedAt: s.int64OrNil(16), version: s.int64(17),
            revokedAt: s.int64OrNil(18), peerCount: Int(truncatingIfNeeded: s.int64(19)))
    }

    fileprivate static func decodeExportRecord(_ s: SQLiteStatement) throws -> ExportRecord {
        guard let id = s.blob(0), id.count == SessionID.byteCount else { throw StorageError.corrupt }
        return ExportRecord(
            id: SessionID(unchecked: id), dcID: Int(truncatingIfNeeded: s.int64(1)), apiID: s.int64OrNil(2),
            testMode: s.int64OrNil(3).map { $0 != 0 }, userID: s.int64OrNil(4), isBot: s.int64OrNil(5).map { $0 != 0 },
            serverAddress: s.text(6), port: s.int64OrNil(7).map { Int(truncatingIfNeeded: $0) }, date: s.int64OrNil(8),
            sealedAuthKey: s.blob(9), revokedAt: s.int64OrNil(10), sourceFormat: s.text(11))
    }

    static func decodeToken(_ s: SQLiteStatement) throws -> TokenRecord {
        guard let accessor = s.text(0), let hash = s.blob(1), let policy = s.text(2) else {
            throw StorageError.corrupt
        }
        return TokenRecord(
            accessor: accessor, hash: hash, policy: policy, displayName: s.text(3), createdAt: s.int64(4),
            expiresAt: s.int64OrNil(5), revokedAt: s.int64OrNil(6))
    }

    /// Runs a peers query (columns: id, access hash, type, phone, name, last update, username;
    /// one row per username, ordered by peer then position) and folds the rows into peers.
    fileprivate static func decodePeers(
        _ connection: SQLiteConnection, _ sql: SQLiteStatementKey, _ values: [SQLiteValue]
    )
        throws -> [Peer]
    {
        let statement = try connection.cached(sql)
        defer { statement.reset() }
        try statement.bind(values)
        var peers: [Peer] = []
        while try statement.step() {
            let id = statement.int64(0)
            let username = statement.text(6)
            if let last = peers.last, last.id == id {
                if let username { peers[peers.count - 1].usernames.append(username) }
                continue
            }
            peers.append(
                Peer(
                    id: id, accessHash: statement.int64(1), type: statement.text(2).flatMap(PeerType.init(rawValue:)),
                    usernames: username.map { [$0] } ?? [], phoneNumber: statement.text(3), name: statement.text(4),
                    lastUpdateOn: statement.int64OrNil(5)))
        }
        return peers
    }

    /// Lower-cases usernames, drops empty and repeated ones (keeping the first position).
    fileprivate static func normalized(_ peer: Peer) -> Peer {
        var peer = peer
        var seen = Set<String>()
        peer.usernames = peer.usernames.map { $0.lowercased() }.filter { !$0.isEmpty && seen.insert($0).inserted }
        return peer
    }

    /// The internal key of a live session; writer only.
    static func liveSeq(_ name: SessionName, on connection: SQLiteConnection) throws -> Int64 {
        guard
            let (seq, revoked) = try connection.first(
                SQL.seqAndRevokedByName, [.text(name.rawValue)], { ($0.int64(0), $0.int64(1) != 0) })
        else { throw StorageError.notFound }
        if revoked { throw StorageError.revoked }
        return seq
    }

    /// Upserts normalised peers of session `seq` and refreshes its peer count; writer only.
    /// - Returns: the new peer count.
    fileprivate static func upsert(_ peers: [Peer], seq: Int64, on connection: SQLiteConnection) throws -> Int {
        for peer in peers {
            try connection.run(
                SQL.upsertPeer,
                [
                    .integer(seq), .integer(peer.id), .integer(peer.accessHash), .init(peer.type?.rawValue),
                    .init(peer.phoneNumber), .init(peer.name), .init(peer.lastUpdateOn),
                ])
            try connection.run(SQL.deletePeerUsernames, [.integer(seq), .integer(peer.id)])
            for (position, username) in peer.usernames.enumerated() {
                try connection.run(
                    SQL.insertUsername, [.integer(seq), .text(username), .integer(peer.id), .integer(Int64(position))])
            }
        }
        try connection.run(SQL.refreshPeerCount, [.integer(seq)])
        return try connection.first(SQL.peerCount, [.integer(seq)]) { Int($0.int64(0)) } ?? 0
    }
}

// MARK: - Statement helpers

extension SQLiteValue {
    init(_ value: Int64?) { self = value.map(SQLiteValue.integer) ?? .null }
    init(_ value: String?) { self = value.map(SQLiteValue.text) ?? .null }
    init(_ value: Bool?) { self = value.map { .integer($0 ? 1 : 0) } ?? .null }
}

extension SQLiteConnection {
    /// The first row of a cached statement, decoded; `nil` when there is none.
    func first<T>(
        _ sql: SQLiteStatementKey, _ values: [SQLiteValue], _ decode: (SQLiteStatement) throws -> T
    )
        throws -> T?
    {
        let statement = try cached(sql)
        defer { statement.reset() }
        try statement.bind(values)
        return try statement.step() ? decode(statement) : nil
    }

    /// Every row of a cached statement, decoded.
    func all<T>(_ sql: SQLiteStatementKey, _ values: [SQLiteValue], _ decode: (SQLiteStatement) throws -> T)
        throws -> [T]
    {
        let statement = try cached(sql)
        defer { statement.reset() }
        try statement.bind(values)
        var rows: [T] = []
        while try statement.step() { rows.append(try decode(statement)) }
        return rows
    }

    /// Runs a cached statement that returns no rows.
    func run(_ sql: SQLiteStatementKey, _ values: [SQLiteValue] = []) throws {
        let statement = try cached(sql)
        defer { statement.reset() }
        try statement.bind(values)
        while try statement.step() {}
    }

    /// True when the cached statement yields a row.
    func exists(_ sql: SQLiteStatementKey, _ values: [SQLiteValue]) throws -> Bool {
        try first(sql, values) { _ in true } ?? false
    }
}

/// Multi-row statements for merged deferred writes. Chunks have power-of-two sizes up to
/// ``maxRows`` so that each connection caches at most eight statements per kind; a run of `n`
/// rows takes `n / maxRows` full chunks plus one per set bit of the rest.
enum MultiRow {
    /// Rows per statement at most: 7 × 128 = 896 parameters, far below SQLite's limit (32,766).
    static let maxRows = 128
    /// `insertAudit[k]` inserts `1 << k` audit rows; VALUES order is rowid order.
    static let insertAudit: [SQLiteStatementKey] = (0...7).map { k in
        SQLiteStatementKey(
            "INSERT INTO audit (time, accessor, action, session_name, remote_address, outcome, detail) VALUES "
                + placeholders(rows: 1 << k, columns: auditColumns))
    }
    /// `markExportedByID[k]` moves the export time of `1 << k` distinct sessions (id, time) to the
    /// later of the stored and the given one; ids that match no session are ignored.
    static let markExportedByID: [SQLiteStatementKey] = (0...7).map { k in markExportedSQL(rows: 1 << k, by: "id") }

    /// An upsert into `session_exports` from `rows` (key, time) pairs. `WHERE true` keeps the
    /// parser from reading `ON CONFLICT` as a join constraint.
    private static func markExportedSQL(rows: Int, by key: String) -> SQLiteStatementKey {
        SQLiteStatementKey(
            "INSERT INTO session_exports (session_seq, last_exported_at) SELECT sessions.seq, v.column2 FROM (VALUES "
                + placeholders(rows: rows, columns: 2) + ") AS v JOIN sessions ON sessions.\(key) = v.column1 WHERE true "
                + keepLaterExportTime)
    }
    /// The conflict clause of every export-time upsert: the later of the stored and the new time.
    static let keepLaterExportTime =
        "ON CONFLICT (session_seq) DO UPDATE SET last_exported_at = max(last_exported_at, excluded.last_exported_at)"
    static let auditColumns = 7

    /// `(?1, ?2), (?3, ?4), …`
    static func placeholders(rows: Int, columns: Int) -> String {
        var sql = ""
        for row in 0..<rows {
            if row > 0 { sql += ", " }
            sql += "("
            for column in 0..<columns {
                if column > 0 { sql += ", " }
                sql += "?\(row * columns + column + 1)"
            }
            sql += ")"
        }
        return sql
    }

    /// Chunk sizes (as exponents) covering `count` rows, largest first.
    static func chunks(_ count: Int) -> [Int] {
        var exponents = Array(repeating: 7, count: count / maxRows)
        let rest = count % maxRows
        for k in stride(from: 6, through: 0, by: -1) where rest & (1 << k) != 0 { exponents.append(k) }
        return exponents
    }

    static func insertAudits(_ rows: [[SQLiteValue]], on connection: SQLiteConnection) throws {
        var next = 0
        for k in chunks(rows.count) {
            let statement = try connection.cached(insertAudit[k])
            defer { statement.reset() }
            for row in 0..<(1 << k) {
                for (column, value) in rows[next + row].enumerated() {
                    try statement.bind(value, at: Int32(row * auditColumns + column + 1))
                }
            }
            next += 1 << k
            while try statement.step() {}
        }
    }

    /// Runs `statements` (``markExportedByID``) over `rows` of (id, time).
    static func markExported(
        _ rows: [(key: SQLiteValue, time: Int64)], by statements: [SQLiteStatementKey], on connection: SQLiteConnection
    ) throws {
        var next = 0
        for k in chunks(rows.count) {
            let statement = try connection.cached(statements[k])
            defer { statement.reset() }
            for row in 0..<(1 << k) {
                try statement.bind(rows[next + row].key, at: Int32(2 * row + 1))
                try statement.bind(.integer(rows[next + row].time), at: Int32(2 * row + 2))
            }
            next += 1 << k
            while try statement.step() {}
        }
    }
}

/// Every SQL statement of the engine, in one place. Values are always bound, never inlined.
private enum SQL {
    /// The columns `decodeSession` reads, in its order. `last_exported_at` lives in
    /// `session_exports` (schema version 2) and is selected where the column used to be.
    static let sessionColumns = """
        id, name, dc_id, api_id, test_mode, user_id, is_bot, server_address, port, date, auth_key_id, \
        sealed_auth_key, sealed_key_term, source_format, created_at, updated_at, \
        (SELECT last_exported_at FROM session_exports WHERE session_seq = sessions.seq), version, \
        revoked_at, peer_count
        """

    static let insertSession = SQLiteStatementKey("""
        INSERT INTO sessions (id, name, dc_id, api_id, test_mode, user_id, is_bot, server_address, port, date, \
        source_format, updated_at, auth_key_id, sealed_auth_key, sealed_key_term, created_at, \
        version, peer_count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, 1, 0)
        """)
    static let sessionByName = SQLiteStatementKey("SELECT \(sessionColumns) FROM sessions WHERE name = ?1")
    /// The columns of `ExportRecord`, in `decodeExportRecord`'s order.
    static let exportRecordByName = SQLiteStatementKey("""
        SELECT id, dc_id, api_id, test_mode, user_id, is_bot, server_address, port, date, sealed_auth_key, \
        revoked_at, source_format FROM sessions WHERE name = ?1
        """)
    static let sessionByID = SQLiteStatementKey("SELECT \(sessionColumns) FROM sessions WHERE id = ?1")
    static let sessionBySeq = SQLiteStatementKey("SELECT \(sessionColumns) FROM sessions WHERE seq = ?1")
    static let sessionExistsByName = SQLiteStatementKey("SELECT 1 FROM sessions WHERE name = ?1")
    static let seqByName = SQLiteStatementKey("SELECT seq FROM sessions WHERE name = ?1")
    static let seqAndRevokedByName = SQLiteStatementKey(
        "SELECT seq, revoked_at IS NOT NULL FROM sessions WHERE name = ?1")
    static let versionByName = SQLiteStatementKey(
        "SELECT version, revoked_at IS NOT NULL FROM sessions WHERE name = ?1")
    static let listAfter = SQLiteStatementKey("""
        SELECT \(sessionColumns) FROM sessions WHERE name > ?1 AND name < ?2 ORDER BY name LIMIT ?3
        """)
    static let listFrom = SQLiteStatementKey("""
        SELECT \(sessionColumns) FROM sessions WHERE name >= ?1 AND name < ?2 ORDER BY name LIMIT ?3
        """)
    static let updateSessionAndKey = SQLiteStatementKey("""
        UPDATE sessions SET dc_id = ?1, api_id = ?2, test_mode = ?3, user_id = ?4, is_bot = ?5, \
        server_address = ?6, port = ?7, date = ?8, source_format = ?9, updated_at = ?10, version = version + 1, \
        auth_key_id = ?13, sealed_auth_key = ?14, sealed_key_term = ?15 \
        WHERE name = ?11 AND version = ?12 AND revoked_at IS NULL RETURNING \(sessionColumns)
        """)
    static let updateSession = SQLiteStatementKey("""
        UPDATE sessions SET dc_id = ?1, api_id = ?2, test_mode = ?3, user_id = ?4, is_bot = ?5, \
        server_address = ?6, port = ?7, date = ?8, source_format = ?9, updated_at = ?10, version = version + 1 \
        WHERE name = ?11 AND version = ?12 AND revoked_at IS NULL RETURNING \(sessionColumns)
        """)
    /// The later of the stored and the given export time (the upsert keeps the maximum).
    static let markExported = SQLiteStatementKey(
        "INSERT INTO session_exports (session_seq, last_exported_at) SELECT seq, ?1 FROM sessions WHERE name = ?2 "
            + MultiRow.keepLaterExportTime)
    static let markExportedBySeq = SQLiteStatementKey(
        "INSERT INTO session_exports (session_seq, last_exported_at) VALUES (?1, ?2) " + MultiRow.keepLaterExportTime)
    static let revoke = SQLiteStatementKey("""
        UPDATE sessions SET sealed_auth_key = NULL, sealed_key_term = NULL, revoked_at = ?1, updated_at = ?1, \
        version = version + 1, peer_count = 0 WHERE seq = ?2 AND revoked_at IS NULL RETURNING \(sessionColumns)
        """)
    static let countSessions = SQLiteStatementKey("SELECT count(*), count(revoked_at) FROM sessions")

    static let upsertPeer = SQLiteStatementKey("""
        INSERT INTO peers (session_seq, peer_id, access_hash, type, phone_number, name, last_update_on) \
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (session_seq, peer_id) DO UPDATE SET \
        access_hash = excluded.access_hash, type = excluded.type, phone_number = excluded.phone_number, \
        name = excluded.name, last_update_on = excluded.last_update_on
        """)
    static let deletePeerUsernames = SQLiteStatementKey(
        "DELETE FROM peer_usernames WHERE session_seq = ?1 AND peer_id = ?2")
    static let insertUsername = SQLiteStatementKey("""
        INSERT INTO peer_usernames (session_seq, username, peer_id, position) VALUES (?1, ?2, ?3, ?4)
        """)
    static let deleteUsernames = SQLiteStatementKey("DELETE FROM peer_usernames WHERE session_seq = ?1")
    static let deletePeers = SQLiteStatementKey("DELETE FROM peers WHERE session_seq = ?1")
    static let refreshPeerCount = SQLiteStatementKey("""
        UPDATE sessions SET peer_count = (SELECT count(*) FROM peers WHERE session_seq = ?1) WHERE seq = ?1
        """)
    static let peerCount = SQLiteStatementKey("SELECT peer_count FROM sessions WHERE seq = ?1")

    /// Peers of a target set, one row per username in position order. Each lookup is a single
    /// statement, so a peer and its usernames come from one snapshot.
    private static func peersOf(_ target: String) -> String {
        """
        WITH target (session_seq, peer_id) AS (\(target)) \
        SELECT p.peer_id, p.access_hash, p.type, p.phone_number, p.name, p.last_update_on, u.username \
        FROM target t JOIN peers p ON p.session_seq = t.session_seq AND p.peer_id = t.peer_id \
        LEFT JOIN peer_usernames u ON u.session_seq = p.session_seq AND u.peer_id = p.peer_id \
        ORDER BY p.peer_id, u.position
        """
    }
    static let peerByID = SQLiteStatementKey(peersOf("SELECT seq, ?2 FROM sessions WHERE name = ?1"))
    /// Stale caches can give one username to several peers: the most recently updated wins.
    static let peerByUsername = SQLiteStatementKey(peersOf(
        """
        SELECT u.session_seq, u.peer_id FROM sessions s \
        JOIN peer_usernames u ON u.session_seq = s.seq AND u.username = ?2 \
        JOIN peers q ON q.session_seq = u.session_seq AND q.peer_id = u.peer_id \
        WHERE s.name = ?1 ORDER BY q.last_update_on DESC NULLS LAST, q.peer_id LIMIT 1
        """))
    /// Every peer with the phone number (stale caches can give one number to several peers).
    static let peersByPhone = SQLiteStatementKey(peersOf(
        """
        SELECT q.session_seq, q.peer_id FROM sessions s \
        JOIN peers q ON q.session_seq = s.seq AND q.phone_number = ?2 \
        WHERE s.name = ?1
        """))
    static let allPeers = SQLiteStatementKey(peersOf(
        "SELECT q.session_seq, q.peer_id FROM sessions s JOIN peers q ON q.session_seq = s.seq WHERE s.name = ?1"))

    static let keyTerms = SQLiteStatementKey("SELECT term, created_at, sealed_key FROM key_terms ORDER BY term")
    static let insertKeyTerm = SQLiteStatementKey(
        "INSERT INTO key_terms (term, created_at, sealed_key) VALUES (?1, ?2, ?3)")
    static let deleteKeyTerms = SQLiteStatementKey("DELETE FROM key_terms")
    static let needingRewrap = SQLiteStatementKey("""
        SELECT id, name, sealed_key_term, sealed_auth_key FROM sessions \
        WHERE sealed_auth_key IS NOT NULL AND sealed_key_term <> ?1 AND id > ?2 ORDER BY id LIMIT ?3
        """)
    static let replaceEnvelope = SQLiteStatementKey("""
        UPDATE sessions SET sealed_auth_key = ?1, sealed_key_term = ?2 \
        WHERE id = ?3 AND sealed_auth_key = ?4 AND revoked_at IS NULL
        """)

    static let tokenColumns = "accessor, hash, policy, display_name, created_at, expires_at, revoked_at"
    static let insertToken = SQLiteStatementKey("""
        INSERT INTO tokens (\(tokenColumns)) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
        """)
    static let tokenExists = SQLiteStatementKey("SELECT 1 FROM tokens WHERE accessor = ?1")
    static let tokenByAccessor = SQLiteStatementKey("SELECT \(tokenColumns) FROM tokens WHERE accessor = ?1")
    static let tokenByHash = SQLiteStatementKey("SELECT \(tokenColumns) FROM tokens WHERE hash = ?1")
    static let allTokens = SQLiteStatementKey("SELECT \(tokenColumns) FROM tokens ORDER BY created_at, accessor")
    static let revokeToken = SQLiteStatementKey("""
        UPDATE tokens SET revoked_at = ?1 WHERE accessor = ?2 AND revoked_at IS NULL RETURNING \(tokenColumns)
        """)

    /// The same change as `revokeToken`, without returning the row (a deferred write).
    static let expireToken = SQLiteStatementKey(
        "UPDATE tokens SET revoked_at = ?1 WHERE accessor = ?2 AND revoked_at IS NULL")

    static let getMeta = SQLiteStatementKey("SELECT value FROM meta WHERE key = ?1")
    static let setMeta = SQLiteStatementKey("""
        INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value
        """)
    static let deleteMeta = SQLiteStatementKey("DELETE FROM meta WHERE key = ?1")

    static let insertAudit = SQLiteStatementKey("""
        INSERT INTO audit (time, accessor, action, session_name, remote_address, outcome, detail) \
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
        """)
    /// The oldest rows first (by id, the rowid: no index on `time` is needed, and the scan
    /// stops after `limit` matches).
    static let pruneAudit = SQLiteStatementKey("""
        DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE time < ?1 ORDER BY id LIMIT ?2)
        """)
    static let auditBefore = SQLiteStatementKey("""
        SELECT id, time, accessor, action, session_name, remote_address, outcome, detail FROM audit \
        WHERE id < ?1 ORDER BY id DESC LIMIT ?2
        """)
}

/// The file a store opened, by device and inode. SQLite keeps writing to the file it has open
/// even after its path was unlinked or replaced, so without this check a deleted database would
/// go on acknowledging writes that no restart can find. Once the path stops naming the opened
/// file the store is lost for good (a file put back later is not the one these connections use).
final class DatabaseFileIdentity: Sendable {
    let path: String
    private let opened: (device: UInt64, inode: UInt64)?
    private let lost = Locked<StorageError?>(nil)

    init(path: String) {
        self.path = path
        opened = Self.identity(of: path)
    }

    /// Nil while `path` still names the opened file; otherwise ``StorageError/unavailable(reason:)``.
    func check() -> StorageError? {
        if let known = lost.withLock({ $0 }) { return known }
        guard let opened else { return nil }  // could not stat at open: nothing to compare
        let now = Self.identity(of: path)
        guard now == nil || now?.device != opened.device || now?.inode != opened.inode else { return nil }
        let failure = StorageError.unavailable(
            reason: "the database file was removed or replaced while the vault was running; writes are refused "
                + "(restore it from a backup and restart)")
        lost.withLock { $0 = failure }
        return failure
    }

    private static func identity(of path: String) -> (device: UInt64, inode: UInt64)? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return (UInt64(info.st_dev), UInt64(info.st_ino))
    }
}
