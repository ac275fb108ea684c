// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Glibc
import Primitives
import Synchronization
import Testing

@testable import HTTPServer

/// A handler that places its requests inline except the blocking ones (targets starting with
/// `/block`), so they run on the event-loop threads themselves (``EventLoop``).
private struct Classifying: HTTPHandler {
    let body: @Sendable (HTTPRequest) -> HTTPResponse
    func handle(_ request: HTTPRequest) -> HTTPResponse { body(request) }
    func placement(of request: HTTPRequest) -> HTTPPlacement { request.target.hasPrefix("/block") ? .offloaded : .inline }
}

/// Connections of a classifying handler are served on the loop threads, with `queue.sync`
/// instead of a hop to a Dispatch worker: the same HTTP behaviour, the flagged requests off the
/// loop, and the others really on it.
@Suite("HTTPServer: events handled on the event-loop threads")
struct LoopDeliveryTests {
    /// Records, per target, whether the handler ran on a loop thread.
    private final class Placement: Sendable {
        private let onLoop = Locked<[String: Bool]>([:])
        func note(_ target: String) { onLoop.withLock { $0[target] = EventLoop.isCurrentThreadALoop } }
        subscript(target: String) -> Bool? { onLoop.withLock { $0[target] } }
    }

    /// The inline slots are shared by every server in the process, and the other suites run in
    /// parallel: with the default limit (the CPU count) a request of these tests could find the
    /// slots taken and be handed off, which these tests would see as a re-arm or an off-loop
    /// placement. A limit no test reaches keeps what they check deterministic.
    static var inlineAlways: HTTPServerConfiguration {
        var configuration = HTTPServerConfiguration.forTests
        configuration.inlineHandlerLimit = 1_000
        return configuration
    }

    @Test func thereIsALoopPerCPUAndConnectionsTakeTurns() {
        #expect(EventLoop.all.count == min(64, InlineHandlerSlots.cpuCount))
        let first = EventLoop.next()
        let picks = (0..<EventLoop.all.count).compactMap { _ in EventLoop.next() }
        #expect(picks.count == EventLoop.all.count)
        #expect(Set(picks.map(ObjectIdentifier.init)).count == EventLoop.all.count)
        #expect(first != nil)
    }

    /// The loops are made once per process: asking for another count afterwards changes nothing.
    @Test func theLoopCountIsFixedOnceTheLoopsExist() {
        let loops = EventLoop.all.count
        #expect(!HTTPServer.configureEventLoops(loops + 1))
        #expect(!HTTPServer.configureEventLoops(0))
        #expect(!HTTPServer.configureEventLoops(65))
        #expect(EventLoop.all.count == loops && EventLoop.count == loops)
    }

