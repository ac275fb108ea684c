// SPDX-License-Identifier: Apache-2.0

/// A lease operation decided by the database (``SharedLeaseRepository``).
public enum SharedLeaseOperation: Sendable, Equatable {
    /// Take the lease if it is free now: the next epoch, a deadline `ttlSeconds` from now.
    case acquire(idHash: [UInt8], holder: String, ttlSeconds: Int)
    /// Push the deadline of the current lease `idHash` to `ttlSeconds` (or its own TTL) from now.
    case renew(idHash: [UInt8], ttlSeconds: Int?)
    /// Free the current lease `idHash` (no lock-delay).
    case release(idHash: [UInt8])
    /// End whatever lease is held, into its lock-delay.
    case breakHeld
    /// Only store what the clock decided (a held lease past its deadline enters its lock-delay).
    case settle
    /// The session was revoked: its lease ends, without a lock-delay.
    case endOnRevoke
}

/// A session's lease as the database judges it at ``now``.
public struct SharedLeaseView: Sendable, Equatable {
    /// The session is exclusive (never for a revoked one).
    public var exclusive: Bool
    public var revoked: Bool
    /// Where the lease stands at ``now`` (a held lease past its deadline is in its lock-delay,
    /// a lock-delay past its end is free; a revoked session's lease is free).
    public var state: LeaseRecord.State
    /// The latest epoch issued (0: never).
    public var epoch: Int64
    /// The keyed hash of the lease id (held only).
    public var idHash: [UInt8]
    /// The holder (held), or the holder whose lease ended into the lock-delay (delay).
    public var holder: String
    public var ttlSeconds: Int
    /// Unix milliseconds, by the database's clock.
    public var acquiredAt: Int64
    /// Held: when it expires; delay: when the lock-delay ends. Unix milliseconds, by the database's clock.
    public var deadline: Int64
    /// The database's clock when it judged, Unix milliseconds.
    public var now: Int64

    public init(exclusive: Bool, revoked: Bool, state: LeaseRecord.State, epoch: Int64, idHash: [UInt8], holder: String,
                ttlSeconds: Int, acquiredAt: Int64, deadline: Int64, now: Int64) {
        self.exclusive = exclusive
        self.revoked = revoked
        self.state = state
        self.epoch = epoch
        self.idHash = idHash
        self.holder = holder
        self.ttlSeconds = ttlSeconds
        self.acquiredAt = acquiredAt
        self.deadline = deadline
        self.now = now
    }

    /// Whether `idHash` is the lease held now.
    public func holds(_ idHash: [UInt8]) -> Bool {
        state == .held && !self.idHash.isEmpty && ConstantTime.equals(self.idHash, idHash)
    }
}

/// What a ``SharedLeaseOperation`` did.
public struct SharedLeaseChange: Sendable, Equatable {
    /// Whether it took effect (acquired, renewed, released, broken, ended; for `settle`: an expiry was stored).
    public var done: Bool
    /// The lease after it.
    public var view: SharedLeaseView
    /// The epoch of a held lease this call found past its deadline and stored as expired. One
    /// call finds each expiry (they are serialised), so it is audited once.
    public var expiredEpoch: Int64?

    public init(done: Bool, view: SharedLeaseView, expiredEpoch: Int64?) {
        self.done = done
        self.view = view
        self.expiredEpoch = expiredEpoch
    }
}

/// Leases decided by the database itself, for an engine that several vault instances share
/// (PostgreSQL). The in-memory ``LeaseBook`` of one process cannot be the authority then: each
/// operation is one transaction that locks the session row, reads the lease and the
/// database's clock (`clock_timestamp()`, after the lock), decides with ``SharedLeaseJudge``
/// and stores the outcome. Every instance's operations on a session are serialised by that
/// lock and judged by one clock, so two instances cannot both hold a lease, whatever their
/// own clocks say.
public protocol SharedLeaseRepository: Sendable {
    /// The lease of `name` as the database judges it now (nothing written); `nil` when there is
    /// no such session.
    /// - Throws: ``StorageError`` when the database fails.
    func sharedLease(of name: SessionName, lockDelaySeconds: Int) throws(StorageError) -> SharedLeaseView?

