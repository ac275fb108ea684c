// SPDX-License-Identifier: Apache-2.0
import HTTPServer
import Logging
import Primitives
import VaultCore

extension VaultRouter {
    // MARK: Health, readiness, metrics (no auth, no secrets, no session names)

    func health() -> HTTPResponse {
        if serverState.isDraining {
            return HTTPResponse(status: HTTPStatus(code: 503), text: "draining")
        }
        return HTTPResponse(status: .ok, text: "ok")
    }

    func readiness() -> HTTPResponse {
        let sealed = vault.sealedReason != nil
        let draining = serverState.isDraining
        var storageOK = true
        do { _ = try vault.store.countSessions() } catch { storageOK = false }
        // A full disk leaves reads working (ready, but not writable); a database file removed
        // under the running vault does not (not ready).
        let health = vault.store.health()
        let ready = !sealed && !draining && storageOK && !health.failed
        var members: [(String, JSONValue)] = [
            ("ready", .bool(ready)), ("engine", .string(info.engine)), ("fallback", .bool(info.fallbackReason != nil)),
            ("fallback_reason", info.fallbackReason.map { .string($0) } ?? .null), ("sealed", .bool(sealed)),
            ("draining", .bool(draining)), ("writable", .bool(health.writable)),
        ]
        if let reason = health.reason { members.append(("writable_reason", .string(reason))) }
        if let reason = vault.sealedReason { members.append(("sealed_reason", .string(reason))) }
        if !storageOK { members.append(("storage", .string("unavailable"))) }
        return json(.object(members), status: ready ? 200 : 503)
    }

    func metricsResponse() -> HTTPResponse {
        var gauges: [(name: String, help: String, labels: String, value: Double)] = []
        if let counts = try? vault.store.countSessions() {
            gauges.append((name: "sv_sessions", help: "Vaulted sessions by state.", labels: "state=\"active\"", value: Double(counts.active)))
            gauges.append((name: "sv_sessions", help: "Vaulted sessions by state.", labels: "state=\"revoked\"", value: Double(counts.revoked)))
        }
        gauges.append((name: "sv_storage_engine", help: "Storage engine in use (1 for the active one).",
                       labels: "engine=\"\(info.engine)\"", value: 1))
        gauges.append((name: "sv_storage_fallback", help: "1 when the vault fell back to memory storage.", labels: "",
                       value: info.fallbackReason == nil ? 0 : 1))
        gauges.append((name: "sv_sealed", help: "1 when the vault is sealed.", labels: "", value: vault.sealedReason == nil ? 0 : 1))
        gauges.append((name: "sv_storage_writable", help: "1 when the storage takes writes.", labels: "",
                       value: vault.store.health().writable ? 1 : 0))
        if let terms = try? vault.keyTerms() {
            gauges.append((name: "sv_key_term", help: "Current data-key term.", labels: "", value: Double(terms.current)))
        }
        gauges.append((name: "sv_uptime_seconds", help: "Seconds since start.", labels: "",
                       value: Double((WallClock.nowMilliseconds() - info.startedAt) / 1000)))
        let text = metrics.render(gauges: gauges) + leaseMetrics()
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8")
        headers.add(name: "Cache-Control", value: "no-store")
        return HTTPResponse(status: .ok, headers: headers, body: Array(text.utf8))
    }

    // MARK: System (root or admin)

    func status(_ request: HTTPRequest, _ principal: Principal) throws(Problem) -> HTTPResponse {
        try authorize(principal, .admin, session: nil, request)
        let counts: SessionCounts
        let tokens: [TokenRecord]
        do { counts = try vault.store.countSessions() } catch { throw problem(for: VaultError(error), name: nil) }
        do { tokens = try vault.tokens() } catch { throw problem(for: error, name: nil) }
        let keys: JSONValue = (try? vault.keyTerms()).map(Self.keyJSON) ?? .null
        let health = vault.store.health()
        return json(.object([
            ("version", .string(info.version)),
            ("sealed", .bool(vault.sealedReason != nil)),
            ("storage", .object([
                ("engine", .string(info.engine)), ("path", info.path.map { .string($0) } ?? .null),
                ("fallback", .bool(info.fallbackReason != nil)),
                ("fallback_reason", info.fallbackReason.map { .string($0) } ?? .null),
                ("synchronous", .string(info.synchronous)),
                ("writable", .bool(health.writable)),
                ("writable_reason", health.reason.map { .string($0) } ?? .null),
            ])),
            ("keys", keys),
            ("counts", .object([
                ("sessions", .int(Int64(counts.active))), ("revoked", .int(Int64(counts.revoked))),
                ("tokens", .int(Int64(tokens.filter { $0.revokedAt == nil }.count))),
            ])),
            ("uptime_seconds", .int((WallClock.nowMilliseconds() - info.startedAt) / 1000)),
        ]))
    }

