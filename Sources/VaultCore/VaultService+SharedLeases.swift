// SPDX-License-Identifier: Apache-2.0
import Primitives
import Dispatch

/// Leases decided by the database (``SharedLeaseRepository``: PostgreSQL, where several vault
/// instances share one database; `docs/postgres.md`). The API and its answers are those of
/// `VaultService+Leases.swift`, but no lease lives in this process: every acquisition, renewal,
/// release, break and fence is one transaction (or one read) judged by the database's clock,
/// so a lease held through one instance is held for all of them. What stays here: the long
/// polls waiting on this instance (they ask again every ``sharedLeasePollMilliseconds``, or
/// when the lease's time runs out if that is sooner), a timer per lease granted or renewed
/// here that stores its expiry on time, and this instance's counters.
extension VaultService {
    /// How often a waiting acquisition asks the database again: a release through another
    /// instance reaches it within this.
    static let sharedLeasePollMilliseconds: Int64 = 200

    private var lockDelaySeconds: Int { leases.state.withLock { $0.settings.lockDelaySeconds } }

    /// Runs `operation` in the database; an expiry it found is counted and audited (once:
    /// only one transaction finds it).
    private func sharedChange(_ shared: any SharedLeaseRepository, _ operation: SharedLeaseOperation, _ name: SessionName)
        throws(VaultError) -> SharedLeaseChange
    {
        let change: SharedLeaseChange
        do { change = try shared.changeSharedLease(operation, in: name, lockDelaySeconds: lockDelaySeconds) } catch {
            throw VaultError(error)
        }
        if let epoch = change.expiredEpoch {
            leases.state.withLock { $0.statistics.expiries += 1 }
            audit("lease.expire", name.rawValue, RequestContext(accessor: nil, remoteAddress: nil), outcome: "ok", detail: "epoch=\(epoch)")
        }
        return change
    }

    private func sharedView(_ shared: any SharedLeaseRepository, _ name: SessionName) throws(LeaseError) -> SharedLeaseView? {
        do { return try shared.sharedLease(of: name, lockDelaySeconds: lockDelaySeconds) } catch { throw .vault(VaultError(error)) }
    }

    private static func info(_ view: SharedLeaseView) -> LeaseInfo {
        LeaseInfo(epoch: view.epoch, holder: view.holder, acquiredAt: view.acquiredAt, expiresAt: view.deadline, ttlSeconds: view.ttlSeconds)
    }

    /// The 409 of a lease that is held or in its lock-delay.
    private static func busy(_ view: SharedLeaseView) -> LeaseError {
        let left = max(0, view.deadline - view.now)
        return .busy(holder: view.holder, expiresAt: view.deadline, retryAfter: max(1, Int((left + 999) / 1000)))
    }

    // MARK: Acquire

    /// ``acquireLease(_:holder:ttlSeconds:waitSeconds:context:completion:)`` in the database.
    /// The first attempt runs on the caller's thread (an unknown or revoked session, a failing
    /// database throw); a wait asks again from a timer, holding no thread.
    func acquireSharedLease(
        _ shared: any SharedLeaseRepository, _ name: SessionName, _ request: LeaseBook.Request, waitSeconds: Int,
        completion: @escaping @Sendable (Result<LeaseGrant, LeaseError>) -> Void
    ) throws(VaultError) {
        let waitUntil = leases.monotonic() &+ UInt64(waitSeconds) * LeaseBook.nanosecondsPerSecond
        let change = try sharedChange(shared, Self.acquisition(request), name)
        if change.done {
            grantShared(name, change.view, request, completion)
        } else if waitSeconds == 0 {
            refuseShared(name, change.view, request, detail: nil, completion)
        } else {
            leases.state.withLock { $0.sharedWaiting += 1 }
            askAgain(shared, name, request, waitUntil: waitUntil, after: change.view, completion)
        }
    }

