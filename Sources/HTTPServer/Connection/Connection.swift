// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Glibc
import Primitives
import Logging
import Synchronization

/// One accepted client connection: the driver of its ``ConnectionStateMachine``. It performs the
/// I/O through its ``Transport``, runs the parser and the handler, reports each outcome to the
/// machine, and carries out what the machine decides (phases, deadlines, keep-alive, pipelining,
/// half-close, lingering close, the 503 when a handler overruns: issue 15 item 3).
///
/// **Confinement (`@unchecked Sendable`).** Every `var` below is read and written only on `queue`,
/// a serial queue: the server's ``EventLoop`` delivers readiness there, and the server reaches
/// a connection only through `queue.async`. The exceptions are explicitly
/// synchronised: `publishedDeadline` and `deadlineCheckQueued` (`Atomic`s shared with the
/// server's watchdog, which only ever queues ``deadlineReached()`` here), `idleSince` and
/// `headSince` (`Atomic`s the listener reads and claims when it sheds a connection), and the
/// immutable `let`s. Only `queue` touches `transport`. Debug builds check the
/// queue with `dispatchPrecondition` at every entry point.
///
/// **Deadlines without a timer per connection.** The connection publishes the machine's one
/// pending deadline in `publishedDeadline` (and its shedding times in `idleSince`/`headSince`) at
/// the end of every turn on `queue`; the server's single watchdog tick (``HTTPServer``) compares it with the
/// clock and, when it has passed, queues ``deadlineReached()`` on `queue`, where the decision is
/// taken again against the confined state. A per-connection `DispatchSourceTimer` costs a
/// manager-thread round trip for every re-arm and cancel; on Linux that churn (re-arming from the
/// timer's own handler, cancelling right after a re-arm) is where libdispatch's source
/// bookkeeping is most intricate, and one server-wide tick removes it entirely.
///
/// **Transport.** Bytes move through `transport` (``Transport``; the plain socket today), called
/// only on `queue`. Its descriptor is watched through the server's ``EventLoop`` (one-shot epoll
/// registrations that this connection re-arms with its current interest after every event) and
/// the transport is closed exactly once, in ``close()``, right after it is removed from epoll. Events already in
/// flight for a closed connection find no registration, or a closed phase, and are dropped.
final class Connection: @unchecked Sendable {
    /// The client byte stream; used only on `queue`, closed only in ``close()``.
    private let transport: any Transport
    /// `transport`'s descriptor, as registered with the event loop.
    private let fd: Int32
    /// The serial queue every mutable property is confined to.
    let queue: DispatchQueue
    /// The owning server: configuration, handler, counters, prebuilt errors.
    private let server: HTTPServer
    /// The epoll thread that reports this socket's readiness.
    private let loop: EventLoop
    /// The peer's address, formatted lazily into `remoteAddressText`.
    private let peer: SocketAddress
    /// `deadline` as seen by the server's watchdog tick: 0 when there is none.
    let publishedDeadline = Atomic<UInt64>(0)
    /// True while a ``deadlineReached()`` is queued, so a busy queue gets one check, not one a tick.
    let deadlineCheckQueued = Atomic<Bool>(false)
    /// Monotonic time since which the connection has been idle with nothing received of a next
    /// request (since accept, or since its last response went out), or 0 while it is busy or
    /// closed. Published for ``HTTPServer/shedIdleConnection(now:)``, which claims a connection
    /// by swapping it to 0 and then asks it to ``shed()``.
    let idleSince = Atomic<UInt64>(0)
    /// Monotonic time since which the connection has been receiving one request head (since the
    /// head's first byte), or 0 when it is not receiving a head. Published for
    /// ``HTTPServer/shedIdleConnection(now:)``: a head still incomplete after
    /// ``HTTPServerConfiguration/headShedGracePeriod`` is a trickler, sheddable like an idle
    /// connection (issue 14 item 3).
    let headSince = Atomic<UInt64>(0)
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
    /// A response is queued in the loop's batch (``EventLoop/deferFlush(_:)``): it is sent by
    /// ``sendDeferred()``, and the registration stays as it is until then.
    private var flushDeferred = false