    @Test func keepAlivePipeliningAndHalfCloseOnTheLoop() async throws {
        let placement = Placement()
        let handler = Classifying { request in
            placement.note(request.target)
            return HTTPResponse(status: .ok, text: request.target, headers: ["X-Body-Length": String(request.body.count)])
        }
        try await withServer(Self.inlineAlways, handler: handler) { server in
            let client = try TestClient(port: server.port)
            try await expectPipelinedRequestsAnsweredInOrder(client)
            for i in 1...3 {
                client.send("GET /k\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(try await client.readResponse().text == "/k\(i)")
            }
            try await expectPipelinedRequestsBeforeHalfCloseAnswered(client)
        }
        // The first request of the connection ran on a loop thread (later pipelined ones may too).
        #expect(placement["/first"] == true)
        #expect(placement["/k1"] == true)
    }

    /// A handler that places nothing gets the default, ``HTTPPlacement/offloaded``: fail safe.
    @Test func anUnclassifyingHandlerIsNotRunOnALoopThread() async throws {
        let placement = Placement()
        let handler = HTTPClosureHandler { request in
            placement.note(request.target)
            return HTTPResponse(text: "ok")
        }
        try await withServer(handler: handler) { server in
            let client = try TestClient(port: server.port)
            client.send("GET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await client.readResponse().status == 200)
        }
        #expect(placement["/plain"] == false)
    }

    /// A flagged request blocks a handler-pool thread, not a loop: every other connection,
    /// whichever loop it landed on, is answered meanwhile.
    @Test func aFlaggedBlockingRequestLeavesTheLoopsFree() async throws {
        let gate = Gate()
        let placement = Placement()
        let handler = Classifying { request in
            placement.note(request.target)
            if request.target.hasPrefix("/block") { gate.pass() }
            return HTTPResponse(text: request.target)
        }
        try await withServer(Self.inlineAlways, handler: handler) { server in
            let blocked = try TestClient(port: server.port)
            blocked.send("GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await gate.waitForEntries(1))
            for i in 0..<(2 * EventLoop.all.count + 1) {
                let other = try TestClient(port: server.port)
                other.send("GET /free\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(try await other.readResponse().text == "/free\(i)")
            }
            gate.open()
            #expect(try await blocked.readResponse().text == "/block")
        }
        #expect(placement["/block"] == false)
        #expect(placement["/free0"] == true)
    }

    /// 8 MiB through partial writes: the connection waits for EPOLLOUT, delivered by the loop.
    @Test func largeResponseSurvivesPartialWritesOnTheLoop() async throws {
        let size = 8 * 1024 * 1024
        let expected = cyclicPattern(size: size)
        var configuration = HTTPServerConfiguration.forTests
        configuration.idleTimeout = .seconds(600)
        configuration.writeStallTimeout = .seconds(600)
        try await withServer(configuration, handler: Classifying { _ in HTTPResponse(status: .ok, body: expected) }) { server in
            let client = try TestClient(port: server.port)
            for _ in 0..<2 {
                client.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
                let response = try await client.readResponse()
                #expect(response.body.count == size)
                #expect(sameBytes(response.body, expected))
            }
        }
    }

    /// A connection served on the loop keeps one persistent EPOLLIN registration while it only
    /// reads: keep-alive requests answered inline cost no `epoll_ctl` re-arm each. Each of their
    /// responses is held back to the end of the loop's batch (``EventLoop/deferFlush(_:)``), and
    /// the registration is left alone meanwhile.
    @Test func inlineKeepAliveRequestsDoNotReArm() async throws {
        try await withServer(Self.inlineAlways, handler: Classifying { request in HTTPResponse(text: request.target) }) { server in
            let client = try TestClient(port: server.port)
            for i in 0..<50 {
                client.send("GET /r\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(try await client.readResponse().text == "/r\(i)")
            }
            #expect(server.loopRearms.load(ordering: .relaxed) == 0)
            #expect(server.loopEventsDelivered.load(ordering: .relaxed) >= 50)
            #expect(server.responsesDeferred.load(ordering: .relaxed) == 50)
        }
    }

    /// A handler that does not classify keeps one-shot registrations: a re-arm after every event.
    /// (Not one per request: a slow worker can find the next request already in the socket when it
    /// reads again after answering, and answer it within the same event; a sanitizer run did.)
    @Test func anUnclassifyingHandlerReArmsAfterEachEvent() async throws {
        try await withServer(handler: HTTPClosureHandler { request in HTTPResponse(text: request.target) }) { server in
            let client = try TestClient(port: server.port)
            for i in 0..<5 {
                client.send("GET /r\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(try await client.readResponse().text == "/r\(i)")
            }
            // The last event's re-arm follows its response: wait for it.
            #expect(await eventually {
                server.loopRearms.load(ordering: .relaxed) >= server.loopEventsDelivered.load(ordering: .relaxed)
            })
            #expect(server.loopEventsDelivered.load(ordering: .relaxed) >= 1)
        }
    }

    /// While a flagged request runs off the loop, the next pipelined request waits in the socket.
    /// The registration is one-shot during that time: the readable socket is reported at most
    /// once, not on every `epoll_wait` (a persistent level-triggered registration would spin the
    /// loop for as long as the handler runs). Then reading resumes and both are answered.
    @Test func pipelinedBytesDuringAnOffloadedRequestDoNotSpinTheLoop() async throws {
        let gate = Gate()
        let handler = Classifying { request in
            if request.target.hasPrefix("/block") { gate.pass() }
            return HTTPResponse(text: request.target)
        }
        try await withServer(Self.inlineAlways, handler: handler) { server in
            let client = try TestClient(port: server.port)
            client.send("GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await gate.waitForEntries(1))
            let before = server.loopEventsDelivered.load(ordering: .relaxed)
            client.send("GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
            try await Task.sleep(for: .milliseconds(200))
            #expect(server.loopEventsDelivered.load(ordering: .relaxed) - before <= 1)
            gate.open()
            #expect(try await client.readResponse().text == "/block")
            #expect(try await client.readResponse().text == "/after")
            // Back to reading on the loop: inline requests again cost no re-arm.
            let rearms = server.loopRearms.load(ordering: .relaxed)
            for i in 0..<10 {
                client.send("GET /r\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(try await client.readResponse().text == "/r\(i)")
            }
            #expect(server.loopRearms.load(ordering: .relaxed) == rearms)
        }
    }

    /// Many connections at once, spread over the loops, each with several keep-alive requests.
    @Test func manyConnectionsAcrossTheLoopsAreAllAnsweredInOrder() async throws {
        let handler = Classifying { request in HTTPResponse(text: request.target) }
        try await withServer(handler: handler) { server in
            let clients = try (0..<16).map { _ in try TestClient(port: server.port) }
            for round in 0..<5 {
                for (c, client) in clients.enumerated() { client.send("GET /\(c)-\(round) HTTP/1.1\r\nHost: x\r\n\r\n") }
                for (c, client) in clients.enumerated() {
                    #expect(try await client.readResponse().text == "/\(c)-\(round)")
                }
            }
        }
    }

    /// Pipelined requests on a loop: the first response waits for the end of the batch, the rest
    /// are answered while it is sent (at once), all in order, with no re-arm.
    @Test func pipelinedResponsesOnTheLoopAreSentInOrder() async throws {
        try await withServer(Self.inlineAlways, handler: Classifying { request in HTTPResponse(text: request.target) }) { server in
            let client = try TestClient(port: server.port)
            client.send((0..<5).map { "GET /p\($0) HTTP/1.1\r\nHost: x\r\n\r\n" }.joined())
            for i in 0..<5 { #expect(try await client.readResponse().text == "/p\(i)") }
            #expect((1...5).contains(server.responsesDeferred.load(ordering: .relaxed)))
            #expect(server.loopRearms.load(ordering: .relaxed) == 0)
        }
    }

    /// A response that closes the connection is sent at once, not held back.
    @Test func aClosingResponseIsNotHeldBack() async throws {
        try await withServer(Self.inlineAlways, handler: Classifying { request in HTTPResponse(text: request.target) }) { server in
            let client = try TestClient(port: server.port)
            client.send("GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(try await client.readResponse().text == "/last")
            #expect(await client.waitForEOF())
            #expect(server.responsesDeferred.load(ordering: .relaxed) == 0)
        }
    }

    /// 48 connections sending at once: every response held back and sent, in order on each
    /// connection, and no loop ever holds back more than ``EventLoop/deferredFlushLimit``.
    @Test func aBatchHoldsBackAtMostTheLimit() async throws {
        let connections = 48, rounds = 5
        try await withServer(Self.inlineAlways, handler: Classifying { request in HTTPResponse(text: request.target) }) { server in
            let clients = try (0..<connections).map { _ in try TestClient(port: server.port) }
            for round in 0..<rounds {
                for (c, client) in clients.enumerated() { client.send("GET /\(c)-\(round) HTTP/1.1\r\nHost: x\r\n\r\n") }
                for (c, client) in clients.enumerated() {
                    #expect(try await client.readResponse().text == "/\(c)-\(round)")
                }
            }
            #expect(server.responsesDeferred.load(ordering: .relaxed) == connections * rounds)
        }
        let largest = EventLoop.all.map { $0.largestDeferredBatch.load(ordering: .relaxed) }.max() ?? 0
        #expect(largest >= 1 && largest <= EventLoop.deferredFlushLimit)
    }
}
