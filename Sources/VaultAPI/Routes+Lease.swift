// SPDX-License-Identifier: Apache-2.0
import Dispatch
public import HTTPServer
import VaultCore
import Primitives
import Logging

/// `/v1/sessions/{name}/lease` (`docs/leases.md`): acquire (with a long poll and an export in
/// the same answer), renew, release or break, read; and the fence every export and write of a
/// session passes (``fence(_:_:)``).
extension VaultRouter {
    /// The request header carrying a lease id.
    static let leaseHeader = "Session-Vault-Lease"

    /// The problem types of leases: `urn:session-vault:problem:` + `lease_lost`, `lease_held`
    /// or `lease_required` (every other problem is `about:blank`).
    public static let leaseTypePrefix = "urn:session-vault:problem:"

    static let acquireFields: Set<String> = ["holder", "ttl_seconds", "wait_seconds"]
    static let renewFields: Set<String> = ["ttl_seconds"]

    // MARK: Acquire

    /// `POST`: acquires now, or answers once the lease is free or `wait_seconds` ran out. No
    /// thread waits: the release, the expiry, or the wait's timer answers.
    func acquireLease(
        _ request: HTTPRequest, _ name: SessionName, _ principal: Principal,
        completion: @escaping @Sendable (Result<@Sendable () -> HTTPResponse, Problem>) -> Void
    ) throws(Problem) {
        try authorize(principal, .lease, session: name.rawValue, request)
        let format = try leaseExportFormat(request)
        if format != nil { try authorize(principal, .export, session: name.rawValue, request) }
        let body = try jsonBody(request)
        let reader = try JSONObjectReader(body, allowed: Self.acquireFields)
        let holder = try reader.required("holder", reader.string)
        guard !holder.isEmpty, holder.utf8.count <= LeaseSettings.maxHolderBytes else {
            throw Problem.invalid("holder", "must be 1-\(LeaseSettings.maxHolderBytes) bytes")
        }
        let ttl = Int(try reader.int("ttl_seconds", in: Self.int64Range(LeaseSettings.ttlRange)) ?? Int64(LeaseSettings.defaultTTL))
        let wait = Int(try reader.int("wait_seconds", in: Self.int64Range(LeaseSettings.waitRange)) ?? 0)
        let context = context(principal, request)
        do {
            try vault.acquireLease(name, holder: holder, ttlSeconds: ttl, waitSeconds: wait, context: context) { [self] result in
                switch result {
                case .success(let grant):
                    // The export runs where the response is built (the connection's queue), not
                    // on the writer's thread that committed the lease.
                    completion(.success({ [self] in granted(grant, name: name, format: format, request: request, principal) }))
                case .failure(let error):
                    completion(.failure(leaseProblem(error, name: name)))
                }
            }
        } catch {
            throw problem(for: error, name: name)
        }
    }

    /// The same acquisition answered synchronously (only when the route is not answered later).
    func acquireLeaseNow(_ request: HTTPRequest, _ name: SessionName, _ principal: Principal) throws(Problem) -> HTTPResponse {
        let answered = DispatchSemaphore(value: 0)
        let box = Locked<Result<@Sendable () -> HTTPResponse, Problem>?>(nil)
        try acquireLease(request, name, principal) { result in
            box.withLock { $0 = result }
            answered.signal()
        }
        answered.wait()
        guard let result = box.withLock({ $0 }) else { throw Problem.tableMistake("no answer") }
        switch result {
        case .success(let make): return make()
        case .failure(let problem): throw problem
        }
    }

    /// The 201 of a new lease, with the session string when `?export=` asked for it (if the
    /// export fails, the lease is released and the export's problem answered).
    private func granted(_ grant: LeaseGrant, name: SessionName, format: ExportFormat?, request: HTTPRequest, _ principal: Principal)
        -> HTTPResponse
    {
        var members = Self.leaseJSON(grant.info)
        members.insert(("lease_id", .string(grant.leaseID)), at: 0)
        if let format {
            do throws(VaultError) {
                guard case .string(let text) = try vault.export(name, as: format, context: context(principal, request)) else {
                    throw .invalid(field: "export", reason: "must be a string format")
                }
                members.append(("session_string", .string(text)))
            } catch {
                try? vault.releaseLease(name, leaseID: grant.leaseID, context: context(principal, request))
                return problemResponse(problem(for: error, name: name))
            }
        }
        return json(.object(members), status: 201, headers: [("Location", "/v1/sessions/\(name.rawValue)/lease")])
    }

