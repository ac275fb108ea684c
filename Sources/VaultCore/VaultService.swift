// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Primitives
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Who is asking, for authorisation and audit. Never holds the token itself.
public struct Principal: Sendable, Equatable {
    /// Non-secret token id (`root` for the root token).
    public var accessor: String
    public var policy: AccessPolicy

    public init(accessor: String, policy: AccessPolicy) {
        self.accessor = accessor
        self.policy = policy
    }

    /// The root principal.
    public static let root = Principal(accessor: "root", policy: .root)
}

/// Audit context of one request.
public struct RequestContext: Sendable {
    public var accessor: String?
    public var remoteAddress: String?

    public init(accessor: String?, remoteAddress: String?) {
        self.accessor = accessor
        self.remoteAddress = remoteAddress
    }
}

/// An export result: a session string or the bytes of a `.session` file.
public enum ExportedSession: Sendable, Equatable {
    case string(String)
    case file([UInt8])
}

/// Field changes for ``VaultService/patch(_:changes:expectedVersion:context:)``; nil = unchanged.
public struct SessionChanges: Sendable, Equatable {
    public var dcID: Int?
    public var apiID: Int64?
    public var testMode: Bool?
    public var userID: Int64?
    public var isBot: Bool?
    public var serverAddress: String?
    public var port: Int?
    /// A new auth key (a client was handed one, e.g. after a DC migration); it comes with `dcID`.
    public var authKey: AuthKey?

    public init(dcID: Int? = nil, apiID: Int64? = nil, testMode: Bool? = nil, userID: Int64? = nil,
                isBot: Bool? = nil, serverAddress: String? = nil, port: Int? = nil, authKey: AuthKey? = nil) {
        self.dcID = dcID
        self.apiID = apiID
        self.testMode = testMode
        self.userID = userID
        self.isBot = isBot
        self.serverAddress = serverAddress
        self.port = port
        self.authKey = authKey
    }

    public var isEmpty: Bool { self == SessionChanges() }
}

/// A freshly created token: the secret is here exactly once.
public struct IssuedToken: Sendable {
    public var token: String
    public var record: TokenRecord
}

/// The vault's use cases: the one façade VaultAPI (and the CLI) call.
///
/// Secrets flow only through here: auth keys are sealed with the keyring before they reach the
/// store and opened only for an export. The service is `Sendable`; its methods block (SQLite,
/// OpenSSL) and are meant for worker threads, never the Swift cooperative pool.
public final class VaultService: Sendable {
    /// The storage engine.
    public let store: any SessionStore
    private let state: Locked<KeyState>
    private let tokenCache = Locked([[UInt8]: CachedToken]())
    let clock: @Sendable () -> Int64

    /// Latest export time per session that may not be in the store yet (see ``flushExportTimes()``).
    ///
    /// Why not write it with every export: each export dirtied a random page; under export load
    /// that was most of the writer's work and it capped export throughput (measured: 30k →
    /// 39–43k req/s without it, p99 halved). Exports now note the time here; one flush a second
    /// writes the latest time of each exported session (into `session_exports`, a row of two
    /// integers, so a flush dirties few pages), and every read of metadata shows the newer of
    /// the stored and the noted time, so the API never shows a stale value. The audit row of
    /// each export is still written per export. A crash loses at most the last second of export
    /// times (the audit rows of those exports are committed within milliseconds); SIGTERM
    /// flushes them.
    private let exportTimes = Locked(ExportTimes())
    /// True while a flush is scheduled.
    private let exportFlushScheduled = Atomic<Bool>(false)
    /// Serialises flushes (the timer's and the shutdown's).
    private let exportFlushQueue = DispatchQueue(label: "VaultService.exportTimes")
    /// How long export times gather before they are written.
    static let exportTimesFlushDelay = DispatchTimeInterval.seconds(1)

    /// Unauthenticated failures not yet written to the audit log (see ``auditAuthFailure(remoteAddress:throttled:)``).
    private let authFailures = Locked(AuthFailureTally())
    /// True while a write of ``authFailures`` is scheduled.
    private let authFailureFlushScheduled = Atomic<Bool>(false)
    /// How long unauthenticated failures gather before their audit rows are written.
    static let authFailureFlushDelay = DispatchTimeInterval.seconds(60)
    /// Runs the audit retention's prunes.
    private let retentionQueue = DispatchQueue(label: "VaultService.auditRetention", qos: .utility)
    private let retentionTimer = Locked<(any DispatchSourceTimer)?>(nil)

    private enum KeyState {
        /// The keyring and the stored generation it was read or last written at.
        case unsealed(Keyring, generation: Int64)
        case sealed(String)
    }

    /// The engine's hint that a read may have to wait now, if it gives one (looked up once).
    private let waitHint: (any StoreWaitHint)?

    /// Whether a read issued now may have to wait for other work in the store (see
    /// ``StoreWaitHint``); false for engines that give no such hint.
    public var storeMayWaitNow: Bool { waitHint?.mayWaitNow ?? false }

    /// Serialises the operations that change keys (rotate, rewrap, rekey) within this process;
    /// across processes, every keyring write is conditional on the generation it read.
    private let keyChanges = Locked()
    /// The leases (`VaultService+Leases.swift`).
    let leases = LeaseBook()
    /// The engine's leases when the database decides them (several instances on one database:
    /// `VaultService+SharedLeases.swift`); `nil` when ``leases`` is the authority.
    let sharedLeases: (any SharedLeaseRepository)?

