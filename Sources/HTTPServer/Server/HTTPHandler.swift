// SPDX-License-Identifier: Apache-2.0
import Synchronization

/// Answers one complete request with one complete response.
///
/// **Where handlers run.** Normally `handle(_:)` is called synchronously on the connection's own
/// serial `DispatchQueue`, with no thread hop per request; for a handler that ``classifiesBlocking``
/// that queue's work runs on the event-loop thread that saw the socket ready (``EventLoop``).
/// Connection queues share Dispatch's
/// CPU-sized worker pool, which blocking handlers could starve (Dispatch on Linux adds threads for
/// blocked workers only about once a second). So a request the handler flags with
/// ``mayBlock(_:)``, or any request once ``HTTPServerConfiguration/inlineHandlerLimit`` handlers
/// are already running inline in the process (default CPUs − 1, so one worker always stays free;
/// CPUs for a handler that ``classifiesBlocking``), runs on the server's bounded handler pool
/// (``HTTPServerConfiguration/handlerThreads`` threads at most) and its response hops back to
/// the connection queue. The check costs two atomic operations. Either
/// way blocking work (SQLite, OpenSSL) is fine: it blocks a Dispatch worker thread, never the
/// Swift cooperative pool. Requests on one connection are handled one at a time, in order
/// (RFC 9112 §9.3.2).
///
/// **Answering later.** A request the handler flags with ``respondsLater(_:)`` goes to
/// ``handle(_:responder:)`` instead: its synchronous part runs like an inline handler, and the
/// ``HTTPResponder`` delivers the response from any thread when the work it waits on (a group
/// commit, say) is done, so no thread waits with it. The handler deadline and the in-flight cap
/// apply until the response arrives.
///
/// **Bounds.** At most ``HTTPServerConfiguration/maxInFlightHandlers`` calls run at once; a request
/// beyond that gets 503 with `Retry-After` without calling the handler. A call that runs longer than
/// ``HTTPServerConfiguration/handlerTimeout`` makes the server answer 503 (`Retry-After`,
/// `Connection: close`) instead of its response, and close: for an offloaded call at the
/// deadline (the connection's queue is free and acts when the watchdog reports the deadline), for
/// an inline call when it returns (only the connection's own thread writes to its transport, and
/// that thread is inside the call). The late response is dropped. A handler cannot be
/// interrupted, so it should still bound its own blocking work, and one that may block must say
/// so (``mayBlock(_:)``) so that it is offloaded.
///
/// Implementations must be `Sendable`: the same instance serves every connection concurrently.
public protocol HTTPHandler: Sendable {
    /// Produces the response for `request`. Must not block indefinitely.
    func handle(_ request: HTTPRequest) -> HTTPResponse

    /// Lets the handler refuse a request body before it is read.
    ///
    /// Called on the connection queue for **every** request whose valid head announces a body
    /// (`Content-Length` above 0, or chunked), as soon as the head is in: before the server
    /// reserves memory for the body, and before it sends `100 Continue` to an HTTP/1.1 request
    /// with `Expect: 100-continue` (RFC 9110 §10.1.1). Return a final response (say 401, 403,
    /// 404, 415) to send it instead, with `Connection: close`: the body is not read, and the
    /// connection closes after a short lingering close (RFC 9112 §9.6). Return nil to read the
    /// body. ``HTTPRequestHead/remoteAddress`` is filled in. It must be cheap and must not block
    /// for long (look at the method, target and headers, at most a cached look-up). The default
    /// implementation returns nil.
    func responseBeforeBody(_ head: HTTPRequestHead) -> HTTPResponse?

    /// Whether handling `request` may block for long (waiting on a storage commit, a large
    /// import). Such requests always run on the bounded handler pool; the others run inline on
    /// the connection queue when an inline slot is free (``HTTPServerConfiguration/inlineHandlerLimit``).
    /// Called on the connection queue; must be cheap. The default says false (decide by slots only).
    func mayBlock(_ request: HTTPRequest) -> Bool

    /// True if this handler's ``mayBlock(_:)`` flags every request that can block, so the server
    /// may let as many handlers run inline as there are I/O threads, and runs each connection's
    /// events on its event-loop thread with no hop to a Dispatch worker (``EventLoop``): the
    /// requests not flagged must then really not block, or they hold up every connection of
    /// that loop. Default false.
    var classifiesBlocking: Bool { get }

    /// Whether `request` is answered later through ``handle(_:responder:)`` instead of
    /// ``handle(_:)``: for work that waits on something else (a group commit) without needing a
    /// thread to wait with it. Called on the connection queue; must be cheap. Default false.
    func respondsLater(_ request: HTTPRequest) -> Bool

