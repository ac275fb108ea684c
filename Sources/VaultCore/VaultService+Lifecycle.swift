// SPDX-License-Identifier: Apache-2.0
import Primitives
import Synchronization

/// The audit log's actions: what `GET /v1/audit?action=` accepts.
public enum AuditAction {
    /// Every action the vault writes.
    public static let known: [String] = [
        "access.denied", "auth.denied", "keys.rewrap", "keys.rotate", "peers.upsert", "root_token.rotate",
        "session.create", "session.export", "session.purge", "session.revoke", "session.update",
        "token.create", "token.expire", "token.revoke",
    ]
}

/// A token secret chosen by the operator (a bootstrap file's `secret_env`/`secret_file`) rather
/// than generated: it must be as hard to guess as it is easy to check.
public enum ChosenTokenSecret {
    /// Fewest characters accepted (a generated token has 47).
    public static let minLength = 32
    /// Most characters accepted (authentication ignores longer bearer tokens).
    public static let maxLength = 512
    /// Fewest different characters accepted (refuses `aaaa…` and short repeated patterns).
    public static let minDistinct = 10

    /// Nil when `secret` is acceptable, else why not (never repeating the secret).
    public static func weakness(_ secret: String) -> String? {
        let bytes = Array(secret.utf8)
        guard bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return "must be visible ASCII characters only (no spaces or control characters)"
        }
        guard bytes.count >= minLength else {
            return "is too short: at least \(minLength) characters (e.g. `openssl rand -base64 32`)"
        }
        guard bytes.count <= maxLength else { return "is too long: at most \(maxLength) characters" }
        guard Set(bytes).count >= minDistinct else {
            return "is too weak: use at least \(minDistinct) different characters (e.g. `openssl rand -base64 32`)"
        }
        return nil
    }
}

/// What a bootstrap step did with an entry that may exist already (restarts of a file vault).
public enum BootstrapOutcome: Sendable, Equatable {
    case created
    case existing
}

extension VaultService {
    // MARK: Purge

    /// Removes a revoked session's tombstone; the name can then be created again. Audited as
    /// `session.purge`.
    /// - Throws: ``VaultError/notFound``; ``VaultError/conflict`` when the session is live.
    public func purge(_ name: SessionName, context: RequestContext) throws(VaultError) {
        try purgingLease(name) { () throws(VaultError) in try purgeRow(name, context: context) }
        audit("session.purge", name.rawValue, context, outcome: "ok")
    }

    private func purgeRow(_ name: SessionName, context: RequestContext) throws(VaultError) {
        do {
            try store.purge(name)
        } catch {
            if error == .conflict(field: "name") {
                audit("session.purge", name.rawValue, context, outcome: "conflict")
                throw .conflict
            }
            if error != .notFound { audit("session.purge", name.rawValue, context, outcome: "error") }
            throw VaultError(error)
        }
    }

    // MARK: Root token

    /// True when the root token comes from configuration (environment or file).
    public var rootTokenIsConfigured: Bool { rootTokenConfigured.load(ordering: .relaxed) }

    /// Replaces the root token with a new random one, returned once: its hash is stored before
    /// it is adopted, and the old token stops working when this returns. Audited as
    /// `root_token.rotate`.
    /// - Throws: ``VaultError/conflict`` when the root token comes from configuration (a restart
    ///   would bring the configured one back: change it there).
    public func rotateRootToken(context: RequestContext) throws(VaultError) -> String {
        guard !rootTokenIsConfigured else { throw .conflict }
        let hasher = try keyring().tokenHasher
        let token: String
        do { token = try TokenHasher.generateToken() } catch { throw .integrity }
        let hash = hasher.hash(token)
        do { try store.setMeta(Self.rootTokenMetaKey, value: hash) } catch { throw VaultError(error) }
        rootHash.withLock { $0 = hash }
        audit("root_token.rotate", nil, context, outcome: "ok")
        return token
    }

    // MARK: Tokens with a chosen secret

    /// Creates a scoped token whose secret the operator chose (a bootstrap file): the same
    /// token as ``createToken(policy:displayName:ttlSeconds:context:)`` makes, keyed-hashed the
    /// same way. A token with this secret that exists already (a restart of a file vault) is
    /// left as it is, revoked or not.
    /// - Throws: ``VaultError/invalid(field:reason:)`` naming `secret` for a weak secret or the
    ///   root token's.
    public func createToken(secret: String, policy: AccessPolicy, displayName: String?, ttlSeconds: Int64?,
                            context: RequestContext) throws(VaultError) -> (record: TokenRecord, outcome: BootstrapOutcome) {
        if let weakness = ChosenTokenSecret.weakness(secret) { throw .invalid(field: "secret", reason: weakness) }
        let hasher = try keyring().tokenHasher
        let hash = hasher.hash(secret)
        if let root = rootHash.withLock({ $0 }), ConstantTime.equals(root, hash) {
            throw .invalid(field: "secret", reason: "is the root token's; give the scoped token a secret of its own")
        }
        do {
            if let existing = try store.token(hash: hash) { return (existing, .existing) }
        } catch {
            throw VaultError(error)
        }
        let accessor: String
        do { accessor = try TokenHasher.generateAccessor() } catch { throw .integrity }
        let now = clock()
        let record = TokenRecord(
            accessor: accessor, hash: hash, policy: TokenPolicyCoding.encode(policy), displayName: displayName,
            createdAt: now, expiresAt: ttlSeconds.map { now + $0 * 1000 })
        do {
            try store.insertToken(record)
        } catch {
            // Inserted by another writer meanwhile: the same secret, so the same token.
            if case .conflict = error, let existing = try? store.token(hash: hash) { return (existing, .existing) }
            throw VaultError(error)
        }
        audit("token.create", nil, context, outcome: "ok", detail: record.accessor)
        return (record, .created)
    }

    // MARK: Pages and filters

    /// A page of tokens' metadata, in creation order.
    public func tokens(after cursor: String?, limit: Int) throws(VaultError) -> TokenPage {
        do { return try store.listTokens(after: cursor, limit: limit) } catch { throw VaultError(error) }
    }

    /// Audit events matching `filter`, newest first (the unauthenticated failures counted so
    /// far included).
    public func auditEvents(before: Int64?, limit: Int, matching filter: AuditFilter) throws(VaultError) -> [AuditRecord] {
        flushAuthFailures()
        do {
            try store.flush()
            return try store.auditEvents(before: before, limit: limit, matching: filter)
        } catch {
            throw VaultError(error)
        }
    }
}