    private struct CachedToken {
        var record: TokenRecord
        var policy: AccessPolicy
        /// When it was read from the store (monotonic nanoseconds).
        var readAt: UInt64 = DispatchTime.now().uptimeNanoseconds
    }

    /// How long a live token is taken from the cache before it is read again: a token revoked
    /// by another instance on the same database is refused here within this time.
    static let tokenCacheTTLNanoseconds: UInt64 = 1_000_000_000

    /// Meta key under which the root token's hash is kept.
    static let rootTokenMetaKey = "root_token_hash"

    /// Opens the vault on `store`. With no keyring yet and a master key, creates and persists one.
    /// With a keyring that `master` cannot open, or no master key, the vault is *sealed*: it
    /// serves no secrets and never writes key material (nothing is overwritten).
    /// - Parameter clock: Unix time in milliseconds (injectable for tests).
    /// - Throws: ``VaultError/storage(_:)`` when the store fails.
    public init(store: any SessionStore, master: MasterKey?, clock: (@Sendable () -> Int64)? = nil) throws(VaultError) {
        self.store = store
        self.waitHint = store as? any StoreWaitHint
        self.sharedLeases = store as? any SharedLeaseRepository
        let clock = clock ?? { WallClock.nowMilliseconds() }
        self.clock = clock
        let stored: StoredKeyring
        do { stored = try store.loadKeyring() } catch { throw VaultError(error) }
        let keyState: KeyState
        if stored.terms.isEmpty {
            if let master {
                let sessionCount: Int
                do { sessionCount = try store.countSessions().total } catch { throw VaultError(error) }
                if sessionCount > 0 {
                    // Sessions without a keyring: never invent keys over existing data.
                    keyState = .sealed("the database has sessions but no keyring")
                } else {
                    keyState = try Self.createKeyring(store: store, master: master, generation: stored.generation, now: clock())
                }
            } else {
                keyState = .sealed("no master key was configured")
            }
        } else if let master {
            keyState = Self.unseal(stored, master: master)
        } else {
            keyState = .sealed("no master key was configured")
        }
        state = Locked(keyState)
    }

    /// A new keyring persisted at `generation`; if another process created one meanwhile,
    /// that one (opened with `master`, or sealed when it does not open).
    private static func createKeyring(store: any SessionStore, master: MasterKey, generation: Int64, now: Int64)
        throws(VaultError) -> KeyState
    {
        do {
            let (keyring, sealed) = try Keyring.create(master: master, createdAt: now)
            var written: Int64? = generation
            for term in sealed {
                guard let current = written else { break }
                written = try store.appendKeyTerm(
                    KeyTermRecord(term: term.term, createdAt: term.createdAt, sealedKey: term.sealedKey), ifGeneration: current)
            }
            if let written { return .unsealed(keyring, generation: written) }
            return unseal(try store.loadKeyring(), master: master)
        } catch let error as StorageError {
            throw VaultError(error)
        } catch {
            throw VaultError.integrity
        }
    }

    /// The stored keyring opened with `master`, or the sealed state saying why not.
    private static func unseal(_ stored: StoredKeyring, master: MasterKey) -> KeyState {
        let sealed = stored.terms.map { SealedTerm(term: $0.term, createdAt: $0.createdAt, sealedKey: $0.sealedKey) }
        do {
            return .unsealed(try Keyring.unseal(sealed, master: master), generation: stored.generation)
        } catch {
            return .sealed("the master key does not open this vault's keyring")
        }
    }

    deinit {
        // An active timer source outlives its last reference: stop the retention schedule.
        retentionTimer.withLock { $0?.cancel() }
    }

    // MARK: Seal state

    /// Why the vault is sealed, or nil when it is not.
    public var sealedReason: String? {
        state.withLock { s in
            if case .sealed(let reason) = s { return reason }
            return nil
        }
    }

    func keyring() throws(VaultError) -> Keyring {
        try keyringAndGeneration().keyring
    }

    private func keyringAndGeneration() throws(VaultError) -> (keyring: Keyring, generation: Int64) {
        let s = state.withLock { $0 }
        switch s {
        case .unsealed(let k, let generation): return (k, generation)
        case .sealed(let reason): throw .sealed(reason: reason)
        }
    }

    /// After a conditional keyring write found the keyring changed by another process: adopt
    /// the stored keyring if this process's master key opens it, otherwise seal (this process
    /// must never write under a master key the keyring no longer uses).
    /// - Throws: ``VaultError/sealed(reason:)`` when it sealed.
    private func reloadKeyring(_ current: Keyring) throws(VaultError) {
        let stored: StoredKeyring
        do { stored = try store.loadKeyring() } catch { throw VaultError(error) }
        let sealed = stored.terms.map { SealedTerm(term: $0.term, createdAt: $0.createdAt, sealedKey: $0.sealedKey) }
        do {
            let fresh = try current.reopened(sealed)
            state.withLock { $0 = .unsealed(fresh, generation: stored.generation) }
        } catch {
            let reason = "another process re-sealed the keyring under a different master key; restart with that key"
            state.withLock { $0 = .sealed(reason) }
            throw .sealed(reason: reason)
        }
    }

    // MARK: Authentication

