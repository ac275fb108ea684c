// SPDX-License-Identifier: Apache-2.0

// Records the store persists. All timestamps are Unix time in **milliseconds** (Int64), chosen
// by the caller (the store never reads a clock), so tests are deterministic and 64-bit values
// stay exact.

/// The immutable 16-byte random identity of a session row.
///
/// Generated once by the caller when a session is created and never changed: the crypto layer
/// binds each sealed blob to it through the AEAD associated data (docs/architecture.md, "Keys"),
/// so a blob copied to another row fails to open. Unlike the name, it is never reused.
public struct SessionID: Hashable, Sendable, CustomStringConvertible {
    /// Size of every id.
    public static let byteCount = 16

    /// The 16 bytes.
    public let bytes: [UInt8]

    /// - Throws: ``StorageError/invalidArgument(field:reason:)`` naming `id` unless 16 bytes.
    public init(bytes: some Collection<UInt8>) throws(StorageError) {
        guard bytes.count == Self.byteCount else {
            throw .invalidArgument(field: "id", reason: "must be exactly \(Self.byteCount) bytes")
        }
        self.bytes = Array(bytes)
    }

    /// Parses 32 hex characters; `nil` otherwise.
    public init?(hex: String) {
        guard let bytes = Hex.decode(hex), bytes.count == Self.byteCount else { return nil }
        self.bytes = bytes
    }

    /// A fresh id whose first 6 bytes are `milliseconds` (Unix time, big-endian) and whose other
    /// 10 are random (80 bits, from ``random()``'s source), in the manner of UUIDv7 (RFC 9562
    /// §5.7). Ids made this way sort by creation time, so each insert lands at the right-hand
    /// edge of the `id` UNIQUE index instead of on a random page of it: with a fully random id
    /// every create of a large vault read a cold index page into the writer's cache (the
    /// writer's largest cost in a create profile). The time prefix reveals nothing beyond the
    /// session's `created_at`, which the API shows anyway; the 80 random bits keep ids
    /// unguessable and distinct.
    public static func timeOrdered(milliseconds: Int64) -> SessionID {
        var bytes = random().bytes
        let time = UInt64(clamping: max(0, milliseconds))
        for i in 0..<6 { bytes[i] = UInt8(truncatingIfNeeded: time >> (8 * (5 - i))) }
        return SessionID(unchecked: bytes)
    }

    /// A fresh id from OpenSSL's DRBG (``SecureRandom``), which serves it from user space; the
    /// system generator is the fallback. (Byte by byte from `SystemRandomNumberGenerator` cost
    /// sixteen `getrandom` system calls per create: 2–3 % of create CPU in the kernel.)
    public static func random() -> SessionID {
        if let bytes = try? SecureRandom.bytes(count: byteCount) { return SessionID(unchecked: bytes) }
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: byteCount)
        for i in 0..<byteCount { bytes[i] = generator.next() }
        return SessionID(unchecked: bytes)
    }

    init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    /// Lower-case hex (32 characters).
    public var hex: String { Hex.encode(bytes) }

    public var description: String { hex }
}