    /// `?export=FORMAT`: a string format (`pyrogram`, `telethon`), else 422.
    private func leaseExportFormat(_ request: HTTPRequest) throws(Problem) -> ExportFormat? {
        guard let text = try query(request, "export") else { return nil }
        guard let format = ExportFormat(rawValue: text), !format.isFile else {
            let strings = ExportFormat.allCases.filter { !$0.isFile }.map(\.rawValue).joined(separator: ", ")
            throw Problem.invalid("export", "must be a string format: one of \(strings)")
        }
        return format
    }

    /// The server's deadline for an acquisition, answered later: the longest wait plus a
    /// margin (the wait's own timer answers first); the handler deadline for everything else.
    public func answerDeadline(of request: HTTPRequest) -> Duration? {
        guard request.method == .post, case .found(let index, _) = table.match(request.method, request.path),
            table.routes[index].pattern.text == Self.leasePattern
        else { return nil }
        return .seconds(LeaseSettings.waitRange.upperBound + 5)
    }

    static let leasePattern = "/v1/sessions/{name}/lease"

    // MARK: Renew, release, break, read

    /// `PUT`: renews with the lease id, optionally with a new TTL.
    func renewLease(_ request: HTTPRequest, _ name: SessionName, _ principal: Principal) throws(Problem) -> HTTPResponse {
        try authorize(principal, .lease, session: name.rawValue, request)
        guard let leaseID = try leaseID(request) else {
            throw Problem.badRequest("\(Self.leaseHeader): is required to renew a lease", field: Self.leaseHeader)
        }
        var ttl: Int?
        if !request.body.isEmpty {
            let reader = try JSONObjectReader(try jsonBody(request), allowed: Self.renewFields)
            ttl = try reader.int("ttl_seconds", in: Self.int64Range(LeaseSettings.ttlRange)).map { Int($0) }
        }
        do {
            let info = try vault.renewLease(name, leaseID: leaseID, ttlSeconds: ttl, context: context(principal, request))
            return json(.object(Self.leaseJSON(info)))
        } catch {
            throw leaseProblem(error, name: name)
        }
    }

    /// `DELETE`: releases with the lease id; without it, breaks (root or admin).
    func releaseLease(_ request: HTTPRequest, _ name: SessionName, _ principal: Principal) throws(Problem) -> HTTPResponse {
        do {
            if let leaseID = try leaseID(request) {
                try authorize(principal, .lease, session: name.rawValue, request)
                try vault.releaseLease(name, leaseID: leaseID, context: context(principal, request))
                return noContent()
            }
            try authorize(principal, .admin, session: nil, request)
            try vault.breakLease(name, context: context(principal, request))
            log.info("lease broken", metadata: ["name": "\(name.rawValue)", "accessor": "\(principal.accessor)"])
            return noContent()
        } catch let error as LeaseError {
            throw leaseProblem(error, name: name)
        } catch let problem as Problem {
            throw problem
        } catch {
            throw Problem.tableMistake("unexpected error")
        }
    }

    /// `GET`: the lease held, never its id.
    func getLease(_ request: HTTPRequest, _ name: SessionName, _ principal: Principal) throws(Problem) -> HTTPResponse {
        try authorize(principal, .lease, session: name.rawValue, request)
        do {
            return json(.object(Self.leaseJSON(try vault.lease(of: name))))
        } catch {
            throw leaseProblem(error, name: name)
        }
    }

    // MARK: Fencing