    /// Installs the root token: from configuration (`configured`), else the stored hash, else a
    /// new token that is returned so the caller can print it once.
    /// - Returns: a newly generated token, or nil.
    /// - Throws: ``VaultError/sealed(reason:)`` when sealed (tokens are keyed by the keyring).
    public func installRootToken(configured: String?) throws(VaultError) -> String? {
        let hasher = try keyring().tokenHasher
        if let configured {
            guard !configured.isEmpty else { throw .invalid(field: "root_token", reason: "must not be empty") }
            let hash = hasher.hash(configured)
            // Stored as the vault's root token from now on: a token generated (or rotated) before
            // does not come back when the configuration is removed later.
            do {
                if try store.meta(Self.rootTokenMetaKey) != hash { try store.setMeta(Self.rootTokenMetaKey, value: hash) }
            } catch {
                throw VaultError(error)
            }
            rootHash.withLock { $0 = hash }
            rootTokenConfigured.store(true, ordering: .relaxed)
            return nil
        }
        let stored: [UInt8]?
        do { stored = try store.meta(Self.rootTokenMetaKey) } catch { throw VaultError(error) }
        if let stored {
            rootHash.withLock { $0 = stored }
            return nil
        }
        let token: String
        do { token = try TokenHasher.generateToken() } catch { throw .integrity }
        let hash = hasher.hash(token)
        do { try store.setMeta(Self.rootTokenMetaKey, value: hash) } catch { throw VaultError(error) }
        rootHash.withLock { $0 = hash }
        return token
    }

    let rootHash = Locked<[UInt8]?>(nil)
    /// True when the root token comes from configuration (it cannot be rotated through the API).
    let rootTokenConfigured = Atomic<Bool>(false)

    /// Resolves a bearer token to a principal, or nil when it is unknown, expired or revoked.
    /// Comparisons are constant-time over the token's keyed hash.
    /// - Throws: ``VaultError/sealed(reason:)`` when sealed.
    public func authenticate(_ token: String) throws(VaultError) -> Principal? {
        guard !token.isEmpty, token.utf8.count <= 512 else { return nil }
        let hasher = try keyring().tokenHasher
        let hash = hasher.hash(token)
        if let root = rootHash.withLock({ $0 }), ConstantTime.equals(root, hash) {
            return .root
        }
        let now = clock()
        if let cached = tokenCache.withLock({ $0[hash] }),
            cached.record.revokedAt != nil
                || DispatchTime.now().uptimeNanoseconds - cached.readAt < Self.tokenCacheTTLNanoseconds
        {
            return admit(cached.record, cached.policy, hash: hash, now: now)
        }
        let record: TokenRecord?
        do { record = try store.token(hash: hash) } catch { throw VaultError(error) }
        guard let record, ConstantTime.equals(record.hash, hash), let policy = TokenPolicyCoding.decode(record.policy) else {
            return nil
        }
        tokenCache.withLock { cache in
            if cache.count > 10_000 { cache.removeAll() }
            cache[hash] = CachedToken(record: record, policy: policy)
        }
        return admit(record, policy, hash: hash, now: now)
    }

    /// The principal of a stored token, or nil when it is revoked or expired.
    ///
    /// A token seen expired stays expired: the first time, it is marked revoked in the cache at
    /// once and in the store with the next commit (a deferred write: authentication never waits
    /// for a commit), so neither a wall clock stepped back behind `expiresAt` nor a restart
    /// makes it valid again.
    private func admit(_ record: TokenRecord, _ policy: AccessPolicy, hash: [UInt8], now: Int64) -> Principal? {
        if record.revokedAt != nil { return nil }
        if let expires = record.expiresAt, expires <= now {
            let first = tokenCache.withLock { cache -> Bool in
                if cache[hash]?.record.revokedAt != nil { return false }  // another request saw it first
                var expired = record
                expired.revokedAt = now
                cache[hash] = CachedToken(record: expired, policy: policy)
                return true
            }
            if first {
                store.enqueue(.expireToken(accessor: record.accessor, at: now))
                audit("token.expire", nil, RequestContext(accessor: nil, remoteAddress: nil), outcome: "ok", detail: record.accessor)
            }
            return nil
        }
        return Principal(accessor: record.accessor, policy: policy)
    }

    // MARK: Sessions

    /// Stores a new session, sealing its auth key. Peers are stored in the same transaction.
    /// - Throws: ``VaultError/conflict`` if the name exists; ``VaultError/invalid(field:reason:)``
    ///   for unusable values; ``VaultError/sealed(reason:)`` when sealed.
    public func create(name: SessionName, imported: ImportedSession, context: RequestContext) throws(VaultError) -> StoredSession {
        let record = try sealedRecord(name: name, imported: imported)
        let stored: StoredSession
        do {
            stored = try store.insert(record, peers: imported.peers, states: imported.updateStates)
        } catch {
            auditCreate(name, imported.format, context, failure: error)
            throw VaultError(error)
        }
        auditCreate(name, imported.format, context, failure: nil)
        return stored
    }

    /// ``create(name:imported:context:)`` without blocking: validation and sealing happen on the
    /// caller's thread (their errors are thrown), then the insert joins the next group commit and
    /// `completion` receives the stored session or the error once it has committed. `completion`
    /// runs on the store's writer thread (or the caller's): keep it short and hand the result on.
    /// - Throws: the validation errors of ``create(name:imported:context:)``.
    public func create(
        name: SessionName, imported: ImportedSession, context: RequestContext,
        completion: @escaping @Sendable (Result<StoredSession, VaultError>) -> Void
    ) throws(VaultError) {
        let record = try sealedRecord(name: name, imported: imported)
        // Only the format is kept for the audit row: the imported auth key is not held until
        // the commit.
        let format = imported.format
        store.insert(record, peers: imported.peers, states: imported.updateStates) { [self] result in
            switch result {
            case .success(let stored):
                auditCreate(name, format, context, failure: nil)
                completion(.success(stored))
            case .failure(let error):
                auditCreate(name, format, context, failure: error)
                completion(.failure(VaultError(error)))
            }
        }
    }

