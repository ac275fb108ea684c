// SPDX-License-Identifier: Apache-2.0
import Synchronization

/// Answers one complete request with one complete response.
///
/// **Where handlers run.** The server asks ``placement(of:)`` for every complete request, on the
/// thread that handles the connection's I/O (an event-loop thread, ``EventLoop``), and the
/// answer alone decides where the handler runs:
///
/// - ``HTTPPlacement/inline``: right there, with no thread hop, while fewer than
///   ``HTTPServerConfiguration/inlineHandlerLimit`` handlers run inline in the process (else as
///   `offloaded`). Only for work that cannot block: it holds up every connection of that loop.
/// - ``HTTPPlacement/offloaded`` (the default, so a request nobody placed is safe): on the
///   server's bounded handler pool (``HTTPServerConfiguration/handlerThreads`` threads at most),
///   where blocking work (SQLite, OpenSSL) is fine; the response hops back to the connection.
/// - ``HTTPPlacement/deferred``: through ``handle(_:responder:)``, whose synchronous part runs
///   like an inline handler while the ``HTTPResponder`` delivers the response from any thread
///   when the work it waits on (a group commit, say) is done, so no thread waits with it. The
///   handler deadline and the in-flight cap apply until the response arrives.
///
/// Requests on one connection are handled one at a time, in order (RFC 9112 §9.3.2).
///
/// **Bounds.** At most ``HTTPServerConfiguration/maxInFlightHandlers`` calls run at once; a request
/// beyond that gets 503 with `Retry-After` without calling the handler. A call that runs longer than
/// ``HTTPServerConfiguration/handlerTimeout`` makes the server answer 503 (`Retry-After`,
/// `Connection: close`) instead of its response, and close: for an offloaded call at the
/// deadline (the connection's queue is free and acts when the watchdog reports the deadline), for
/// an inline call when it returns (only the connection's own thread writes to its transport, and
/// that thread is inside the call). The late response is dropped. A handler cannot be
/// interrupted, so it should still bound its own blocking work, and one that may block must say
/// so (``placement(of:)`` returns `.offloaded`, the default) so that it is offloaded.
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

    /// Where `request` is handled (see ``HTTPPlacement``). Called on the connection's I/O thread
    /// for every complete request; must be cheap and must not block. The default,
    /// ``HTTPPlacement/offloaded``, is always safe.
    func placement(of request: HTTPRequest) -> HTTPPlacement

    /// Answers `request` through `responder`, now or later, from any thread. Called for the
    /// requests placed ``HTTPPlacement/deferred``, inline on the connection queue when an inline slot
    /// is free (else on the handler pool), so the synchronous part must not block: it should
    /// check, hand the slow part on and return. Reading is paused and the handler deadline runs
    /// until the response arrives; a responder dropped unanswered sends 500. The default calls
    /// ``handle(_:)`` and responds at once.
    func handle(_ request: HTTPRequest, responder: HTTPResponder)

    /// How long a request placed ``HTTPPlacement/deferred`` may wait for its answer when that is
    /// longer than the handler deadline (a long poll that waits for an event, holding no
    /// thread); `nil`, the default, keeps the handler deadline. Called on the connection's
    /// I/O thread; must be cheap.
    func answerDeadline(of request: HTTPRequest) -> Duration?
}

/// Where a request is handled: the one scheduling question the server asks a handler
/// (``HTTPHandler/placement(of:)``).
public enum HTTPPlacement: Sendable, Equatable {
    /// Cheap and non-blocking: ``HTTPHandler/handle(_:)`` may run on the thread that handles the
    /// connection's I/O, an event-loop thread (while an inline slot is free, else offloaded).
    case inline
    /// May block: ``HTTPHandler/handle(_:)`` runs on the server's bounded handler pool.
    case offloaded
    /// Answered later: ``HTTPHandler/handle(_:responder:)`` runs like an inline handler and
    /// responds from any thread once the work it handed on is done.
    case deferred
}

/// Delivers the one response to a request a handler answers later (``HTTPPlacement/deferred``).
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

    /// Every request runs on the handler pool: a handler that never says otherwise is never run
    /// where blocking would hold up other connections.
    public func placement(of request: HTTPRequest) -> HTTPPlacement { .offloaded }

    /// Calls ``handle(_:)`` and responds at once.
    public func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        responder.respond(handle(request))
    }

    /// The handler deadline applies.
    public func answerDeadline(of request: HTTPRequest) -> Duration? { nil }
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
