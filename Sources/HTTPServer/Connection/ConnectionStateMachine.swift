// SPDX-License-Identifier: Apache-2.0

/// The HTTP/1.1 connection's phase and deadline logic as a value: events in (with the time, from
/// whatever clock drives it), decisions out. No I/O, no threads, no clock of its own, so every
/// deadline and phase is tested with a manual clock (`ConnectionStateMachineTests`).
///
/// Issue 15 item 3, after Hummingbird's `HTTPConnectionStateHandler.StateMachine`: ``Connection``
/// is the driver. It performs the I/O, runs the parser and the handler, and reports what happened
/// (bytes received, a head or a request parsed, a response queued, output flushed or blocked, a
/// deadline tick); the machine keeps the phase, the single pending deadline, keep-alive and
/// request accounting, the lingering close, and the shedding eligibility, and answers with what
/// to do (``FlushAction``, ``DeadlineAction``) and with what the connection wants from the event
/// loop (``wantsRead``, ``wantsWrite``).
///
/// Times are monotonic nanoseconds; 0 means "none" wherever a time is stored.
struct ConnectionStateMachine {
    /// What the connection is doing; decides which events are acted upon.
    enum Phase: Equatable {
        /// Between requests (or fresh): no byte of the next request yet.
        case idle
        /// Part of a request (head or body) has arrived.
        case reading
        /// A handler runs off the connection's thread (or answers later); reading is paused.
        case handling
        /// A final response is being written; reading is paused.
        case writing
        /// Write side shut down after an error; reading and discarding until EOF or a limit.
        case lingering
        /// Closed; every further event is ignored.
        case closed
    }

    /// What happens once the outbound buffer is empty.
    enum AfterFlush: Equatable {
        /// An interim `100 Continue` went out; keep reading the body.
        case interim
        /// Ready for the next request.
        case nextRequest
        /// Close now (nothing more can arrive that matters).
        case close
        /// Shut down the write side and linger (RFC 9112 §9.6).
        case linger
    }

    /// Which deadline is pending.
    enum DeadlineKind: Equatable {
        /// None: a handler runs inline (judged when it returns) or the connection is closed.
        case none
        /// The transport's handshake (TLS) must complete; silent close.
        case handshake
        /// The first request head since accept must be complete (408 if nothing arrived).
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
        /// An offloaded (or later-answered) handler must finish.
        case handler
    }

    /// What the driver does once its output is flushed (``flushed(atRequestBoundary:now:)``).
    enum FlushAction: Equatable {
        /// Nothing (an interim response went out; the body keeps arriving).
        case none
        /// Parse whatever is buffered and read on (keep-alive; pipelined bytes may be waiting).
        case readNext
        /// Close the connection.
        case close
        /// Shut down the write side, then read and discard (``lingerStarted(now:)`` was applied).
        case shutDownWriteAndLinger
    }

    /// What the driver does when the peer has shut down its write side (a read found the end of
    /// the stream).
    enum PeerClosedAction: Equatable {
        /// Close now: nothing read is left unanswered (what is buffered, if anything, is an
        /// incomplete message, RFC 9112 §6.3 item 6).
        case close
        /// A response is being made or written: finish it (and any complete request still
        /// buffered), then close instead of waiting for another request or lingering.
        case finishThenClose
    }

    /// What the driver does when a deadline tick finds the deadline passed.
    enum DeadlineAction: Equatable {
        /// Nothing (the deadline moved or was cleared meanwhile).
        case none
        /// Send a 408 with `Connection: close`, then linger (a client that sent nothing).
        case send408
        /// Send a 503 with `Retry-After` and `Connection: close` (a handler overran), then linger.
        case send503
        /// Close silently.
        case close
    }

    /// Monotonic nanosecond values of the configured timeouts.
    let timeouts: Connection.Timeouts

