// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Glibc
import Synchronization

/// One accepted client socket: reads, parses, runs the handler, writes, times out and closes.
///
/// **Confinement (`@unchecked Sendable`).** Every `var` below is read and written only on `queue`,
/// a serial queue: the server's ``EventLoop`` delivers readiness there, and the server reaches
/// a connection only through `queue.async`. The exceptions are explicitly
/// synchronised: `handlerStartedAt` and `publishedDeadline` (`Atomic`s) and `lateResponse` (a
/// `Locked`), shared with the server's watchdog, `idleSince` (an `Atomic` the listener reads
/// and claims when it sheds an idle connection), and the immutable `let`s. Debug builds check the
/// queue with `dispatchPrecondition` at every entry point.
///
/// **Deadlines without a timer per connection.** The connection publishes its one pending deadline
/// in `publishedDeadline`; the server's single watchdog tick (``HTTPServer``) compares it with the
/// clock and, when it has passed, queues ``deadlineReached()`` on `queue`, where the decision is
/// taken again against the confined state. A per-connection `DispatchSourceTimer` costs a
/// manager-thread round trip for every re-arm and cancel; on Linux that churn (re-arming from the
/// timer's own handler, cancelling right after a re-arm) is where libdispatch's source
/// bookkeeping is most intricate, and one server-wide tick removes it entirely.
///
/// **File descriptor.** `fd` is watched through the server's ``EventLoop`` (one-shot epoll
/// registrations that this connection re-arms with its current interest after every event) and
/// closed exactly once, in ``close()``, right after it is removed from epoll. Events already in
/// flight for a closed connection find no registration, or a closed phase, and are dropped.
final class Connection: @unchecked Sendable {
    /// What the connection is doing; decides which events are acted upon.
    private enum Phase {
        /// Between requests (or fresh): no byte of the next request yet.
        case idle
        /// Part of a request (head or body) has arrived.
        case reading
        /// A handler runs on the server's handler pool; reading is paused.
        case handling
        /// A final response is being written; reading is paused.
        case writing
        /// Write side shut down after an error; reading and discarding until EOF or a limit.
        case lingering
        /// `close()` was called; waiting for the sources to be cancelled.
        case closed
    }

    /// What happens once the outbound buffer is empty.
    private enum AfterFlush {
        /// An interim `100 Continue` went out; keep reading the body.
        case interim
        /// Ready for the next request.
        case nextRequest
        /// Close now (nothing more can arrive that matters).
        case close
        /// Shut down the write side and linger (RFC 9112 §9.6).
        case linger
    }

    /// Which deadline is currently pending.
    private enum DeadlineKind {
        /// No deadline: a handler runs inline (the watchdog guards it) or the connection is closed.
        case none
        /// Waiting for the first request head since accept (408 if nothing arrived).
        case firstHeader
        /// A later request's head must be complete; not extended by trickling bytes.
        case header
        /// The body must make progress; extended by every read.
        case body
        /// Keep-alive wait for the next request; silent close.
        case idle
        /// Pending output must make progress; extended by every write.
        case write
        /// End of the lingering close.
        case linger
        /// An offloaded handler must finish (the inline case is watched by the server's watchdog).
        case handler
    }

    /// The client socket (non-blocking, close-on-exec). Closed only in `sourceCancelled()`.
    let fd: Int32
    /// The serial queue every mutable property is confined to.
    let queue: DispatchQueue
    /// Whether the event loop runs this connection's events on its own thread (`queue.sync`)
    /// rather than handing them to a Dispatch worker: true when the handler classifies its
    /// blocking requests (see ``EventLoop``).
    let handledOnLoop: Bool
    /// The owning server: configuration, handler, counters, prebuilt errors.
    private let server: HTTPServer
    /// The epoll thread that reports this socket's readiness.
    private let loop: EventLoop
    /// The peer's address, formatted lazily into `remoteAddressText`.
    private let peer: SocketAddress
    /// Monotonic start time of the running handler, 0 when none, `.max` once the watchdog answered 503.
    let handlerStartedAt = Atomic<UInt64>(0)
    /// Bytes of the watchdog's 503 that are still unsent (shared with the watchdog thread).
    let lateResponse = Locked<[UInt8]?>(nil)

    /// `deadline` as seen by the server's watchdog tick: 0 when there is none.
    let publishedDeadline = Atomic<UInt64>(0)
    /// True while a ``deadlineReached()`` is queued, so a busy queue gets one check, not one a tick.
    let deadlineCheckQueued = Atomic<Bool>(false)
    /// Monotonic time since which the connection has been idle with nothing received of a next
    /// request (since accept, or since its last response went out), or 0 while it is busy or
    /// closed. Published for ``HTTPServer/shedIdleConnection(now:)``, which claims a connection
    /// by swapping it to 0 and then asks it to ``shed()``.
    let idleSince = Atomic<UInt64>(0)
    /// The peer's address as a key of the server's per-address slots.
    let peerKey: PeerKey