/// One vaulted session as stored: metadata plus the sealed auth key envelope.
///
/// The store never sees plaintext: `sealedAuthKey` is an opaque envelope produced by the crypto
/// layer under key term `sealedKeyTerm`. After a revoke both are `nil` and the row remains as a
/// tombstone carrying the metadata.
public struct StoredSession: Sendable, Equatable {
    /// Row identity, used as crypto associated data. Immutable.
    public let id: SessionID
    /// Unique name. Immutable (updates address the session by it).
    public let name: SessionName
    /// Data-center id.
    public var dcID: Int
    /// Telegram application id; `nil` for legacy imports.
    public var apiID: Int64?
    /// Test-server flag, when known.
    public var testMode: Bool?
    /// The account's user id, when known.
    public var userID: Int64?
    /// Whether the account is a bot, when known.
    public var isBot: Bool?
    /// Server address (Telethon, Kurigram), when known.
    public var serverAddress: String?
    /// Server port, when known.
    public var port: Int?
    /// The session's `date` column (Unix seconds, as the client libraries keep it).
    public var date: Int64?
    /// `auth_key_id` hex: the public fingerprint shown in metadata. Kept after a revoke.
    public var authKeyID: String?
    /// The sealed auth key envelope; `nil` when the session has no key or was revoked.
    public var sealedAuthKey: [UInt8]?
    /// The keyring term `sealedAuthKey` was sealed under; `nil` exactly when `sealedAuthKey` is.
    /// Kept as a column so rewrap can find old envelopes without parsing them.
    public var sealedKeyTerm: UInt32?
    /// The format the session was imported from (``SourceFormat`` raw value).
    public var sourceFormat: String
    /// Creation time (ms).
    public var createdAt: Int64
    /// Time of the last metadata change (ms).
    public var updatedAt: Int64
    /// Time of the last export (ms); `nil` until the first one.
    public var lastExportedAt: Int64?
    /// Starts at 1 and grows by 1 with every metadata change (update, revoke); the service's
    /// ETag. Exports, peer changes and rewraps leave it alone.
    public var version: Int64
    /// Revocation time (ms); `nil` while the session is live.
    public var revokedAt: Int64?
    /// Number of cached peers. Maintained by the store; ignored on insert and update.
    public var peerCount: Int

    /// True for a revoked tombstone.
    public var isRevoked: Bool { revokedAt != nil }

    public init(
        id: SessionID, name: SessionName, dcID: Int, apiID: Int64? = nil, testMode: Bool? = nil,
        userID: Int64? = nil, isBot: Bool? = nil, serverAddress: String? = nil, port: Int? = nil,
        date: Int64? = nil, authKeyID: String? = nil, sealedAuthKey: [UInt8]? = nil,
        sealedKeyTerm: UInt32? = nil, sourceFormat: String, createdAt: Int64, updatedAt: Int64? = nil,
        lastExportedAt: Int64? = nil, version: Int64 = 1, revokedAt: Int64? = nil, peerCount: Int = 0
    ) {
        self.id = id
        self.name = name
        self.dcID = dcID
        self.apiID = apiID
        self.testMode = testMode
        self.userID = userID
        self.isBot = isBot
        self.serverAddress = serverAddress
        self.port = port
        self.date = date
        self.authKeyID = authKeyID
        self.sealedAuthKey = sealedAuthKey
        self.sealedKeyTerm = sealedKeyTerm
        self.sourceFormat = sourceFormat
        self.createdAt = createdAt
        self.updatedAt = updatedAt ?? createdAt
        self.lastExportedAt = lastExportedAt
        self.version = version
        self.revokedAt = revokedAt
        self.peerCount = peerCount
    }
}

/// One page of ``SessionStore/listSessions(after:limit:prefix:)``, ordered by name (bytewise).
public struct SessionPage: Sendable, Equatable {
    /// The sessions of this page, tombstones included.
    public var sessions: [StoredSession]
    /// Pass as `after` to get the next page; `nil` on the last page.
    public var nextCursor: SessionName?

    public init(sessions: [StoredSession], nextCursor: SessionName?) {
        self.sessions = sessions
        self.nextCursor = nextCursor
    }
}

/// Session counts for status and metrics.
public struct SessionCounts: Sendable, Equatable {
    /// All rows, tombstones included.
    public var total: Int
    /// Revoked tombstones.
    public var revoked: Int
    /// Live sessions.
    public var active: Int { total - revoked }

    public init(total: Int, revoked: Int) {
        self.total = total
        self.revoked = revoked
    }
}

/// One keyring term: a data key sealed under the master key by the crypto layer.
/// The stored keyring: its terms and its generation, which every keyring write increases by one.
/// A writer passes back the generation it read, so a keyring changed meanwhile (another
/// process rotated or rekeyed) is never overwritten from a stale copy.
public struct StoredKeyring: Sendable, Equatable {
    /// 0 for a database that has never had a keyring write counted.
    public var generation: Int64
    /// Every term, ordered by term.
    public var terms: [KeyTermRecord]

    public init(generation: Int64, terms: [KeyTermRecord]) {
        self.generation = generation
        self.terms = terms
    }
}