    /// Current phase.
    private(set) var phase: Phase = .idle
    /// What happens when the output is flushed.
    private(set) var afterFlush: AfterFlush = .nextRequest
    /// When `deadlineKind` expires; 0 when there is none.
    private(set) var deadline: UInt64 = 0
    /// What expires at `deadline`.
    private(set) var deadlineKind: DeadlineKind = .none
    /// Whether any byte arrived since accept (408 is only for silent clients).
    private(set) var receivedAnyByte = false
    /// Graceful shutdown: close when idle, `Connection: close` on the next response.
    private(set) var drainRequested = false
    /// Requests counted on this connection (``Connection/Timeouts/maxRequests``).
    private(set) var requestsServed = 0
    /// Bytes discarded so far while lingering.
    private(set) var lingerDiscarded = 0
    /// Reading is paused (a handler runs off the thread, or a final response is stuck).
    private(set) var readPaused = false
    /// Output is pending after the transport would block: writability is wanted.
    private(set) var wantsWrite = false
    /// Since when the connection is idle with nothing of a next request received (since accept or
    /// its last response), 0 otherwise: sheddable after the idle grace (issue 14 item 3).
    private(set) var idleSince: UInt64 = 0
    /// Since when the connection receives one request head, 0 otherwise: sheddable after the
    /// head grace (issue 14 item 3).
    private(set) var headSince: UInt64 = 0
    /// The offloaded handler overran and a 503 went out in its place: its late answer is dropped.
    private var handlerTimedOut = false
    /// The peer shut down its write side: no request can follow what is already buffered.
    private(set) var peerClosed = false

    /// A fresh machine; ``accepted(now:)`` starts it.
    init(timeouts: Connection.Timeouts) { self.timeouts = timeouts }

    /// Whether the connection wants to read now.
    var wantsRead: Bool {
        if readPaused { return false }
        switch phase {
        case .idle, .reading, .lingering: return true
        case .handling, .writing, .closed: return false
        }
    }

    /// Whether the connection accepts request bytes (parsing goes on while this holds).
    var acceptsRequests: Bool { phase == .idle || phase == .reading }

    // MARK: - Reading

    /// Accepted: the first head must be complete within the header timeout from now (docs/http.md
    /// §11); silent until then, and sheddable once silent for the idle grace.
    /// With `handshake`, the transport's handshake comes first, under its own deadline
    /// (``handshakeCompleted(now:)`` then starts the header timeout); the connection counts as
    /// idle meanwhile, so a client stalling its handshake is shed like a silent one.
    mutating func accepted(now: UInt64, handshake: Bool = false) {
        if handshake {
            setDeadline(.handshake, at: now &+ timeouts.handshake)
        } else {
            setDeadline(.firstHeader, at: now &+ timeouts.header)
        }
        idleSince = max(1, now)
    }

    /// The transport's handshake completed: the first request head must be complete within the
    /// header timeout from now.
    mutating func handshakeCompleted(now: UInt64) {
        guard deadlineKind == .handshake else { return }
        setDeadline(.firstHeader, at: now &+ timeouts.header)
    }

    /// Bytes of a request arrived (before they are parsed). The first byte of a request starts its
    /// head: a later request's head must be complete within the header timeout from it; the first
    /// request keeps its deadline from accept. Trickling does not extend it. Body bytes extend the
    /// body deadline.
    mutating func bytesReceived(now: UInt64) {
        receivedAnyByte = true
        if phase == .idle {
            phase = .reading
            idleSince = 0
            if deadlineKind == .firstHeader {
                deadlineKind = .header
            } else {
                setDeadline(.header, at: now &+ timeouts.header)
            }
            headSince = max(1, now)
        } else if deadlineKind == .body {
            setDeadline(.body, at: now &+ timeouts.body)
        }
    }

    /// A complete head was parsed: its body (if any) must make progress from now on; without one
    /// the request is complete (``requestComplete()`` follows).
    mutating func headReceived(hasBody: Bool, now: UInt64) {
        if hasBody {
            setDeadline(.body, at: now &+ timeouts.body)
        } else {
            clearDeadline()
        }
    }

    /// A complete request (head and body) was parsed; a handler or a refusal answers it.
    mutating func requestComplete() {
        clearDeadline()
    }

    /// A request is being answered (by its handler, or refused): counts toward the per-connection
    /// cap.
    mutating func requestCounted() {
        requestsServed += 1
    }