    /// The registration id in the server's event loop (0: not registered).
    private var loopID: UInt64 = 0
    /// The epoll interest currently armed (0 after a one-shot event fired, until re-armed).
    private var armed: UInt32 = 0
    /// Whether `armed` is a persistent registration (plain reading on a loop-handled connection,
    /// see ``EventLoop``): it stays armed after an event, so an unchanged interest costs no
    /// `epoll_ctl`.
    private var armedPersistent = false
    /// Reading is paused (a handler runs off-queue, or a final response is stuck): no EPOLLIN.
    private var readPaused = false
    /// A response is queued in the loop's batch (``EventLoop/deferFlush(_:)``): it is sent by
    /// ``sendDeferred()``, and the registration stays as it is until then.
    private var flushDeferred = false
    /// Output is pending after EAGAIN: EPOLLOUT is wanted.
    private var waitingForWrite = false

    /// Incremental parser holding any bytes received but not yet consumed (pipelining).
    private var parser: HTTPRequestParser
    /// Current phase; see ``Phase``.
    private var phase: Phase = .idle
    /// What to do once `outHead` and `outBody` are fully sent.
    private var afterFlush: AfterFlush = .nextRequest
    /// Pending status line and headers (plus any unsent `100 Continue`); capacity is reused.
    private var outHead: [UInt8] = []
    /// Bytes of `outHead` already sent.
    private var outHeadSent = 0
    /// Pending response body, sent after `outHead` in the same `sendmsg`.
    private var outBody: [UInt8] = []
    /// Bytes of `outBody` already sent.
    private var outBodySent = 0

    /// Requests handled on this connection (for ``HTTPServerConfiguration/maxRequestsPerConnection``).
    private var requestsServed = 0
    /// Whether any byte arrived since accept (408 is only for silent clients).
    private var receivedAnyByte = false
    /// Set by graceful shutdown: close when idle, add `Connection: close` to the next response.
    private var drainRequested = false
    /// Bytes discarded so far during the lingering close.
    private var lingerDiscarded = 0
    /// `peer` formatted as `ip:port`, computed at the first request.
    private var remoteAddressText: String?
    /// This connection's cached `Date` value.
    private var dateCache = HTTPDateCache()
    /// Bytes of the server's body memory budget reserved for the current request.
    private var bodyReserved = 0
    /// The offloaded handler missed its deadline and a 503 was sent in its place.
    private var offloadedHandlerTimedOut = false

    /// Monotonic time at which `deadlineKind` expires; 0 when there is none.
    private var deadline: UInt64 = 0
    /// What expires at `deadline`.
    private var deadlineKind: DeadlineKind = .none

    /// The configured timeouts, in nanoseconds.
    private let timeouts: Timeouts

    /// Monotonic nanosecond values of the configured timeouts.
    struct Timeouts: Sendable {
        /// ``HTTPServerConfiguration/headerTimeout``.
        var header: UInt64
        /// ``HTTPServerConfiguration/idleTimeout``.
        var idle: UInt64
        /// ``HTTPServerConfiguration/bodyInactivityTimeout``.
        var body: UInt64
        /// ``HTTPServerConfiguration/writeStallTimeout``.
        var write: UInt64
        /// ``HTTPServerConfiguration/lingerTimeout``.
        var linger: UInt64
        /// ``HTTPServerConfiguration/handlerTimeout``.
        var handler: UInt64
        /// ``HTTPServerConfiguration/lingerMaxBytes``.
        var lingerMaxBytes: Int
        /// ``HTTPServerConfiguration/maxRequestsPerConnection`` (at least 1).
        var maxRequests: Int

        /// Converts the durations of `c` once, so connections never touch `Duration` arithmetic.
        init(_ c: HTTPServerConfiguration) {
            header = c.headerTimeout.clampedNanoseconds
            idle = c.idleTimeout.clampedNanoseconds
            body = c.bodyInactivityTimeout.clampedNanoseconds
            write = c.writeStallTimeout.clampedNanoseconds
            linger = c.lingerTimeout.clampedNanoseconds
            handler = c.handlerTimeout.clampedNanoseconds
            lingerMaxBytes = c.lingerMaxBytes
            maxRequests = max(1, c.maxRequestsPerConnection)
        }
    }