    /// Incremental parser holding any bytes received but not yet consumed (pipelining).
    private var parser: HTTPRequestParser
    /// Phase, deadline, keep-alive and lingering decisions (confined to `queue` like the rest).
    private var machine: ConnectionStateMachine
    /// The deadline and shedding times last stored in the atomics, so unchanged ones cost no store.
    private var published: (deadline: UInt64, idle: UInt64, head: UInt64) = (0, 0, 0)
    /// Whether the transport's handshake is done (true at once for the plain socket).
    private var established: Bool
    /// The readiness a blocked read waits for: readable, or writable when the transport said
    /// ``TransportIO/needsWritable`` (TLS).
    private var readWaitsFor = EventLoop.readable
    /// The readiness a blocked write waits for: writable, or readable when the transport said
    /// ``TransportIO/needsReadable`` (TLS).
    private var writeWaitsFor = EventLoop.writable
    /// Pending status line and headers (plus any unsent `100 Continue`); capacity is reused.
    private var outHead: [UInt8] = []
    /// Bytes of `outHead` already sent.
    private var outHeadSent = 0
    /// Pending response body, sent after `outHead` in the same `sendmsg`.
    private var outBody: [UInt8] = []
    /// Bytes of `outBody` already sent.
    private var outBodySent = 0

    /// `peer` formatted as `ip:port`, computed at the first request.
    private var remoteAddressText: String?
    /// This connection's cached `Date` value.
    private var dateCache = HTTPDateCache()
    /// Bytes of the server's body memory budget reserved for the current request.
    private var bodyReserved = 0
    /// The configured timeouts, in nanoseconds.
    private let timeouts: Timeouts

    /// Monotonic nanosecond values of the configured timeouts.
    struct Timeouts: Sendable {
        /// ``HTTPServerConfiguration/headerTimeout``.
        var header: UInt64
        /// ``HTTPServerConfiguration/handshakeTimeout`` (the header timeout when unset).
        var handshake: UInt64
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
            handshake = (c.handshakeTimeout ?? c.headerTimeout).clampedNanoseconds
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
    init(transport: any Transport, peer: SocketAddress, server: HTTPServer, loop: EventLoop, queue: DispatchQueue) {
        self.transport = transport
        self.fd = transport.fileDescriptor
        self.established = !transport.needsHandshake
        self.loop = loop
        self.peer = peer
        self.peerKey = peer.peerKey
        self.server = server
        self.queue = queue
        self.parser = HTTPRequestParser(configuration: server.configuration)
        self.timeouts = server.timeouts
        self.machine = ConnectionStateMachine(timeouts: server.timeouts)
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
        machine.accepted(now: Connection.now(), handshake: !established)
        guard let id = loop.add(fd: fd, connection: self, events: EventLoop.readable, persistent: true) else {
            server.configuration.logger.warning("cannot watch an accepted socket: errno \(errno)")
            machine.closed()
            transport.close()
            server.connectionClosed(self)
            return
        }
        loopID = id
        armed = EventLoop.readable
        armedPersistent = true
        publish()
    }

    /// Closes immediately: removes `fd` from epoll, closes it and tells the server.
    func close() {
        assertOnQueue()
        if machine.phase == .closed { return }
        machine.closed()
        publish()
        releaseBody()
        loop.remove(fd: fd, id: loopID)
        armed = 0
        armedPersistent = false
        transport.close()
        outHead = []
        outBody = []
        server.connectionClosed(self)
    }

    /// Event-loop delivery (on `queue`): a one-shot registration fired and is now disarmed (a
    /// persistent one stays armed). Errors and hang-ups go to whichever side is interested, whose
    /// system call then reports them.
    func ioEvent(_ events: UInt32, id: UInt64) {
        assertOnQueue()
        guard machine.phase != .closed, id == loopID else { return }
        #if DEBUG
        server.loopEventsDelivered.add(1, ordering: .relaxed)
        #endif
        if !armedPersistent { armed = 0 }
        let failed = events & EventLoop.failed != 0
        if machine.wantsWrite && (failed || events & writeWaitsFor != 0) { writable() }
        if machine.wantsRead && (failed || events & readWaitsFor != 0) { readable() }
        updateInterest()
    }