    /// Answers `request` through `responder`, now or later, from any thread. Called for the
    /// requests ``respondsLater(_:)`` flags, inline on the connection queue when an inline slot
    /// is free (else on the handler pool), so the synchronous part must not block: it should
    /// check, hand the slow part on and return. Reading is paused and the handler deadline runs
    /// until the response arrives; a responder dropped unanswered sends 500. The default calls
    /// ``handle(_:)`` and responds at once.
    func handle(_ request: HTTPRequest, responder: HTTPResponder)
}

/// Delivers the one response to a request a handler answers later (``HTTPHandler/respondsLater(_:)``).
///
/// Any thread may call ``respond(_:)`` or ``respond(building:)``, once; later calls are ignored.
/// A responder released without having responded answers 500 (a handler bug must not leave the
/// client waiting for the deadline).
public final class HTTPResponder: Sendable {
    /// Hands the closure that builds the response to the connection; `nil` when the responder
    /// was released unanswered.
    private let deliver: @Sendable ((@Sendable () -> HTTPResponse)?) -> Void
    /// Set by the first response; guards against a second one.
    private let answered = Atomic<Bool>(false)

    /// A responder that passes the closure building the response to `deliver`, or `nil` when it
    /// is released unanswered. Public for tests and adapters.
    public init(deliver: @escaping @Sendable ((@Sendable () -> HTTPResponse)?) -> Void) {
        self.deliver = deliver
    }

    /// Sends `response`. Returns false if a response was already sent.
    @discardableResult
    public func respond(_ response: HTTPResponse) -> Bool {
        respond(building: { response })
    }

    /// Sends the response that `build` makes; `build` runs on the connection's queue, so the
    /// thread that completes the work (a database writer, say) does not spend time encoding.
    /// Returns false if a response was already sent.
    @discardableResult
    public func respond(building build: @escaping @Sendable () -> HTTPResponse) -> Bool {
        guard !answered.exchange(true, ordering: .acquiringAndReleasing) else { return false }
        deliver(build)
        return true
    }

    deinit {
        if !answered.load(ordering: .acquiring) {
            deliver(nil)
        }
    }
}

extension HTTPHandler {
    /// Accepts every body (sends `100 Continue` when asked).
    public func responseBeforeBody(_ head: HTTPRequestHead) -> HTTPResponse? { nil }

    /// Unknown: placement by inline slots only.
    public func mayBlock(_ request: HTTPRequest) -> Bool { false }

    /// The default handler does not classify its requests.
    public var classifiesBlocking: Bool { false }

    /// Every request is answered by ``handle(_:)``.
    public func respondsLater(_ request: HTTPRequest) -> Bool { false }

    /// Calls ``handle(_:)`` and responds at once.
    public func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        responder.respond(handle(request))
    }
}

/// An ``HTTPHandler`` backed by a closure; handy in tests and small tools.
public struct HTTPClosureHandler: HTTPHandler {
    /// The wrapped closure.
    private let body: @Sendable (HTTPRequest) -> HTTPResponse
    /// The optional early check for requests that announce a body.
    private let beforeBody: @Sendable (HTTPRequestHead) -> HTTPResponse?

    /// Wraps `body` as a handler; `beforeBody` implements ``HTTPHandler/responseBeforeBody(_:)``.
    public init(
        beforeBody: @escaping @Sendable (HTTPRequestHead) -> HTTPResponse? = { _ in nil },
        _ body: @escaping @Sendable (HTTPRequest) -> HTTPResponse
    ) {
        self.body = body
        self.beforeBody = beforeBody
    }

    /// Calls the closure.
    public func handle(_ request: HTTPRequest) -> HTTPResponse { body(request) }

    /// Calls `beforeBody`.
    public func responseBeforeBody(_ head: HTTPRequestHead) -> HTTPResponse? { beforeBody(head) }
}

/// The part of a server's lifecycle that handlers may observe, shared by reference.
///
/// Create it first, give it to your handler, then pass it to ``HTTPServer/init(configuration:state:handler:)``
/// so a health endpoint can answer 503 while the server drains.
public final class HTTPServerState: Sendable {
    /// Set once by the server when shutdown begins; never cleared.
    private let draining = Atomic<Bool>(false)

    /// Creates a state that is not draining.
    public init() {}

    /// True once ``HTTPServer/shutdown(deadline:completion:)`` has been called.
    public var isDraining: Bool { draining.load(ordering: .acquiring) }

    /// Marks the server as draining (called by ``HTTPServer/shutdown(deadline:completion:)``).
    func beginDraining() { draining.store(true, ordering: .releasing) }
}