    /// The fence of an export or a write of `name`: a `Session-Vault-Lease` header, when
    /// given, must name the session's current lease (400 for a malformed one, 409 for a stale
    /// one); an exclusive session needs it (409 without). Checked before anything changes.
    func fence(_ request: HTTPRequest, _ name: SessionName) throws(Problem) {
        let leaseID = try leaseID(request)
        do { try vault.checkLease(name, leaseID: leaseID) } catch { throw leaseProblem(error, name: name) }
    }

    /// The lease id of the request's header: nil when absent, 400 when malformed.
    func leaseID(_ request: HTTPRequest) throws(Problem) -> String? {
        guard let value = request.headers[Self.leaseHeader] else { return nil }
        guard VaultService.isWellFormedLeaseID(value) else {
            throw Problem.badRequest("\(Self.leaseHeader): must be a lease id (svl_ and 43 base64url characters)",
                                     field: Self.leaseHeader)
        }
        return value
    }

    // MARK: Encoding

    /// The members every lease answer shares.
    static func leaseJSON(_ info: LeaseInfo) -> [(String, JSONValue)] {
        [
            ("epoch", .int(info.epoch)), ("holder", .string(info.holder)),
            ("acquired_at", .string(Timestamp.rfc3339(milliseconds: info.acquiredAt))),
            ("expires_at", .string(Timestamp.rfc3339(milliseconds: info.expiresAt))),
            ("ttl_seconds", .int(Int64(info.ttlSeconds))),
        ]
    }

    /// The one mapping from lease refusals to problems.
    func leaseProblem(_ error: LeaseError, name: SessionName) -> Problem {
        switch error {
        case .busy(let holder, let expiresAt, let retryAfter):
            var p = Problem(status: 409, title: "Conflict",
                            detail: "lease: session '\(name.rawValue)' is leased by another holder or in its lock-delay; retry after \(retryAfter) s",
                            field: "lease", headers: [("Retry-After", String(retryAfter))])
            p.type = Self.leaseTypePrefix + "lease_held"
            p.members = [("holder", .string(holder)), ("expires_at", .string(Timestamp.rfc3339(milliseconds: expiresAt)))]
            return p
        case .lost:
            var p = Problem(status: 409, title: "Conflict",
                            detail: "\(Self.leaseHeader): not the current lease of session '\(name.rawValue)' (expired, released, broken or never acquired)",
                            field: Self.leaseHeader)
            p.type = Self.leaseTypePrefix + "lease_lost"
            return p
        case .required:
            var p = Problem(status: 409, title: "Conflict",
                            detail: "\(Self.leaseHeader): session '\(name.rawValue)' is exclusive; send its current lease id",
                            field: Self.leaseHeader)
            p.type = Self.leaseTypePrefix + "lease_required"
            return p
        case .noLease:
            return Problem(status: 404, title: "Not Found", detail: "lease: session '\(name.rawValue)' has no lease held", field: "lease")
        case .vault(let error):
            return problem(for: error, name: name)
        }
    }

    /// The lease counters for `/metrics` (Prometheus text).
    func leaseMetrics() -> String {
        let s = vault.leaseStatistics()
        var out = "# HELP sv_leases_held Session leases held now.\n# TYPE sv_leases_held gauge\nsv_leases_held \(s.held)\n"
        out += "# HELP sv_lease_waiters Acquisitions waiting for a lease now.\n# TYPE sv_lease_waiters gauge\nsv_lease_waiters \(s.waiting)\n"
        for (name, help, value) in [
            ("sv_lease_acquisitions_total", "Leases acquired.", s.acquisitions),
            ("sv_lease_conflicts_total", "Acquisitions refused because the lease was held or in its lock-delay.", s.conflicts),
            ("sv_lease_expiries_total", "Leases that expired without a release.", s.expiries),
            ("sv_lease_breaks_total", "Leases broken by root or admin.", s.breaks),
        ] {
            out += "# HELP \(name) \(help)\n# TYPE \(name) counter\n\(name) \(value)\n"
        }
        return out
    }

    static func int64Range(_ r: ClosedRange<Int>) -> ClosedRange<Int64> { Int64(r.lowerBound)...Int64(r.upperBound) }
}