    /// Whether the response now being made must close the connection: the request or the
    /// handler asked for it, its body was never read, the connection or the server drains, or
    /// the per-connection request cap is reached (docs/http.md §9).
    func mustClose(keepAlive: Bool, bodyUnread: Bool, serverDraining: Bool, handlerAskedToClose: Bool) -> Bool {
        !keepAlive || bodyUnread || drainRequested || serverDraining || requestsServed >= timeouts.maxRequests
            || handlerAskedToClose
    }

    // MARK: - Handling

    /// The handler runs off the connection's thread (or answers later): reading pauses and the
    /// handler deadline is armed.
    mutating func handlerStarted(now: UInt64) {
        handlerStarted(now: now, atLeast: 0)
    }

    /// ``handlerStarted(now:)`` for a request its handler answers later and may take longer
    /// than the handler deadline (a long poll): the deadline is the later of the two.
    mutating func handlerStarted(now: UInt64, atLeast longer: UInt64) {
        phase = .handling
        readPaused = true
        setDeadline(.handler, at: now &+ max(timeouts.handler, longer))
    }

    /// An inline handler that started at `startedAt` returned at `now`: true if it overran its
    /// deadline, in which case its result is dropped for a 503 (docs/http.md §11). Nobody
    /// could answer earlier: only the connection's own thread writes, and it was in the handler.
    func inlineHandlerOverran(startedAt: UInt64, now: UInt64) -> Bool {
        now &- startedAt >= timeouts.handler
    }

    /// An offloaded (or later-answered) handler's response is back: true if it is to be sent;
    /// false if the deadline already answered 503 or the connection closed meanwhile.
    mutating func handlerFinished() -> Bool {
        if handlerTimedOut {
            handlerTimedOut = false
            return false
        }
        guard phase == .handling else { return false }
        clearDeadline()
        return true
    }

    // MARK: - Writing

    /// A final response was queued. `close` from ``mustClose(keepAlive:bodyUnread:serverDraining:handlerAskedToClose:)``;
    /// `peerMaySend`: the client may still be sending (it expected to keep the connection, or more
    /// bytes are buffered), so a closing response lingers instead of closing at once.
    mutating func responseQueued(close: Bool, peerMaySend: Bool) {
        phase = .writing
        afterFlush = close ? (peerMaySend && !peerClosed ? .linger : .close) : .nextRequest
    }

    /// A server-generated error (`Connection: close`) was queued: linger after it (docs/http.md
    /// §17, §18). A 408 to a silent client also ends its idleness.
    mutating func errorQueued() {
        idleSince = 0
        headSince = 0
        phase = .writing
        afterFlush = .linger
    }

    /// An interim `100 Continue` was queued onto an empty output: reading the body goes on.
    mutating func interimQueued() {
        afterFlush = .interim
    }

    /// The transport would block with output pending. For a final response reading pauses
    /// (backpressure, docs/http.md §10) and the write-stall deadline starts unless it runs already.
    mutating func writeBlocked(now: UInt64) {
        if afterFlush != .interim {
            readPaused = true
            if deadlineKind != .write { setDeadline(.write, at: now &+ timeouts.write) }
        }
        wantsWrite = true
    }

    /// Some output went out: the write-stall deadline restarts.
    mutating func wrote(now: UInt64) {
        if deadlineKind == .write { setDeadline(.write, at: now &+ timeouts.write) }
    }

    /// The output is empty. `atRequestBoundary`: nothing of a next request is buffered. Returns
    /// what the driver does next (the state already reflects it).
    mutating func flushed(atRequestBoundary: Bool, now: UInt64) -> FlushAction {
        wantsWrite = false
        switch afterFlush {
        case .interim:
            return .none
        case .nextRequest:
            if (drainRequested || peerClosed) && atRequestBoundary {
                return .close
            }
            if atRequestBoundary {
                phase = .idle
                setDeadline(.idle, at: now &+ timeouts.idle)
                idleSince = max(1, now)
            } else {
                // Pipelined bytes are waiting: they are the start of the next head.
                phase = .reading
                setDeadline(.header, at: now &+ timeouts.header)
                headSince = max(1, now)
            }
            readPaused = false
            return .readNext
        case .close:
            return .close
        case .linger:
            // A peer that shut down its write side sends nothing more: no reset to avoid.
            if peerClosed { return .close }
            lingerStarted(now: now)
            return .shutDownWriteAndLinger
        }
    }