/// Whether the store can take writes now, for `/readyz` and `/v1/sys/status`.
public struct StoreHealth: Sendable, Equatable {
    /// False while writes fail for want of storage (full disk, read-only, I/O errors) or after
    /// the data was lost; reads may still work.
    public var writable: Bool
    /// Why it is not writable (no secret, no path).
    public var reason: String?
    /// True when the store can no longer serve at all until a restart (the database file was
    /// removed or replaced): readiness fails.
    public var failed: Bool

    public init(writable: Bool = true, reason: String? = nil, failed: Bool = false) {
        self.writable = writable
        self.reason = reason
        self.failed = failed
    }
}

public struct KeyTermRecord: Sendable, Equatable {
    /// Term number (grows with each rotation).
    public var term: UInt32
    /// When the term was created (ms).
    public var createdAt: Int64
    /// The data key, sealed under the master key (opaque envelope).
    public var sealedKey: [UInt8]

    public init(term: UInt32, createdAt: Int64, sealedKey: [UInt8]) {
        self.term = term
        self.createdAt = createdAt
        self.sealedKey = sealedKey
    }
}

/// A session whose auth key is sealed under an old term, for rewrap.
public struct RewrapCandidate: Sendable, Equatable {
    /// Row identity (crypto associated data; also the rewrap cursor).
    public var id: SessionID
    /// The session's name (for logs and audit).
    public var name: SessionName
    /// The term the envelope is sealed under.
    public var term: UInt32
    /// The current envelope: pass it back as `expected` to the compare-and-set.
    public var sealedAuthKey: [UInt8]

    public init(id: SessionID, name: SessionName, term: UInt32, sealedAuthKey: [UInt8]) {
        self.id = id
        self.name = name
        self.term = term
        self.sealedAuthKey = sealedAuthKey
    }
}

/// An API token as stored: only its hash, never the token itself.
public struct TokenRecord: Sendable, Equatable {
    /// Non-secret id of the token (shown in lists and audit).
    public var accessor: String
    /// Hash of the secret token (the service chooses the function, e.g. SHA-256).
    public var hash: [UInt8]
    /// The token's policy as JSON text; the service owns its schema (operations × names/prefixes).
    public var policy: String
    /// Optional human label.
    public var displayName: String?
    /// Creation time (ms).
    public var createdAt: Int64
    /// Expiry time (ms); `nil` for no expiry.
    public var expiresAt: Int64?
    /// Revocation time (ms); `nil` while valid.
    public var revokedAt: Int64?

    public init(
        accessor: String, hash: [UInt8], policy: String, displayName: String? = nil, createdAt: Int64,
        expiresAt: Int64? = nil, revokedAt: Int64? = nil
    ) {
        self.accessor = accessor
        self.hash = hash
        self.policy = policy
        self.displayName = displayName
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
    }
}

/// One audit log entry, as the service writes it. Must never contain a secret.
public struct AuditEvent: Sendable, Equatable {
    /// When it happened (ms).
    public var time: Int64
    /// Accessor of the token that acted; `nil` for unauthenticated or system events.
    public var accessor: String?
    /// What was attempted (`session.create`, `session.export`, …).
    public var action: String
    /// The session concerned, if any (plain text: it may be an invalid name that was refused).
    public var sessionName: String?
    /// The client's address.
    public var remoteAddress: String?
    /// `ok`, `denied`, `error`, …
    public var outcome: String
    /// Free-form, secret-free detail.
    public var detail: String?

    public init(
        time: Int64, accessor: String? = nil, action: String, sessionName: String? = nil,
        remoteAddress: String? = nil, outcome: String, detail: String? = nil
    ) {
        self.time = time
        self.accessor = accessor
        self.action = action
        self.sessionName = sessionName
        self.remoteAddress = remoteAddress
        self.outcome = outcome
        self.detail = detail
    }
}

/// A stored audit event with its id (ids grow with time; use them as cursors).
public struct AuditRecord: Sendable, Equatable {
    /// Monotonic id.
    public var id: Int64
    /// The event.
    public var event: AuditEvent

    public init(id: Int64, event: AuditEvent) {
        self.id = id
        self.event = event
    }
}

