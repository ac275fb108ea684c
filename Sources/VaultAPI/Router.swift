// SPDX-License-Identifier: Apache-2.0
public import HTTPServer
public import Logging
public import VaultCore
import Dispatch

/// Facts about the running service that `/readyz`, `/metrics` and `/v1/sys/status` report.
public struct ServiceInfo: Sendable {
    /// `file` or `memory`.
    public var engine: String
    /// The database path for the file engine.
    public var path: String?
    /// Why the vault runs on memory although a file was asked for (nil when it is not a fallback).
    public var fallbackReason: String?
    /// `full` or `normal`.
    public var synchronous: String
    /// The service version.
    public var version: String
    /// Start time, Unix milliseconds.
    public var startedAt: Int64

    public init(engine: String, path: String?, fallbackReason: String?, synchronous: String, version: String, startedAt: Int64) {
        self.engine = engine
        self.path = path
        self.fallbackReason = fallbackReason
        self.synchronous = synchronous
        self.version = version
        self.startedAt = startedAt
    }
}

/// The session-vault HTTP API: routes every request to ``VaultService``, authenticates and
/// authorises `/v1`, maps every domain error to a status in one place, and records metrics.
///
/// Every route is one entry of ``routes`` (method, path pattern, placement, token, head check,
/// body, handler; the handlers live in `Routes+Thing.swift` files). Dispatch, the `404`/`405`
/// answers, the metrics labels, the server's placement question (``placement(of:)``) and the
/// checks made before a body is read (``responseBeforeBody(_:)``) all come from that table.
public final class VaultRouter: HTTPHandler {
    /// Largest JSON body accepted (the server's own limit is larger, for `.session` uploads).
    public static let maxJSONBodyBytes = 256 * 1024