    // MARK: - Half-close

    /// The peer shut down its write side (half-close). Requests already read are answered and
    /// their responses sent; then the connection closes rather than wait for a next request or
    /// linger. In the idle and reading phases nothing complete is left unanswered: close now.
    mutating func peerClosedWriting() -> PeerClosedAction {
        peerClosed = true
        switch phase {
        case .idle, .reading, .lingering, .closed:
            return .close
        case .handling, .writing:
            return .finishThenClose
        }
    }

    // MARK: - Lingering close (RFC 9112 §9.6, docs/http.md §17)

    /// The write side is shut down: read and discard until EOF, the byte cap or the linger deadline.
    mutating func lingerStarted(now: UInt64) {
        phase = .lingering
        lingerDiscarded = 0
        readPaused = false
        setDeadline(.linger, at: now &+ timeouts.linger)
    }

    /// `count` bytes were discarded while lingering: true when the byte cap is reached (close).
    mutating func discarded(_ count: Int) -> Bool {
        lingerDiscarded += count
        return lingerDiscarded >= timeouts.lingerMaxBytes
    }

    // MARK: - Deadlines (docs/http.md §11)

    /// A deadline tick at `now`: acts if the deadline has really passed. `inputPending` says
    /// whether bytes wait in the transport (asked only for a first-request head deadline: a 408
    /// must never be mistaken for the answer to bytes a late-running thread has not read yet).
    mutating func deadlineReached(now: UInt64, inputPending: () -> Bool) -> DeadlineAction {
        guard phase != .closed, deadline != 0, now >= deadline else { return .none }
        let kind = deadlineKind
        clearDeadline()
        switch kind {
        case .firstHeader:
            // 408 only when nothing at all was received (docs/http.md §18); otherwise just close.
            return phase == .idle && !receivedAnyByte && !inputPending() ? .send408 : .close
        case .handler:
            guard phase == .handling else { return .none }
            handlerTimedOut = true
            return .send503
        case .handshake, .header, .body, .idle, .write, .linger:
            return .close
        case .none:
            return .none
        }
    }

    // MARK: - Draining and shedding

    /// Graceful shutdown (docs/http.md §16): true if the connection closes now (idle, nothing
    /// pending); otherwise its next response carries `Connection: close`.
    mutating func drain(nothingPending: Bool) -> Bool {
        drainRequested = true
        return phase == .idle && nothingPending
    }

    /// Whether the connection may be shed to admit a newcomer (issue 14 item 3): idle with
    /// nothing pending (`idleAndQuiet`: nothing buffered, unsent or waiting in the transport), or
    /// still receiving a request head with nothing to send. Never while it reads a body, runs a
    /// handler or writes a response.
    func mayBeShed(idleAndQuiet: () -> Bool, nothingToSend: Bool) -> Bool {
        switch phase {
        case .idle: return nothingToSend && idleAndQuiet()
        case .reading: return nothingToSend && deadlineKind == .header
        case .handling, .writing, .lingering, .closed: return false
        }
    }

    /// The connection is closed; every later event is ignored.
    mutating func closed() {
        phase = .closed
        clearDeadline()
        idleSince = 0
        readPaused = false
        wantsWrite = false
    }

    // MARK: - Private

    /// Sets the one pending deadline; a head that is no longer being received stops being one.
    private mutating func setDeadline(_ kind: DeadlineKind, at time: UInt64) {
        if kind != .header { headSince = 0 }
        deadlineKind = kind
        deadline = max(1, time)
    }

    /// Removes the deadline.
    private mutating func clearDeadline() {
        headSince = 0
        deadline = 0
        deadlineKind = .none
    }
}