    /// Ends every turn on `queue`: publishes the machine's deadline and shedding times, and arms
    /// the registration for what the machine wants now, if that differs from what is armed.
    private func updateInterest() {
        publish()
        guard machine.phase != .closed, !flushDeferred else { return }
        var wanted: UInt32 = 0
        if machine.wantsRead { wanted |= readWaitsFor }
        if machine.wantsWrite { wanted |= writeWaitsFor }
        if wanted == armed { return }
        // Persistent only for plain reading (the loop runs the events itself): anything else is
        // one-shot, so a level-triggered event can never repeat while nothing consumes it (a
        // handler off the loop, a paused reader, a blocked write).
        let persistent = wanted == EventLoop.readable
        loop.rearm(fd: fd, id: loopID, events: wanted, persistent: persistent)
        #if DEBUG
        server.loopRearms.add(1, ordering: .relaxed)
        #endif
        armed = wanted
        armedPersistent = persistent
    }

    /// Graceful shutdown, step 2/3 (docs/http.md §16): close if idle, otherwise finish the current
    /// request and answer it with `Connection: close`.
    func beginDrain() {
        assertOnQueue()
        // Bytes still in the socket are a request the loop has not read yet (with a loop per CPU,
        // another loop may take the signal first): answer it, with `Connection: close`, instead of
        // closing under it, as ``shed()`` also checks.
        let nothingPending = outHeadSent == outHead.count && parser.isAtRequestBoundary && !transport.hasPendingInput()
        if machine.drain(nothingPending: nothingPending) { close() }
        updateInterest()
    }

    /// Issue 14 item 3, on `queue`: the server chose this connection to make room for a newcomer
    /// (``HTTPServer/shedIdleConnection(now:)``). Closes silently, as the idle or header deadline
    /// would, if it is still idle with nothing of a next request received or waiting in the
    /// socket, or still receiving an incomplete request head; otherwise (it is reading a body,
    /// running a handler or writing) it is busy after all and tells the server to choose again.
    func shed() {
        assertOnQueue()
        defer { updateInterest() }
        if machine.phase == .closed { return }
        let sheddable = machine.mayBeShed(
            idleAndQuiet: { parser.isAtRequestBoundary && !transport.hasPendingInput() },
            nothingToSend: !flushDeferred && outHeadSent == outHead.count)
        guard sheddable else {
            server.shedDeclined()
            return
        }
        server.configuration.logger.debug("shedding an idle connection or a slow request head to admit a new one")
        close()
    }

    // MARK: - Reading

    /// Read-source handler: receives into the thread's buffer, feeds the parser and processes
    /// whatever became complete. EOF or a receive error closes the connection.
    private func readable() {
        assertOnQueue()
        readWaitsFor = EventLoop.readable
        switch machine.phase {
        case .closed, .writing, .handling: return
        case .lingering:
            discardLingering()
            return
        case .idle, .reading: break
        }
        if !established && !advanceHandshake() { return }
        let buffer = ReadBuffer.current()
        guard let base = buffer.baseAddress else { return }
        var rounds = 0
        while machine.acceptsRequests {
            switch transport.read(into: buffer) {
            case .done(let n):
                machine.bytesReceived(now: Connection.now())
                parser.append(UnsafeRawBufferPointer(start: base, count: n))
                processBuffered()
                rounds += 1
                // A short read means the socket is (almost certainly) drained; the level-triggered
                // source fires again if more arrives. Bound the work per wake-up for fairness.
                if n < buffer.count || rounds >= 4 { return }
            case .endOfStream:
                // Half-close: the machine decides. Reading pauses while a response is pending, so
                // here it says close; `finishThenClose` (answer first) is for a half-close seen
                // while answering.
                switch machine.peerClosedWriting() {
                case .close: close()
                case .finishThenClose: break
                }
                return
            case .wouldBlock, .needsReadable:
                return
            case .needsWritable:
                readWaitsFor = EventLoop.writable
                return
            case .failed(let code):
                server.configuration.logger.debug("recv failed on connection: errno \(code)")
                close()
                return
            }
        }
    }

