// SPDX-License-Identifier: Apache-2.0
public import HTTPServer
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
/// Synchronous (it runs on the server's handler threads, where SQLite and OpenSSL may block).
public final class VaultRouter: HTTPHandler {
    /// Largest JSON body accepted (the server's own limit is larger, for `.session` uploads).
    public static let maxJSONBodyBytes = 256 * 1024

    let vault: VaultService
    let metrics: Metrics
    let throttle: AuthThrottle
    let log: Log
    let serverState: HTTPServerState
    let info: ServiceInfo

    public init(vault: VaultService, info: ServiceInfo, serverState: HTTPServerState, log: Log,
                metrics: Metrics = Metrics(), throttle: AuthThrottle = AuthThrottle()) {
        self.vault = vault
        self.info = info
        self.serverState = serverState
        self.log = log
        self.metrics = metrics
        self.throttle = throttle
    }

    /// One request in, one response out. Never throws, never traps on input.
    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        let started = Self.monotonicNanoseconds()
        var route = "unmatched"
        var response: HTTPResponse
        do {
            response = try dispatch(request, route: &route)
        } catch {
            response = problemResponse(error)
        }
        finished(request, route: route, response, started: started)
        return response
    }

    /// A create from a JSON body (`POST /v1/sessions`) is answered later: checking, parsing and
    /// sealing run on the connection's thread, then the insert joins the writer's next group
    /// commit and the writer hands the result back, so no thread waits for the commit. A
    /// `.session` upload (heavier parsing) stays on the blocking path.
    public func respondsLater(_ request: HTTPRequest) -> Bool {
        guard request.method == .post, request.path == "/v1/sessions" else { return false }
        if let type = Self.mediaType(request), Self.sqliteMediaTypes.contains(type) { return false }
        return true
    }

    /// Answers the requests ``respondsLater(_:)`` flags (any other goes through ``handle(_:)``).
    public func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        guard respondsLater(request) else {
            responder.respond(handle(request))
            return
        }
        let started = Self.monotonicNanoseconds()
        let route = "/v1/sessions"
        do {
            let principal = try authenticate(request)
            try createSession(request, principal) { [self] result in
                // On the writer's thread: encoding happens on the connection's queue.
                responder.respond { [self] in
                    let response: HTTPResponse
                    switch result {
                    case .success(let made): response = made()
                    case .failure(let problem): response = problemResponse(problem)
                    }
                    finished(request, route: route, response, started: started)
                    return response
                }
            }
        } catch {
            let response = problemResponse(error)
            finished(request, route: route, response, started: started)
            responder.respond(response)
        }
    }

    /// Records a handled request: metrics, and a log line for a 5xx (or every request at debug).
    private func finished(_ request: HTTPRequest, route: String, _ response: HTTPResponse, started: UInt64) {
        let seconds = Double(Self.monotonicNanoseconds() - started) / 1e9
        metrics.observe(route: route, method: request.method.rawValue, status: response.status.code, seconds: seconds)
        // A 503 is a state the vault is in (sealed, draining, storage not writable), logged once
        // when it changes (ServiceRunner's watch), not on every probe or request it refuses.
        if response.status.code >= 500 && response.status.code != 503 {
            log.error("request failed", [("method", request.method.rawValue), ("route", route), ("status", String(response.status.code))])
        } else if log.enabled(.debug) {
            log.debug("request", [("method", request.method.rawValue), ("route", route), ("status", String(response.status.code)),
                                  ("remote", request.remoteAddress)])
        }
    }

    /// Every request that can block is flagged by ``mayBlock(_:)``, so the server may run the
    /// others inline on all of its I/O workers.
    public var classifiesBlocking: Bool { true }

    /// Requests that can block run on the server's bounded handler pool, never inline: every
    /// write (it waits for its group commit, an fsync with `synchronous=full`) and the listings
    /// that can be long (a page of 1,000 sessions, 10,000 peers, the audit log). Single reads,
    /// string exports and `/healthz` are a few microseconds of SQLite and AES and run inline —
    /// on the event-loop thread itself, since this handler classifies (``EventLoop``). Flagged
    /// besides: an export to a `.session` file (it builds a whole SQLite file), the routes that
    /// count whole tables or list tokens (`/readyz`, `/metrics`, `/v1/sys/status`), and every
    /// read while the store says it may wait (``VaultService/storeMayWaitNow``: a full audit backlog,
    /// all readers busy, or the memory engine, whose reads wait for the write batch in progress).
    /// (A JSON create is flagged here too, but the server asks ``respondsLater(_:)`` first: it
    /// is answered after its commit without a waiting thread.)
    public func mayBlock(_ request: HTTPRequest) -> Bool {
        switch request.method {
        case .get, .head:
            // Paths compared as bytes: `==` and `hasSuffix` on a Substring compare Characters
            // (seven comparisons were a fifth of this function's cost on every request).
            let path = request.path.utf8
            let count = path.count  // a distance between indices: counted once, not per literal
            func equals(_ literal: StaticString) -> Bool {
                count == literal.utf8CodeUnitCount
                    && path.elementsEqual(UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
            }
            func endsWith(_ literal: StaticString) -> Bool {
                count >= literal.utf8CodeUnitCount
                    && path.suffix(literal.utf8CodeUnitCount)
                        .elementsEqual(UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
            }
            if equals("/healthz") { return false }  // no storage, no lock
            // The store would make this request wait (a full audit backlog, every reader busy,
            // the memory engine's shared connection): run it where waiting is allowed.
            if vault.storeMayWaitNow { return true }
            if equals("/v1/sessions") || equals("/v1/tokens") || equals("/v1/audit") || endsWith("/peers") { return true }
            // Whole-table counts and the token list.
            if equals("/readyz") || equals("/metrics") || equals("/v1/sys/status") { return true }
            // An export to a `.session` file builds a SQLite file with every peer (10,000 take
            // tens of milliseconds): not for an event-loop thread. String exports stay inline.
            if request.query != nil, endsWith("/export") {
                let format = request.queryValue("format")
                return format != nil && format != "pyrogram" && format != "telethon"
            }
            return false
        default:
            return true
        }
    }

    /// Answers a request that announces a body before the body is read (the server asks for
    /// every one; issue 14 item 4, HTTP.md item 8): an unknown route (404), a wrong method (405),
    /// a throttled address (429), a sealed vault (503), a missing or invalid token (401), a token
    /// that may not write the session (403) or a JSON body over its limit (413) is refused at
    /// once, and the server closes the connection without reading the body. Authentication goes
    /// through ``authenticate(_:)``, as for a whole request, so a refused token counts toward the
    /// failed-authentication throttle and is audited once. Cheap: one keyed hash and, for a
    /// token not seen before, one indexed read.
    public func responseBeforeBody(_ head: HTTPRequestHead) -> HTTPResponse? {
        let request = HTTPRequest(head: head, body: [])
        do {
            try preflight(request, head: head)
            return nil
        } catch {
            metrics.observe(route: "preflight", method: request.method.rawValue, status: error.status, seconds: 0)
            return problemResponse(error)
        }
    }

    private func preflight(_ request: HTTPRequest, head: HTTPRequestHead) throws(Problem) {
        let path = request.path
        if path == "/healthz" || path == "/readyz" || path == "/metrics" {
            try allow(request.method == .head ? .get : request.method, [.get])
            return
        }
        guard path.hasPrefix("/v1/") else { throw Problem.notFound("no such resource") }
        let principal = try authenticate(request)
        try authorizeBeforeBody(request, principal)
        if Self.mediaType(request) == "application/json", case .contentLength(let n) = head.framing, n > Self.maxJSONBodyBytes {
            throw Problem(status: 413, title: "Content Too Large",
                          detail: "body: JSON bodies are limited to \(Self.maxJSONBodyBytes) bytes", field: "body")
        }
    }

    /// The part of the routes' authorisation that the head alone decides, with the same checks
    /// the routes make (so the status is the one the whole request would get): writing a session
    /// named in the path (`PATCH /v1/sessions/{name}`, `PUT …/peers`) or in the query of a
    /// `.session` upload, and, for a JSON create whose name is in the body, holding `write` at
    /// all. Anything else is left to the route.
    private func authorizeBeforeBody(_ request: HTTPRequest, _ principal: Principal) throws(Problem) {
        let segments = Self.pathSegments(request.path)
        guard segments.count >= 3, segments[1] == "v1", segments[2] == "sessions" else { return }
        switch (request.method, segments.count) {
        case (.post, 3):
            if let type = Self.mediaType(request), Self.sqliteMediaTypes.contains(type),
                let raw = request.queryValue("name"), let name = try? SessionName(raw)
            {
                try authorize(principal, .write, session: name.rawValue, request)
            } else if !principal.policy.allows(.write) {
                try authorize(principal, .write, session: nil, request)
            }
        case (.patch, 4), (.put, 5):
            guard request.method == .patch || segments[4] == "peers",
                let name = try? SessionName(String(segments[3]))
            else { return }
            try authorize(principal, .write, session: name.rawValue, request)
        default:
            return
        }
    }

    // MARK: Dispatch

    private func dispatch(_ request: HTTPRequest, route: inout String) throws(Problem) -> HTTPResponse {
        let path = request.path
        let all = Self.pathSegments(path)
        // "/a/b" splits into ["", "a", "b"]; a trailing slash leaves an empty last segment.
        guard all.first == "" else { throw Problem.notFound("no such resource") }
        let segments = all.dropFirst()
        let method = request.method == .head ? HTTPMethod.get : request.method

        switch (segments.first ?? "", segments.count) {
        case ("healthz", 1):
            route = "/healthz"
            try allow(method, [.get])
            return health()
        case ("readyz", 1):
            route = "/readyz"
            try allow(method, [.get])
            return readiness()
        case ("metrics", 1):
            route = "/metrics"
            try allow(method, [.get])
            return metricsResponse()
        case ("v1", _):
            break
        default:
            throw Problem.notFound("no such resource")
        }

        // Slices keep the indices of `all`: `rest[rest.startIndex + k]` is the k-th after "v1".
        let rest = segments.dropFirst()
        guard let top = rest.first else { throw Problem.notFound("no such resource") }
        let second = rest.count > 1 ? rest[rest.startIndex + 1] : ""
        switch (top, rest.count) {
        case ("sessions", 1):
            route = "/v1/sessions"
            try allow(method, [.get, .post])
            let principal = try authenticate(request)
            return method == .post ? try createSession(request, principal) : try listSessions(request, principal)
        case ("sessions", 2), ("sessions", 3):
            let name = try pathName(second)
            if rest.count == 2 {
                route = "/v1/sessions/{name}"
                try allow(method, [.get, .patch, .delete])
                let principal = try authenticate(request)
                switch method {
                case .get: return try getSession(name, principal)
                case .patch: return try patchSession(request, name, principal)
                default: return try revokeSession(request, name, principal)
                }
            }
            switch rest[rest.startIndex + 2] {
            case "export":
                route = "/v1/sessions/{name}/export"
                try allow(method, [.get])
                return try exportSession(request, name, try authenticate(request))
            case "peers":
                route = "/v1/sessions/{name}/peers"
                try allow(method, [.get, .put])
                let principal = try authenticate(request)
                return method == .put ? try putPeers(request, name, principal) : try getPeers(request, name, principal)
            default:
                throw Problem.notFound("no such resource")
            }
        case ("tokens", 1):
            route = "/v1/tokens"
            try allow(method, [.get, .post])
            let principal = try authenticate(request)
            return method == .post ? try createToken(request, principal) : try listTokens(principal)
        case ("tokens", 2):
            route = "/v1/tokens/{accessor}"
            try allow(method, [.get, .delete])
            let principal = try authenticate(request)
            let accessor = String(second)
            return method == .get ? try getToken(accessor, principal) : try revokeToken(request, accessor, principal)
        case ("audit", 1):
            route = "/v1/audit"
            try allow(method, [.get])
            return try auditLog(request, try authenticate(request))
        case ("sys", 2):
            switch second {
            case "status":
                route = "/v1/sys/status"
                try allow(method, [.get])
                return try status(try authenticate(request))
            case "rotate":
                route = "/v1/sys/rotate"
                try allow(method, [.post])
                return try rotate(request, try authenticate(request))
            case "rewrap":
                route = "/v1/sys/rewrap"
                try allow(method, [.post])
                return try rewrap(request, try authenticate(request))
            default:
                throw Problem.notFound("no such resource")
            }
        default:
            throw Problem.notFound("no such resource")
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

    private func allow(_ method: HTTPMethod, _ allowed: [HTTPMethod]) throws(Problem) {
        guard allowed.contains(method) else {
            var names = allowed.map(\.rawValue)
            if allowed.contains(.get) { names.append("HEAD") }
            throw Problem(status: 405, title: "Method Not Allowed", detail: "method \(method.rawValue) is not allowed here",
                          headers: [("Allow", names.joined(separator: ", "))])
        }
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
        let address = Self.clientHost(request.remoteAddress)
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
        RequestContext(accessor: principal.accessor, remoteAddress: Self.clientHost(request.remoteAddress))
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
                log.error("storage I/O failure", [("error", e.description)])
                return Problem(status: 503, title: "Service Unavailable", detail: "storage failed to read or write; retry later",
                               headers: [("Retry-After", "30")])
            default:
                log.error("storage failure", [("error", e.description)])
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

    private func problemResponse(_ p: Problem) -> HTTPResponse {
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