    /// Validates a new session and seals its auth key under a fresh row identity.
    private func sealedRecord(name: SessionName, imported: ImportedSession) throws(VaultError) -> StoredSession {
        let keyring = try keyring()
        let s = imported.session
        guard let authKey = s.authKey else {
            throw .invalid(field: "auth_key", reason: "the session has no auth key")
        }
        guard !authKey.isAllZero else {
            throw .invalid(field: "auth_key", reason: "an all-zero key is not a usable auth key")
        }
        try Self.validate(dcID: s.dcID, apiID: s.apiID, userID: s.userID, port: s.port, serverAddress: s.serverAddress)
        let now = clock()
        let id = SessionID.timeOrdered(milliseconds: now)
        let sealed: [UInt8]
        do {
            sealed = try keyring.seal(authKey.bytes, context: Self.authKeyContext(id))
        } catch {
            throw .integrity
        }
        return StoredSession(
            id: id, name: name, dcID: s.dcID, apiID: s.apiID, testMode: s.testMode, userID: s.userID,
            isBot: s.isBot, serverAddress: s.serverAddress, port: s.port, date: s.date, authKeyID: authKey.id,
            sealedAuthKey: sealed, sealedKeyTerm: keyring.currentTerm, sourceFormat: imported.format.rawValue,
            createdAt: now)
    }

    /// The audit row of a create: `ok` (with the source format), `conflict` or `error`.
    private func auditCreate(_ name: SessionName, _ format: SourceFormat, _ context: RequestContext, failure: StorageError?) {
        guard let failure else {
            audit("session.create", name.rawValue, context, outcome: "ok", detail: format.rawValue)
            return
        }
        audit("session.create", name.rawValue, context, outcome: failure == .conflict(field: "name") ? "conflict" : "error")
    }

    /// Metadata of one session (tombstones included).
    /// - Throws: ``VaultError/notFound``.
    public func session(_ name: SessionName) throws(VaultError) -> StoredSession {
        var found = try storedSession(name)
        withNotedExportTime(&found)
        return found
    }

    /// The stored row, without the export time noted in memory: for the paths that only check
    /// the session and answer something else (an export reads the narrower ``ExportRecord``).
    /// - Throws: ``VaultError/notFound``.
    func storedSession(_ name: SessionName) throws(VaultError) -> StoredSession {
        let found: StoredSession?
        do { found = try store.session(named: name) } catch { throw VaultError(error) }
        guard let found else { throw .notFound }
        return found
    }

    /// A page of sessions ordered by name; with a `scope`, only the sessions it covers (a
    /// scoped token's: neither the rows nor the cursor name a session outside it).
    public func list(after: SessionName?, limit: Int, prefix: String?, scope: NameScope? = nil) throws(VaultError) -> SessionPage {
        var page: SessionPage
        do {
            if let scope {
                page = try store.listSessions(after: after, limit: limit, within: scope.narrowed(toPrefix: prefix))
            } else {
                page = try store.listSessions(after: after, limit: limit, prefix: prefix)
            }
        } catch {
            throw VaultError(error)
        }
        exportTimes.withLock { noted in
            guard !noted.isEmpty else { return }
            for i in page.sessions.indices {
                if let time = noted.time(for: page.sessions[i].id) { Self.applyExportTime(time, to: &page.sessions[i]) }
            }
        }
        return page
    }

    /// Applies the export time noted in memory, if any, to a session read from the store.
    func withNotedExportTime(_ session: inout StoredSession) {
        if let noted = exportTimes.withLock({ $0.time(for: session.id) }) { Self.applyExportTime(noted, to: &session) }
    }

    /// `last_exported_at` never moves backwards: the newer of the stored and the noted time.
    private static func applyExportTime(_ time: Int64, to session: inout StoredSession) {
        if time > (session.lastExportedAt ?? .min) { session.lastExportedAt = time }
    }

    /// Notes an export time and makes sure a flush follows within ``exportTimesFlushDelay``.
    private func noteExported(_ id: SessionID, at time: Int64) {
        exportTimes.withLock { $0.note(id, at: time) }
        if exportFlushScheduled.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged {
            exportFlushQueue.asyncAfter(deadline: .now() + Self.exportTimesFlushDelay) { [weak self] in
                self?.writeExportTimes()
            }
        }
    }

    /// Writes the noted export times to the store and waits until they are committed; the
    /// service's shutdown calls it before closing the store. Safe to call at any time.
    ///
    /// The times go in chunks (multi-row UPDATEs by session id), each a write that waits for its
    /// commit before the next is sent; once the last has committed, the noted times can be
    /// dropped (unless an export noted a newer time meanwhile).
    public func flushExportTimes() {
        exportFlushQueue.sync { writeExportTimes() }
    }

    /// Export times written per write of a flush (a few milliseconds of writer time).
    static let exportFlushChunk = 256

