// SPDX-License-Identifier: Apache-2.0

// The storage protocols, one per aggregate, with nothing of any one engine in them: a store is
// a ``SessionRepository`` (sessions with their peers and sealed keys), a ``TokenRepository``, a
// ``KeyringRepository`` (the sealed data-key terms), an ``AuditRepository`` (the audit log and
// the meta values) and a ``StoreLifecycle`` (location, deferred writes, flush, health, close).
// ``SessionStore`` is all five; the SQLite engines (`SQLiteSessionStore`, file and memory)
// implement it, and the contract tests (`Tests/VaultCoreTests/StoreContractTests.swift`) run
// over every engine listed in `StoreTestSupport.swift`.
//
// Common rules: the API is synchronous and throwing; callers run on worker threads (never the
// Swift cooperative pool) because an engine may block. A write returns only once the
// transaction holding it has committed (durably with the default durability), so an
// acknowledged write survives a crash. The store never sees plaintext secrets: auth keys and
// data keys arrive sealed by the layer above, tokens arrive hashed. All timestamps are Unix
// milliseconds chosen by the caller. Errors are ``StorageError``s, whatever the engine.

/// Everything a vault stores: the five aggregates together.
public typealias SessionStore = SessionRepository & TokenRepository & KeyringRepository & AuditRepository & StoreLifecycle
    & UpdateStateRepository & LeaseRepository

/// Sessions, their peers caches and their sealed auth keys.
public protocol SessionRepository: Sendable {

    /// Inserts a new session (and its peers and update state rows, in the same transaction).
    /// `version` is set to 1, `peerCount` to the number of distinct peers; `revokedAt` must be `nil`.
    /// - Returns: the session as stored.
    /// - Throws: ``StorageError/conflict(field:)`` naming `name` (or `id`) when taken;
    ///   ``StorageError/invalidArgument(field:reason:)`` for an inconsistent record.
    @discardableResult
    func insert(_ session: StoredSession, peers: [Peer], states: [UpdateState]) throws(StorageError) -> StoredSession

    /// The same insert without blocking the caller: it joins the next group commit and
    /// `completion` receives the stored session, or the error ``insert(_:peers:states:)`` would throw,
    /// once the transaction has finished (committed durably for success). `completion` runs on
    /// the store's writer thread, or on the caller's when the store is closed or the record is
    /// invalid; it must be cheap and must not write to the store synchronously.
    func insert(
        _ session: StoredSession, peers: [Peer], states: [UpdateState],
        completion: @escaping @Sendable (Result<StoredSession, StorageError>) -> Void)

    /// The session with this name (tombstones included), or `nil`.
    /// - Throws: ``StorageError`` when the database fails.
    func session(named name: SessionName) throws(StorageError) -> StoredSession?

    /// The columns an export needs of the session with this name (tombstones included), or `nil`.
    /// - Throws: ``StorageError`` when the database fails.
    func exportRecord(named name: SessionName) throws(StorageError) -> ExportRecord?

    /// A page of sessions ordered by name, after the cursor (exclusive), optionally only those
    /// whose name starts with `prefix`. The cursor is a name, so pages stay stable while
    /// sessions are added or revoked.
    /// - Throws: ``StorageError/invalidArgument(field:reason:)`` naming `limit` or `prefix`.
    func listSessions(after cursor: SessionName?, limit: Int, prefix: String?) throws(StorageError)
        -> SessionPage

    /// A page of the sessions whose names `scope` covers, ordered by name, after the cursor
    /// (exclusive; any name, in the scope or not). Sessions outside the scope are never read
    /// into the page, and `nextCursor` is always the name of a session in it; a page costs
    /// the scope's parts after the cursor plus its rows, not the sessions between them.
    /// - Throws: ``StorageError/invalidArgument(field:reason:)`` naming `limit`.
    func listSessions(after cursor: SessionName?, limit: Int, within scope: NameScope) throws(StorageError)
        -> SessionPage