    private static func acquisition(_ request: LeaseBook.Request) -> SharedLeaseOperation {
        .acquire(idHash: request.idHash, holder: request.holder, ttlSeconds: request.ttlSeconds)
    }

    /// The next attempt of a waiting acquisition: when the lease's time runs out, at most
    /// ``sharedLeasePollMilliseconds`` from now, never after the wait ends (the last attempt
    /// is made then).
    private func askAgain(
        _ shared: any SharedLeaseRepository, _ name: SessionName, _ request: LeaseBook.Request, waitUntil: UInt64,
        after view: SharedLeaseView, _ completion: @escaping @Sendable (Result<LeaseGrant, LeaseError>) -> Void
    ) {
        let now = leases.monotonic()
        let untilFree = UInt64(max(10, min(view.deadline - view.now, Self.sharedLeasePollMilliseconds))) * 1_000_000
        let at = min(waitUntil, now &+ untilFree)
        DispatchQueue.global().asyncAfter(deadline: DispatchTime(uptimeNanoseconds: at)) { [weak self] in
            guard let self else { return }
            let change: SharedLeaseChange
            do throws(VaultError) { change = try sharedChange(shared, Self.acquisition(request), name) } catch {
                leases.state.withLock { $0.sharedWaiting -= 1 }
                audit("lease.acquire", name.rawValue, request.context, outcome: "error")
                completion(.failure(.vault(error)))
                return
            }
            if change.done {
                leases.state.withLock { $0.sharedWaiting -= 1 }
                grantShared(name, change.view, request, completion)
            } else if leases.monotonic() >= waitUntil {
                leases.state.withLock { $0.sharedWaiting -= 1 }
                refuseShared(name, change.view, request, detail: "waited", completion)
            } else {
                askAgain(shared, name, request, waitUntil: waitUntil, after: change.view, completion)
            }
        }
    }

    private func grantShared(
        _ name: SessionName, _ view: SharedLeaseView, _ request: LeaseBook.Request,
        _ completion: @escaping @Sendable (Result<LeaseGrant, LeaseError>) -> Void
    ) {
        leases.state.withLock { $0.statistics.acquisitions += 1 }
        audit("lease.acquire", name.rawValue, request.context, outcome: "ok", detail: "epoch=\(view.epoch)")
        expireOnTime(name, view)
        completion(.success(LeaseGrant(leaseID: request.leaseID, info: Self.info(view))))
    }

    private func refuseShared(
        _ name: SessionName, _ view: SharedLeaseView, _ request: LeaseBook.Request, detail: String?,
        _ completion: @escaping @Sendable (Result<LeaseGrant, LeaseError>) -> Void
    ) {
        leases.state.withLock { $0.statistics.conflicts += 1 }
        audit("lease.acquire", name.rawValue, request.context, outcome: "refused", detail: detail)
        completion(.failure(Self.busy(view)))
    }

