// SPDX-License-Identifier: Apache-2.0
import Primitives
import Dispatch

/// Session leases (`docs/leases.md`): one holder per session, judged on the vault's monotonic
/// clock, stored so a restart keeps them, fenced by the lease id on exclusive sessions. On an
/// engine several instances share (``SharedLeaseRepository``: PostgreSQL) each method hands over
/// to `VaultService+SharedLeases.swift`, where the database decides.
extension VaultService {
    /// Prefix of every lease id.
    public static let leaseIDPrefix = "svl_"

    /// True when `text` has the shape of a lease id (`svl_` + 43 base64url characters, the
    /// shape of a token's random part).
    public static func isWellFormedLeaseID(_ text: some StringProtocol) -> Bool {
        guard text.utf8.count == TokenHasher.tokenCharacterCount, text.hasPrefix(leaseIDPrefix) else { return false }
        return TokenHasher.isWellFormedToken(TokenHasher.tokenPrefix + text.dropFirst(leaseIDPrefix.count))
    }

    /// Sets the lock-delay (configuration, before serving).
    public func configureLeases(_ settings: LeaseSettings) {
        leases.state.withLock { $0.settings = settings }
    }

    /// Reads the stored leases back (at start): a held lease gets its whole TTL afresh, a
    /// lock-delay its whole delay. Later calls do nothing.
    /// - Throws: ``VaultError/storage(_:)``.
    public func restoreLeases() throws(VaultError) {
        if leases.state.withLock({ $0.loaded }) { return }
        if sharedLeases != nil {
            // The database decides (VaultService+SharedLeases.swift): nothing to read back.
            leases.state.withLock { $0.loaded = true }
            return
        }
        try leases.loading.withLock { () throws(VaultError) in
            if leases.state.withLock({ $0.loaded }) { return }
            let rows = try storedLeases()
            let now = leases.monotonic()
            var ticks: [(SessionName, UInt64)] = []
            leases.state.withLock { s in
                for row in rows {
                    var slot = LeaseBook.Slot(exclusive: row.exclusive, revoked: row.revoked, epoch: row.lease.epoch)
                    switch row.lease.state {
                    case .free:
                        break
                    case .held:
                        let deadline = now &+ UInt64(max(0, row.lease.ttlSeconds)) * LeaseBook.nanosecondsPerSecond
                        slot.phase = .held(LeaseBook.Held(
                            idHash: row.lease.idHash, epoch: row.lease.epoch, holder: row.lease.holder,
                            ttlSeconds: row.lease.ttlSeconds, acquiredAt: row.lease.acquiredAt, deadline: deadline))
                        ticks.append((row.name, deadline))
                    case .delay:
                        let until = now &+ UInt64(s.settings.lockDelaySeconds) * LeaseBook.nanosecondsPerSecond
                        slot.phase = .delay(until: until, holder: row.lease.holder)
                        ticks.append((row.name, until))
                    }
                    s.slots[row.name.rawValue] = slot
                }
                s.loaded = true
            }
            for (name, at) in ticks { schedule(name, at: at) }
        }
    }

    private func storedLeases() throws(VaultError) -> [LeaseSessionState] {
        do { return try store.leaseStates() } catch { throw VaultError(error) }
    }

    // MARK: Acquire