    static func keyJSON(_ k: (current: UInt32, terms: [KeyTerm])) -> JSONValue {
        .object([
            ("current_term", .int(Int64(k.current))),
            ("terms", .array(k.terms.map { .object([("term", .int(Int64($0.term))), ("created_at", .string(Timestamp.rfc3339(milliseconds: $0.createdAt)))]) })),
        ])
    }

    func rotate(_ request: HTTPRequest, _ principal: Principal) throws(Problem) -> HTTPResponse {
        try authorize(principal, .admin, session: nil, request)
        do {
            _ = try vault.rotate(context: context(principal, request))
            log.info("key term rotated", metadata: ["accessor": "\(principal.accessor)"])
            return json(Self.keyJSON(try vault.keyTerms()))
        } catch {
            throw problem(for: error, name: nil)
        }
    }

    func rewrap(_ request: HTTPRequest, _ principal: Principal) throws(Problem) -> HTTPResponse {
        try authorize(principal, .admin, session: nil, request)
        do {
            let n = try vault.rewrap(context: context(principal, request))
            log.info("secrets rewrapped", metadata: ["count": "\(n)", "accessor": "\(principal.accessor)"])
            return json(.object([("rewrapped", .int(Int64(n))), ("current_term", .int(Int64(try vault.keyTerms().current)))]))
        } catch {
            throw problem(for: error, name: nil)
        }
    }

    func auditLog(_ request: HTTPRequest, _ principal: Principal) throws(Problem) -> HTTPResponse {
        try authorize(principal, .admin, session: nil, request)
        let limit = Int(try intQuery(request, "limit", in: 1...1000) ?? 100)
        let before = try intQuery(request, "before", in: 1...Int64.max)
        var filter = AuditFilter()
        if let session = try query(request, "session") { filter.session = try validQueryName(session, "session").rawValue }
        if let accessor = try query(request, "accessor") {
            do throws(Problem) { try validAccessor(accessor) } catch {
                throw Problem.badRequest("accessor: must be 1-64 lower-case letters, digits and '_' (root, import, acc_…)", field: "accessor")
            }
            filter.accessor = accessor
        }
        if let action = try query(request, "action") {
            guard AuditAction.known.contains(action) else {
                throw Problem.invalid("action", "unknown action; one of \(AuditAction.known.joined(separator: ", "))")
            }
            filter.action = action
        }
        let events: [AuditRecord]
        do {
            events = filter.isEmpty
                ? try vault.auditEvents(before: before, limit: limit)
                : try vault.auditEvents(before: before, limit: limit, matching: filter)
        } catch {
            throw problem(for: error, name: nil)
        }
        let items: [JSONValue] = events.map { r in
            let e = r.event
            return .object([
                ("id", .int(r.id)), ("time", .string(Timestamp.rfc3339(milliseconds: e.time))),
                ("accessor", e.accessor.map { .string($0) } ?? .null), ("action", .string(e.action)),
                ("session", e.sessionName.map { .string($0) } ?? .null),
                ("remote_address", e.remoteAddress.map { .string($0) } ?? .null),
                ("outcome", .string(e.outcome)), ("detail", e.detail.map { .string($0) } ?? .null),
            ])
        }
        let next: JSONValue = events.count == limit ? (events.last.map { .int($0.id) } ?? .null) : .null
        return json(.object([("items", .array(items)), ("next_before", next)]))
    }

    // MARK: Tokens (root only)

    static let tokenFields: Set<String> = ["display_name", "operations", "sessions", "prefixes", "ttl_seconds"]

    /// What a token request asks for.
    struct TokenRequest {
        var policy: AccessPolicy
        var displayName: String?
        var ttlSeconds: Int64?
    }

    func createToken(_ request: HTTPRequest, _ principal: Principal) throws(Problem) -> HTTPResponse {
        try requireRoot(principal, request)
        let asked = try Self.tokenRequest(try jsonBody(request))
        let issued: IssuedToken
        do {
            issued = try vault.createToken(policy: asked.policy, displayName: asked.displayName, ttlSeconds: asked.ttlSeconds,
                                           context: context(principal, request))
        } catch {
            throw problem(for: error, name: nil)
        }
        log.info("token created", metadata: ["accessor": "\(issued.record.accessor)"])
        var value = Self.tokenJSON(issued.record)
        if case .object(var members) = value {
            members.insert(("token", .string(issued.token)), at: 1)
            value = .object(members)
        }
        return json(value, status: 201, headers: [("Location", "/v1/tokens/\(issued.record.accessor)")])
    }