    /// Runs `operation` on the lease of `name` in one transaction.
    /// - Throws: ``StorageError/notFound``; ``StorageError/revoked`` for an acquisition on a
    ///   revoked session; ``StorageError`` when the database fails.
    func changeSharedLease(_ operation: SharedLeaseOperation, in name: SessionName, lockDelaySeconds: Int)
        throws(StorageError) -> SharedLeaseChange

    /// Leases held now, by the database's clock (every instance's).
    /// - Throws: ``StorageError`` when the database fails.
    func sharedLeasesHeld() throws(StorageError) -> Int
}

/// The decisions of ``SharedLeaseRepository``, apart from the database: a stored lease row,
/// the clock and an operation in, the row to store and the answer out.
public enum SharedLeaseJudge {
    /// A lease row as stored (`deadline`: held, its expiry; delay, its end; Unix ms).
    public struct Row: Sendable, Equatable {
        public var state: LeaseRecord.State
        public var epoch: Int64
        public var idHash: [UInt8]
        public var holder: String
        public var ttlSeconds: Int
        public var acquiredAt: Int64
        public var deadline: Int64

        public init(state: LeaseRecord.State, epoch: Int64, idHash: [UInt8], holder: String, ttlSeconds: Int, acquiredAt: Int64,
                    deadline: Int64) {
            self.state = state
            self.epoch = epoch
            self.idHash = idHash
            self.holder = holder
            self.ttlSeconds = ttlSeconds
            self.acquiredAt = acquiredAt
            self.deadline = deadline
        }

        /// No lease was ever acquired.
        public static let never = Row(state: .free, epoch: 0, idHash: [], holder: "", ttlSeconds: 0, acquiredAt: 0, deadline: 0)
    }

    /// `row` moved along the clock to `now`: a held lease at or past its deadline enters its
    /// lock-delay (ending `lockDelay` after the deadline, whenever this is noticed), a lock-delay
    /// at or past its end is free. Returns the epoch that expired, if one did.
    public static func settle(_ row: inout Row, now: Int64, lockDelaySeconds: Int) -> Int64? {
        var expired: Int64?
        if row.state == .held, now >= row.deadline {
            expired = row.epoch
            row.state = .delay
            row.idHash = []
            row.deadline = row.deadline &+ Int64(lockDelaySeconds) * 1000
        }
        if row.state == .delay, now >= row.deadline {
            row.state = .free
            row.holder = ""
        }
        return expired
    }

    /// Whether `idHash` is the lease `row` holds.
    static func holds(_ row: Row, _ idHash: [UInt8]) -> Bool {
        row.state == .held && !row.idHash.isEmpty && ConstantTime.equals(row.idHash, idHash)
    }

    /// Applies `operation` to `row` at `now` (for a live session: the caller refuses a revoked
    /// one's acquisition and answers its other operations as not done).
    /// - Returns: whether it took effect, and the epoch of an expiry found on the way.
    public static func apply(_ operation: SharedLeaseOperation, to row: inout Row, now: Int64, lockDelaySeconds: Int)
        -> (done: Bool, expired: Int64?)
    {
        let expired = settle(&row, now: now, lockDelaySeconds: lockDelaySeconds)
        switch operation {
        case .acquire(let idHash, let holder, let ttlSeconds):
            guard row.state == .free else { return (false, expired) }
            row = Row(state: .held, epoch: row.epoch + 1, idHash: idHash, holder: holder, ttlSeconds: ttlSeconds, acquiredAt: now,
                      deadline: now &+ Int64(ttlSeconds) * 1000)
            return (true, expired)
        case .renew(let idHash, let ttlSeconds):
            guard holds(row, idHash) else { return (false, expired) }
            if let ttlSeconds { row.ttlSeconds = ttlSeconds }
            row.deadline = now &+ Int64(row.ttlSeconds) * 1000
            return (true, expired)
        case .release(let idHash):
            guard holds(row, idHash) else { return (false, expired) }
            row.state = .free
            row.idHash = []
            row.holder = ""
            return (true, expired)
        case .breakHeld:
            guard row.state == .held else { return (false, expired) }
            row.state = .delay
            row.idHash = []
            row.deadline = now &+ Int64(lockDelaySeconds) * 1000
            return (true, expired)
        case .settle:
            return (expired != nil, expired)
        case .endOnRevoke:
            let held = row.state == .held
            row.state = .free
            row.idHash = []
            row.holder = ""
            return (held, expired)
        }
    }
}
