// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import HTTPServer

/// Issue 15 item 3: the connection's phases and deadlines, driven by events and a manual clock
/// (plain integers of nanoseconds): no sockets, no sleeps.
@Suite("ConnectionStateMachine")
struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine

    /// Distinct timeouts (seconds): header 10, idle 30, body 7, write 5, linger 2, handler 4.
    static let timeouts: Connection.Timeouts = {
        var configuration = HTTPServerConfiguration(
            headerTimeout: .seconds(10), idleTimeout: .seconds(30), bodyInactivityTimeout: .seconds(7),
            writeStallTimeout: .seconds(5), handlerTimeout: .seconds(4), lingerTimeout: .seconds(2))
        configuration.lingerMaxBytes = 100
        configuration.maxRequestsPerConnection = 3
        return Connection.Timeouts(configuration)
    }()

    static let second: UInt64 = 1_000_000_000

    /// A manual clock: the time only moves when a test says so.
    struct Clock {
        var now: UInt64 = 1_000 * second
        mutating func advance(seconds: Double) { now += UInt64(seconds * Double(second)) }
    }

    /// A machine accepted at the clock's time.
    static func accepted(_ clock: Clock) -> Machine {
        var machine = Machine(timeouts: timeouts)
        machine.accepted(now: clock.now)
        return machine
    }

    /// Drives one complete bodiless request through to its queued keep-alive response.
    static func serveOne(_ machine: inout Machine, _ clock: Clock, close: Bool = false) {
        machine.bytesReceived(now: clock.now)
        machine.headReceived(hasBody: false, now: clock.now)
        machine.requestComplete()
        machine.requestCounted()
        machine.responseQueued(close: close, peerMaySend: true)
    }

    static let nothingPending: @Sendable () -> Bool = { false }
    static let bytesPending: @Sendable () -> Bool = { true }

    // MARK: - Deadlines

    /// Issue 20: a TLS handshake has its own deadline (a silent close, never a 408 in plain text),
    /// and the first head's header timeout starts when the handshake completes.
    @Test func handshakeDeadlineThenHeaderDeadline() {
        var configuration = HTTPServerConfiguration(headerTimeout: .seconds(10))
        configuration.handshakeTimeout = .seconds(3)
        var clock = Clock()
        var stalled = Machine(timeouts: Connection.Timeouts(configuration))
        stalled.accepted(now: clock.now, handshake: true)
        #expect(stalled.deadlineKind == .handshake)
        #expect(stalled.mayBeShed(idleAndQuiet: { true }, nothingToSend: true))
        clock.advance(seconds: 3)
        #expect(stalled.deadlineReached(now: clock.now, inputPending: Self.nothingPending) == .close)

        var done = Machine(timeouts: Connection.Timeouts(configuration))
        done.accepted(now: clock.now, handshake: true)
        clock.advance(seconds: 2)
        done.handshakeCompleted(now: clock.now)
        #expect(done.deadlineKind == .firstHeader)
        #expect(done.deadline == clock.now + 10 * Self.second)
    }

    @Test func aSilentClientGets408AtTheFirstHeaderDeadline() {
        var clock = Clock()
        var machine = Self.accepted(clock)
        #expect(machine.deadlineKind == .firstHeader)
        clock.advance(seconds: 9.9)
        let r1 = machine.deadlineReached(now: clock.now, inputPending: Self.nothingPending)
        #expect(r1 == .none)
        clock.advance(seconds: 0.1)
        let r2 = machine.deadlineReached(now: clock.now, inputPending: Self.nothingPending)
        #expect(r2 == .send408)
        machine.errorQueued()
        let r3 = machine.flushed(atRequestBoundary: true, now: clock.now)
        #expect(r3 == .shutDownWriteAndLinger)
    }

    @Test func bytesWaitingUnreadAtTheFirstHeaderDeadlineCloseWithout408() {
        var clock = Clock()
        var machine = Self.accepted(clock)
        clock.advance(seconds: 10)
        let r4 = machine.deadlineReached(now: clock.now, inputPending: Self.bytesPending)
        #expect(r4 == .close)
    }

    @Test func tricklingDoesNotExtendTheHeaderDeadlineFromAccept() {
        var clock = Clock()
        var machine = Self.accepted(clock)
        for _ in 0..<9 {
            clock.advance(seconds: 1)
            machine.bytesReceived(now: clock.now)
        }
        #expect(machine.deadlineKind == .header)
        clock.advance(seconds: 1)
        let r5 = machine.deadlineReached(now: clock.now, inputPending: Self.nothingPending)
        #expect(r5 == .close)
    }

    @Test func aLaterHeadHasTheHeaderTimeoutFromItsFirstByte() {
        var clock = Clock()
        var machine = Self.accepted(clock)
        Self.serveOne(&machine, clock)
        let r6 = machine.flushed(atRequestBoundary: true, now: clock.now)
        #expect(r6 == .readNext)
        clock.advance(seconds: 20)
        machine.bytesReceived(now: clock.now)
        #expect(machine.deadline == clock.now + 10 * Self.second)
        clock.advance(seconds: 10)
        let r7 = machine.deadlineReached(now: clock.now, inputPending: Self.nothingPending)
        #expect(r7 == .close)
    }

    @Test func theBodyDeadlineIsExtendedByEveryRead() {
        var clock = Clock()
        var machine = Self.accepted(clock)
        machine.bytesReceived(now: clock.now)
        machine.headReceived(hasBody: true, now: clock.now)
        #expect(machine.deadlineKind == .body)
        for _ in 0..<5 {
            clock.advance(seconds: 6)
            machine.bytesReceived(now: clock.now)
            let r8 = machine.deadlineReached(now: clock.now, inputPending: Self.nothingPending)
            #expect(r8 == .none)
        }
        clock.advance(seconds: 7)
        let r9 = machine.deadlineReached(now: clock.now, inputPending: Self.nothingPending)
        #expect(r9 == .close)
    }

    @Test func anIdleKeepAliveConnectionClosesSilentlyAtTheIdleDeadline() {
        var clock = Clock()
        var machine = Self.accepted(clock)
        Self.serveOne(&machine, clock)
        let r10 = machine.flushed(atRequestBoundary: true, now: clock.now)
        #expect(r10 == .readNext)
        #expect(machine.phase == .idle && machine.deadlineKind == .idle && machine.wantsRead)
        clock.advance(seconds: 29)
        let r11 = machine.deadlineReached(now: clock.now, inputPending: Self.nothingPending)
        #expect(r11 == .none)
        clock.advance(seconds: 1)
        let r12 = machine.deadlineReached(now: clock.now, inputPending: Self.nothingPending)
        #expect(r12 == .close)
    }

    @Test func aStuckResponsePausesReadingAndHitsTheWriteStallDeadline() {
        var clock = Clock()
        var machine = Self.accepted(clock)
        Self.serveOne(&machine, clock)
        machine.writeBlocked(now: clock.now)
        #expect(!machine.wantsRead && machine.wantsWrite && machine.deadlineKind == .write)
        clock.advance(seconds: 4)
        machine.wrote(now: clock.now)  // progress restarts the stall deadline
        machine.writeBlocked(now: clock.now)
        clock.advance(seconds: 4)
        let r13 = machine.deadlineReached(now: clock.now, inputPending: Self.nothingPending)
        #expect(r13 == .none)
        clock.advance(seconds: 1)
        let r14 = machine.deadlineReached(now: clock.now, inputPending: Self.nothingPending)
        #expect(r14 == .close)
    }

    @Test func anUnsent100ContinueNeitherPausesReadingNorStartsTheWriteDeadline() {
        let clock = Clock()
        var machine = Self.accepted(clock)
        machine.bytesReceived(now: clock.now)
        machine.headReceived(hasBody: true, now: clock.now)
        machine.interimQueued()
        machine.writeBlocked(now: clock.now)
        #expect(machine.wantsRead && machine.wantsWrite && machine.deadlineKind == .body)
        let r15 = machine.flushed(atRequestBoundary: false, now: clock.now)
        #expect(r15 == .none)
        #expect(machine.phase == .reading)
    }

    @Test func anOffloadedHandlerOverrunGets503AndItsLateAnswerIsDropped() {
        var clock = Clock()
        var machine = Self.accepted(clock)
        machine.bytesReceived(now: clock.now)
        machine.headReceived(hasBody: false, now: clock.now)
        machine.requestComplete()
        machine.requestCounted()
        machine.handlerStarted(now: clock.now)
        #expect(machine.phase == .handling && !machine.wantsRead && machine.deadlineKind == .handler)
        clock.advance(seconds: 4)
        let r16 = machine.deadlineReached(now: clock.now, inputPending: Self.nothingPending)
        #expect(r16 == .send503)
        machine.errorQueued()
        let r17 = machine.handlerFinished()
        #expect(!r17)  // the late answer
        let r18 = machine.flushed(atRequestBoundary: true, now: clock.now)
        #expect(r18 == .shutDownWriteAndLinger)
    }

    @Test func anOffloadedHandlerInTimeIsAnswered() {
        var clock = Clock()
        var machine = Self.accepted(clock)
        machine.bytesReceived(now: clock.now)
        machine.handlerStarted(now: clock.now)
        clock.advance(seconds: 3.9)
        let r19 = machine.handlerFinished()
        #expect(r19)
        #expect(machine.deadlineKind == .none)
    }

    @Test func anInlineHandlerIsJudgedWhenItReturns() {
        let machine = Self.accepted(Clock())
        let start = Clock().now
        #expect(!machine.inlineHandlerOverran(startedAt: start, now: start + 4 * Self.second - 1))
        #expect(machine.inlineHandlerOverran(startedAt: start, now: start + 4 * Self.second))
    }

    @Test func lingeringEndsAtItsDeadlineOrItsByteCap() {
        var clock = Clock()
        var machine = Self.accepted(clock)
        machine.bytesReceived(now: clock.now)
        machine.errorQueued()
        let r20 = machine.flushed(atRequestBoundary: false, now: clock.now)
        #expect(r20 == .shutDownWriteAndLinger)
        #expect(machine.phase == .lingering && machine.wantsRead)
        let r21 = machine.discarded(60)
        #expect(!r21)
        let r22 = machine.discarded(40)
        #expect(r22)  // 100 bytes: the cap
        clock.advance(seconds: 2)
        let r23 = machine.deadlineReached(now: clock.now, inputPending: Self.nothingPending)
        #expect(r23 == .close)
    }

    // MARK: - Keep-alive, pipelining, drain

    @Test func keepAliveClosesForCloseRequestsUnreadBodiesDrainsAndTheRequestCap() {
        var machine = Self.accepted(Clock())
        machine.requestCounted()
        #expect(!machine.mustClose(keepAlive: true, bodyUnread: false, serverDraining: false, handlerAskedToClose: false))
        #expect(machine.mustClose(keepAlive: false, bodyUnread: false, serverDraining: false, handlerAskedToClose: false))
        #expect(machine.mustClose(keepAlive: true, bodyUnread: true, serverDraining: false, handlerAskedToClose: false))
        #expect(machine.mustClose(keepAlive: true, bodyUnread: false, serverDraining: true, handlerAskedToClose: false))
        #expect(machine.mustClose(keepAlive: true, bodyUnread: false, serverDraining: false, handlerAskedToClose: true))
        machine.requestCounted()
        machine.requestCounted()  // the third of at most 3
        #expect(machine.mustClose(keepAlive: true, bodyUnread: false, serverDraining: false, handlerAskedToClose: false))
    }

    @Test func aClosingResponseLingersOnlyWhenThePeerMayStillSend() {
        let clock = Clock()
        var quiet = Self.accepted(clock)
        quiet.responseQueued(close: true, peerMaySend: false)
        let r24 = quiet.flushed(atRequestBoundary: true, now: clock.now)
        #expect(r24 == .close)
        var busy = Self.accepted(clock)
        busy.responseQueued(close: true, peerMaySend: true)
        let r25 = busy.flushed(atRequestBoundary: true, now: clock.now)
        #expect(r25 == .shutDownWriteAndLinger)
    }

    @Test func pipelinedBytesStartTheNextHeadWhenTheResponseIsFlushed() {
        var clock = Clock()
        var machine = Self.accepted(clock)
        Self.serveOne(&machine, clock)
        #expect(!machine.acceptsRequests && !machine.wantsRead)
        clock.advance(seconds: 1)
        let r26 = machine.flushed(atRequestBoundary: false, now: clock.now)
        #expect(r26 == .readNext)
        #expect(machine.phase == .reading && machine.acceptsRequests && machine.deadlineKind == .header)
        #expect(machine.deadline == clock.now + 10 * Self.second && machine.headSince == clock.now)
    }

    @Test func drainClosesAnIdleConnectionAndTheBusyOneAfterItsResponse() {
        let clock = Clock()
        var idle = Self.accepted(clock)
        let r27 = idle.drain(nothingPending: true)
        #expect(r27)
        var busy = Self.accepted(clock)
        Self.serveOne(&busy, clock)
        let r28 = busy.drain(nothingPending: false)
        #expect(!r28)
        #expect(busy.mustClose(keepAlive: true, bodyUnread: false, serverDraining: false, handlerAskedToClose: false))
        var afterKeepAlive = Self.accepted(clock)
        Self.serveOne(&afterKeepAlive, clock)
        _ = afterKeepAlive.drain(nothingPending: false)
        let r29 = afterKeepAlive.flushed(atRequestBoundary: true, now: clock.now)
        #expect(r29 == .close)
    }

    @Test func aClosedMachineIgnoresItsDeadline() {
        var clock = Clock()
        var machine = Self.accepted(clock)
        machine.closed()
        clock.advance(seconds: 60)
        let r30 = machine.deadlineReached(now: clock.now, inputPending: Self.nothingPending)
        #expect(r30 == .none)
        #expect(!machine.wantsRead && machine.idleSince == 0)
    }

    // MARK: - Half-close

    @Test func aHalfCloseWhileIdleOrMidRequestClosesAtOnce() {
        let clock = Clock()
        var idle = Self.accepted(clock)
        let r1 = idle.peerClosedWriting()
        #expect(r1 == .close)

        var reading = Self.accepted(clock)
        reading.bytesReceived(now: clock.now)  // an incomplete head: dropped (RFC 9112 §6.3)
        let r2 = reading.peerClosedWriting()
        #expect(r2 == .close)
    }

    @Test func aHalfCloseDuringAHandlerFinishesTheResponseThenCloses() {
        var clock = Clock()
        var machine = Self.accepted(clock)
        machine.bytesReceived(now: clock.now)
        machine.headReceived(hasBody: false, now: clock.now)
        machine.requestComplete()
        machine.requestCounted()
        machine.handlerStarted(now: clock.now)
        let r = machine.peerClosedWriting()
        #expect(r == .finishThenClose)
        #expect(machine.phase == .handling && machine.deadlineKind == .handler)  // still answered
        clock.advance(seconds: 1)
        let answered = machine.handlerFinished()
        #expect(answered)
        machine.responseQueued(close: false, peerMaySend: true)
        // Sent, then closed: no keep-alive wait for a request that cannot come.
        let action = machine.flushed(atRequestBoundary: true, now: clock.now)
        #expect(action == .close)
    }

    @Test func aHalfCloseWhileWritingStillAnswersPipelinedRequestsThenCloses() {
        var clock = Clock()
        var machine = Self.accepted(clock)
        Self.serveOne(&machine, clock)
        let r0 = machine.peerClosedWriting()
        #expect(r0 == .finishThenClose)
        // A complete request is buffered behind the response: it is answered too.
        let r1 = machine.flushed(atRequestBoundary: false, now: clock.now)
        #expect(r1 == .readNext)
        clock.advance(seconds: 1)
        machine.headReceived(hasBody: false, now: clock.now)
        machine.requestComplete()
        machine.requestCounted()
        machine.responseQueued(close: false, peerMaySend: true)
        let r2 = machine.flushed(atRequestBoundary: true, now: clock.now)
        #expect(r2 == .close)
    }

    @Test func aClosingResponseAfterAHalfCloseClosesWithoutLingering() {
        var clock = Clock()
        var machine = Self.accepted(clock)
        machine.bytesReceived(now: clock.now)
        machine.headReceived(hasBody: false, now: clock.now)
        machine.requestComplete()
        machine.requestCounted()
        machine.handlerStarted(now: clock.now)
        let r = machine.peerClosedWriting()
        #expect(r == .finishThenClose)
        // The handler overruns: the 503 still goes out, and then the connection closes (the
        // peer sends nothing more, so there is nothing to linger for).
        clock.advance(seconds: 4)
        let deadline = machine.deadlineReached(now: clock.now, inputPending: Self.nothingPending)
        #expect(deadline == .send503)
        machine.errorQueued()
        let flushed = machine.flushed(atRequestBoundary: true, now: clock.now)
        #expect(flushed == .close)
        #expect(machine.phase != .lingering)

        // Without a half-close the same 503 lingers.
        var other = Self.accepted(clock)
        other.bytesReceived(now: clock.now)
        other.headReceived(hasBody: false, now: clock.now)
        other.requestComplete()
        other.handlerStarted(now: clock.now)
        clock.advance(seconds: 4)
        _ = other.deadlineReached(now: clock.now, inputPending: Self.nothingPending)
        other.errorQueued()
        let lingers = other.flushed(atRequestBoundary: true, now: clock.now)
        #expect(lingers == .shutDownWriteAndLinger)
    }

    // MARK: - Shedding eligibility (issue 14 item 3)

    @Test func idleConnectionsAndHeadsInProgressMayBeShedNothingElse() {
        var clock = Clock()
        var machine = Self.accepted(clock)
        #expect(machine.idleSince == clock.now && machine.headSince == 0)
        #expect(machine.mayBeShed(idleAndQuiet: { true }, nothingToSend: true))
        #expect(!machine.mayBeShed(idleAndQuiet: { false }, nothingToSend: true))

        clock.advance(seconds: 1)
        machine.bytesReceived(now: clock.now)  // a head in progress
        #expect(machine.idleSince == 0 && machine.headSince == clock.now)
        #expect(machine.mayBeShed(idleAndQuiet: { false }, nothingToSend: true))

        machine.headReceived(hasBody: true, now: clock.now)  // reading a body: never
        #expect(machine.headSince == 0)
        #expect(!machine.mayBeShed(idleAndQuiet: { true }, nothingToSend: true))

        machine.requestComplete()
        machine.handlerStarted(now: clock.now)  // running a handler: never
        #expect(!machine.mayBeShed(idleAndQuiet: { true }, nothingToSend: true))
        _ = machine.handlerFinished()
        machine.responseQueued(close: false, peerMaySend: true)  // writing: never
        #expect(!machine.mayBeShed(idleAndQuiet: { true }, nothingToSend: true))
        let r31 = machine.flushed(atRequestBoundary: true, now: clock.now)
        #expect(r31 == .readNext)
        #expect(machine.idleSince == clock.now)
        #expect(machine.mayBeShed(idleAndQuiet: { true }, nothingToSend: true))
    }
}