    /// The flush itself; runs on `exportFlushQueue` only.
    private func writeExportTimes() {
        exportFlushScheduled.store(false, ordering: .releasing)
        let snapshot = exportTimes.withLock { $0.beginFlush() }
        guard !snapshot.isEmpty else { return }
        // Chunks of `exportFlushChunk` rows, each one write that is waited for before the next
        // is sent: the writer interleaves audit rows between them, so a flush of a large vault
        // never fills the deferred backlog (exports would wait on the writer). In id order, so
        // that a chunk's rows are neighbours in the table (see `ExportTimes`); the sorted keys
        // are the only whole-flush array (16 bytes a session).
        var chunk: [(id: SessionID, time: Int64)] = []
        chunk.reserveCapacity(Self.exportFlushChunk)
        var committed = true
        for key in snapshot.keys.sorted() {
            guard let time = snapshot[key] else { continue }
            chunk.append((key.id, time))
            if chunk.count == Self.exportFlushChunk {
                do { try store.markExported(chunk) } catch { committed = false }
                chunk.removeAll(keepingCapacity: true)
            }
        }
        do {
            try store.markExported(chunk)
        } catch {
            committed = false  // Store closed or failing: keep the times; reads still show them.
        }
        exportTimes.withLock { $0.endFlush(committed: committed) }
    }

    /// Changes fields, compare-and-set on `expectedVersion` (the current version when nil).
    /// - Throws: ``VaultError/versionMismatch(current:)``, ``VaultError/revoked``, ``VaultError/notFound``.
    public func patch(_ name: SessionName, changes: SessionChanges, expectedVersion: Int64?, context: RequestContext) throws(VaultError) -> StoredSession {
        var current = try storedSession(name)
        if current.isRevoked { throw .revoked }
        if let expectedVersion, expectedVersion != current.version {
            throw .versionMismatch(current: current.version)
        }
        let expected = current.version
        if let v = changes.dcID { current.dcID = v }
        if let v = changes.apiID { current.apiID = v }
        if let v = changes.testMode { current.testMode = v }
        if let v = changes.userID { current.userID = v }
        if let v = changes.isBot { current.isBot = v }
        if let v = changes.serverAddress { current.serverAddress = v }
        if let v = changes.port { current.port = v }
        try Self.validate(dcID: current.dcID, apiID: current.apiID, userID: current.userID, port: current.port,
                          serverAddress: current.serverAddress)
        current.updatedAt = clock()
        if let key = changes.authKey {
            return try replaceKey(current, with: key, expectedVersion: expected, context: context)
        }
        do {
            var updated = try store.update(current, expectedVersion: expected)
            audit("session.update", name.rawValue, context, outcome: "ok")
            withNotedExportTime(&updated)
            return updated
        } catch {
            throw VaultError(error)
        }
    }

    /// Exports the session in `format`, opening its auth key.
    /// - Throws: ``VaultError/revoked`` (410), ``VaultError/missingFields(_:)`` naming every field
    ///   a conversion lacks, ``VaultError/notFound``, ``VaultError/sealed(reason:)``.
    public func export(_ name: SessionName, as format: ExportFormat, context: RequestContext) throws(VaultError) -> ExportedSession {
        try export(name, requested: format, context: context).session
    }

    /// Exports the session in `requested`, or without one in its own family
    /// (``ExportFormat/ownFamily(of:)``: a Telethon-sourced session as a Telethon string).
    /// - Returns: the export and the format it is in.
    /// - Throws: as ``export(_:as:context:)``.
    public func export(_ name: SessionName, requested: ExportFormat?, context: RequestContext) throws(VaultError)
        -> (session: ExportedSession, format: ExportFormat)
    {
        var keyring = try keyring()
        let found: ExportRecord?
        do { found = try store.exportRecord(named: name) } catch { throw VaultError(error) }
        guard let stored = found else { throw .notFound }
        let format = requested ?? ExportFormat.ownFamily(of: stored.sourceFormat ?? "")
        guard !stored.isRevoked, let sealed = stored.sealedAuthKey else {
            audit("session.export", name.rawValue, context, outcome: "gone")
            throw .revoked
        }
        if !keyring.hasTerm(of: sealed) {
            // Sealed under a term another instance rotated to since this one read the keyring.
            try reloadKeyring(keyring)
            keyring = try self.keyring()
        }
        let secret: SecretBytes
        do {
            secret = try keyring.open(sealed, context: Self.authKeyContext(stored.id))
        } catch {
            audit("session.export", name.rawValue, context, outcome: "integrity-failure")
            throw .integrity
        }
        let authKey: AuthKey
        do { authKey = try AuthKey(secret: secret) } catch { throw .integrity }
        let session = TelegramSession(
            dcID: stored.dcID, apiID: stored.apiID, testMode: stored.testMode, authKey: authKey,
            userID: stored.userID, isBot: stored.isBot, serverAddress: stored.serverAddress, port: stored.port,
            date: stored.date)
        let result: ExportedSession
        do {
            switch format {
            case .pyrogram, .telethon:
                result = .string(try SessionStringCodec.encode(session, as: format))
            case .pyrogramFile, .kurigramFile, .telethonFile:
                let missing = Self.missingForFile(session, format)
                guard missing.isEmpty else { throw VaultError.missingFields(missing) }
                let peers: [Peer]
                let states: [UpdateState]
                do {
                    peers = try store.peers(in: name)
                    states = try store.updateStates(in: name)
                } catch {
                    throw VaultError(error)
                }
                do {
                    result = .file(try SessionFileWriter.write(session, peers: peers, as: format, updateStates: states,
                                                               now: clock() / 1000))
                } catch {
                    throw VaultError(error)
                }
            }
        } catch let error as CodecError {
            audit("session.export", name.rawValue, context, outcome: "refused", detail: format.rawValue)
            throw VaultError(error)
        } catch let error as VaultError {
            audit("session.export", name.rawValue, context, outcome: "refused", detail: format.rawValue)
            throw error
        } catch {
            throw .integrity
        }
        noteExported(stored.id, at: clock())
        audit("session.export", name.rawValue, context, outcome: "ok", detail: format.rawValue)
        return (result, format)
    }