    /// Compare-and-set update of a live session's metadata: `dcID`, `apiID`, `testMode`,
    /// `userID`, `isBot`, `serverAddress`, `port`, `date`, `sourceFormat` and `updatedAt` are
    /// taken from `session`, whose `name` addresses the row; every other field is ignored. Sets
    /// `version` to `expectedVersion + 1`.
    ///
    /// The envelope (`sealedAuthKey`, `sealedKeyTerm`, `authKeyID`) is deliberately not
    /// writable here: rewrap replaces it without changing `version`, so writing back an envelope
    /// read before a rewrap would resurrect an old term that may since have been retired.
    /// - Returns: the session as stored.
    /// - Throws: ``StorageError/notFound``; ``StorageError/revoked``;
    ///   ``StorageError/versionMismatch(current:)`` when the stored version differs.
    func update(_ session: StoredSession, expectedVersion: Int64) throws(StorageError) -> StoredSession

    /// ``update(_:expectedVersion:)`` that also replaces the envelope (`authKeyID`,
    /// `sealedAuthKey`, `sealedKeyTerm`, freshly sealed by the caller) in the same transaction:
    /// a client was handed a new auth key. The old envelope's bytes are destroyed as by
    /// ``revoke(_:at:)`` (secure delete and a truncated WAL).
    /// - Throws: as ``update(_:expectedVersion:)``.
    func updateReplacingKey(_ session: StoredSession, expectedVersion: Int64) throws(StorageError) -> StoredSession

    /// Revokes a session: destroys the sealed auth key (the row is rewritten without it and, with
    /// `secure_delete`, the freed bytes are zeroed; the WAL is then checkpointed and truncated so
    /// no old page image survives), deletes its peers, and keeps the metadata as a tombstone with
    /// `revokedAt` set and `version` + 1. Revoking a tombstone returns it unchanged.
    /// - Returns: the tombstone.
    /// - Throws: ``StorageError/notFound``.
    func revoke(_ name: SessionName, at time: Int64) throws(StorageError) -> StoredSession

    /// Session counts.
    /// - Throws: ``StorageError`` when the database fails.
    func countSessions() throws(StorageError) -> SessionCounts

    // MARK: Peers


    /// Inserts or replaces peers (by marked id) of a live session. Usernames are stored
    /// lower-cased, in order; a peer's previous usernames are replaced.
    /// - Throws: ``StorageError/notFound``; ``StorageError/revoked``.
    func upsertPeers(_ peers: [Peer], in session: SessionName) throws(StorageError)

    /// The peer with this marked id, or `nil` (also when the session does not exist).
    /// - Throws: ``StorageError`` when the database fails.
    func peer(id: Int64, in session: SessionName) throws(StorageError) -> Peer?

    /// The peer with this username, compared case-insensitively (the input is lower-cased).
    /// When stale entries share a username, the most recently updated peer wins.
    /// - Throws: ``StorageError`` when the database fails.
    func peer(username: String, in session: SessionName) throws(StorageError) -> Peer?

    /// Every peer with this phone number (exact match; digits as Telegram sends them), the most
    /// recently updated first (`lastUpdateOn`, a peer without one last), then by marked id; empty
    /// also when the session does not exist.
    /// - Throws: ``StorageError`` when the database fails.
    func peers(phoneNumber: String, in session: SessionName) throws(StorageError) -> [Peer]

    /// Every peer of a session, ordered by marked id (for export).
    /// - Throws: ``StorageError/notFound`` when the session does not exist.
    func peers(in session: SessionName) throws(StorageError) -> [Peer]

    // MARK: Sealed keys (rotation)

    /// Up to `limit` live sessions whose auth key is sealed under a term other than
    /// `currentTerm`, ordered by id, after `cursor` (exclusive). Pass the last id back as the
    /// cursor so a row that cannot be rewrapped is not returned forever.
    /// - Throws: ``StorageError/invalidArgument(field:reason:)`` naming `limit`.
    func sessionsNeedingRewrap(currentTerm: UInt32, after cursor: SessionID?, limit: Int)
        throws(StorageError) -> [RewrapCandidate]