/// A write the caller does not wait for: it is committed with the next group commit that has
/// another reason to run, or within the store's deferred-write delay (at once when half the
/// deferred backlog is queued). Used on read paths (export) so that bookkeeping never
/// costs the reader an fsync. Lost on a crash before that commit; failures are counted in
/// ``StoreStatistics/deferredFailures``. (Export times are not among them: `VaultService` keeps
/// them in memory and writes them in batches with ``SessionRepository/markExported(_:)``.)
public enum DeferredWrite: Sendable, Equatable {
    /// Appends an audit event.
    case audit(AuditEvent)
    /// Marks a token seen expired as revoked at `at` (a token already revoked keeps its time;
    /// a missing one is ignored), so that a clock stepped back or a restart never revives it.
    case expireToken(accessor: String, at: Int64)
}

/// Counters for metrics and tests.
public struct StoreStatistics: Sendable, Equatable {
    /// Write transactions committed (one per group commit).
    public var transactions: Int
    /// Write operations committed (blocking and deferred).
    public var committedWrites: Int
    /// Write operations that failed (their own error or their transaction's).
    public var failedWrites: Int
    /// Deferred writes that failed or were dropped because the store was closed.
    public var deferredFailures: Int
    /// Most operations committed in one transaction.
    public var largestBatch: Int
    /// Read connections currently open (file engine; 0 for memory).
    public var readerConnections: Int

    public init(
        transactions: Int = 0, committedWrites: Int = 0, failedWrites: Int = 0, deferredFailures: Int = 0,
        largestBatch: Int = 0, readerConnections: Int = 0
    ) {
        self.transactions = transactions
        self.committedWrites = committedWrites
        self.failedWrites = failedWrites
        self.deferredFailures = deferredFailures
        self.largestBatch = largestBatch
        self.readerConnections = readerConnections
    }
}

/// Where a store keeps its data, as its storage URL names it (see ``StoreFactory``).
public enum StoreLocation: Sendable, Equatable, CustomStringConvertible {
    /// An SQLite file at this path (`file:PATH`). The caller creates the directory.
    case file(String)
    /// A private in-memory database, gone when the store closes (`memory`).
    case memory
    /// A database server, e.g. `postgres`: `address` is the URL without its scheme and without
    /// any password (it is shown in `/v1/sys/status` and logs).
    case server(engine: String, address: String)

    /// The engine's name: `file`, `memory`, or the server's scheme.
    public var engine: String {
        switch self {
        case .file: return "file"
        case .memory: return "memory"
        case .server(let engine, _): return engine
        }
    }

    public var description: String {
        switch self {
        case .file(let path): return "file:\(path)"
        case .memory: return "memory"
        case .server(let engine, let address): return "\(engine)://\(address)"
        }
    }
}

/// What an export reads of a session row: the fields a session string or file is built from,
/// the sealed key, and whether it is revoked. Narrower than ``StoredSession`` (no name, no
/// bookkeeping): it is read on every export, and each column costs a decode.
public struct ExportRecord: Sendable, Equatable {
    public var id: SessionID
    public var dcID: Int
    public var apiID: Int64?
    public var testMode: Bool?
    public var userID: Int64?
    public var isBot: Bool?
    public var serverAddress: String?
    public var port: Int?
    public var date: Int64?
    /// The sealed auth key envelope; `nil` when the session has no key or was revoked.
    public var sealedAuthKey: [UInt8]?
    /// Revocation time (ms); `nil` while the session is live.
    public var revokedAt: Int64?
    /// The format it was imported from (a ``SourceFormat`` raw value): an export without a
    /// format uses its family (``ExportFormat/ownFamily(of:)``).
    public var sourceFormat: String? = nil

    /// True for a revoked tombstone.
    public var isRevoked: Bool { revokedAt != nil }
}

// In an extension, so that the store keeps the implicit memberwise initialiser.
extension ExportRecord {
    /// The export's view of a full row.
    public init(_ s: StoredSession) {
        self.init(
            id: s.id, dcID: s.dcID, apiID: s.apiID, testMode: s.testMode, userID: s.userID, isBot: s.isBot,
            serverAddress: s.serverAddress, port: s.port, date: s.date, sealedAuthKey: s.sealedAuthKey,
            revokedAt: s.revokedAt, sourceFormat: s.sourceFormat)
    }
}