    /// Wraps an accepted socket; nothing happens until ``start()`` runs on `queue`.
    init(fd: Int32, peer: SocketAddress, server: HTTPServer, loop: EventLoop, queue: DispatchQueue) {
        self.fd = fd
        self.loop = loop
        // Every handler places its requests (``HTTPHandler/placement(of:)``, offloaded unless it
        // says otherwise), so events are always handled on the loop thread.
        self.handledOnLoop = true
        self.peer = peer
        self.peerKey = peer.peerKey
        self.server = server
        self.queue = queue
        self.parser = HTTPRequestParser(configuration: server.configuration)
        self.timeouts = server.timeouts
    }

    /// Debug-build check that the caller is on `queue` (GRDB-style confinement watchdog).
    @inline(__always)
    private func assertOnQueue() {
        #if DEBUG
            dispatchPrecondition(condition: .onQueue(queue))
        #endif
    }

    /// Monotonic time in nanoseconds (the clock Dispatch timers use).
    @inline(__always)
    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    // MARK: - Lifecycle

    /// Registers with the event loop and starts reading. Called once, on `queue`.
    func start() {
        assertOnQueue()
        // HTTP.md item 11(a): the first head must be complete within the header timeout from accept.
        setDeadline(.firstHeader, at: Connection.now() &+ timeouts.header)
        guard let id = loop.add(fd: fd, connection: self, events: EventLoop.readable, persistent: handledOnLoop) else {
            server.configuration.logger.log(.warning, "cannot watch an accepted socket: errno \(errno)")
            phase = .closed
            clearDeadline()
            SocketIO.close(fd)
            server.connectionClosed(self)
            return
        }
        loopID = id
        armed = EventLoop.readable
        armedPersistent = handledOnLoop
        idleSince.store(max(1, Connection.now()), ordering: .relaxed)
    }

    /// Closes immediately: removes `fd` from epoll, closes it and tells the server.
    func close() {
        assertOnQueue()
        if phase == .closed { return }
        phase = .closed
        clearDeadline()
        idleSince.store(0, ordering: .relaxed)
        releaseBody()
        loop.remove(fd: fd, id: loopID)
        armed = 0
        armedPersistent = false
        SocketIO.close(fd)
        outHead = []
        outBody = []
        server.connectionClosed(self)
    }

    /// Event-loop delivery (on `queue`): a one-shot registration fired and is now disarmed (a
    /// persistent one stays armed). Errors and hang-ups go to whichever side is interested, whose
    /// system call then reports them.
    func ioEvent(_ events: UInt32, id: UInt64) {
        assertOnQueue()
        guard phase != .closed, id == loopID else { return }
        #if DEBUG
        server.loopEventsDelivered.add(1, ordering: .relaxed)
        #endif
        if !armedPersistent { armed = 0 }
        let failed = events & EventLoop.failed != 0
        if waitingForWrite && (failed || events & EventLoop.writable != 0) { writable() }
        if phase != .closed && wantsRead && (failed || events & EventLoop.readable != 0) { readable() }
        updateInterest()
    }

    /// Whether the connection wants EPOLLIN now.
    private var wantsRead: Bool {
        if readPaused { return false }
        switch phase {
        case .idle, .reading, .lingering: return true
        case .handling, .writing, .closed: return false
        }
    }

    /// Arms the registration for what the connection wants now, if that differs from what is armed.
    private func updateInterest() {
        guard phase != .closed, !flushDeferred else { return }
        var wanted: UInt32 = 0
        if wantsRead { wanted |= EventLoop.readable }
        if waitingForWrite { wanted |= EventLoop.writable }
        if wanted == armed { return }
        // Persistent only for plain reading on a connection whose events the loop runs itself:
        // anything else is one-shot, so a level-triggered event can never repeat while nothing
        // consumes it (a handler off the loop, a paused reader, a blocked write).
        let persistent = handledOnLoop && wanted == EventLoop.readable
        loop.rearm(fd: fd, id: loopID, events: wanted, persistent: persistent)
        #if DEBUG
        server.loopRearms.add(1, ordering: .relaxed)
        #endif
        armed = wanted
        armedPersistent = persistent
    }

    /// Graceful shutdown, step 2/3 (HTTP.md item 16): close if idle, otherwise finish the current
    /// request and answer it with `Connection: close`.
    func beginDrain() {
        assertOnQueue()
        drainRequested = true
        if phase == .idle && outHeadSent == outHead.count && parser.isAtRequestBoundary { close() }
        updateInterest()
    }