    /// Stores the expiry of the lease granted or renewed here when its deadline passes (the
    /// next operation on the session would find it anyway; this makes its audit row and
    /// counter timely). Only the latest timer of a session acts.
    private func expireOnTime(_ name: SessionName, _ view: SharedLeaseView) {
        guard let shared = sharedLeases else { return }
        let deadline = view.deadline
        leases.state.withLock { $0.sharedTimers[name.rawValue] = deadline }
        let delay = Int(max(0, view.deadline - view.now) + 20)
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(delay)) { [weak self] in
            guard let self else { return }
            let latest = leases.state.withLock { s -> Bool in
                guard s.sharedTimers[name.rawValue] == deadline else { return false }
                s.sharedTimers[name.rawValue] = nil
                return true
            }
            if latest { _ = try? sharedChange(shared, .settle, name) }
        }
    }

    // MARK: Renew, release, break, read

    func renewSharedLease(
        _ shared: any SharedLeaseRepository, _ name: SessionName, _ hash: [UInt8], ttlSeconds: Int?, context: RequestContext
    ) throws(LeaseError) -> LeaseInfo {
        let change: SharedLeaseChange
        do { change = try sharedChange(shared, .renew(idHash: hash, ttlSeconds: ttlSeconds), name) } catch { throw .vault(error) }
        guard change.done else {
            audit("lease.renew", name.rawValue, context, outcome: "lost")
            throw .lost
        }
        expireOnTime(name, change.view)
        return Self.info(change.view)
    }

    func releaseSharedLease(_ shared: any SharedLeaseRepository, _ name: SessionName, _ hash: [UInt8], context: RequestContext)
        throws(LeaseError)
    {
        let epoch = try sharedEpoch(shared, .release(idHash: hash), name)
        guard let epoch else {
            audit("lease.release", name.rawValue, context, outcome: "lost")
            throw .lost
        }
        audit("lease.release", name.rawValue, context, outcome: "ok", detail: "epoch=\(epoch)")
    }

    func breakSharedLease(_ shared: any SharedLeaseRepository, _ name: SessionName, context: RequestContext) throws(LeaseError) {
        guard let epoch = try sharedEpoch(shared, .breakHeld, name) else { throw .noLease }
        leases.state.withLock { $0.statistics.breaks += 1 }
        audit("lease.break", name.rawValue, context, outcome: "ok", detail: "epoch=\(epoch)")
    }

    /// The epoch `operation` ended, or `nil` when it did nothing.
    private func sharedEpoch(_ shared: any SharedLeaseRepository, _ operation: SharedLeaseOperation, _ name: SessionName)
        throws(LeaseError) -> Int64?
    {
        do {
            let change = try sharedChange(shared, operation, name)
            return change.done ? change.view.epoch : nil
        } catch {
            throw .vault(error)
        }
    }

    func sharedLeaseInfo(_ shared: any SharedLeaseRepository, _ name: SessionName) throws(LeaseError) -> LeaseInfo {
        guard let view = try sharedView(shared, name) else { throw .vault(.notFound) }
        guard view.state == .held else { throw .noLease }
        return Self.info(view)
    }

    // MARK: Fencing

    /// ``checkLease(_:leaseID:)`` by the database: a lease id must be the lease held now by its
    /// clock; without one the session must not be exclusive (as stored now).
    func checkSharedLease(_ shared: any SharedLeaseRepository, _ name: SessionName, leaseID: String?) throws(LeaseError) {
        var hash: [UInt8]?
        if let leaseID {
            do { hash = try keyring().tokenHasher.hash(leaseID) } catch { throw .vault(error) }
        }
        let view = try sharedView(shared, name)
        guard let hash else {
            if view?.exclusive == true { throw .required }
            return
        }
        guard let view, view.holds(hash) else { throw .lost }
    }

    func isSharedExclusive(_ shared: any SharedLeaseRepository, _ name: SessionName) -> Bool {
        guard let view = try? shared.sharedLease(of: name, lockDelaySeconds: lockDelaySeconds) else { return false }
        return view.exclusive
    }

    /// A revoked session's lease ends (its waiters here find the session revoked at their next attempt).
    func endSharedLeaseOnRevoke(_ shared: any SharedLeaseRepository, _ name: SessionName, _ context: RequestContext) {
        guard let change = try? sharedChange(shared, .endOnRevoke, name), change.done else { return }
        audit("lease.release", name.rawValue, context, outcome: "revoked", detail: "epoch=\(change.view.epoch)")
    }

    /// This instance's counters; `held` counts the leases held now in the database (every instance's).
    func sharedLeaseStatistics(_ shared: any SharedLeaseRepository) -> LeaseStatistics {
        let held = (try? shared.sharedLeasesHeld()) ?? 0
        return leases.state.withLock { s in
            var statistics = s.statistics
            statistics.held = held
            statistics.waiting = s.sharedWaiting
            return statistics
        }
    }
}
