// SPDX-License-Identifier: Apache-2.0
import Primitives
import Dispatch

/// A session's lease as stored: who holds it under which epoch, or the lock-delay after it
/// expired or was broken. Only what a restart needs: timing is judged in memory on the
/// monotonic clock (``LeaseBook``), and a restart counts a held lease's whole TTL, or a
/// lock-delay, afresh from the moment it is read back.
public struct LeaseRecord: Sendable, Equatable {
    /// Where the lease stands.
    public enum State: String, Sendable, CaseIterable {
        /// Nobody holds it (the epoch is kept: it never repeats).
        case free
        /// Held by ``LeaseRecord/holder`` under ``LeaseRecord/epoch``.
        case held
        /// Expired or broken: new acquisitions wait for the lock-delay.
        case delay
    }

    public var state: State
    /// The epoch of the latest acquisition (0: never acquired). Increases by one per
    /// acquisition and never repeats.
    public var epoch: Int64
    /// The keyed hash of the lease id (``TokenHasher``); empty unless ``state`` is `held`.
    public var idHash: [UInt8]
    /// The holder's free text (empty when free).
    public var holder: String
    /// The TTL in seconds.
    public var ttlSeconds: Int
    /// When the lease was acquired, Unix milliseconds.
    public var acquiredAt: Int64

    public init(state: State, epoch: Int64, idHash: [UInt8] = [], holder: String = "", ttlSeconds: Int = 0, acquiredAt: Int64 = 0) {
        self.state = state
        self.epoch = epoch
        self.idHash = idHash
        self.holder = holder
        self.ttlSeconds = ttlSeconds
        self.acquiredAt = acquiredAt
    }
}

/// The lease facts of one session: its `exclusive` flag and its lease row.
public struct LeaseSessionState: Sendable, Equatable {
    public var name: SessionName
    /// Exports and writes need the current lease id.
    public var exclusive: Bool
    /// Whether the session is revoked (a tombstone).
    public var revoked: Bool
    /// The stored lease; `free` with epoch 0 when it was never acquired.
    public var lease: LeaseRecord

    public init(name: SessionName, exclusive: Bool, revoked: Bool, lease: LeaseRecord) {
        self.name = name
        self.exclusive = exclusive
        self.revoked = revoked
        self.lease = lease
    }
}

/// Session leases and the `exclusive` flag (schema version 3). Every lease write is a
/// compare-and-set on the epoch read, so writes that arrive late (an expiry persisted after a
/// newer acquisition) change nothing. The lease id is never stored, only its keyed hash.
public protocol LeaseRepository: Sendable {
    /// Every session whose lease was ever acquired or that is exclusive (restored at start).
    /// - Throws: ``StorageError`` when the database fails.
    func leaseStates() throws(StorageError) -> [LeaseSessionState]

    /// The lease facts of one session (tombstones included), or `nil` when there is no such session.
    /// - Throws: ``StorageError`` when the database fails.
    func leaseState(of name: SessionName) throws(StorageError) -> LeaseSessionState?

    /// Stores `lease` (state `held`, epoch `expectedEpoch + 1`) if the stored epoch is still
    /// `expectedEpoch`, without blocking: `completion` gets `true` once committed, `false` when
    /// the epoch moved (nothing written). Runs on the store's writer thread (cheap, no
    /// synchronous store writes).
    /// - Fails with: ``StorageError/notFound``; ``StorageError/revoked``;
    ///   ``StorageError/invalidArgument(field:reason:)`` for a lease that is not `held` at the next epoch.
    func acquireLease(
        _ lease: LeaseRecord, in name: SessionName, ifEpoch expectedEpoch: Int64,
        completion: @escaping @Sendable (Result<Bool, StorageError>) -> Void)

    /// Sets the state of the lease at `epoch` (`free` after a release or a lock-delay, `delay`
    /// after an expiry or a break, `held` with a new TTL after a renewal that changed it).
    /// The hash, holder and acquisition time are kept for `held`, cleared otherwise.
    /// - Returns: `false` when the stored epoch is another (nothing written).
    /// - Throws: ``StorageError/notFound``.
    @discardableResult
    func setLease(in name: SessionName, epoch: Int64, state: LeaseRecord.State, ttlSeconds: Int?) throws(StorageError) -> Bool

    /// Marks a live session exclusive or not.
    /// - Throws: ``StorageError/notFound``; ``StorageError/revoked``.
    func setExclusive(_ exclusive: Bool, for name: SessionName) throws(StorageError)

    /// ``setExclusive(_:for:)`` without blocking; `completion` runs on the writer thread.
    func setExclusive(
        _ exclusive: Bool, for name: SessionName, completion: @escaping @Sendable (Result<Void, StorageError>) -> Void)
}

extension LeaseRepository {
    /// ``acquireLease(_:in:ifEpoch:completion:)``, waiting for the commit (tests, tools; not
    /// on a thread that must not block).
    public func acquireLease(_ lease: LeaseRecord, in name: SessionName, ifEpoch expectedEpoch: Int64) throws(StorageError) -> Bool {
        let done = Completion<Result<Bool, StorageError>>()
        acquireLease(lease, in: name, ifEpoch: expectedEpoch) { done.finish($0) }
        guard let result = done.wait() else { throw .closed }
        return try result.get()
    }
}

/// A value handed from one thread to a waiting one.
final class Completion<T: Sendable>: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    private let value = Locked<T?>(nil)

    func finish(_ result: T) {
        value.withLock { $0 = result }
        semaphore.signal()
    }

    func wait() -> T? {
        semaphore.wait()
        return value.withLock { $0 }
    }
}