    /// Issue 14 item 3, on `queue`: the server chose this connection to make room for a newcomer
    /// (``HTTPServer/shedIdleConnection(now:)``). Closes silently, as the idle deadline would, if
    /// it is still idle with nothing of a next request received or waiting in the socket;
    /// otherwise it is busy after all and tells the server to choose again.
    func shed() {
        assertOnQueue()
        defer { updateInterest() }
        if phase == .closed { return }
        let idle =
            phase == .idle && !flushDeferred && outHeadSent == outHead.count && parser.isAtRequestBoundary
            && !SocketIO.hasPendingInput(fd)
        guard idle else {
            server.shedDeclined()
            return
        }
        server.configuration.logger.log(.debug, "shedding an idle connection to admit a new one")
        close()
    }

    // MARK: - Reading

    /// Read-source handler: receives into the thread's buffer, feeds the parser and processes
    /// whatever became complete. EOF or a receive error closes the connection.
    private func readable() {
        assertOnQueue()
        switch phase {
        case .closed, .writing, .handling: return
        case .lingering:
            discardLingering()
            return
        case .idle, .reading: break
        }
        let buffer = ReadBuffer.current()
        guard let base = buffer.baseAddress else { return }
        var rounds = 0
        while phase == .idle || phase == .reading {
            let n = SocketIO.receive(fd, base, buffer.count)
            if n > 0 {
                receivedAnyByte = true
                if phase == .idle {
                    phase = .reading
                    idleSince.store(0, ordering: .relaxed)
                    // A later request's head must arrive within the header timeout from its first byte;
                    // the first request keeps its deadline from accept. Trickling does not extend it.
                    if deadlineKind == .firstHeader {
                        deadlineKind = .header
                    } else {
                        setDeadline(.header, at: Connection.now() &+ timeouts.header)
                    }
                }
                parser.append(UnsafeRawBufferPointer(start: base, count: n))
                if deadlineKind == .body { setDeadline(.body, at: Connection.now() &+ timeouts.body) }
                processBuffered()
                rounds += 1
                // A short read means the socket is (almost certainly) drained; the level-triggered
                // source fires again if more arrives. Bound the work per wake-up for fairness.
                if n < buffer.count || rounds >= 4 { return }
            } else if n == 0 {
                // Peer closed its write side. Complete requests were already answered above; what is
                // left is an incomplete message (RFC 9112 §6.3 item 6) or nothing: close.
                close()
                return
            } else {
                let code = errno
                if code == EAGAIN || code == EWOULDBLOCK { return }
                server.configuration.logger.log(.debug, "recv failed on connection: errno \(code)")
                close()
                return
            }
        }
    }

    /// Parses and handles everything buffered, in order, until more bytes are needed or the
    /// connection stops accepting requests (pipelining, RFC 9112 §9.3.2).
    private func processBuffered() {
        while phase == .idle || phase == .reading {
            switch parser.next() {
            case .needMoreData:
                // A chunked body reserves its memory as its chunks are announced (issue 14 item 4).
                if !reserveBody(upTo: parser.announcedChunkedBytes) {
                    refuseBodyOverBudget()
                }
                return
            case .head(var head):
                if head.framing.hasBody {
                    setDeadline(.body, at: Connection.now() &+ timeouts.body)
                    // Issue 14 item 4: the handler sees every head that announces a body before
                    // any of the body is read, so a request it refuses (no token, say) is
                    // answered at once and its body never read: `Connection: close`, lingering.
                    if remoteAddressText == nil { remoteAddressText = peer.description }
                    head.remoteAddress = remoteAddressText ?? ""
                    if let refusal = server.handler.responseBeforeBody(head) {
                        requestsServed += 1
                        clearDeadline()
                        respond(refusal, method: head.method, version: head.version, keepAlive: false, bodyUnread: true)
                        return
                    }
                    // The bodies in memory together stay within the budget: reserve this one's
                    // announced length now, or answer 503 before reading it.
                    if case .contentLength(let length) = head.framing, !reserveBody(upTo: length) {
                        refuseBodyOverBudget()
                        return
                    }
                    // RFC 9110 §10.1.1: send 100 only if none of the body has arrived yet, and
                    // only after the handler had a chance to refuse the body (HTTP.md item 8).
                    if head.expectsContinue && parser.bufferedByteCount == 0 {
                        sendContinue()
                    }
                } else {
                    clearDeadline()
                }
            case .request(var request):
                clearDeadline()
                // The last chunks may have been parsed with the rest; they are in memory now.
                _ = reserveBody(upTo: parser.announcedChunkedBytes, force: true)
                if remoteAddressText == nil { remoteAddressText = peer.description }
                request.remoteAddress = remoteAddressText ?? ""
                handle(request)
            case .error(let error):
                server.configuration.logger.log(.debug, "rejecting request: \(error) (\(error.status.code))")
                sendError(code: error.status.code)
                return
            }
        }
    }

    // MARK: - Body memory (issue 14 item 4)