    /// Acquires the lease of `name` for `holder`, or waits up to `waitSeconds` for it (no
    /// thread waits: the release, the expiry or the end of the wait answers). `completion`
    /// gets the grant or the refusal, on any thread, possibly before this returns.
    /// - Throws: ``VaultError/notFound``, ``VaultError/revoked``, ``VaultError/sealed(reason:)``,
    ///   storage errors: checked before anything changes.
    public func acquireLease(
        _ name: SessionName, holder: String, ttlSeconds: Int, waitSeconds: Int, context: RequestContext,
        completion: @escaping @Sendable (Result<LeaseGrant, LeaseError>) -> Void
    ) throws(VaultError) {
        try restoreLeases()
        let hasher = try keyring().tokenHasher
        if sharedLeases == nil, try session(name).isRevoked { throw .revoked }
        let leaseID: String
        do { leaseID = Self.leaseIDPrefix + (try TokenHasher.generateToken()).dropFirst(TokenHasher.tokenPrefix.count) } catch {
            throw .integrity
        }
        let request = LeaseBook.Request(leaseID: leaseID, idHash: hasher.hash(leaseID), holder: holder, ttlSeconds: ttlSeconds,
                                        context: context)
        if let shared = sharedLeases {
            try acquireSharedLease(shared, name, request, waitSeconds: waitSeconds, completion: completion)
            return
        }
        withSlot(name) { slot, now, settings, statistics, effects in
            LeaseBook.advance(&slot, name: name, now: now, settings: settings, statistics: &statistics, effects: &effects)
            if case .free = slot.phase, slot.waiters.isEmpty {
                LeaseBook.reserve(&slot, name: name, request, now: now, statistics: &statistics, answer: completion, effects: &effects)
            } else if waitSeconds > 0 {
                let deadline = now &+ UInt64(waitSeconds) * LeaseBook.nanosecondsPerSecond
                slot.waiters.append(LeaseBook.Waiter(id: 0, deadline: deadline, request: request, answer: completion))
                effects.append(.tick(name: name, at: deadline))
            } else {
                statistics.conflicts += 1
                effects.append(.audit(action: "lease.acquire", name: name.rawValue, context: context, outcome: "refused", detail: nil))
                effects.append(.answer(completion, LeaseBook.busyError(slot, now: now)))
            }
        }
    }

    // MARK: Renew, release, break, read

    /// Renews the lease `leaseID` of `name` for another TTL (`ttlSeconds`, or its own).
    /// - Throws: ``LeaseError/lost`` unless `leaseID` is the current lease.
    public func renewLease(_ name: SessionName, leaseID: String, ttlSeconds: Int?, context: RequestContext) throws(LeaseError) -> LeaseInfo {
        if let shared = sharedLeases {
            return try renewSharedLease(shared, name, try sharedHash(leaseID), ttlSeconds: ttlSeconds, context: context)
        }
        let hash = try leaseHash(name, leaseID)
        let outcome: (LeaseInfo, Bool)? = withSlot(name) { slot, now, settings, statistics, effects in
            LeaseBook.advance(&slot, name: name, now: now, settings: settings, statistics: &statistics, effects: &effects)
            guard case .held(var held) = slot.phase, ConstantTime.equals(held.idHash, hash) else {
                effects.append(.audit(action: "lease.renew", name: name.rawValue, context: context, outcome: "lost", detail: nil))
                return nil
            }
            let changed = ttlSeconds.map { $0 != held.ttlSeconds } ?? false
            if let ttlSeconds { held.ttlSeconds = ttlSeconds }
            held.deadline = now &+ UInt64(held.ttlSeconds) * LeaseBook.nanosecondsPerSecond
            slot.phase = .held(held)
            effects.append(.tick(name: name, at: held.deadline))
            return (LeaseBook.info(held, now: now), changed)
        }
        guard let (info, changed) = outcome else { throw .lost }
        if changed {
            do { try store.setLease(in: name, epoch: info.epoch, state: .held, ttlSeconds: info.ttlSeconds) } catch {
                throw .vault(VaultError(error))
            }
        }
        return info
    }

    /// Releases the lease `leaseID` of `name`: the next acquisition is immediate.
    /// - Throws: ``LeaseError/lost`` unless `leaseID` is the current lease.
    public func releaseLease(_ name: SessionName, leaseID: String, context: RequestContext) throws(LeaseError) {
        if let shared = sharedLeases { return try releaseSharedLease(shared, name, try sharedHash(leaseID), context: context) }
        let hash = try leaseHash(name, leaseID)
        let epoch: Int64? = withSlot(name) { slot, now, settings, statistics, effects in
            LeaseBook.advance(&slot, name: name, now: now, settings: settings, statistics: &statistics, effects: &effects)
            guard case .held(let held) = slot.phase, ConstantTime.equals(held.idHash, hash) else {
                effects.append(.audit(action: "lease.release", name: name.rawValue, context: context, outcome: "lost", detail: nil))
                return nil
            }
            slot.phase = .free
            effects.append(.audit(action: "lease.release", name: name.rawValue, context: context, outcome: "ok",
                                  detail: "epoch=\(held.epoch)"))
            // A waiter takes it now.
            LeaseBook.advance(&slot, name: name, now: now, settings: settings, statistics: &statistics, effects: &effects)
            return held.epoch
        }
        guard let epoch else { throw .lost }
        do { try store.setLease(in: name, epoch: epoch, state: .free, ttlSeconds: nil) } catch { throw .vault(VaultError(error)) }
    }

