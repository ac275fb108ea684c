// SPDX-License-Identifier: Apache-2.0
import Dispatch
@testable import HTTPServer
import Primitives
import Testing

/// A handler that answers some requests later (``HTTPPlacement/deferred``): paths starting
/// with `/later` are answered by `answer`, which the test controls; the rest at once.
private struct LaterHandler: HTTPHandler {
    let answer: @Sendable (HTTPRequest, HTTPResponder) -> Void
    /// The answer deadline of `/later/long…` (a long poll).
    var longer: Duration? = nil

    init(longer: Duration? = nil, answer: @escaping @Sendable (HTTPRequest, HTTPResponder) -> Void) {
        self.answer = answer
        self.longer = longer
    }

    func answerDeadline(of request: HTTPRequest) -> Duration? { request.target.hasPrefix("/later/long") ? longer : nil }

    func handle(_ request: HTTPRequest) -> HTTPResponse { HTTPResponse(text: "now " + request.target) }

    func placement(of request: HTTPRequest) -> HTTPPlacement { request.target.hasPrefix("/later") ? .deferred : .offloaded }

    func handle(_ request: HTTPRequest, responder: HTTPResponder) { answer(request, responder) }
}

/// Responders parked by a test until it answers them.
private final class Parked: Sendable {
    private let responders = Locked<[HTTPResponder]>([])

    func park(_ responder: HTTPResponder) { responders.withLock { $0.append(responder) } }

    var count: Int { responders.withLock { $0.count } }

    /// Takes the oldest parked responder.
    func take() -> HTTPResponder? {
        responders.withLock { $0.isEmpty ? nil : $0.removeFirst() }
    }
}

/// Requests answered later, from another thread: order, keep-alive, deadlines, a dropped
/// responder, a second answer, the in-flight count.
@Suite("HTTPServer: responses given later")
struct RespondLaterTests {
    static let inlineLimits = ConnectionTests.inlineLimits

    static func configuration(inline: Int?) -> HTTPServerConfiguration { ConnectionTests.configuration(inline: inline) }

    @Test(arguments: inlineLimits)
    func answerFromAnotherThreadKeepsOrderAndKeepAlive(inline: Int?) async throws {
        let parked = Parked()
        let handler = LaterHandler { _, responder in parked.park(responder) }
        try await withServer(Self.configuration(inline: inline), handler: handler) { server in
            let client = try TestClient(port: server.port)
            // Pipelined: the second request must wait for the first one's late answer.
            client.send("GET /later/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await eventually { parked.count == 1 })
            let responder = try #require(parked.take())
            DispatchQueue(label: "elsewhere").async {
                responder.respond(building: { HTTPResponse(status: .created, text: "made later") })
            }
            let first = try await client.readResponse()
            #expect(first.status == 201)
            #expect(first.text == "made later")
            #expect(first.header("Connection") == nil)
            #expect(try await client.readResponse().text == "now /second")
            // Still open for more.
            client.send("GET /third HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await client.readResponse().text == "now /third")
        }
    }

    @Test(arguments: inlineLimits)
    func answerGivenBeforeTheHandlerReturnsArrives(inline: Int?) async throws {
        let handler = LaterHandler { request, responder in
            #expect(responder.respond(HTTPResponse(text: "at once " + request.target)))
            #expect(!responder.respond(HTTPResponse(text: "twice")))  // ignored
        }
        try await withServer(Self.configuration(inline: inline), handler: handler) { server in
            let client = try TestClient(port: server.port)
            for i in 1...3 {
                client.send("GET /later/\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(try await client.readResponse().text == "at once /later/\(i)")
            }
        }
    }

    @Test func droppedResponderAnswers500() async throws {
        let handler = LaterHandler { _, _ in }  // forgets to answer
        try await withServer(handler: handler) { server in
            let client = try TestClient(port: server.port)
            client.send("GET /later HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.status == 500)
            #expect(await client.waitForEOF())
        }
    }

    @Test func unansweredRequestGets503AtTheHandlerDeadlineAndTheLateAnswerIsDropped() async throws {
        let parked = Parked()
        let handler = LaterHandler { _, responder in parked.park(responder) }
        var configuration = HTTPServerConfiguration.forTests
        configuration.handlerTimeout = .milliseconds(300)
        try await withServer(configuration, handler: handler) { server in
            let client = try TestClient(port: server.port)
            client.send("GET /later HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.status == 503)
            #expect(response.header("Connection") == "close")
            let responder = try #require(parked.take())
            #expect(responder.respond(HTTPResponse(text: "too late")))
            #expect(await client.waitForEOF())  // and "too late" is never sent
            #expect(await eventually { server.activeConnections == 0 })
        }
    }

    /// A long poll (``HTTPHandler/answerDeadline(of:)``) is answered after the handler deadline
    /// instead of 503; other requests keep the handler deadline.
    @Test func aLongerAnswerDeadlineOutlivesTheHandlerDeadline() async throws {
        let parked = Parked()
        // Far past any stall of the test process: under ThreadSanitizer on 2 CPUs, with every suite
        // running at once, 120 s once passed between the request and the answer, and the longer
        // deadline itself answered 503 (CI, 2026-12-07).
        let handler = LaterHandler(longer: .seconds(3600)) { _, responder in parked.park(responder) }
        var configuration = HTTPServerConfiguration.forTests
        configuration.handlerTimeout = .milliseconds(300)
        try await withServer(configuration, handler: handler) { server in
            let client = try TestClient(port: server.port)
            client.send("GET /later/long HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await eventually { parked.count == 1 })
            let responder = try #require(parked.take())
            // Past the handler deadline (without the longer one, 503 went out at 300 ms).
            try await Task.sleep(for: .milliseconds(900))
            responder.respond(HTTPResponse(text: "waited"))
            let response = try await client.readResponse()
            #expect(response.status == 200 && response.text == "waited")
            client.send("GET /later/short HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await client.readResponse().status == 503)
        }
    }

    @Test func aLateAnswerReleasesItsInFlightSlot() async throws {
        let parked = Parked()
        let handler = LaterHandler { _, responder in parked.park(responder) }
        var configuration = HTTPServerConfiguration.forTests
        configuration.maxInFlightHandlers = 1
        try await withServer(configuration, handler: handler) { server in
            let client = try TestClient(port: server.port)
            for i in 1...3 {
                client.send("GET /later/\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(await eventually { parked.count == 1 })
                let responder = try #require(parked.take())
                responder.respond(HTTPResponse(text: "late \(i)"))
                // With one slot, a slot leaked by the late path would make the next request 503.
                #expect(try await client.readResponse().text == "late \(i)")
            }
            let other = try TestClient(port: server.port)
            other.send("GET /now HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await other.readResponse().text == "now /now")
        }
    }

    @Test func anUnflaggedRequestGoesThroughTheOrdinaryHandler() async throws {
        let handler = LaterHandler { _, responder in responder.respond(HTTPResponse(text: "later path")) }
        try await withServer(handler: handler) { server in
            let client = try TestClient(port: server.port)
            client.send("GET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await client.readResponse().text == "now /plain")
            client.send("GET /later HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await client.readResponse().text == "later path")
        }
    }
}
