// SPDX-License-Identifier: Apache-2.0
import Primitives
import Dispatch

/// What an acquisition or a renewal answers (never the lease id except at acquisition).
public struct LeaseInfo: Sendable, Equatable {
    public var epoch: Int64
    public var holder: String
    /// Unix milliseconds.
    public var acquiredAt: Int64
    /// Unix milliseconds: now plus what the vault's monotonic clock leaves of the TTL.
    public var expiresAt: Int64
    public var ttlSeconds: Int
}

/// A new lease: its id (shown once) and its facts.
public struct LeaseGrant: Sendable {
    /// `svl_` + 43 base64url characters; only its keyed hash is kept.
    public var leaseID: String
    public var info: LeaseInfo
}

/// Why a lease operation was refused (VaultAPI maps each to a status).
public enum LeaseError: Error, Sendable, Equatable {
    /// Held by someone else, or in its lock-delay: `holder`, when it may be free (Unix ms), and
    /// whole seconds to wait.
    case busy(holder: String, expiresAt: Int64, retryAfter: Int)
    /// The lease id given is not the session's current one (expired, released, broken, never).
    case lost
    /// The session is exclusive and the request carries no lease id.
    case required
    /// Nothing is held on the session.
    case noLease
    /// The wait ended because the vault is shutting down or the session was revoked.
    case vault(VaultError)
}

/// The lease bounds and the lock-delay.
public struct LeaseSettings: Sendable, Equatable {
    public static let ttlRange = 5...300
    public static let defaultTTL = 15
    public static let waitRange = 0...60
    public static let maxHolderBytes = 256
    public static let lockDelayRange = 0...3600
    public static let defaultLockDelay = 15

    /// Seconds new acquisitions wait after a lease expired unreleased or was broken.
    public var lockDelaySeconds: Int

    public init(lockDelaySeconds: Int = LeaseSettings.defaultLockDelay) {
        self.lockDelaySeconds = lockDelaySeconds
    }
}

/// Counters for `/metrics`.
public struct LeaseStatistics: Sendable, Equatable {
    public var held = 0
    /// Acquisitions waiting (long polls) now.
    public var waiting = 0
    public var acquisitions: UInt64 = 0
    public var conflicts: UInt64 = 0
    public var expiries: UInt64 = 0
    public var breaks: UInt64 = 0
}

/// The leases in memory: the authority on who holds what, judged on the monotonic clock, with
/// the store as the copy a restart reads back. One process owns a vault file
/// (`VaultFileLock`), so this book is the only writer of the lease rows.
///
/// All state sits behind one lock; decisions (acquire, renew, release, expire, hand to a
/// waiter) are made inside it, atomically, and return the side effects (audit rows, store
/// writes, answers to waiters, timer ticks) that run after it is released.
final class LeaseBook: Sendable {
    struct Held: Sendable {
        var idHash: [UInt8]
        var epoch: Int64
        var holder: String
        var ttlSeconds: Int
        var acquiredAt: Int64
        /// Monotonic nanoseconds.
        var deadline: UInt64
    }

    enum Phase: Sendable {
        case free
        case held(Held)
        /// Lock-delay until the monotonic time, after the lease of `holder` expired or was broken.
        case delay(until: UInt64, holder: String)
    }

    /// A long-poll acquisition waiting for the session to become free.
    struct Waiter: Sendable {
        var id: UInt64
        var deadline: UInt64
        var request: Request
        var answer: @Sendable (Result<LeaseGrant, LeaseError>) -> Void
    }

    /// An acquisition's input, with the id already made and hashed.
    struct Request: Sendable {
        var leaseID: String
        var idHash: [UInt8]
        var holder: String
        var ttlSeconds: Int
        var context: RequestContext
    }

    struct Slot: Sendable {
        var exclusive = false
        var revoked = false
        /// The latest epoch issued (0: never).
        var epoch: Int64 = 0
        var phase = Phase.free
        var waiters: [Waiter] = []
    }

    /// Work to do once the lock is released.
    enum Effect: Sendable {
        case audit(action: String, name: String, context: RequestContext, outcome: String, detail: String?)
        /// An asynchronous lease-row write (expiry, end of a lock-delay).
        case persist(name: SessionName, epoch: Int64, state: LeaseRecord.State)
        /// A reserved acquisition to make durable, then answer.
        case grant(name: SessionName, held: Held, previousEpoch: Int64, request: Request,
                   answer: @Sendable (Result<LeaseGrant, LeaseError>) -> Void)
        case answer(@Sendable (Result<LeaseGrant, LeaseError>) -> Void, LeaseError)
        case tick(name: SessionName, at: UInt64)
    }

    struct State: Sendable {
        var slots: [String: Slot] = [:]
        var loaded = false
        var nextWaiter: UInt64 = 0
        var settings = LeaseSettings()
        var statistics = LeaseStatistics()
        /// Shared leases (``SharedLeaseRepository``): acquisitions waiting here now, and the
        /// latest expiry timer set per session (database milliseconds), so older timers stay idle.
        var sharedWaiting = 0
        var sharedTimers: [String: Int64] = [:]
    }