    /// Breaks the lease of `name` (root or admin, checked by the caller): new acquisitions wait
    /// for the lock-delay, so a holder that is alive has time to notice and stop.
    /// - Throws: ``LeaseError/noLease`` when nothing is held.
    public func breakLease(_ name: SessionName, context: RequestContext) throws(LeaseError) {
        if let shared = sharedLeases { return try breakSharedLease(shared, name, context: context) }
        try requireLeaseSession(name)
        let epoch: Int64? = withSlot(name) { slot, now, settings, statistics, effects in
            LeaseBook.advance(&slot, name: name, now: now, settings: settings, statistics: &statistics, effects: &effects)
            guard case .held(let held) = slot.phase else { return nil }
            statistics.breaks += 1
            let until = now &+ UInt64(settings.lockDelaySeconds) * LeaseBook.nanosecondsPerSecond
            slot.phase = .delay(until: until, holder: held.holder)
            effects.append(.audit(action: "lease.break", name: name.rawValue, context: context, outcome: "ok", detail: "epoch=\(held.epoch)"))
            effects.append(.tick(name: name, at: until))
            return held.epoch
        }
        guard let epoch else { throw .noLease }
        do { try store.setLease(in: name, epoch: epoch, state: .delay, ttlSeconds: nil) } catch { throw .vault(VaultError(error)) }
    }

    /// The lease held on `name` (never its id).
    /// - Throws: ``LeaseError/noLease`` when nothing is held; ``VaultError/notFound``.
    public func lease(of name: SessionName) throws(LeaseError) -> LeaseInfo {
        if let shared = sharedLeases { return try sharedLeaseInfo(shared, name) }
        try requireLeaseSession(name)
        let info: LeaseInfo? = withSlot(name) { slot, now, settings, statistics, effects in
            LeaseBook.advance(&slot, name: name, now: now, settings: settings, statistics: &statistics, effects: &effects)
            guard case .held(let held) = slot.phase else { return nil }
            return LeaseBook.info(held, now: now)
        }
        guard let info else { throw .noLease }
        return info
    }

    // MARK: Fencing

    /// The fence of an export or a write: with a lease id, it must be the current lease of
    /// `name` (exclusive or not); without one, the session must not be exclusive.
    /// - Throws: ``LeaseError/lost`` (a stale id), ``LeaseError/required`` (none, on an exclusive session).
    public func checkLease(_ name: SessionName, leaseID: String?) throws(LeaseError) {
        if let shared = sharedLeases { return try checkSharedLease(shared, name, leaseID: leaseID) }
        do { try restoreLeases() } catch { throw .vault(error) }
        guard let leaseID else {
            if leases.state.withLock({ $0.slots[name.rawValue]?.exclusive ?? false }) { throw .required }
            return
        }
        let hash: [UInt8]
        do { hash = try keyring().tokenHasher.hash(leaseID) } catch { throw .vault(error) }
        let current: Bool = withSlot(name) { slot, now, settings, statistics, effects in
            LeaseBook.advance(&slot, name: name, now: now, settings: settings, statistics: &statistics, effects: &effects)
            guard case .held(let held) = slot.phase else { return false }
            return ConstantTime.equals(held.idHash, hash)
        }
        if !current { throw .lost }
    }

    /// Whether exports and writes of `name` need its lease id.
    public func isExclusive(_ name: SessionName) -> Bool {
        if let shared = sharedLeases { return isSharedExclusive(shared, name) }
        return (try? restoreLeases()) != nil && leases.state.withLock { $0.slots[name.rawValue]?.exclusive ?? false }
    }