    /// Checks a `POST /v1/tokens` body (also a bootstrap file's token entry).
    static func tokenRequest(_ body: JSONValue) throws(Problem) -> TokenRequest {
        let r = try JSONObjectReader(body, allowed: Self.tokenFields)
        let opNames = try r.required("operations") { (k) throws(Problem) in try r.strings(k, maxCount: AccessPolicy.Operation.allCases.count) }
        guard !opNames.isEmpty else { throw Problem.invalid("operations", "give at least one of read, export, write, admin, lease") }
        var ops = Set<AccessPolicy.Operation>()
        for n in opNames {
            guard let op = AccessPolicy.Operation(rawValue: n) else {
                throw Problem.invalid("operations", "each must be one of read, export, write, admin, lease")
            }
            ops.insert(op)
        }
        let sessions = try r.strings("sessions", maxCount: 256) ?? []
        for s in sessions {
            do { _ = try SessionName(s) } catch { throw Problem.invalid("sessions", "each must be a valid session name") }
        }
        let prefixes = try r.strings("prefixes", maxCount: 64) ?? []
        for p in prefixes where p.isEmpty || p.utf8.count > 64 || !p.utf8.allSatisfy(SessionName.isAllowed) {
            throw Problem.invalid("prefixes", "each must be 1-64 characters of letters, digits, '.', '_' and '-'")
        }
        let onlyAdmin = ops == [.admin]
        if sessions.isEmpty && prefixes.isEmpty && !onlyAdmin {
            throw Problem.invalid("sessions", "give the sessions or prefixes the token covers")
        }
        let ttl = try r.int("ttl_seconds", in: 1...31_536_000)
        let displayName = try r.string("display_name")
        if let displayName, displayName.utf8.count > 128 || displayName.unicodeScalars.contains(where: { $0.value < 0x20 }) {
            throw Problem.invalid("display_name", "at most 128 printable characters")
        }
        return TokenRequest(policy: AccessPolicy(operations: ops, sessions: Set(sessions), prefixes: prefixes),
                            displayName: displayName, ttlSeconds: ttl)
    }

    /// `GET /v1/tokens?limit=&after=`: pages in creation order, with the session list's
    /// parameters (`limit` 1-1000, default 100; `after` the last accessor of the previous page,
    /// given back as `next_after`).
    func listTokens(_ request: HTTPRequest, _ principal: Principal) throws(Problem) -> HTTPResponse {
        try requireRoot(principal, request)
        let limit = Int(try intQuery(request, "limit", in: 1...1000) ?? 100)
        let after = try query(request, "after")
        if let after {
            do throws(Problem) { try validAccessor(after) } catch {
                throw Problem.badRequest("after: must be an accessor (1-64 lower-case letters, digits and '_')", field: "after")
            }
        }
        let page: TokenPage
        do {
            page = try vault.tokens(after: after, limit: limit)
        } catch {
            if case .invalid(field: "after", _) = error {
                throw Problem.badRequest("after: no token has this accessor", field: "after")
            }
            throw problem(for: error, name: nil)
        }
        return json(.object([
            ("items", .array(page.tokens.map(Self.tokenJSON))),
            ("next_after", page.nextCursor.map { .string($0) } ?? .null),
        ]))
    }

    func getToken(_ request: HTTPRequest, _ accessor: String, _ principal: Principal) throws(Problem) -> HTTPResponse {
        try requireRoot(principal, request)
        try validAccessor(accessor)
        do {
            return json(Self.tokenJSON(try vault.token(accessor: accessor)))
        } catch {
            throw error == .notFound ? Problem.notFound("token '\(accessor)' does not exist") : problem(for: error, name: nil)
        }
    }

    func revokeToken(_ request: HTTPRequest, _ accessor: String, _ principal: Principal) throws(Problem) -> HTTPResponse {
        try requireRoot(principal, request)
        try validAccessor(accessor)
        do {
            _ = try vault.revokeToken(accessor: accessor, context: context(principal, request))
            log.info("token revoked", metadata: ["accessor": "\(accessor)"])
            return noContent()
        } catch {
            throw error == .notFound ? Problem.notFound("token '\(accessor)' does not exist") : problem(for: error, name: nil)
        }
    }

    func validAccessor(_ accessor: String) throws(Problem) {
        guard (1...64).contains(accessor.utf8.count),
            accessor.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == UInt8(ascii: "_") })
        else {
            throw Problem.badRequest("accessor: must be 1-64 lower-case letters, digits and '_'", field: "accessor")
        }
    }

    static func tokenJSON(_ t: TokenRecord) -> JSONValue {
        let policy = VaultService.policy(of: t) ?? AccessPolicy(operations: [])
        return .object([
            ("accessor", .string(t.accessor)),
            ("display_name", t.displayName.map { .string($0) } ?? .null),
            ("operations", .array(policy.operations.sorted().map { .string($0.rawValue) })),
            ("sessions", .array(policy.sessions.sorted().map { .string($0) })),
            ("prefixes", .array(policy.prefixes.map { .string($0) })),
            ("created_at", .string(Timestamp.rfc3339(milliseconds: t.createdAt))),
            ("expires_at", t.expiresAt.map { .string(Timestamp.rfc3339(milliseconds: $0)) } ?? .null),
            ("revoked", .bool(t.revokedAt != nil)),
        ])
    }
}
