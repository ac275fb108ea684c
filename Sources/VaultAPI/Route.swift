// SPDX-License-Identifier: Apache-2.0
public import HTTPServer
public import VaultCore

/// One entry of the API's route table (``VaultRouter/routes``): everything the server and the
/// router need to know about a method on a path, declared once.
///
/// From the entry alone the router derives dispatch (method and path pattern), the `405` answer
/// and its `Allow` header, the metrics label (the pattern), where the request runs
/// (``placement``, asked by the server before the handler), and the checks made from the head
/// before a body is read (``VaultRouter/responseBeforeBody(_:)``: token, sealed vault, the
/// authorisation the head decides, body size). The shape follows Hummingbird's
/// `RouteCollection` and FlyingFox's route list: method, path, responder; here also placement.
///
/// ```swift
/// Route(.get, "/v1/sessions/{name}/export", placement: .loop(unless: .storeMayWait, .exportsAFile)) { r, c throws(Problem) in
///     try r.exportSession(c.request, try c.name(), try c.principal())
/// }
/// ```
public struct Route: Sendable {
    /// Answers a request now (on whichever thread its placement chose).
    public typealias Handler = @Sendable (VaultRouter, RouteRequest) throws(Problem) -> HTTPResponse
    /// Answers a request later: checks now (errors thrown), then calls the completion from any
    /// thread with the response maker, or the problem, once the work it handed on is done.
    public typealias LaterHandler = @Sendable (
        VaultRouter, RouteRequest, _ completion: @escaping @Sendable (Result<@Sendable () -> HTTPResponse, Problem>) -> Void
    ) throws(Problem) -> Void

    /// The method (`HEAD` is answered by the `GET` entry).
    public let method: HTTPMethod
    /// The path pattern, compiled once.
    public let pattern: RoutePattern
    /// Where the request runs; `nil` (not declared) runs it on a handler thread.
    public let placement: RoutePlacement?
    /// Whether a Bearer token is required (and checked before the handler runs).
    public let access: RouteAccess
    /// What the head alone can authorise before the body is read.
    public let headCheck: HeadCheck
    /// The body the route reads; bounds what is accepted before it is read.
    public let body: RequestBody
    let handler: Handler
    let later: LaterHandler?

    /// A route. `later`, when given, answers the requests placed ``Placement/afterCommit``.
    public init(
        _ method: HTTPMethod, _ pattern: String, placement: RoutePlacement?, access: RouteAccess = .token,
        headCheck: HeadCheck = .none, body: RequestBody = .none, later: LaterHandler? = nil, _ handler: @escaping Handler
    ) {
        self.method = method
        self.pattern = RoutePattern(pattern)
        self.placement = placement
        self.access = access
        self.headCheck = headCheck
        self.body = body
        self.handler = handler
        self.later = later
    }

    /// The metrics label: the pattern as written (`/v1/sessions/{name}`), never a real name.
    public var label: String { pattern.text }

    /// Where `request` runs, as the server asks it. Fails safe: no declared placement, or an
    /// `afterCommit` route without a ``LaterHandler``, runs on a handler thread.
    func placement(of request: HTTPRequest, in router: VaultRouter) -> Placement {
        guard let placement else { return .handlerThread }
        for condition in placement.unless where condition.holds(router, request) { return .handlerThread }
        if placement.placement == .afterCommit, later == nil { return .handlerThread }
        return placement.placement
    }
}

/// Where a route's handler runs.
public enum Placement: Sendable, Equatable {
    /// Cheap and never blocking (a few microseconds of SQLite reads and AES): it may run on the
    /// event-loop thread, where blocking would hold up every connection of that loop.
    case loop
    /// May block (a commit, a long listing, a whole-table count): on a handler-pool thread.
    case handlerThread
    /// Checked and prepared now, answered later by whoever finishes the work (the storage
    /// writer after its group commit), with no thread waiting; needs a ``Route/LaterHandler``.
    case afterCommit

    /// The server's name for it.
    var http: HTTPPlacement {
        switch self {
        case .loop: .inline
        case .handlerThread: .offloaded
        case .afterCommit: .deferred
        }
    }
}

/// A route's declared placement: a ``Placement``, and the conditions under which the request
/// runs on a handler thread instead (e.g. a read while the store may make it wait).
public struct RoutePlacement: Sendable {
    let placement: Placement
    let unless: [PlacementCondition]

    /// On the event loop.
    public static let loop = RoutePlacement(placement: .loop, unless: [])
    /// On a handler thread.
    public static let handlerThread = RoutePlacement(placement: .handlerThread, unless: [])
    /// Answered after the commit.
    public static let afterCommit = RoutePlacement(placement: .afterCommit, unless: [])

    /// On the event loop, unless one of `conditions` holds for the request.
    public static func loop(unless conditions: PlacementCondition...) -> RoutePlacement {
        RoutePlacement(placement: .loop, unless: conditions)
    }

    /// Answered after the commit, unless one of `conditions` holds (then on a handler thread).
    public static func afterCommit(unless conditions: PlacementCondition...) -> RoutePlacement {
        RoutePlacement(placement: .afterCommit, unless: conditions)
    }
}

/// A condition on a request that sends it to a handler thread. Asked on the event loop for every
/// request of its route: it must be cheap.
public struct PlacementCondition: Sendable {
    let holds: @Sendable (VaultRouter, HTTPRequest) -> Bool

    public init(_ holds: @escaping @Sendable (VaultRouter, HTTPRequest) -> Bool) {
        self.holds = holds
    }