    /// Marks `name` exclusive or not, durably before returning. Turning it on takes effect in
    /// memory first (exports without a lease are refused from then on), off only once stored.
    /// - Throws: ``VaultError/notFound``, ``VaultError/revoked``, storage errors.
    public func setExclusive(_ exclusive: Bool, for name: SessionName, context: RequestContext) throws(VaultError) {
        try restoreLeases()
        // Shared leases read the flag from the database at every fence: nothing to mark here.
        let before = sharedLeases == nil ? markExclusive(exclusive ? true : nil, name) : false
        do {
            try store.setExclusive(exclusive, for: name)
        } catch {
            if sharedLeases == nil { _ = markExclusive(before, name) }
            throw VaultError(error)
        }
        if sharedLeases == nil { _ = markExclusive(exclusive, name) }
        audit("session.exclusive", name.rawValue, context, outcome: "ok", detail: exclusive ? "on" : "off")
    }

    /// ``setExclusive(_:for:context:)`` without blocking (a create answered after its commit);
    /// `completion` runs on the store's writer thread.
    public func setExclusive(
        _ exclusive: Bool, for name: SessionName, context: RequestContext,
        completion: @escaping @Sendable (Result<Void, VaultError>) -> Void
    ) {
        do { try restoreLeases() } catch {
            completion(.failure(error))
            return
        }
        let marks = sharedLeases == nil
        let before = marks ? markExclusive(exclusive ? true : nil, name) : false
        store.setExclusive(exclusive, for: name) { [self] result in
            switch result {
            case .success:
                if marks { _ = markExclusive(exclusive, name) }
                audit("session.exclusive", name.rawValue, context, outcome: "ok", detail: exclusive ? "on" : "off")
                completion(.success(()))
            case .failure(let error):
                if marks { _ = markExclusive(before, name) }
                completion(.failure(VaultError(error)))
            }
        }
    }

    /// Counters and the leases held now.
    public func leaseStatistics() -> LeaseStatistics {
        if let shared = sharedLeases { return sharedLeaseStatistics(shared) }
        let now = leases.monotonic()
        return leases.state.withLock { s in
            var statistics = s.statistics
            statistics.held = s.slots.values.reduce(0) { count, slot in
                if case .held(let held) = slot.phase, held.deadline > now { return count + 1 }
                return count
            }
            statistics.waiting = s.slots.values.reduce(0) { $0 + $1.waiters.count }
            return statistics
        }
    }

    /// A revoked session's lease ends (no lock-delay: nothing can be acquired on it again),
    /// and its waiters are answered.
    func endLeaseOnRevoke(_ name: SessionName, _ context: RequestContext) {
        if let shared = sharedLeases { return endSharedLeaseOnRevoke(shared, name, context) }
        guard (try? restoreLeases()) != nil else { return }
        withSlot(name) { slot, _, _, _, effects in
            slot.revoked = true
            slot.exclusive = false
            if case .held(let held) = slot.phase {
                effects.append(.audit(action: "lease.release", name: name.rawValue, context: context, outcome: "revoked",
                                      detail: "epoch=\(held.epoch)"))
            }
            if case .free = slot.phase {} else { effects.append(.persist(name: name, epoch: slot.epoch, state: .free)) }
            slot.phase = .free
            for waiter in slot.waiters { effects.append(.answer(waiter.answer, .vault(.revoked))) }
            slot.waiters = []
        }
    }

    /// Runs `purge` (the removal of a revoked session's row) with the lease book consistent: the
    /// lease writes still queued (a revoke's) land before it, and the session's slot is dropped
    /// after it, so a session created again under the name starts without the old epoch.
    func purgingLease<T>(_ name: SessionName, _ purge: () throws(VaultError) -> T) throws(VaultError) -> T {
        leases.queue.sync {}
        let result = try purge()
        _ = leases.state.withLock { $0.slots.removeValue(forKey: name.rawValue) }
        return result
    }

    // MARK: Plumbing

    /// Sets the in-memory flag (`nil`: leave it); returns what it was.
    private func markExclusive(_ exclusive: Bool?, _ name: SessionName) -> Bool {
        leases.state.withLock { s in
            let before = s.slots[name.rawValue]?.exclusive ?? false
            if let exclusive { s.slots[name.rawValue, default: LeaseBook.Slot()].exclusive = exclusive }
            return before
        }
    }