    /// The fields a `.session` file of `format` needs that `session` lacks (every one of them).
    static func missingForFile(_ s: TelegramSession, _ format: ExportFormat) -> [String] {
        var missing: [String] = []
        switch format {
        case .pyrogramFile, .kurigramFile:
            if s.apiID == nil || s.apiID == 0 { missing.append("api_id") }
            if s.userID == nil { missing.append("user_id") }
            if s.isBot == nil { missing.append("is_bot") }
            if s.testMode == nil { missing.append("test_mode") }
        case .telethonFile:
            if s.serverAddress == nil && s.testMode == nil { missing.append("test_mode") }
        case .pyrogram, .telethon:
            break
        }
        return missing
    }

    /// Revokes: the sealed key is destroyed, peers deleted, metadata kept as a tombstone.
    /// - Throws: ``VaultError/revoked`` when already revoked, ``VaultError/notFound``.
    public func revoke(_ name: SessionName, context: RequestContext) throws(VaultError) -> StoredSession {
        if try storedSession(name).isRevoked {
            audit("session.revoke", name.rawValue, context, outcome: "gone")
            throw .revoked
        }
        do {
            var s = try store.revoke(name, at: clock())
            tokenCacheInvalidate()
            endLeaseOnRevoke(name, context)
            audit("session.revoke", name.rawValue, context, outcome: "ok")
            withNotedExportTime(&s)
            return s
        } catch {
            audit("session.revoke", name.rawValue, context, outcome: error == .revoked ? "gone" : "error")
            throw VaultError(error)
        }
    }

    // MARK: Peers

    /// Upserts peers (by marked id) into a live session's cache. A peer without `lastUpdateOn`
    /// gets the time of this upsert (Unix seconds), as the libraries' own caches do.
    public func upsertPeers(_ peers: [Peer], in name: SessionName, context: RequestContext) throws(VaultError) -> StoredSession {
        let s = try storedSession(name)
        if s.isRevoked { throw .revoked }
        let now = clock() / 1000
        let peers = peers.map { peer in
            var peer = peer
            if peer.lastUpdateOn == nil { peer.lastUpdateOn = now }
            return peer
        }
        do {
            try store.upsertPeers(peers, in: name)
            audit("peers.upsert", name.rawValue, context, outcome: "ok", detail: String(peers.count))
            return try session(name)
        } catch let e as StorageError {
            throw VaultError(e)
        } catch let e as VaultError {
            throw e
        } catch {
            throw .integrity
        }
    }

    /// Looks a peer up by marked id, username (case-insensitive) or phone.
    public func peer(in name: SessionName, id: Int64? = nil, username: String? = nil, phone: String? = nil) throws(VaultError) -> Peer? {
        _ = try storedSession(name)
        do {
            if let id { return try store.peer(id: id, in: name) }
            if let username { return try store.peer(username: username.lowercased(), in: name) }
            if let phone { return try store.peers(phoneNumber: phone, in: name).first }
            return nil
        } catch {
            throw VaultError(error)
        }
    }

    /// Every peer of a session with this phone number, the most recently updated first.
    public func peers(in name: SessionName, phone: String) throws(VaultError) -> [Peer] {
        _ = try storedSession(name)
        do { return try store.peers(phoneNumber: phone, in: name) } catch { throw VaultError(error) }
    }

    /// Every cached peer of a session.
    public func peers(in name: SessionName) throws(VaultError) -> [Peer] {
        _ = try storedSession(name)
        do { return try store.peers(in: name) } catch { throw VaultError(error) }
    }

    // MARK: Tokens

    /// Creates a scoped token; the secret is returned once and only its keyed hash is stored.
    public func createToken(policy: AccessPolicy, displayName: String?, ttlSeconds: Int64?, context: RequestContext) throws(VaultError) -> IssuedToken {
        let hasher = try keyring().tokenHasher
        let token: String
        let accessor: String
        do {
            token = try TokenHasher.generateToken()
            accessor = try TokenHasher.generateAccessor()
        } catch {
            throw .integrity
        }
        let now = clock()
        let record = TokenRecord(
            accessor: accessor, hash: hasher.hash(token), policy: TokenPolicyCoding.encode(policy),
            displayName: displayName, createdAt: now, expiresAt: ttlSeconds.map { now + $0 * 1000 })
        do { try store.insertToken(record) } catch { throw VaultError(error) }
        audit("token.create", nil, context, outcome: "ok", detail: record.accessor)
        return IssuedToken(token: token, record: record)
    }

    /// Every token's metadata.
    public func tokens() throws(VaultError) -> [TokenRecord] {
        do { return try store.listTokens() } catch { throw VaultError(error) }
    }

    /// One token's metadata.
    public func token(accessor: String) throws(VaultError) -> TokenRecord {
        let found: TokenRecord?
        do { found = try store.token(accessor: accessor) } catch { throw VaultError(error) }
        guard let found else { throw .notFound }
        return found
    }