    /// Grows this request's reservation in the server's body budget to `total` bytes; false,
    /// reserving nothing more, when that does not fit. `force` reserves bytes already read.
    private func reserveBody(upTo total: Int, force: Bool = false) -> Bool {
        let extra = total - bodyReserved
        guard extra > 0 else { return true }
        guard server.bodyBudget.reserve(extra, force: force) else { return false }
        bodyReserved = total
        return true
    }

    /// Gives the current request's reservation back (its response is queued, or the connection
    /// closed).
    private func releaseBody() {
        guard bodyReserved > 0 else { return }
        server.bodyBudget.release(bodyReserved)
        bodyReserved = 0
    }

    /// The body does not fit in the budget: 503 with `Retry-After` and `Connection: close`
    /// before (the rest of) it is read.
    private func refuseBodyOverBudget() {
        server.configuration.logger.log(.warning, "request body memory budget reached; answering 503")
        requestsServed += 1
        clearDeadline()
        sendError(code: 503)
    }

    // MARK: - Handling

    /// Runs the handler for one complete request (inline when possible, see ``InlineHandlerSlots``),
    /// enforcing the in-flight cap, then queues its response.
    private func handle(_ request: HTTPRequest) {
        requestsServed += 1
        let inFlight = server.inFlightHandlers.wrappingAdd(1, ordering: .relaxed).newValue
        if inFlight > server.configuration.maxInFlightHandlers {
            server.inFlightHandlers.wrappingSubtract(1, ordering: .relaxed)
            server.configuration.logger.log(.warning, "handler capacity reached; answering 503")
            sendError(code: 503)
            return
        }
        let placement = server.handler.placement(of: request)
        if placement == .deferred {
            handleLater(request)
            return
        }
        // Inline only with nothing left to send: the watchdog's 503 is written from another thread
        // and must not interleave with an unsent interim `100 Continue`.
        guard outHeadSent == outHead.count, placement == .inline,
            InlineHandlerSlots.acquire(limit: server.inlineLimit)
        else {
            offload(request)
            return
        }
        let started = max(1, Connection.now())
        handlerStartedAt.store(started, ordering: .sequentiallyConsistent)
        let response = server.handler.handle(request)
        InlineHandlerSlots.release()
        server.inFlightHandlers.wrappingSubtract(1, ordering: .relaxed)
        let (finishedInTime, _) = handlerStartedAt.compareExchange(
            expected: started, desired: 0, ordering: .sequentiallyConsistent)
        guard finishedInTime else {
            // The watchdog already answered 503 for this request: drop the late result and send
            // whatever part of that 503 the watchdog could not write. The watchdog swaps the start
            // time and fills `lateResponse` under the same lock, so taking the lock here waits for
            // it to finish writing.
            let rest = lateResponse.withLock { pending -> [UInt8] in
                defer { pending = nil }
                return pending ?? []
            }
            handlerStartedAt.store(0, ordering: .sequentiallyConsistent)
            phase = .writing
            afterFlush = .linger
            compactOutHead()
            outHead.append(contentsOf: rest)
            flush()
            return
        }
        respond(response, to: request)
    }

    /// Runs the handler on the server's bounded handler pool, with reading paused and the
    /// connection's handler deadline armed; the response hops back to `queue`.
    private func offload(_ request: HTTPRequest) {
        phase = .handling
        pauseReading()
        setDeadline(.handler, at: Connection.now() &+ timeouts.handler)
        server.handlerPool.submit { [self] in
            let response = server.handler.handle(request)
            server.inFlightHandlers.wrappingSubtract(1, ordering: .relaxed)
            queue.async { [self] in offloadFinished(response, request) }
        }
    }

    /// A request the handler answers later (``HTTPPlacement/deferred``): the connection
    /// waits as for an offloaded handler (reading paused, handler deadline armed) while the
    /// handler's synchronous part runs inline if an inline slot is free, else on the pool. The
    /// response always comes back through `queue.async`, so a responder called before
    /// `handle(_:responder:)` returns still finds the connection in `.handling`.
    private func handleLater(_ request: HTTPRequest) {
        phase = .handling
        pauseReading()
        setDeadline(.handler, at: Connection.now() &+ timeouts.handler)
        let responder = HTTPResponder { [self] build in
            server.inFlightHandlers.wrappingSubtract(1, ordering: .relaxed)
            queue.async { [self] in
                guard let build else {
                    server.configuration.logger.log(.error, "handler released its responder without responding; sending 500")
                    offloadFinished(nil, request)
                    return
                }
                offloadFinished(build(), request)
            }
        }
        if InlineHandlerSlots.acquire(limit: server.inlineLimit) {
            server.handler.handle(request, responder: responder)
            InlineHandlerSlots.release()
        } else {
            server.handlerPool.submit { [self] in server.handler.handle(request, responder: responder) }
        }
    }