    /// 404 for an unknown session.
    private func requireLeaseSession(_ name: SessionName) throws(LeaseError) {
        do {
            try restoreLeases()
            _ = try session(name)
        } catch {
            throw .vault(error)
        }
    }

    /// The keyed hash of `leaseID` (shared leases: the database finds an unknown session).
    private func sharedHash(_ leaseID: String) throws(LeaseError) -> [UInt8] {
        do { return try keyring().tokenHasher.hash(leaseID) } catch { throw .vault(error) }
    }

    /// The keyed hash of `leaseID`, after checking that `name` exists.
    private func leaseHash(_ name: SessionName, _ leaseID: String) throws(LeaseError) -> [UInt8] {
        try requireLeaseSession(name)
        do { return try keyring().tokenHasher.hash(leaseID) } catch { throw .vault(error) }
    }

    /// Runs `body` on the slot of `name` under the book's lock, then its effects.
    @discardableResult
    private func withSlot<T>(
        _ name: SessionName,
        _ body: (inout LeaseBook.Slot, UInt64, LeaseSettings, inout LeaseStatistics, inout [LeaseBook.Effect]) -> T
    ) -> T {
        let now = leases.monotonic()
        var effects: [LeaseBook.Effect] = []
        let result = leases.state.withLock { s in
            var slot = s.slots[name.rawValue] ?? LeaseBook.Slot()
            let result = body(&slot, now, s.settings, &s.statistics, &effects)
            s.slots[name.rawValue] = slot
            return result
        }
        perform(effects)
        return result
    }

    private func perform(_ effects: [LeaseBook.Effect]) {
        for effect in effects {
            switch effect {
            case .audit(let action, let name, let context, let outcome, let detail):
                audit(action, name, context, outcome: outcome, detail: detail)
            case .persist(let name, let epoch, let state):
                leases.queue.async { [store] in _ = try? store.setLease(in: name, epoch: epoch, state: state, ttlSeconds: nil) }
            case .answer(let answer, let error):
                answer(.failure(error))
            case .tick(let name, let at):
                schedule(name, at: at)
            case .grant(let name, let held, let previous, let request, let answer):
                grant(name, held, previous: previous, request, answer)
            }
        }
    }

    /// Makes a reserved acquisition durable (compare-and-set on the epoch), then answers it;
    /// a failed write gives the slot back.
    private func grant(
        _ name: SessionName, _ held: LeaseBook.Held, previous: Int64, _ request: LeaseBook.Request,
        _ answer: @escaping @Sendable (Result<LeaseGrant, LeaseError>) -> Void
    ) {
        let record = LeaseRecord(state: .held, epoch: held.epoch, idHash: held.idHash, holder: held.holder,
                                 ttlSeconds: held.ttlSeconds, acquiredAt: held.acquiredAt)
        store.acquireLease(record, in: name, ifEpoch: previous) { [self] result in
            if case .success(true) = result {
                audit("lease.acquire", name.rawValue, request.context, outcome: "ok", detail: "epoch=\(held.epoch)")
                schedule(name, at: held.deadline)
                answer(.success(LeaseGrant(leaseID: request.leaseID, info: LeaseBook.info(held, now: leases.monotonic()))))
                return
            }
            let error: VaultError
            switch result {
            case .failure(let e): error = VaultError(e)
            case .success: error = .storage(.conflict(field: "epoch"))
            }
            withSlot(name) { slot, _, _, statistics, _ in
                if case .held(let current) = slot.phase, current.epoch == held.epoch {
                    slot.phase = .free
                    slot.epoch = previous
                    statistics.acquisitions -= 1
                }
            }
            audit("lease.acquire", name.rawValue, request.context, outcome: "error")
            answer(.failure(.vault(error)))
        }
    }

    /// Re-examines the slot of `name` at monotonic time `at` (expiry, end of a lock-delay or
    /// of a wait).
    private func schedule(_ name: SessionName, at: UInt64) {
        leases.queue.asyncAfter(deadline: DispatchTime(uptimeNanoseconds: at &+ 1_000_000)) { [weak self] in
            guard let self else { return }
            withSlot(name) { slot, now, settings, statistics, effects in
                LeaseBook.advance(&slot, name: name, now: now, settings: settings, statistics: &statistics, effects: &effects)
            }
        }
    }
}