    /// The API, one entry per method and path. Placement: `.loop` for reads that are a few
    /// microseconds of SQLite and AES (single reads, string exports, `/healthz`); a handler
    /// thread for every write (it waits for its group commit, an fsync with `synchronous=full`),
    /// the listings that can be long (1,000 sessions, 10,000 peers, the audit log) and the routes
    /// that count whole tables or list tokens; after the commit for a JSON create. A route with no
    /// placement runs on a handler thread.
    public static let routes: [Route] = [
        // Health, readiness, metrics (Routes+System.swift): no token, no secrets, no session names.
        Route(.get, "/healthz", placement: .loop, access: .open) { r, _ in r.health() },
        Route(.get, "/readyz", placement: .handlerThread, access: .open) { r, _ in r.readiness() },
        Route(.get, "/metrics", placement: .handlerThread, access: .open) { r, _ in r.metricsResponse() },

        // Sessions (Routes+Sessions.swift).
        Route(.get, "/v1/sessions", placement: .handlerThread) { r, c throws(Problem) in
            try r.listSessions(c.request, c.principal())
        },
        Route(
            .post, "/v1/sessions", placement: .afterCommit(unless: .sessionFileUpload), headCheck: .createsSession,
            body: .jsonOrSessionFile,
            later: { r, c, completion throws(Problem) in try r.createSession(c.request, c.principal(), completion: completion) }
        ) { r, c throws(Problem) in
            try r.createSession(c.request, c.principal())
        },
        Route(.get, "/v1/sessions/{name}", placement: .loop(unless: .storeMayWait)) { r, c throws(Problem) in
            try r.getSession(c.request, c.name(), c.principal())
        },
        Route(.patch, "/v1/sessions/{name}", placement: .handlerThread, headCheck: .writesSessionInPath, body: .json) {
            r, c throws(Problem) in try r.patchSession(c.request, c.name(), c.principal())
        },
        Route(.delete, "/v1/sessions/{name}", placement: .handlerThread) { r, c throws(Problem) in
            try r.deleteSession(c.request, c.name(), c.principal())
        },
        Route(.get, "/v1/sessions/{name}/export", placement: .loop(unless: .storeMayWait, .exportsAFile)) { r, c throws(Problem) in
            try r.exportSession(c.request, c.name(), c.principal())
        },
        Route(.get, "/v1/sessions/{name}/peers", placement: .handlerThread) { r, c throws(Problem) in
            try r.getPeers(c.request, c.name(), c.principal())
        },
        Route(.put, "/v1/sessions/{name}/peers", placement: .handlerThread, headCheck: .writesSessionInPath, body: .json) {
            r, c throws(Problem) in try r.putPeers(c.request, c.name(), c.principal())
        },

        // Update state (Routes+State.swift).
        Route(.get, "/v1/sessions/{name}/state", placement: .handlerThread) { r, c throws(Problem) in
            try r.getState(c.request, c.name(), c.principal())
        },
        Route(.put, "/v1/sessions/{name}/state", placement: .handlerThread, headCheck: .writesSessionInPath, body: .json) {
            r, c throws(Problem) in try r.putState(c.request, c.name(), c.principal())
        },
        Route(.delete, "/v1/sessions/{name}/state", placement: .handlerThread, headCheck: .writesSessionInPath) {
            r, c throws(Problem) in try r.deleteState(c.request, c.name(), c.principal())
        },
        // Leases (Routes+Lease.swift): an acquisition is answered later (a long poll holds no
        // thread), renewals and releases write on a handler thread, the read is memory only.
        Route(
            .post, "/v1/sessions/{name}/lease", placement: .afterCommit, body: .json,
            later: { r, c, completion throws(Problem) in try r.acquireLease(c.request, c.name(), c.principal(), completion: completion) }
        ) { r, c throws(Problem) in
            try r.acquireLeaseNow(c.request, c.name(), c.principal())
        },
        Route(.put, "/v1/sessions/{name}/lease", placement: .handlerThread, body: .json) { r, c throws(Problem) in
            try r.renewLease(c.request, c.name(), c.principal())
        },
        Route(.delete, "/v1/sessions/{name}/lease", placement: .handlerThread) { r, c throws(Problem) in
            try r.releaseLease(c.request, c.name(), c.principal())
        },
        Route(.get, "/v1/sessions/{name}/lease", placement: .loop(unless: .storeMayWait)) { r, c throws(Problem) in
            try r.getLease(c.request, c.name(), c.principal())
        },

        // Tokens (Routes+System.swift; root only).
        Route(.get, "/v1/tokens", placement: .handlerThread) { r, c throws(Problem) in try r.listTokens(c.request, c.principal()) },
        Route(.post, "/v1/tokens", placement: .handlerThread, body: .json) { r, c throws(Problem) in
            try r.createToken(c.request, c.principal())
        },
        Route(.get, "/v1/tokens/{accessor}", placement: .loop(unless: .storeMayWait)) { r, c throws(Problem) in
            try r.getToken(c.request, String(c.parameter("accessor") ?? ""), c.principal())
        },
        Route(.delete, "/v1/tokens/{accessor}", placement: .handlerThread) { r, c throws(Problem) in
            try r.revokeToken(c.request, String(c.parameter("accessor") ?? ""), c.principal())
        },

        // Audit and system (Routes+System.swift; admin).
        Route(.get, "/v1/audit", placement: .handlerThread) { r, c throws(Problem) in try r.auditLog(c.request, c.principal()) },
        Route(.get, "/v1/sys/status", placement: .handlerThread) { r, c throws(Problem) in try r.status(c.request, c.principal()) },
        Route(.post, "/v1/sys/rotate", placement: .handlerThread) { r, c throws(Problem) in try r.rotate(c.request, c.principal()) },
        Route(.post, "/v1/sys/rewrap", placement: .handlerThread) { r, c throws(Problem) in try r.rewrap(c.request, c.principal()) },

        // The root token's rotation (Routes+Lifecycle.swift; root only).
        Route(.post, "/v1/tokens/root/rotate", placement: .handlerThread) { r, c throws(Problem) in
            try r.rotateRootToken(c.request, c.principal())
        },
    ]