    /// Compare-and-set of a live session's envelope: replaces it only if it still equals
    /// `expected`. Leaves `version` and `updatedAt` alone (the metadata did not change).
    /// - Returns: `false` when the row changed meanwhile (updated, revoked, gone).
    /// - Throws: ``StorageError`` when the database fails.
    func replaceSealedAuthKey(id: SessionID, expected: [UInt8], new: [UInt8], term: UInt32)
        throws(StorageError) -> Bool

    /// Removes a revoked session's tombstone for good: the row, whatever peers and export time
    /// it still has, and (already destroyed at revocation) its envelope; the freed bytes are
    /// zeroed and the WAL truncated as for ``revoke(_:at:)``. The name can then be created anew.
    /// - Throws: ``StorageError/notFound``; ``StorageError/conflict(field:)`` naming `name` when
    ///   the session is live (revoke it first).
    func purge(_ name: SessionName) throws(StorageError)
}

/// API tokens (stored hashed).
public protocol TokenRepository: Sendable {

    /// Stores a new token.
    /// - Throws: ``StorageError/conflict(field:)`` naming `accessor` or `hash`.
    func insertToken(_ token: TokenRecord) throws(StorageError)

    /// The token with this accessor, or `nil`.
    /// - Throws: ``StorageError`` when the database fails.
    func token(accessor: String) throws(StorageError) -> TokenRecord?

    /// The token with this hash, or `nil` (authentication looks tokens up by hash).
    /// - Throws: ``StorageError`` when the database fails.
    func token(hash: [UInt8]) throws(StorageError) -> TokenRecord?

    /// Every token, ordered by creation time then accessor.
    /// - Throws: ``StorageError`` when the database fails.
    func listTokens() throws(StorageError) -> [TokenRecord]

    /// Revokes a token (idempotent: a revoked token is returned unchanged).
    /// - Throws: ``StorageError/notFound``.
    func revokeToken(accessor: String, at time: Int64) throws(StorageError) -> TokenRecord

    /// A page of tokens in ``listTokens()`` order (creation time, then accessor), after the
    /// token whose accessor is `cursor` (exclusive). `nextCursor` is the last accessor of the
    /// page when another page follows.
    /// - Throws: ``StorageError/invalidArgument(field:reason:)`` naming `limit`, or `after` when
    ///   no token has that accessor.
    func listTokens(after cursor: String?, limit: Int) throws(StorageError) -> TokenPage
}

/// The keyring's sealed data-key terms, written only on the condition of the generation read.
public protocol KeyringRepository: Sendable {

    /// The keyring's terms and generation, as one consistent view: the generation is read
    /// first, so a view that races a keyring write can only pair old terms with an old
    /// generation (whose conditional write then fails), never new terms with an old one.
    /// - Throws: ``StorageError`` when the database fails.
    func loadKeyring() throws(StorageError) -> StoredKeyring

    /// Adds a term (rotation) if the keyring is still at `generation`.
    /// - Returns: the new generation, or `nil` when the keyring changed since it was read
    ///   (nothing was written).
    /// - Throws: ``StorageError/conflict(field:)`` naming `term` when it exists.
    func appendKeyTerm(_ term: KeyTermRecord, ifGeneration generation: Int64) throws(StorageError) -> Int64?

    /// Atomically replaces the whole keyring (rekey under a new master key), if the keyring is
    /// still at `generation`.
    /// - Returns: the new generation, or `nil` when the keyring changed since it was read.
    /// - Throws: ``StorageError/invalidArgument(field:reason:)`` naming `term` for duplicates.
    func replaceKeyTerms(_ terms: [KeyTermRecord], ifGeneration generation: Int64) throws(StorageError) -> Int64?
}

/// The audit log, and the meta values (the root token's hash, the keyring's generation).
public protocol AuditRepository: Sendable {

    /// The meta value under `key` (e.g. the master-key check value, the root token hash).
    /// - Throws: ``StorageError`` when the database fails.
    func meta(_ key: String) throws(StorageError) -> [UInt8]?

    /// Sets (or, with `nil`, deletes) the meta value under `key`.
    /// - Throws: ``StorageError`` when the database fails.
    func setMeta(_ key: String, value: [UInt8]?) throws(StorageError)