    /// Back on `queue` after an offloaded handler: send its response (`nil`: the handler gave
    /// none, send 500) unless the deadline passed or the connection closed meanwhile, then
    /// continue with pipelined requests.
    private func offloadFinished(_ response: HTTPResponse?, _ request: HTTPRequest) {
        assertOnQueue()
        if offloadedHandlerTimedOut {
            offloadedHandlerTimedOut = false
            return  // A 503 went out at the deadline; the connection is closing.
        }
        guard phase == .handling else { return }  // Closed meanwhile (drain deadline, reset).
        clearDeadline()
        if let response {
            respond(response, to: request)
        } else {
            sendError(code: 500)
        }
        if phase == .idle || phase == .reading { processBuffered() }
        updateInterest()
    }

    /// Queues the handler's response and writes as much as possible now.
    private func respond(_ response: HTTPResponse, to request: HTTPRequest) {
        respond(
            response, method: request.method, version: request.version, keepAlive: request.keepAlive,
            bodyUnread: false)
    }

    /// Queues a handler response. `bodyUnread` means the request body was refused before it was
    /// read (``HTTPHandler/responseBeforeBody(_:)``): the connection must close, after lingering.
    private func respond(
        _ response: HTTPResponse, method: HTTPMethod, version: HTTPVersion, keepAlive: Bool, bodyUnread: Bool
    ) {
        releaseBody()
        if let rejection = ResponseEncoder.validate(response) {
            server.configuration.logger.log(.error, "handler returned an invalid response (\(rejection)); sending 500")
            sendError(code: 500)
            return
        }
        let close =
            !keepAlive || bodyUnread || drainRequested || server.state.isDraining
            || requestsServed >= timeouts.maxRequests || ResponseEncoder.handlerRequestsClose(response.headers)
        let framing = ResponseEncoder.Framing(
            isHead: method == .head, close: close, keepAliveHeader: !close && version == .http1_0)
        compactOutHead()
        let sendBody = ResponseEncoder.appendHead(response, framing: framing, date: dateCache.current(), to: &outHead)
        if sendBody { outBody = response.body }
        phase = .writing
        if close {
            // Linger when the client may still be sending (it expected to keep the connection, or
            // more bytes are already buffered); otherwise a plain close cannot cause a reset.
            afterFlush = (keepAlive || bodyUnread || parser.bufferedByteCount > 0) ? .linger : .close
        } else {
            afterFlush = .nextRequest
            // On the loop thread, a keep-alive response waits for the end of the loop's batch of
            // events (see ``EventLoop``). Closing responses go at once: nothing follows them.
            if handledOnLoop && loop.deferFlush(self) {
                flushDeferred = true
                #if DEBUG
                server.responsesDeferred.add(1, ordering: .relaxed)
                #endif
                return
            }
        }
        flush()
    }

    /// Sends a response that ``respond(_:method:version:keepAlive:bodyUnread:)`` left to the
    /// loop's batch, then goes on with pipelined requests (their responses go at once).
    func sendDeferred() {
        assertOnQueue()
        guard flushDeferred else { return }
        flushDeferred = false
        if phase == .writing {
            flush()
            if phase == .idle || phase == .reading { processBuffered() }
        }
        updateInterest()
    }

    /// Sends `HTTP/1.1 100 Continue` (interim; the body keeps arriving meanwhile).
    private func sendContinue() {
        compactOutHead()
        let wasEmpty = outHead.isEmpty
        outHead.append(contentsOf: "HTTP/1.1 100 Continue\r\n\r\n".utf8)
        if wasEmpty {
            afterFlush = .interim
            flush()
        }
    }

    /// Sends a prebuilt error response with `Connection: close`, then lingers (HTTP.md items 17, 18).
    /// Only called when no final response has started on this connection.
    private func sendError(code: Int) {
        releaseBody()
        idleSince.store(0, ordering: .relaxed)  // a 408 to a silent client: no longer sheddable
        compactOutHead()
        server.errorResponses.append(code: code, date: dateCache.current(), to: &outHead)
        outBody = []
        outBodySent = 0
        phase = .writing
        afterFlush = .linger
        flush()
    }

    /// Drops already-sent bytes of `outHead` (for example a written `100 Continue`).
    private func compactOutHead() {
        if outHeadSent == 0 { return }
        if outHeadSent >= outHead.count {
            outHead.removeAll(keepingCapacity: true)
        } else {
            outHead.removeSubrange(0..<outHeadSent)
        }
        outHeadSent = 0
    }

    // MARK: - Writing