    let vault: VaultService
    let metrics: Metrics
    let throttle: AuthThrottle
    /// Whose `X-Forwarded-For` names the client (``TrustedProxies``); none by default.
    let trustedProxies: TrustedProxies
    let log: Logger
    let serverState: HTTPServerState
    let info: ServiceInfo
    /// ``routes`` and the routes given at creation, compiled.
    let table: RouteTable

    /// `routes`: more entries, served the same way after ``routes`` (the binary's black-box test
    /// routes under `/_test/`).
    public init(vault: VaultService, info: ServiceInfo, serverState: HTTPServerState, log: Logger,
                metrics: Metrics = Metrics(), throttle: AuthThrottle = AuthThrottle(), routes: [Route] = [],
                trustedProxies: TrustedProxies = .none) {
        self.vault = vault
        self.trustedProxies = trustedProxies
        self.info = info
        self.serverState = serverState
        self.log = log
        self.metrics = metrics
        self.throttle = throttle
        self.table = RouteTable(Self.routes + routes)
    }

    /// One request in, one response out. Never throws, never traps on input.
    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        let started = Self.monotonicNanoseconds()
        var label = "unmatched"
        var response: HTTPResponse
        do {
            let (route, matched) = try resolve(request, label: &label)
            response = try route.handler(self, matched)
        } catch {
            response = problemResponse(error)
        }
        finished(request, route: label, response, started: started)
        return response
    }

    /// Where the server runs `request`: its route's placement (``Route/placement``; none
    /// declared is a handler thread). A request no route matches is answered `404` or `405`
    /// from the table alone, on the loop.
    public func placement(of request: HTTPRequest) -> HTTPPlacement {
        guard case .found(let index, _) = table.match(request.method, request.path) else { return .inline }
        return table.routes[index].placement(of: request, in: self).http
    }

    /// Answers the requests placed ``Placement/afterCommit`` (a JSON create): checking, parsing
    /// and sealing run on the connection's thread, then the insert joins the writer's next group
    /// commit and the writer hands the result back, so no thread waits for the commit. Any other
    /// request is answered at once, as by ``handle(_:)``.
    public func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        let started = Self.monotonicNanoseconds()
        var label = "unmatched"
        var response: HTTPResponse
        do {
            let (route, matched) = try resolve(request, label: &label)
            if let later = route.later, route.placement(of: request, in: self) == .afterCommit {
                let routeLabel = label
                try later(self, matched) { [self] result in
                    // On the writer's thread: encoding happens on the connection's queue.
                    responder.respond { [self] in
                        let response: HTTPResponse
                        switch result {
                        case .success(let made): response = made()
                        case .failure(let problem): response = problemResponse(problem)
                        }
                        finished(request, route: routeLabel, response, started: started)
                        return response
                    }
                }
                return
            }
            response = try route.handler(self, matched)
        } catch {
            response = problemResponse(error)
        }
        finished(request, route: label, response, started: started)
        responder.respond(response)
    }


    /// Records a handled request: metrics, and a log line for a 5xx (or every request at debug).
    private func finished(_ request: HTTPRequest, route: String, _ response: HTTPResponse, started: UInt64) {
        let seconds = Double(Self.monotonicNanoseconds() - started) / 1e9
        metrics.observe(route: route, method: request.method.rawValue, status: response.status.code, seconds: seconds)
        // A 503 is a state the vault is in (sealed, draining, storage not writable), logged once
        // when it changes (ServiceRunner's watch), not on every probe or request it refuses.
        if response.status.code >= 500 && response.status.code != 503 {
            log.error("request failed", metadata: [
                "method": "\(request.method.rawValue)", "route": "\(route)", "status": "\(response.status.code)",
            ])
        } else {
            // The metadata is built only when debug lines are written (swift-log's autoclosures).
            log.debug("request", metadata: [
                "method": "\(request.method.rawValue)", "route": "\(route)", "status": "\(response.status.code)",
                "remote": "\(request.remoteAddress)",
            ])
        }
    }

    /// Answers a request that announces a body before the body is read (the server asks for
    /// every one; issue 14 item 4, docs/http.md §8): an unknown route (404), a wrong method (405),
    /// an invalid `{name}` (400), a throttled address (429), a sealed vault (503), a missing or
    /// invalid token (401), a token that may not do what the head already says (403, the route's
    /// ``HeadCheck``) or a body over the route's limit (413, its ``RequestBody``) is refused at
    /// once, and the server closes the connection without reading the body. These are the checks
    /// of a whole request, in the same order; authentication goes through ``authenticate(_:)``,
    /// so a refused token counts toward the failed-authentication throttle and is audited once.
    /// Cheap: one keyed hash and, for a token not seen before, one indexed read.
    public func responseBeforeBody(_ head: HTTPRequestHead) -> HTTPResponse? {
        let request = HTTPRequest(head: head, body: [])
        do {
            var label = ""
            let (route, matched) = try resolve(request, label: &label)
            try checkHead(route, matched, framing: head.framing)
            return nil
        } catch {
            metrics.observe(route: "preflight", method: request.method.rawValue, status: error.status, seconds: 0)
            return problemResponse(error)
        }
    }

    /// The route's ``HeadCheck`` and ``RequestBody`` limit.
    private func checkHead(_ route: Route, _ matched: RouteRequest, framing: HTTPBodyFraming) throws(Problem) {
        let request = matched.request
        switch route.headCheck {
        case .none:
            break
        case .writesSessionInPath:
            try authorize(try matched.principal(), .write, session: try matched.name().rawValue, request)
        case .createsSession:
            let principal = try matched.principal()
            if let type = Self.mediaType(request), Self.sqliteMediaTypes.contains(type),
                let raw = request.queryValue("name"), let name = try? SessionName(raw)
            {
                try authorize(principal, .write, session: name.rawValue, request)
            } else if !principal.policy.allows(.write) {
                try authorize(principal, .write, session: nil, request)
            }
        }
        guard case .contentLength(let length) = framing, length > Self.maxJSONBodyBytes else { return }
        switch route.body {
        case .any:
            return
        case .jsonOrSessionFile:
            if let type = Self.mediaType(request), Self.sqliteMediaTypes.contains(type) { return }
        case .json, .none:
            break
        }
        throw Problem(status: 413, title: "Content Too Large",
                      detail: "body: JSON bodies are limited to \(Self.maxJSONBodyBytes) bytes", field: "body")
    }

    // MARK: Dispatch

    /// Matches `request` in the table and makes the checks every route gets before its handler,
    /// in this order: 404, 405 (with `Allow`), a valid `{name}` (400), the token for a
    /// ``RouteAccess/token`` route (503 sealed, 401, 429). Sets `label` to the route's metrics
    /// label once the path matched.
    private func resolve(_ request: HTTPRequest, label: inout String) throws(Problem) -> (Route, RouteRequest) {
        let path = request.path
        switch table.match(request.method, path) {
        case .notFound:
            throw Problem.notFound("no such resource")
        case .methodNotAllowed(let index):
            let entry = table.paths[index]
            label = entry.pattern.text
            let method = request.method == .head ? HTTPMethod.get : request.method
            throw Problem(status: 405, title: "Method Not Allowed", detail: "method \(method.rawValue) is not allowed here",
                          headers: [("Allow", entry.allow)])
        case .found(let index, let range):
            let route = table.routes[index]
            label = route.label
            let base = path.base
            let utf8 = base.utf8
            let first = base[utf8.index(utf8.startIndex, offsetBy: range.lowerBound)..<utf8.index(utf8.startIndex, offsetBy: range.upperBound)]
            var name: SessionName?
            if route.pattern.hasSessionName {
                let text = route.pattern.firstParameter == "name" ? first : RouteRequest.segment(of: "name", in: route.pattern, path: path)
                name = try pathName(text ?? "")
            }
            let principal = route.access == .token ? try authenticate(request) : nil
            return (route, RouteRequest(request: request, pattern: route.pattern, first: first, sessionName: name, principalOrNil: principal))
        }
    }


    /// `path` split at every `/` (empty segments kept, as `split(separator:omittingEmptySubsequences: false)`
    /// would). The slashes are found in the base string's contiguous UTF-8 and the segments cut at
    /// byte offsets: stepping `Substring.UTF8View` indices one by one cost about 60 instructions a
    /// byte of path, and the substring's own contiguous view goes through a generic slice.
    static func pathSegments(_ path: Substring) -> [Substring] {
        var segments: [Substring] = []
        segments.reserveCapacity(6)
        var base = path.base
        let utf8 = base.utf8
        let lower = utf8.distance(from: utf8.startIndex, to: path.startIndex)
        let upper = utf8.distance(from: utf8.startIndex, to: path.endIndex)
        base.withUTF8 { bytes in
            var start = lower
            var offset = lower
            while offset < upper {
                if bytes[offset] == UInt8(ascii: "/") {
                    segments.append(path[utf8.index(utf8.startIndex, offsetBy: start)..<utf8.index(utf8.startIndex, offsetBy: offset)])
                    start = offset + 1
                }
                offset += 1
            }
            segments.append(path[utf8.index(utf8.startIndex, offsetBy: start)...])
        }
        return segments
    }

    private func pathName(_ segment: Substring) throws(Problem) -> SessionName {
        do {
            return try SessionName(String(segment))
        } catch {
            throw Problem(status: 400, title: "Bad Request", detail: "name: \(error.description.dropFirst("name: ".count))", field: "name")
        }
    }

    // MARK: Authentication and authorisation

    /// Resolves the bearer token; 401 for a missing, malformed or unknown token, 429 instead
    /// when the address has failed too often, 503 when sealed.
    ///
    /// The token is checked before the throttle is asked: a valid token is never refused for
    /// its address's failures (a shared NAT or proxy, or an attacker on it, cannot lock the
    /// valid users out), and a bad one costs the same keyed hash and look-up whether its
    /// address is throttled or not (429 and 401 come after the same work).
    func authenticate(_ request: HTTPRequest) throws(Problem) -> Principal {
        if let reason = vault.sealedReason {
            throw Problem(status: 503, title: "Service Unavailable", detail: "the vault is sealed: \(reason)",
                          headers: [("Retry-After", "30")])
        }
        guard let header = request.headers["Authorization"], let token = Self.bearerToken(header) else {
            return try denied(request, "authorization: a Bearer token is required")
        }
        let principal: Principal?
        do { principal = try vault.authenticate(token) } catch { throw problem(for: error, name: nil) }
        guard let principal else {
            return try denied(request, "authorization: the token is not valid (unknown, expired or revoked)")
        }
        return principal
    }

    /// A failed authentication: counted by the throttle (429 once the address is over its
    /// limit, else 401), in metrics, and in the audit log's aggregated `auth.denied` rows (one
    /// per address per period, not one per failure: ``VaultService/auditAuthFailure(remoteAddress:throttled:)``).
    private func denied(_ request: HTTPRequest, _ detail: String) throws(Problem) -> Principal {
        let address = clientAddress(request)
        let wait = throttle.failure(from: address)
        vault.auditAuthFailure(remoteAddress: address, throttled: wait != nil)
        if let wait {
            metrics.increment("sv_auth_throttled_total")
            throw Problem(status: 429, title: "Too Many Requests",
                          detail: "too many failed authentication attempts from this address; retry later",
                          headers: [("Retry-After", String(wait))])
        }
        metrics.increment("sv_auth_failures_total")
        throw Problem(status: 401, title: "Unauthorized", detail: detail, field: "authorization",
                      headers: [("WWW-Authenticate", "Bearer realm=\"session-vault\"")])
    }

    /// The client's address without its port (`1.2.3.4:5678` → `1.2.3.4`, `[::1]:80` → `::1`):
    /// failed logins are counted per host, since every new connection has a new port.
    static func clientHost(_ remote: String) -> String {
        // Byte scans: `remote` is ASCII (formatted by the server), and Character-wise String
        // searching costs more than the rest of a request's routing.
        // On the contiguous bytes: `utf8.firstIndex(of:)` on the view itself steps String.Index
        // by String.Index (about 25 instructions a byte).
        let cut = remote.utf8.withContiguousStorageIfAvailable { bytes -> (Int, Int)? in
            if bytes.first == UInt8(ascii: "["), let close = bytes.firstIndex(of: UInt8(ascii: "]")) {
                return (1, close)
            }
            if let colon = bytes.lastIndex(of: UInt8(ascii: ":")), bytes.firstIndex(of: UInt8(ascii: ":")) == colon {
                return (0, colon)
            }
            return nil
        }
        // A string without contiguous UTF-8 (bridged) is not made by the server; keep it whole.
        guard let cut, let (start, end) = cut else { return remote }
        let utf8 = remote.utf8
        return String(remote[utf8.index(utf8.startIndex, offsetBy: start)..<utf8.index(utf8.startIndex, offsetBy: end)])
    }

    /// `Bearer <token>`, scheme case-insensitive (RFC 9110 §11.1), exactly one space.
    /// The token is visible ASCII only (RFC 6750 §2.1 b64token is narrower; anything visible is
    /// passed on and simply fails to match).
    static func bearerToken(_ header: String) -> String? {
        // On the contiguous bytes (every header value the parser makes): this runs on every
        // authenticated request, and copying to an Array and lowercasing a String cost more
        // than the check.
        if let token = header.utf8.withContiguousStorageIfAvailable({ bearerToken(bytes: $0) }) { return token }
        return Array(header.utf8).withUnsafeBufferPointer { bearerToken(bytes: $0) }
    }

    private static func bearerToken(bytes: UnsafeBufferPointer<UInt8>) -> String? {
        guard bytes.count > 7, bytes[6] == UInt8(ascii: " ") else { return nil }
        // `| 0x20` folds ASCII upper case to lower; against these lower-case letters only the
        // two cases of the same letter match.
        for (offset, letter) in "bearer".utf8.enumerated() where bytes[offset] | 0x20 != letter { return nil }
        let token = UnsafeBufferPointer(rebasing: bytes[7...])
        guard token.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        return String(decoding: token, as: UTF8.self)
    }

    /// 403 unless `principal` may do `operation` on `name`. Checked before any look-up, so an
    /// out-of-scope name gets the same answer whether the session exists or not.
    func authorize(_ principal: Principal, _ operation: AccessPolicy.Operation, session name: String?, _ request: HTTPRequest) throws(Problem) {
        let allowed = name.map { principal.policy.allows(operation, session: $0) } ?? principal.policy.allows(operation)
        guard allowed else {
            vault.audit("access.denied", name, context(principal, request), outcome: "forbidden", detail: operation.rawValue)
            throw Problem(status: 403, title: "Forbidden",
                          detail: "authorization: the token does not allow '\(operation.rawValue)' on this resource",
                          field: "authorization")
        }
    }

    func requireRoot(_ principal: Principal, _ request: HTTPRequest) throws(Problem) {
        guard principal.policy.isRoot else {
            vault.audit("access.denied", nil, context(principal, request), outcome: "forbidden", detail: "root")
            throw Problem(status: 403, title: "Forbidden", detail: "authorization: only the root token manages tokens",
                          field: "authorization")
        }
    }

    func context(_ principal: Principal, _ request: HTTPRequest) -> RequestContext {
        RequestContext(accessor: principal.accessor, remoteAddress: request.remoteAddress.isEmpty ? nil : clientAddress(request))
    }

    /// The client's host for the audit log and the throttle: the peer's, or, when the peer is a
    /// trusted proxy, the one its `X-Forwarded-For` names (``TrustedProxies``).
    func clientAddress(_ request: HTTPRequest) -> String {
        let peer = Self.clientHost(request.remoteAddress)
        if trustedProxies.isEmpty { return peer }
        return trustedProxies.clientHost(peerHost: peer, forwardedFor: request.headers.values(for: "X-Forwarded-For"))
    }

    // MARK: Error mapping (the one switch from domain errors to HTTP)

    func problem(for error: VaultError, name: SessionName?) -> Problem {
        let subject = name.map { "session '\($0.rawValue)'" } ?? "resource"
        switch error {
        case .notFound:
            return Problem(status: 404, title: "Not Found", detail: "\(subject) does not exist", field: name == nil ? nil : "name")
        case .revoked:
            return Problem(status: 410, title: "Gone", detail: "\(subject) was revoked; its auth key no longer exists", field: "name")
        case .conflict:
            if let name { return nameTakenProblem(name) }
            return Problem(status: 409, title: "Conflict", detail: "name: \(subject) already exists", field: "name")
        case .versionMismatch(let current):
            return Problem(status: 412, title: "Precondition Failed",
                           detail: "If-Match: the session changed; its current ETag is \"\(current)\"", field: "If-Match")
        case .sealed(let reason):
            return Problem(status: 503, title: "Service Unavailable", detail: "the vault is sealed: \(reason)",
                           headers: [("Retry-After", "30")])
        case .invalid(let field, let reason):
            let text = reason.hasPrefix(field + ":") ? reason : "\(field): \(reason)"
            return Problem(status: 422, title: "Unprocessable Content", detail: text, field: field)
        case .missingFields(let fields):
            return Problem(status: 422, title: "Unprocessable Content",
                           detail: "the conversion needs fields the session lacks: \(fields.joined(separator: ", ")); set them with PATCH",
                           field: fields.first, missingFields: fields)
        case .storage(let e):
            switch e {
            case .diskFull, .readOnly:
                return Problem(status: 503, title: "Service Unavailable", detail: "storage is not writable right now",
                               headers: [("Retry-After", "30")])
            case .unavailable(let reason):
                return Problem(status: 503, title: "Service Unavailable", detail: "storage is unavailable: \(reason)",
                               headers: [("Retry-After", "30")])
            case .busy:
                return Problem(status: 503, title: "Service Unavailable", detail: "storage is busy; retry",
                               headers: [("Retry-After", "1")])
            case .ioError:
                // The storage itself failed (a disk error, a lost server): a state of the
                // deployment, not a bug of the request. Logged with the engine's detail.
                log.error("storage I/O failure", metadata: ["error": "\(e.description)"])
                return Problem(status: 503, title: "Service Unavailable", detail: "storage failed to read or write; retry later",
                               headers: [("Retry-After", "30")])
            default:
                log.error("storage failure", metadata: ["error": "\(e.description)"])
                return Problem(status: 500, title: "Internal Server Error", detail: "storage failure")
            }
        case .keyringChanged:
            return Problem(status: 409, title: "Conflict",
                           detail: "the keyring was changed by another process meanwhile; nothing was changed, retry")
        case .integrity:
            log.error("integrity failure on stored data")
            return Problem(status: 500, title: "Internal Server Error", detail: "stored data failed its integrity check")
        }
    }

    func problemResponse(_ p: Problem) -> HTTPResponse {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/problem+json")
        headers.add(name: "Cache-Control", value: "no-store")
        for (k, v) in p.headers { headers.add(name: k, value: v) }
        return HTTPResponse(status: HTTPStatus(code: p.status), headers: headers, body: p.body)
    }

    // MARK: Response helpers

    func json(_ value: JSONValue, status: Int = 200, headers extra: [(String, String)] = []) -> HTTPResponse {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Cache-Control", value: "no-store")
        for (k, v) in extra { headers.add(name: k, value: v) }
        return HTTPResponse(status: HTTPStatus(code: status), headers: headers, body: JSONWriter.encode(value))
    }

    func noContent() -> HTTPResponse {
        HTTPResponse(status: HTTPStatus(code: 204), headers: ["Cache-Control": "no-store"], body: [])
    }

    /// The parsed JSON body, enforcing the media type and the JSON size limit.
    func jsonBody(_ request: HTTPRequest) throws(Problem) -> JSONValue {
        try jsonBody(request, mediaType: Self.mediaType(request))
    }

    /// ``jsonBody(_:)`` for a caller that has already read the media type.
    func jsonBody(_ request: HTTPRequest, mediaType: String?) throws(Problem) -> JSONValue {
        guard mediaType == "application/json" else {
            throw Problem(status: 415, title: "Unsupported Media Type", detail: "Content-Type: must be application/json",
                          field: "Content-Type")
        }
        guard request.body.count <= Self.maxJSONBodyBytes else {
            throw Problem(status: 413, title: "Content Too Large",
                          detail: "body: JSON bodies are limited to \(Self.maxJSONBodyBytes) bytes", field: "body")
        }
        do {
            return try JSONParser.parse(request.body)
        } catch {
            throw Problem.badRequest("body: \(error.description)", field: "body")
        }
    }

    /// The media type of the request (lower-cased, without parameters), or nil.
    static func mediaType(_ request: HTTPRequest) -> String? {
        guard let ct = request.headers["Content-Type"] else { return nil }
        // On bytes: the part before any `;`, without surrounding spaces or tabs, ASCII-lowercased
        // (media types are case-insensitive ASCII tokens, RFC 9110 §8.3.1).
        var type: [UInt8] = []
        type.reserveCapacity(32)
        for byte in ct.utf8 {
            if byte == UInt8(ascii: ";") { break }
            type.append(byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte)
        }
        let isBlank = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        let start = type.firstIndex { !isBlank($0) } ?? type.endIndex
        let end = (type.lastIndex { !isBlank($0) }).map { $0 + 1 } ?? start
        return String(decoding: type[start..<max(start, end)], as: UTF8.self)
    }

    /// The single value of query parameter `name`; 400 when it is given twice.
    func query(_ request: HTTPRequest, _ name: String) throws(Problem) -> String? {
        let items = request.queryItems.filter { $0.name == name }
        guard items.count <= 1 else { throw Problem.badRequest("\(name): given more than once", field: name) }
        return items.first?.value
    }

    /// A decimal integer query parameter within `range`.
    func intQuery(_ request: HTTPRequest, _ name: String, in range: ClosedRange<Int64>) throws(Problem) -> Int64? {
        guard let text = try query(request, name) else { return nil }
        guard let n = Self.parseInt64(text), range.contains(n) else {
            throw Problem.badRequest("\(name): must be an integer between \(range.lowerBound) and \(range.upperBound)", field: name)
        }
        return n
    }

    /// Strict decimal: optional `-`, 1–19 digits, overflow-checked. Accumulates negatively so
    /// that `Int64.min` parses.
    static func parseInt64(_ s: String) -> Int64? {
        var utf8 = Substring(s).utf8[...]
        var negative = false
        if utf8.first == UInt8(ascii: "-") { negative = true; utf8 = utf8.dropFirst() }
        guard !utf8.isEmpty, utf8.count <= 19 else { return nil }
        var v: Int64 = 0
        for b in utf8 {
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.subtractingReportingOverflow(Int64(b - UInt8(ascii: "0")))
            guard !o1, !o2 else { return nil }
            v = a
        }
        if negative { return v }
        return v == Int64.min ? nil : -v
    }

    static func monotonicNanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
}

extension Substring {
    /// Drops leading and trailing spaces and tabs.
    func trimmingSpaces() -> String {
        var s = self[...]
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