    /// One step of the transport's handshake (TLS); true once it is complete. A handshake that
    /// fails closes the connection silently: the transport has logged why.
    private func advanceHandshake() -> Bool {
        switch transport.handshake() {
        case .done:
            established = true
            machine.handshakeCompleted(now: Connection.now())
            return true
        case .wouldBlock, .needsReadable:
            return false
        case .needsWritable:
            readWaitsFor = EventLoop.writable
            return false
        case .endOfStream, .failed:
            close()
            return false
        }
    }

    /// Parses and handles everything buffered, in order, until more bytes are needed or the
    /// connection stops accepting requests (pipelining, RFC 9112 §9.3.2).
    private func processBuffered() {
        while machine.acceptsRequests {
            switch parser.next() {
            case .needMoreData:
                // A chunked body reserves its memory as its chunks are announced (issue 14 item 4).
                if !reserveBody(upTo: parser.announcedChunkedBytes) {
                    refuseBodyOverBudget()
                }
                return
            case .head(var head):
                machine.headReceived(hasBody: head.framing.hasBody, now: Connection.now())
                if head.framing.hasBody {
                    // Issue 14 item 4: the handler sees every head that announces a body before
                    // any of the body is read, so a request it refuses (no token, say) is
                    // answered at once and its body never read: `Connection: close`, lingering.
                    if remoteAddressText == nil { remoteAddressText = peer.description }
                    head.remoteAddress = remoteAddressText ?? ""
                    if let refusal = server.handler.responseBeforeBody(head) {
                        machine.requestCounted()
                        machine.requestComplete()
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
                    // only after the handler had a chance to refuse the body (docs/http.md §8).
                    if head.expectsContinue && parser.bufferedByteCount == 0 {
                        sendContinue()
                    }
                }
            case .request(var request):
                machine.requestComplete()
                // The last chunks may have been parsed with the rest; they are in memory now.
                _ = reserveBody(upTo: parser.announcedChunkedBytes, force: true)
                if remoteAddressText == nil { remoteAddressText = peer.description }
                request.remoteAddress = remoteAddressText ?? ""
                handle(request)
            case .error(let error):
                server.configuration.logger.debug("rejecting request: \(error) (\(error.status.code))")
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
        server.configuration.logger.warning("request body memory budget reached; answering 503")
        machine.requestCounted()
        machine.requestComplete()
        sendError(code: 503)
    }

    // MARK: - Handling

    /// Runs the handler for one complete request (inline when possible, see ``InlineHandlerSlots``),
    /// enforcing the in-flight cap, then queues its response.
    private func handle(_ request: HTTPRequest) {
        machine.requestCounted()
        let inFlight = server.inFlightHandlers.wrappingAdd(1, ordering: .relaxed).newValue
        if inFlight > server.configuration.maxInFlightHandlers {
            server.inFlightHandlers.wrappingSubtract(1, ordering: .relaxed)
            server.configuration.logger.warning("handler capacity reached; answering 503")
            sendError(code: 503)
            return
        }
        let placement = server.handler.placement(of: request)
        if placement == .deferred {
            handleLater(request)
            return
        }
        // Inline only with nothing left to send (an unsent interim `100 Continue` waits for
        // writability, which this thread cannot serve while inside the handler).
        guard outHeadSent == outHead.count, placement == .inline,
            InlineHandlerSlots.acquire(limit: server.inlineLimit)
        else {
            offload(request)
            return
        }
        let started = Connection.now()
        let response = server.handler.handle(request)
        InlineHandlerSlots.release()
        server.inFlightHandlers.wrappingSubtract(1, ordering: .relaxed)
        // Handler deadline (docs/http.md §11) for an inline call: judged now, on this thread,
        // the only one that writes to the transport. The late result is dropped for a 503.
        if machine.inlineHandlerOverran(startedAt: started, now: Connection.now()) {
            server.configuration.logger.warning("handler exceeded its deadline; answered 503")
            sendError(code: 503)
            return
        }
        respond(response, to: request)
    }

    /// Runs the handler on the server's bounded handler pool, with reading paused and the
    /// connection's handler deadline armed; the response hops back to `queue`.
    private func offload(_ request: HTTPRequest) {
        machine.handlerStarted(now: Connection.now())
        updateInterest()
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
        if let longer = server.handler.answerDeadline(of: request) {
            let (seconds, attoseconds) = longer.components
            let nanoseconds = UInt64(clamping: max(0, seconds)) &* 1_000_000_000 &+ UInt64(clamping: max(0, attoseconds / 1_000_000_000))
            machine.handlerStarted(now: Connection.now(), atLeast: nanoseconds)
        } else {
            machine.handlerStarted(now: Connection.now())
        }
        updateInterest()
        let responder = HTTPResponder { [self] build in
            server.inFlightHandlers.wrappingSubtract(1, ordering: .relaxed)
            queue.async { [self] in
                guard let build else {
                    server.configuration.logger.error("handler released its responder without responding; sending 500")
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
        // False when a 503 went out at the deadline (the connection is closing), or when it closed
        // meanwhile (drain deadline, reset).
        guard machine.handlerFinished() else { return }
        if let response {
            respond(response, to: request)
        } else {
            sendError(code: 500)
        }
        if machine.acceptsRequests { processBuffered() }
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
            server.configuration.logger.error("handler returned an invalid response (\(rejection)); sending 500")
            sendError(code: 500)
            return
        }
        let close = machine.mustClose(
            keepAlive: keepAlive, bodyUnread: bodyUnread, serverDraining: server.state.isDraining,
            handlerAskedToClose: ResponseEncoder.handlerRequestsClose(response.headers))
        let framing = ResponseEncoder.Framing(
            isHead: method == .head, close: close, keepAliveHeader: !close && version == .http1_0)
        compactOutHead()
        let sendBody = ResponseEncoder.appendHead(response, framing: framing, date: dateCache.current(), to: &outHead)
        if sendBody { outBody = response.body }
        // Linger when the client may still be sending (it expected to keep the connection, or
        // more bytes are already buffered); otherwise a plain close cannot cause a reset.
        machine.responseQueued(close: close, peerMaySend: keepAlive || bodyUnread || parser.bufferedByteCount > 0)
        if !close {
            // On the loop thread, a keep-alive response waits for the end of the loop's batch of
            // events (see ``EventLoop``). Closing responses go at once: nothing follows them.
            if loop.deferFlush(self) {
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
        if machine.phase == .writing {
            flush()
            if machine.acceptsRequests { processBuffered() }
        }
        updateInterest()
    }

    /// Sends `HTTP/1.1 100 Continue` (interim; the body keeps arriving meanwhile).
    private func sendContinue() {
        compactOutHead()
        let wasEmpty = outHead.isEmpty
        outHead.append(contentsOf: "HTTP/1.1 100 Continue\r\n\r\n".utf8)
        if wasEmpty {
            machine.interimQueued()
            flush()
        }
    }

    /// Sends a prebuilt error response with `Connection: close`, then lingers (docs/http.md §17, §18).
    /// Only called when no final response has started on this connection.
    private func sendError(code: Int) {
        releaseBody()
        compactOutHead()
        server.errorResponses.append(code: code, date: dateCache.current(), to: &outHead)
        outBody = []
        outBodySent = 0
        machine.errorQueued()
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
    /// reading paused and the write-stall deadline armed (docs/http.md §13).
    private func flush() {
        while outHeadSent < outHead.count || outBodySent < outBody.count {
            let result = outHead.withUnsafeBytes { head in
                outBody.withUnsafeBytes { body in
                    transport.write(
                        vectors: UnsafeRawBufferPointer(rebasing: head[outHeadSent...]),
                        UnsafeRawBufferPointer(rebasing: body[outBodySent...]))
                }
            }
            switch result {
            case .done(let n):
                let fromHead = min(n, outHead.count - outHeadSent)
                outHeadSent += fromHead
                outBodySent += n - fromHead
                machine.wrote(now: Connection.now())
                continue
            case .wouldBlock:
                writeWaitsFor = EventLoop.writable
                waitForWritable()
                return
            case .needsReadable, .needsWritable:
                writeWaitsFor = result == .needsReadable ? EventLoop.readable : EventLoop.writable
                waitForWritable()
                return
            case .endOfStream, .failed:
                // EPIPE / ECONNRESET: the peer is gone (docs/http.md §13, logged at debug level).
                if case .failed(let code) = result {
                    server.configuration.logger.debug("send failed on connection: errno \(code)")
                }
                close()
                return
            }
        }
        outHead.removeAll(keepingCapacity: outHead.capacity <= 4096)
        outHeadSent = 0
        outBody = []
        outBodySent = 0
        flushed()
    }

    /// Asks the event loop for writability; for final responses the machine pauses reading and
    /// arms the write-stall deadline.
    private func waitForWritable() {
        machine.writeBlocked(now: Connection.now())
        updateInterest()
    }

    /// Write-source handler: continue flushing, then resume request processing if it finished.
    private func writable() {
        assertOnQueue()
        if machine.phase == .closed { return }
        flush()
        if machine.acceptsRequests { processBuffered() }
    }

    /// The outbound buffer just became empty: the machine says what comes next.
    private func flushed() {
        switch machine.flushed(atRequestBoundary: parser.isAtRequestBoundary, now: Connection.now()) {
        case .none, .readNext:
            // Reading resumes from the end of the current turn (``updateInterest()``): arming
            // here, before the turn has processed the pipelined requests still buffered, would
            // let an event loop find the fd ready while a Dispatch worker still runs this queue,
            // and wait for it in `queue.sync`.
            break
        case .close:
            close()
        case .shutDownWriteAndLinger:
            // RFC 9112 §9.6, docs/http.md §17: read and discard for up to
            // ``HTTPServerConfiguration/lingerTimeout`` or ``HTTPServerConfiguration/lingerMaxBytes``,
            // so the client reads our response before any RST.
            transport.shutdownWrite()
            discardLingering()
        }
    }

    // MARK: - Lingering close (RFC 9112 §9.6, docs/http.md §17)

    /// Reads and drops input until EOF, an error, the byte cap, or (via the deadline) the time cap.
    private func discardLingering() {
        let buffer = ReadBuffer.current()
        guard buffer.baseAddress != nil else { return }
        while machine.phase == .lingering {
            switch transport.read(into: buffer) {
            case .done(let n):
                if machine.discarded(n) { close() }
            case .wouldBlock, .needsReadable:
                return
            case .needsWritable:
                readWaitsFor = EventLoop.writable
                return
            case .endOfStream, .failed:
                close()
            }
        }
    }

    // MARK: - Deadlines (docs/http.md §11)

    /// Stores the machine's deadline and shedding times in the atomics the watchdog and the
    /// listener read, when they changed. Called at the end of every turn on `queue`.
    @inline(__always)
    private func publish() {
        if published.deadline != machine.deadline {
            published.deadline = machine.deadline
            publishedDeadline.store(machine.deadline, ordering: .relaxed)
        }
        if published.idle != machine.idleSince {
            published.idle = machine.idleSince
            idleSince.store(machine.idleSince, ordering: .relaxed)
        }
        if published.head != machine.headSince {
            published.head = machine.headSince
            headSince.store(machine.headSince, ordering: .relaxed)
        }
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
        switch machine.deadlineReached(now: Connection.now(), inputPending: { transport.hasPendingInput() }) {
        case .none:
            break
        case .send408:
            server.configuration.logger.debug("header deadline: nothing received, sending 408")
            sendError(code: 408)
        case .send503:
            server.configuration.logger.warning("handler exceeded its deadline; answered 503")
            sendError(code: 503)
        case .close:
            server.configuration.logger.debug("connection deadline reached; closing")
            close()
        }
    }
}

/// A per-thread receive buffer: reads land here and are copied into the connection's parser, so
/// idle connections hold no read buffer (docs/http.md §10 memory bound, and lower RSS). 64 KiB:
/// large enough for a 64 KiB body chunk per `recv`.
let ReadBuffer = ThreadLocalBuffer(size: 64 * 1024)