    /// Revokes a token; it stops working at once.
    public func revokeToken(accessor: String, context: RequestContext) throws(VaultError) -> TokenRecord {
        do {
            let r = try store.revokeToken(accessor: accessor, at: clock())
            tokenCacheInvalidate()
            audit("token.revoke", nil, context, outcome: "ok", detail: accessor)
            return r
        } catch {
            throw VaultError(error)
        }
    }

    func tokenCacheInvalidate() { tokenCache.withLock { $0.removeAll() } }

    /// Decodes a stored token's policy.
    public static func policy(of record: TokenRecord) -> AccessPolicy? { TokenPolicyCoding.decode(record.policy) }

    // MARK: Audit

    /// Records an event without blocking the request (committed by the writer within milliseconds,
    /// and before the store closes).
    public func audit(_ action: String, _ session: String?, _ context: RequestContext, outcome: String, detail: String? = nil) {
        store.enqueue(.audit(AuditEvent(
            time: clock(), accessor: context.accessor, action: action, sessionName: session,
            remoteAddress: context.remoteAddress, outcome: outcome, detail: detail)))
    }

    /// Counts an unauthenticated request (missing, malformed, unknown, expired or revoked token;
    /// `throttled` when it was answered 429) from `remoteAddress`. Never blocks.
    ///
    /// Not one audit row per failure: a flood of bad tokens from many addresses grew the audit
    /// table by a row a request. The failures of a period (``authFailureFlushDelay``, from the
    /// first one) are written as one `auth.denied` row per address with `failures=N
    /// throttled=M` in its detail, for at most ``AuthFailureTally/maxAddresses`` addresses, plus
    /// one row without an address for the rest. Reading the audit log, and the shutdown
    /// (``flushAuthFailures()``), write the period so far first.
    public func auditAuthFailure(remoteAddress: String, throttled: Bool) {
        let now = clock()
        authFailures.withLock { $0.note(remoteAddress, throttled: throttled, at: now) }
        if authFailureFlushScheduled.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged {
            exportFlushQueue.asyncAfter(deadline: .now() + Self.authFailureFlushDelay) { [weak self] in
                self?.flushAuthFailures()
            }
        }
    }

    /// Queues the audit rows of the unauthenticated failures counted so far (deferred writes:
    /// committed with the next group commit, and before the store closes). Safe at any time.
    public func flushAuthFailures() {
        authFailureFlushScheduled.store(false, ordering: .releasing)
        let tally = authFailures.withLock { t -> AuthFailureTally in
            defer { t = AuthFailureTally() }
            return t
        }
        guard let time = tally.firstAt else { return }
        for row in tally.rows {
            store.enqueue(.audit(AuditEvent(
                time: time, accessor: nil, action: "auth.denied", sessionName: nil, remoteAddress: row.address,
                outcome: "unauthenticated", detail: row.detail)))
        }
    }

    /// Deletes the audit events older than `cutoff` (Unix ms), a bounded batch per write so
    /// that other writes interleave.
    /// - Returns: how many were deleted.
    @discardableResult
    public func pruneAudit(before cutoff: Int64) throws(VaultError) -> Int {
        var total = 0
        // Bounded: 100,000 batches of 1,000 rows (the loop ends at the first short batch).
        for _ in 0..<100_000 {
            let deleted: Int
            do { deleted = try store.pruneAudit(before: cutoff, limit: 1000) } catch { throw VaultError(error) }
            total += deleted
            if deleted < 1000 { break }
        }
        return total
    }