    /// The store would make a read wait right now (``VaultService/storeMayWaitNow``: a full audit
    /// backlog, every reader busy, or the memory engine, whose reads wait for the write batch in
    /// progress).
    public static let storeMayWait = PlacementCondition { router, _ in router.vault.storeMayWaitNow }

    /// An export to a `.session` file: it builds a SQLite file with every peer (10,000 take tens
    /// of milliseconds). String exports (`pyrogram`, the default, and `telethon`) do not.
    public static let exportsAFile = PlacementCondition { _, request in
        guard request.query != nil, let format = request.queryValue("format") else { return false }
        return format != "pyrogram" && format != "telethon"
    }

    /// A `.session` file upload (`Content-Type: application/vnd.sqlite3`): heavier parsing than JSON.
    public static let sessionFileUpload = PlacementCondition { _, request in
        VaultRouter.mediaType(request).map(VaultRouter.sqliteMediaTypes.contains) ?? false
    }
}

/// Whether a route needs a token.
public enum RouteAccess: Sendable, Equatable {
    /// No token (`/healthz`, `/readyz`, `/metrics`, test routes).
    case open
    /// `Authorization: Bearer …`, checked (with the sealed state and the failure throttle) before
    /// the handler runs; the handler gets the ``Principal``.
    case token
}

/// The part of a route's authorisation that the head alone decides, checked before the body is
/// read with the same checks the route makes (so the status is the one the whole request gets).
public enum HeadCheck: Sendable, Equatable {
    /// Left to the route.
    case none
    /// The token must allow writing the session named by the path's `{name}`.
    case writesSessionInPath
    /// A create: the token must allow writing the `?name=` of a `.session` upload, or, for a
    /// JSON body (the name is inside), writing some session at all.
    case createsSession
}

/// The request body a route reads, which bounds what is accepted before it is read.
public enum RequestBody: Sendable, Equatable {
    /// None: an announced body over ``VaultRouter/maxJSONBodyBytes`` is refused (413).
    case none
    /// JSON, up to ``VaultRouter/maxJSONBodyBytes`` (413 from the head beyond).
    case json
    /// JSON as above, or a `.session` file upload up to the server's body limit.
    case jsonOrSessionFile
    /// Anything up to the server's body limit (test routes).
    case any
}

/// A path pattern: literal segments and `{parameter}` segments, compiled once from its text.
///
/// `{name}` is always a session name: the router validates it before authentication (400
/// naming `name`), as every route that has one needs. Other parameters (`{accessor}`) are raw
/// segment text for the handler to check. Segments are matched as bytes, never decoded: `a%2Fb`
/// and `..` are the text of one segment, which a session name refuses.
public struct RoutePattern: Sendable, Equatable {
    enum Segment: Sendable, Equatable {
        case literal([UInt8])
        case parameter(String)
    }

    /// The pattern as written, which is also its metrics label.
    public let text: String
    /// The segments after the leading `/`.
    let segments: [Segment]
    /// The name of the first parameter, if any.
    let firstParameter: String?
    /// Whether the pattern has `{name}`, a session name.
    let hasSessionName: Bool

    init(_ text: String) {
        self.text = text
        var parts = text.split(separator: "/", omittingEmptySubsequences: false)
        if parts.first == "" { parts.removeFirst() }
        let segments: [Segment] = parts.map { part in
            part.hasPrefix("{") && part.hasSuffix("}") && part.count > 2
                ? .parameter(String(part.dropFirst().dropLast())) : .literal(Array(part.utf8))
        }
        self.segments = segments
        firstParameter = segments.lazy.compactMap { if case .parameter(let name) = $0 { name } else { nil } }.first
        hasSessionName = segments.contains(.parameter("name"))
    }

    /// The index among ``segments`` of parameter `name`.
    func index(of name: String) -> Int? {
        segments.firstIndex { $0 == .parameter(name) }
    }
}

/// A matched request as a route's handler gets it: the request, its path parameters, and the
/// principal its token resolved to.
public struct RouteRequest: Sendable {
    /// The request.
    public let request: HTTPRequest
    let pattern: RoutePattern
    /// The text of the pattern's first parameter (the only one every route has today).
    let first: Substring
    let sessionName: SessionName?
    let principalOrNil: Principal?

    /// The text of path parameter `name` (`{accessor}`), nil if the pattern has none.
    public func parameter(_ name: String) -> Substring? {
        pattern.firstParameter == name ? first : Self.segment(of: name, in: pattern, path: request.path)
    }

    /// The segment of `path` (which `pattern` matched) that is parameter `name`.
    static func segment(of name: String, in pattern: RoutePattern, path: Substring) -> Substring? {
        guard let index = pattern.index(of: name) else { return nil }
        let segments = VaultRouter.pathSegments(path).dropFirst()  // the empty segment before the first `/`
        return index < segments.count ? segments[segments.startIndex + index] : nil
    }

    /// The session named by `{name}`, validated. Throws 500 for a route whose pattern has no
    /// `{name}` (a mistake in the table, which the tests would see).
    public func name() throws(Problem) -> SessionName {
        guard let sessionName else { throw Problem.tableMistake("the route has no {name}") }
        return sessionName
    }

    /// The authenticated principal. Throws 500 for an ``RouteAccess/open`` route.
    public func principal() throws(Problem) -> Principal {
        guard let principalOrNil else { throw Problem.tableMistake("the route takes no token") }
        return principalOrNil
    }
}

extension Problem {
    /// A route asked for something its table entry does not provide.
    static func tableMistake(_ what: String) -> Problem {
        Problem(status: 500, title: "Internal Server Error", detail: "routing: \(what)")
    }
}