    let state = Locked(State())
    /// Serialises the first load of the stored leases.
    let loading = Locked()
    /// Timer ticks and the asynchronous lease-row writes.
    let queue = DispatchQueue(label: "session-vault.leases")
    /// Monotonic nanoseconds.
    let monotonic: @Sendable () -> UInt64

    init(monotonic: @escaping @Sendable () -> UInt64 = { DispatchTime.now().uptimeNanoseconds }) {
        self.monotonic = monotonic
    }

    static let nanosecondsPerSecond: UInt64 = 1_000_000_000

    /// Moves `slot` along the clock: a held lease past its deadline expires into its
    /// lock-delay, a lock-delay past its end frees the slot (and the first waiter gets it).
    static func advance(_ slot: inout Slot, name: SessionName, now: UInt64, settings: LeaseSettings, statistics: inout LeaseStatistics,
                        effects: inout [Effect]) {
        if case .held(let held) = slot.phase, now >= held.deadline {
            statistics.expiries += 1
            let until = now &+ UInt64(settings.lockDelaySeconds) * nanosecondsPerSecond
            slot.phase = .delay(until: until, holder: held.holder)
            effects.append(.audit(action: "lease.expire", name: name.rawValue, context: RequestContext(accessor: nil, remoteAddress: nil),
                                  outcome: "ok", detail: "epoch=\(held.epoch)"))
            effects.append(.persist(name: name, epoch: held.epoch, state: .delay))
            effects.append(.tick(name: name, at: until))
        }
        if case .delay(let until, _) = slot.phase, now >= until {
            slot.phase = .free
            effects.append(.persist(name: name, epoch: slot.epoch, state: .free))
        }
        // Waiters whose wait ended.
        if !slot.waiters.isEmpty {
            let busy = busyError(slot, now: now)
            slot.waiters.removeAll { waiter in
                guard now >= waiter.deadline else { return false }
                statistics.conflicts += 1
                effects.append(.audit(action: "lease.acquire", name: name.rawValue, context: waiter.request.context,
                                      outcome: "refused", detail: "waited"))
                effects.append(.answer(waiter.answer, busy))
                return true
            }
        }
        if case .free = slot.phase, !slot.waiters.isEmpty, !slot.revoked {
            let waiter = slot.waiters.removeFirst()
            reserve(&slot, name: name, waiter.request, now: now, statistics: &statistics, answer: waiter.answer, effects: &effects)
        }
    }

    /// Takes a free slot for `request`: the next epoch, the deadline a TTL from now.
    static func reserve(_ slot: inout Slot, name: SessionName, _ request: Request, now: UInt64, statistics: inout LeaseStatistics,
                        answer: @escaping @Sendable (Result<LeaseGrant, LeaseError>) -> Void, effects: inout [Effect]) {
        let previous = slot.epoch
        let held = Held(idHash: request.idHash, epoch: previous + 1, holder: request.holder, ttlSeconds: request.ttlSeconds,
                        acquiredAt: WallClock.nowMilliseconds(),
                        deadline: now &+ UInt64(request.ttlSeconds) * nanosecondsPerSecond)
        slot.epoch = held.epoch
        slot.phase = .held(held)
        statistics.acquisitions += 1
        effects.append(.grant(name: name, held: held, previousEpoch: previous, request: request, answer: answer))
    }

    /// The 409 for a slot that is not free now.
    static func busyError(_ slot: Slot, now: UInt64) -> LeaseError {
        let wall = WallClock.nowMilliseconds()
        switch slot.phase {
        case .held(let held):
            return .busy(holder: held.holder, expiresAt: wallTime(held.deadline, now: now, wall: wall),
                         retryAfter: seconds(until: held.deadline, now: now))
        case .delay(let until, let holder):
            return .busy(holder: holder, expiresAt: wallTime(until, now: now, wall: wall), retryAfter: seconds(until: until, now: now))
        case .free:
            return .busy(holder: "", expiresAt: wall, retryAfter: 1)
        }
    }

    /// The Unix milliseconds of monotonic time `t`.
    static func wallTime(_ t: UInt64, now: UInt64, wall: Int64) -> Int64 {
        t >= now ? wall + Int64((t - now) / 1_000_000) : wall - Int64((now - t) / 1_000_000)
    }

    /// Whole seconds from `now` to `t`, rounded up, at least 1.
    static func seconds(until t: UInt64, now: UInt64) -> Int {
        guard t > now else { return 1 }
        return max(1, Int((t - now + nanosecondsPerSecond - 1) / nanosecondsPerSecond))
    }

    /// What an acquisition or renewal answers about `held`.
    static func info(_ held: Held, now: UInt64) -> LeaseInfo {
        LeaseInfo(epoch: held.epoch, holder: held.holder, acquiredAt: held.acquiredAt,
                  expiresAt: wallTime(held.deadline, now: now, wall: WallClock.nowMilliseconds()), ttlSeconds: held.ttlSeconds)
    }
}