    /// Keeps the audit log to the last `days` days: prunes now and then every `intervalSeconds`, on a
    /// background queue (`days` 0 keeps everything). Calling it again replaces the schedule.
    /// - Parameter log: told how many rows each prune deleted, or why it failed.
    public func startAuditRetention(days: Int, intervalSeconds: Int = 3600,
                                    log: @escaping @Sendable (Result<Int, VaultError>) -> Void = { _ in }) {
        let timer: (any DispatchSourceTimer)? = days > 0 ? DispatchSource.makeTimerSource(queue: retentionQueue) : nil
        if let old = retentionTimer.withLock({ t -> (any DispatchSourceTimer)? in
            defer { t = timer }
            return t
        }) {
            old.cancel()
        }
        guard let timer else { return }
        let keep = Int64(days) * 86_400_000
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            let result: Result<Int, VaultError>
            do throws(VaultError) {
                result = .success(try self.pruneAudit(before: self.clock() - keep))
            } catch {
                result = .failure(error)
            }
            log(result)
        }
        timer.schedule(deadline: .now(), repeating: .seconds(max(1, intervalSeconds)), leeway: .seconds(1))
        timer.activate()
    }

    /// Audit events, newest first (the unauthenticated failures counted so far included).
    public func auditEvents(before: Int64?, limit: Int) throws(VaultError) -> [AuditRecord] {
        flushAuthFailures()
        do {
            try store.flush()
            return try store.auditEvents(before: before, limit: limit)
        } catch {
            throw VaultError(error)
        }
    }

    // MARK: Keys

    /// Current key terms (metadata only).
    public func keyTerms() throws(VaultError) -> (current: UInt32, terms: [KeyTerm]) {
        let k = try keyring()
        return (k.currentTerm, k.terms)
    }

    /// Adds a new data-key term; persisted before it is used. Rotations of this process run one
    /// at a time; one that finds the keyring changed by another process reloads it and retries.
    public func rotate(context: RequestContext) throws(VaultError) -> UInt32 {
        try keyChanges.withLock { () throws(VaultError) -> UInt32 in
            for _ in 0..<3 {
                let (k, generation) = try keyringAndGeneration()
                let prepared: SealedTerm
                do { prepared = try k.prepareRotation(createdAt: clock()) } catch { throw .integrity }
                let written: Int64?
                do throws(StorageError) {
                    written = try store.appendKeyTerm(
                        KeyTermRecord(term: prepared.term, createdAt: prepared.createdAt, sealedKey: prepared.sealedKey),
                        ifGeneration: generation)
                } catch {
                    throw VaultError(error)
                }
                guard let written else {
                    try reloadKeyring(k)
                    continue
                }
                do { try k.activate(prepared) } catch { throw .integrity }
                state.withLock { $0 = .unsealed(k, generation: written) }
                audit("keys.rotate", nil, context, outcome: "ok", detail: String(prepared.term))
                return prepared.term
            }
            throw .keyringChanged
        }
    }

    /// Re-seals every stored auth key under the current term.
    /// - Returns: how many were re-sealed.
    public func rewrap(context: RequestContext) throws(VaultError) -> Int {
        try keyChanges.withLock { () throws(VaultError) -> Int in
            let k = try keyring()
            let term = k.currentTerm
            var cursor: SessionID?
            var count = 0
            while true {
                let batch: [RewrapCandidate]
                do throws(StorageError) { batch = try store.sessionsNeedingRewrap(currentTerm: term, after: cursor, limit: 256) } catch {
                    throw VaultError(error)
                }
                if batch.isEmpty { break }
                for c in batch {
                    cursor = c.id
                    let fresh: [UInt8]
                    do { fresh = try k.rewrap(c.sealedAuthKey, context: Self.authKeyContext(c.id)) } catch { throw .integrity }
                    do throws(StorageError) {
                        if try store.replaceSealedAuthKey(id: c.id, expected: c.sealedAuthKey, new: fresh, term: term) {
                            count += 1
                        }
                    } catch {
                        throw VaultError(error)
                    }
                }
            }
            audit("keys.rewrap", nil, context, outcome: "ok", detail: String(count))
            return count
        }
    }

    /// Re-seals the keyring under `newMaster` (the data keys do not change). The new keyring is
    /// stored first, on the condition that nobody changed it since it was read, and only then
    /// adopted; on any failure the vault stays wholly under the old master key.
    /// - Throws: ``VaultError/keyringChanged`` when another process changed the keyring meanwhile.
    public func rekey(to newMaster: MasterKey) throws(VaultError) {
        try keyChanges.withLock { () throws(VaultError) in
            let (k, generation) = try keyringAndGeneration()
            let sealed: [SealedTerm]
            do { sealed = try k.sealedTerms(under: newMaster) } catch { throw .integrity }
            let written: Int64?
            do throws(StorageError) {
                written = try store.replaceKeyTerms(
                    sealed.map { KeyTermRecord(term: $0.term, createdAt: $0.createdAt, sealedKey: $0.sealedKey) },
                    ifGeneration: generation)
            } catch {
                throw VaultError(error)
            }
            guard let written else { throw .keyringChanged }
            do { _ = try k.rekey(newMaster: newMaster) } catch { throw .integrity }
            state.withLock { $0 = .unsealed(k, generation: written) }
        }
    }

    // MARK: Helpers

    /// Associated data binding an auth key ciphertext to its row and column.
    static func authKeyContext(_ id: SessionID) -> CipherContext {
        CipherContext(table: "sessions", row: id.hex, column: "auth_key")
    }

    static func validate(dcID: Int, apiID: Int64?, userID: Int64?, port: Int?, serverAddress: String?) throws(VaultError) {
        guard (1...255).contains(dcID) else { throw .invalid(field: "dc_id", reason: "must be between 1 and 255") }
        if let apiID, !(0...Int64(UInt32.max)).contains(apiID) {
            throw .invalid(field: "api_id", reason: "must be between 1 and 4294967295")
        }
        if let userID, userID < 0 { throw .invalid(field: "user_id", reason: "must be between 0 and 9223372036854775807") }
        if let port, !(1...65535).contains(port) { throw .invalid(field: "port", reason: "must be between 1 and 65535") }
        if let serverAddress, IPAddressText.canonical(serverAddress) == nil {
            throw .invalid(field: "server_address", reason: "must be an IPv4 or IPv6 address")
        }
    }
}

/// The stored text form of an ``AccessPolicy``: `ops=read,export;sessions=a,b;prefixes=p`.
/// Unambiguous because names and prefixes are `[A-Za-z0-9._-]` only.
enum TokenPolicyCoding {
    static func encode(_ p: AccessPolicy) -> String {
        "ops=" + p.operations.sorted().map(\.rawValue).joined(separator: ",")
            + ";sessions=" + p.sessions.sorted().joined(separator: ",")
            + ";prefixes=" + p.prefixes.joined(separator: ",")
    }

    static func decode(_ text: String) -> AccessPolicy? {
        var ops: Set<AccessPolicy.Operation> = []
        var sessions: Set<String> = []
        var prefixes: [String] = []
        for part in text.split(separator: ";", omittingEmptySubsequences: false) {
            let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.count == 2 else { return nil }
            let values = kv[1].isEmpty ? [] : kv[1].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            switch kv[0] {
            case "ops":
                for v in values {
                    guard let op = AccessPolicy.Operation(rawValue: v) else { return nil }
                    ops.insert(op)
                }
            case "sessions": sessions = Set(values)
            case "prefixes": prefixes = values
            default: return nil
            }
        }
        return AccessPolicy(operations: ops, sessions: sessions, prefixes: prefixes)
    }
}