    /// Writes pending bytes (head and body in one `sendmsg`); on EAGAIN waits for writability with
    /// reading paused and the write-stall deadline armed (HTTP.md item 13).
    private func flush() {
        while outHeadSent < outHead.count || outBodySent < outBody.count {
            let n = outHead.withUnsafeBytes { head in
                outBody.withUnsafeBytes { body in
                    SocketIO.send(
                        fd, UnsafeRawBufferPointer(rebasing: head[outHeadSent...]),
                        UnsafeRawBufferPointer(rebasing: body[outBodySent...]))
                }
            }
            if n > 0 {
                let fromHead = min(n, outHead.count - outHeadSent)
                outHeadSent += fromHead
                outBodySent += n - fromHead
                if deadlineKind == .write { setDeadline(.write, at: Connection.now() &+ timeouts.write) }
                continue
            }
            let code = errno
            if n < 0 && (code == EAGAIN || code == EWOULDBLOCK) {
                waitForWritable()
                return
            }
            // EPIPE / ECONNRESET: the peer is gone (HTTP.md item 13, logged at debug level).
            server.configuration.logger.log(.debug, "send failed on connection: errno \(code)")
            close()
            return
        }
        outHead.removeAll(keepingCapacity: outHead.capacity <= 4096)
        outHeadSent = 0
        outBody = []
        outBodySent = 0
        waitingForWrite = false
        flushed()
    }

    /// Asks the event loop for writability and, for final responses, pauses reading and arms the
    /// write-stall deadline.
    private func waitForWritable() {
        if afterFlush != .interim {
            // Backpressure: no reading while a final response is stuck (HTTP.md item 10).
            pauseReading()
            if deadlineKind != .write { setDeadline(.write, at: Connection.now() &+ timeouts.write) }
        }
        waitingForWrite = true
        updateInterest()
    }

    /// Write-source handler: continue flushing, then resume request processing if it finished.
    private func writable() {
        assertOnQueue()
        if phase == .closed { return }
        flush()
        if phase == .idle || phase == .reading { processBuffered() }
    }

    /// The outbound buffer just became empty.
    private func flushed() {
        switch afterFlush {
        case .interim:
            break
        case .nextRequest:
            if drainRequested && parser.isAtRequestBoundary {
                close()
                return
            }
            if parser.isAtRequestBoundary {
                phase = .idle
                let now = Connection.now()
                setDeadline(.idle, at: now &+ timeouts.idle)
                idleSince.store(max(1, now), ordering: .relaxed)
            } else {
                // Pipelined bytes are waiting: they are the start of the next head.
                phase = .reading
                setDeadline(.header, at: Connection.now() &+ timeouts.header)
            }
            resumeReading()
        case .close:
            close()
        case .linger:
            startLingering()
        }
    }

    // MARK: - Lingering close (RFC 9112 §9.6, HTTP.md item 17)

    /// `shutdown(SHUT_WR)`, then read and discard for up to ``HTTPServerConfiguration/lingerTimeout``
    /// or ``HTTPServerConfiguration/lingerMaxBytes``, so the client reads our response before any RST.
    private func startLingering() {
        _ = shutdown(fd, Int32(SHUT_WR))
        phase = .lingering
        lingerDiscarded = 0
        setDeadline(.linger, at: Connection.now() &+ timeouts.linger)
        resumeReading()
        discardLingering()
    }

    /// Reads and drops input until EOF, an error, the byte cap, or (via the deadline) the time cap.
    private func discardLingering() {
        let buffer = ReadBuffer.current()
        guard let base = buffer.baseAddress else { return }
        while phase == .lingering {
            let n = SocketIO.receive(fd, base, buffer.count)
            if n > 0 {
                lingerDiscarded += n
                if lingerDiscarded >= timeouts.lingerMaxBytes { close() }
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                return
            } else {
                close()
            }
        }
    }

    // MARK: - Read interest

    /// Stops asking for EPOLLIN (idempotent); takes effect at the next ``updateInterest()``.
    private func pauseReading() {
        readPaused = true
        updateInterest()
    }

    /// Asks for EPOLLIN again (idempotent), from the end of the current turn on `queue`: every
    /// entry point (``ioEvent(_:id:)``, `offloadFinished`, `deadlineReached`, ``beginDrain()``)
    /// finishes with ``updateInterest()``, which re-arms. Arming here, before the turn has
    /// processed the pipelined requests still buffered, would let an event loop find the fd ready
    /// while a Dispatch worker still runs this queue, and wait for it in `queue.sync`.
    private func resumeReading() {
        readPaused = false
    }

    // MARK: - Deadlines (HTTP.md item 11)

    /// Sets the single pending deadline and publishes it to the watchdog tick.
    private func setDeadline(_ kind: DeadlineKind, at time: UInt64) {
        deadlineKind = kind
        deadline = max(1, time)
        publishedDeadline.store(deadline, ordering: .relaxed)
    }