    /// Audit events newest first, with ids below `before` (all when `nil`).
    /// - Throws: ``StorageError/invalidArgument(field:reason:)`` naming `limit`.
    func auditEvents(before id: Int64?, limit: Int) throws(StorageError) -> [AuditRecord]

    /// Deletes up to `limit` of the oldest audit events whose time is before `time` (the
    /// audit retention's batches).
    /// - Returns: how many were deleted (fewer than `limit`: none older are left).
    /// - Throws: ``StorageError/invalidArgument(field:reason:)`` naming `limit`.
    func pruneAudit(before time: Int64, limit: Int) throws(StorageError) -> Int

    /// ``auditEvents(before:limit:)`` keeping only the events `filter` matches (every field
    /// given must equal the event's); a page holds up to `limit` matching events.
    /// - Throws: ``StorageError/invalidArgument(field:reason:)`` naming `limit`.
    func auditEvents(before id: Int64?, limit: Int, matching filter: AuditFilter) throws(StorageError) -> [AuditRecord]
}

/// Where the data lives, the writes that need not wait, and the store's life.
public protocol StoreLifecycle: Sendable {
    /// Where the data lives (for `/v1/sys/status`).
    var location: StoreLocation { get }


    /// Queues a write without waiting for it (see ``DeferredWrite``). Never blocks.
    func enqueue(_ write: DeferredWrite)

    /// Sets `last_exported_at` of many sessions, by id (the later of the stored and the given
    /// time; unknown ids are ignored), in one write of the next group commit, outside the deferred
    /// backlog of ``enqueue(_:)``, and returns once it has committed. The export-time flush
    /// writes a few hundred rows per call and waits for each, so at most one of its writes is
    /// queued at any time: audit rows keep flowing between them instead of piling up behind a
    /// whole flush (which filled the backlog and made exports wait on the writer).
    /// - Throws: ``StorageError/closed`` after ``close()``; the database's failure otherwise.
    func markExported(_ rows: [(id: SessionID, time: Int64)]) throws(StorageError)

    /// Waits until every write submitted before this call has committed.
    /// - Throws: ``StorageError/closed`` after ``close()``.
    func flush() throws(StorageError)

    /// Whether writes can succeed now (see ``StoreHealth``). Cheap enough for `/readyz`.
    func health() -> StoreHealth

    /// Waits for pending writes, checkpoints and truncates the WAL, and closes every connection.
    /// Later calls throw ``StorageError/closed``. Idempotent.
    func close()
}

/// A hint an engine may give a server that runs some requests on threads that must not block:
/// whether a read or a deferred write issued now may have to wait for other work (a full
/// deferred backlog, every reader busy, reads that share the writer). Not part of
/// ``SessionStore``: an engine without such waits simply does not adopt it.
public protocol StoreWaitHint: Sendable {
    /// Cheap (atomic loads); may be a moment stale.
    var mayWaitNow: Bool { get }
}

extension KeyringRepository {
    /// Every term of the keyring, ordered by term.
    /// - Throws: ``StorageError`` when the database fails.
    public func loadKeyTerms() throws(StorageError) -> [KeyTermRecord] {
        try loadKeyring().terms
    }
}

extension SessionRepository {
    /// Inserts a session without peers.
    /// - Throws: see ``SessionRepository/insert(_:peers:states:)``.
    @discardableResult
    public func insert(_ session: StoredSession) throws(StorageError) -> StoredSession {
        try insert(session, peers: [], states: [])
    }

    /// ``insert(_:peers:states:completion:)`` without update state rows.
    public func insert(
        _ session: StoredSession, peers: [Peer],
        completion: @escaping @Sendable (Result<StoredSession, StorageError>) -> Void
    ) {
        insert(session, peers: peers, states: [], completion: completion)
    }

    /// Inserts a session with its peers and no update state.
    /// - Throws: see ``SessionRepository/insert(_:peers:states:)``.
    @discardableResult
    public func insert(_ session: StoredSession, peers: [Peer]) throws(StorageError) -> StoredSession {
        try insert(session, peers: peers, states: [])
    }
}