    /// Removes the deadline.
    private func clearDeadline() {
        deadline = 0
        deadlineKind = .none
        publishedDeadline.store(0, ordering: .relaxed)
    }

    /// Watchdog side (any thread): queues ``deadlineReached()`` once the published deadline has
    /// passed, at most one at a time.
    func checkDeadline(now: UInt64) {
        let published = publishedDeadline.load(ordering: .relaxed)
        guard published != 0, now >= published else { return }
        guard deadlineCheckQueued.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else {
            return
        }
        queue.async { [self] in
            deadlineCheckQueued.store(false, ordering: .relaxed)
            deadlineReached()
        }
    }

    /// On `queue`: acts on the deadline if it has really expired (it may have moved or been
    /// cleared since the watchdog looked).
    private func deadlineReached() {
        assertOnQueue()
        defer { updateInterest() }
        guard phase != .closed, deadline != 0, Connection.now() >= deadline else { return }
        let kind = deadlineKind
        clearDeadline()
        switch kind {
        case .firstHeader:
            // 408 only when nothing at all was received (HTTP.md item 18); otherwise just close.
            // Bytes already waiting in the socket count as received: this queue may simply have
            // run late on a loaded machine, and a 408 must never be mistaken for their answer.
            if phase == .idle && !receivedAnyByte && !SocketIO.hasPendingInput(fd) {
                server.configuration.logger.log(.debug, "header deadline: nothing received, sending 408")
                sendError(code: 408)
            } else {
                close()
            }
        case .handler:
            guard phase == .handling else { return }
            server.configuration.logger.log(.warning, "handler exceeded its deadline; answered 503")
            offloadedHandlerTimedOut = true
            sendError(code: 503)
        case .header, .body, .idle, .write, .linger:
            server.configuration.logger.log(.debug, "connection deadline reached; closing")
            close()
        case .none:
            break
        }
    }

    // MARK: - Handler watchdog (runs on the server's watchdog queue, not on `queue`)

    /// Answers 503 if the running handler has exceeded `timeout`. Safe off-queue: `queue` is blocked
    /// inside the handler, so nothing else writes to `fd`, and `fd` cannot be closed meanwhile
    /// (closing happens on `queue`). The 503 carries `Connection: close`; the handler's result is
    /// discarded when it returns (see `handle(_:)`).
    func checkHandlerDeadline(now: UInt64, timeout: UInt64, errorResponses: ErrorResponses) {
        let started = handlerStartedAt.load(ordering: .sequentiallyConsistent)
        guard started != 0, started != .max, now >= started, now - started >= timeout else { return }
        // Claim the request and record the unsent rest under one lock: the handler, on return,
        // sees `.max` and then takes this lock, so it never reads `lateResponse` half-written
        // (it would otherwise shut the socket down before the 503 went out).
        lateResponse.withLock { pending in
            guard
                handlerStartedAt.compareExchange(expected: started, desired: .max, ordering: .sequentiallyConsistent)
                    .exchanged
            else { return }
            server.configuration.logger.log(.warning, "handler exceeded its deadline; answered 503")
            let bytes = errorResponses.bytes(code: 503, date: HTTPDate.format(HTTPDate.nowSeconds()))
            let sent = bytes.withUnsafeBytes { SocketIO.send(fd, UnsafeRawBufferPointer(start: nil, count: 0), $0) }
            let code = errno
            if sent >= 0 {
                pending = Array(bytes[sent...])
            } else {
                pending = (code == EAGAIN || code == EWOULDBLOCK) ? bytes : []
            }
        }
    }
}

/// A per-thread receive buffer: reads land here and are copied into the connection's parser, so
/// idle connections hold no read buffer (HTTP.md item 10 memory bound, and lower RSS).
enum ReadBuffer {
    /// Bytes per thread: large enough for a 64 KiB body chunk per `recv`.
    static let size = 64 * 1024

    /// Thread-local slot; its destructor frees the buffer when a Dispatch worker exits.
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        _ = pthread_key_create(&key) { pointer in free(pointer) }
        return key
    }()

    /// This thread's buffer, allocated on first use and freed when the thread exits.
    static func current() -> UnsafeMutableRawBufferPointer {
        if let existing = pthread_getspecific(key) {
            return UnsafeMutableRawBufferPointer(start: existing, count: size)
        }
        guard let fresh = malloc(size) else { return UnsafeMutableRawBufferPointer(start: nil, count: 0) }
        _ = pthread_setspecific(key, fresh)
        return UnsafeMutableRawBufferPointer(start: fresh, count: size)
    }
}
