// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Glibc
@testable import HTTPServer
import Logging
import Primitives
import Synchronization
import Testing

/// Live-server tests over real sockets on 127.0.0.1 port 0. Deadlines are configured short
/// (a few hundred ms); assertions check what happened (status, EOF), never how long it took.
@Suite("HTTPServer over sockets")
struct ConnectionTests {
    @Test func bindsAnEphemeralPortAndServes() async throws {
        try await withServer(handler: echoTargetHandler) { server in
            #expect(server.port > 0)
            #expect(server.localAddress == "127.0.0.1:\(server.port)")
            let client = try TestClient(port: server.port)
            client.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.status == 200)
            #expect(response.text == "/hello")
            #expect(response.header("Date")?.hasSuffix(" GMT") == true)
            #expect(response.header("Content-Length") == "6")
            #expect(response.header("Connection") == nil)
        }
    }

    /// Handler placement under test: always offloaded (0), or the default rule (nil: inline while
    /// fewer than CPUs − 1 handlers run inline in the process). Larger limits are deliberately not
    /// used: tests block handlers on gates, and inline handlers blocked on every worker of the
    /// shared pool would stall every server in the test process.
    static let inlineLimits: [Int?] = [0, nil]

    static func configuration(inline: Int?) -> HTTPServerConfiguration {
        var configuration = HTTPServerConfiguration.forTests
        configuration.inlineHandlerLimit = inline
        return configuration
    }

    @Test(arguments: inlineLimits)
    func pipelinedRequestsInOneSendAreAnsweredInOrder(inline: Int?) async throws {
        try await withServer(Self.configuration(inline: inline), handler: echoTargetHandler) { server in
            try await expectPipelinedRequestsAnsweredInOrder(try TestClient(port: server.port))
        }
    }

    @Test(arguments: inlineLimits)
    func pipelinedRequestsFollowedByHalfCloseAreAllAnswered(inline: Int?) async throws {
        try await withServer(Self.configuration(inline: inline), handler: echoTargetHandler) { server in
            try await expectPipelinedRequestsBeforeHalfCloseAnswered(try TestClient(port: server.port))
        }
    }

    @Test(arguments: inlineLimits)
    func keepAliveServesThreeRequestsOnOneSocket(inline: Int?) async throws {
        try await withServer(Self.configuration(inline: inline), handler: echoTargetHandler) { server in
            let client = try TestClient(port: server.port)
            for i in 1...3 {
                client.send("GET /\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
                let response = try await client.readResponse()
                #expect(response.text == "/\(i)")
                #expect(response.header("Connection") == nil)
            }
            client.send("GET /last HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n")
            let last = try await client.readResponse()
            #expect(last.header("Connection") == "close")
            #expect(await client.waitForEOF())
        }
    }

    @Test func http10ClosesUnlessKeepAliveIsRequested() async throws {
        try await withServer(handler: echoTargetHandler) { server in
            let plain = try TestClient(port: server.port)
            plain.send("GET /old HTTP/1.0\r\n\r\n")
            let response = try await plain.readResponse()
            #expect(response.status == 200)
            #expect(response.header("Connection") == "close")
            #expect(await plain.waitForEOF())

            let kept = try TestClient(port: server.port)
            kept.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            #expect(try await kept.readResponse().header("Connection") == "keep-alive")
            kept.send("GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            #expect(try await kept.readResponse().text == "/b")
        }
    }

    @Test(arguments: inlineLimits)
    func expectContinueGets100ThenTheFinalResponse(inline: Int?) async throws {
        try await withServer(Self.configuration(inline: inline), handler: echoTargetHandler) { server in
            let client = try TestClient(port: server.port)
            client.send("POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            let interim = await client.readBytes("HTTP/1.1 100 Continue\r\n\r\n".utf8.count)
            #expect(String(decoding: interim, as: UTF8.self) == "HTTP/1.1 100 Continue\r\n\r\n")
            client.send("hello")
            let final = try await client.readResponse()
            #expect(final.status == 200)
            #expect(final.header("X-Body-Length") == "5")
        }
    }

    @Test func handlerCanRefuseTheBodyBefore100Continue() async throws {
        let handler = HTTPClosureHandler(beforeBody: { head in
            head.headers["Authorization"] == nil ? .problem(.unauthorized) : nil
        }) { request in
            HTTPResponse(text: String(request.body.count))
        }
        try await withServer(handler: handler) { server in
            let refused = try TestClient(port: server.port)
            refused.send("PUT /s HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            let response = try await refused.readResponse()  // a final status, not 100
            #expect(response.status == 401)
            #expect(response.header("Connection") == "close")
            #expect(await refused.waitForEOF())

            let allowed = try TestClient(port: server.port)
            allowed.send("PUT /s HTTP/1.1\r\nHost: x\r\nAuthorization: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            let interim = await allowed.readBytes(25)
            #expect(String(decoding: interim, as: UTF8.self) == "HTTP/1.1 100 Continue\r\n\r\n")
            allowed.send("12345")
            #expect(try await allowed.readResponse().text == "5")
        }
    }

    @Test func expectContinueIsSkippedWhenTheBodyAlreadyArrived() async throws {
        try await withServer(handler: echoTargetHandler) { server in
            let client = try TestClient(port: server.port)
            client.send("POST /u HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok")
            let response = try await client.readResponse()
            #expect(response.status == 200)  // not 100
        }
    }

    @Test func oversizedContentLengthGets413BeforeTheBodyWithout100() async throws {
        var configuration = HTTPServerConfiguration.forTests
        configuration.maxBodyBytes = 1024
        try await withServer(configuration, handler: echoTargetHandler) { server in
            let client = try TestClient(port: server.port)
            // The body is never sent: the 413 must arrive anyway (docs/http.md §7).
            client.send("POST /big HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1025\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.status == 413)
            #expect(response.header("Connection") == "close")
            #expect(response.header("Cache-Control") == "no-store")
            #expect(response.header("Content-Type") == "application/problem+json")
            #expect(response.text == #"{"type":"about:blank","title":"Content Too Large","status":413,"detail":"body: request bodies are limited to 1024 bytes"}"#)
            #expect(await client.waitForEOF())
        }
    }

    @Test func framingErrorGets400WithConnectionCloseAndNoEcho() async throws {
        try await withServer(handler: echoTargetHandler) { server in
            let client = try TestClient(port: server.port)
            client.send("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.status == 400)
            #expect(response.header("Connection") == "close")
            #expect(!response.text.contains("/x"))
            #expect(await client.waitForEOF())
        }
    }

    @Test func chunkedRequestBodyIsDecoded() async throws {
        try await withServer(handler: echoTargetHandler) { server in
            let client = try TestClient(port: server.port)
            client.send("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n")
            client.send("3\r\nefg\r\n0\r\n\r\n")
            #expect(try await client.readResponse().header("X-Body-Length") == "7")
        }
    }

    @Test func headResponseHasContentLengthButNoBody() async throws {
        try await withServer(handler: echoTargetHandler) { server in
            let client = try TestClient(port: server.port)
            client.send("HEAD /abc HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
            let head = try await client.readResponse(isHead: true)
            #expect(head.header("Content-Length") == "4")
            // If the HEAD body had been sent, this would read "/abc" instead.
            #expect(try await client.readResponse().text == "/next")
        }
    }

    @Test func noContentHasNoContentLength() async throws {
        let handler = HTTPClosureHandler { _ in HTTPResponse(status: .noContent, body: [UInt8]("ignored".utf8)) }
        try await withServer(handler: handler) { server in
            let client = try TestClient(port: server.port)
            client.send("DELETE /x HTTP/1.1\r\nHost: x\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\n\r\n")
            let first = try await client.readResponse()
            #expect(first.status == 204)
            #expect(first.header("Content-Length") == nil)
            #expect(try await client.readResponse().status == 204)
        }
    }

    @Test func responseSplittingIsReplacedBy500() async throws {
        let handler = HTTPClosureHandler { _ in
            HTTPResponse(status: .ok, headers: ["X-Evil": "a\r\nSet-Cookie: pwned=1"], body: [])
        }
        try await withServer(handler: handler) { server in
            let client = try TestClient(port: server.port)
            client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.status == 500)
            #expect(response.header("Set-Cookie") == nil)
        }
    }

    @Test func serverOwnedHeadersFromTheHandlerAreReplaced() async throws {
        let handler = HTTPClosureHandler { _ in
            HTTPResponse(status: .ok, headers: ["Content-Length": "999", "Transfer-Encoding": "chunked"], body: [UInt8]("hi".utf8))
        }
        try await withServer(handler: handler) { server in
            let client = try TestClient(port: server.port)
            client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.header("Content-Length") == "2")
            #expect(response.header("Transfer-Encoding") == nil)
            #expect(response.text == "hi")
        }
    }

    @Test func largeResponseSurvivesPartialWrites() async throws {
        // 8 MiB, built once (not inside the handler).
        let size = 8 * 1024 * 1024
        let expected = cyclicPattern(size: size)
        let handler = HTTPClosureHandler { _ in HTTPResponse(status: .ok, body: expected) }
        // Only partial writes are under test: the client's checks between the two requests must
        // not race the idle deadline on a slow machine.
        var configuration = HTTPServerConfiguration.forTests
        configuration.idleTimeout = .seconds(600)
        configuration.writeStallTimeout = .seconds(600)
        try await withServer(configuration, handler: handler) { server in
            let client = try TestClient(port: server.port)
            client.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.body.count == size)
            #expect(sameBytes(response.body, expected))
            client.send("GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
            let again = try await client.readResponse()
            #expect(again.body.count == size)
            #expect(sameBytes(again.body, expected))
        }
    }

    @Test func clientResettingMidResponseDoesNotHurtTheServer() async throws {
        let handler = HTTPClosureHandler { request in
            request.target == "/big" ? HTTPResponse(body: [UInt8](repeating: 7, count: 8 * 1024 * 1024)) : HTTPResponse(text: "alive")
        }
        try await withServer(handler: handler) { server in
            for _ in 0..<3 {
                let rude = try TestClient(port: server.port)
                rude.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
                var linger = linger(l_onoff: 1, l_linger: 0)  // close() sends RST
                setsockopt(rude.fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
            }
            let client = try TestClient(port: server.port)
            client.send("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await client.readResponse().text == "alive")
        }
    }

    @Test func requestCapPerConnectionClosesAfterTheLastOne() async throws {
        var configuration = HTTPServerConfiguration.forTests
        configuration.maxRequestsPerConnection = 2
        try await withServer(configuration, handler: echoTargetHandler) { server in
            let client = try TestClient(port: server.port)
            client.send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await client.readResponse().header("Connection") == nil)
            client.send("GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await client.readResponse().header("Connection") == "close")
            #expect(await client.waitForEOF())
        }
    }

    // MARK: - Timeouts (docs/http.md §11)

    /// A configuration where only the timeout under test is short (300 ms) and every other one is
    /// ten minutes (``HTTPServerConfiguration/forTests``), so the observed outcome can only come from the deadline under test, and no other
    /// deadline can fire first when a loaded or sanitized machine runs the server late.
    static func shortTimeout(
        _ field: WritableKeyPath<HTTPServerConfiguration, Duration>, _ value: Duration = .milliseconds(300)
    ) -> HTTPServerConfiguration {
        var configuration = HTTPServerConfiguration.forTests
        configuration[keyPath: field] = value
        return configuration
    }

    @Test func silentClientGets408AtTheHeaderDeadline() async throws {
        try await withServer(Self.shortTimeout(\.headerTimeout), handler: echoTargetHandler) { server in
            let client = try TestClient(port: server.port)
            let response = try await client.readResponse()
            #expect(response.status == 408)
            #expect(response.header("Connection") == "close")
            #expect(await client.waitForEOF())
        }
    }

    @Test func stalledHeadIsClosedWithoutAResponse() async throws {
        try await withServer(Self.shortTimeout(\.headerTimeout), handler: echoTargetHandler) { server in
            let client = try TestClient(port: server.port)
            client.send("GET / HTTP/1.1\r\n")
            #expect(await client.readBytes(1).isEmpty)
            #expect(client.sawEOF)
        }
    }

    @Test func tricklingBytesDoNotExtendTheHeaderDeadline() async throws {
        try await withServer(Self.shortTimeout(\.headerTimeout, .seconds(1)), handler: echoTargetHandler) { server in
            let client = try TestClient(port: server.port)
            // Keep sending one header byte every 50 ms (far below the 1 s deadline) for up to 30 s:
            // a server that restarted the deadline on each byte would never cut us off.
            client.send("GET / HTTP/1.1\r\nX-Slow: ")
            var closed = false
            let giveUp = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < giveUp {
                client.send("a")
                try await Task.sleep(for: .milliseconds(50))
                var probe = pollfd(fd: client.fd, events: Int16(POLLIN), revents: 0)
                if poll(&probe, 1, 0) > 0 {
                    closed = await client.readBytes(1).isEmpty
                    break
                }
            }
            #expect(closed)
        }
    }

    @Test func idleKeepAliveConnectionIsClosedSilently() async throws {
        try await withServer(Self.shortTimeout(\.idleTimeout), handler: echoTargetHandler) { server in
            let client = try TestClient(port: server.port)
            client.send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await client.readResponse().status == 200)
            #expect(await client.readBytes(1).isEmpty)  // no 408, just EOF
            #expect(client.sawEOF)
        }
    }

    @Test func stalledBodyIsClosed() async throws {
        try await withServer(Self.shortTimeout(\.bodyInactivityTimeout), handler: echoTargetHandler) { server in
            let client = try TestClient(port: server.port)
            client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
            #expect(await client.readBytes(1).isEmpty)
            #expect(client.sawEOF)
        }
    }

    @Test(arguments: inlineLimits)
    func slowHandlerGets503AtItsDeadlineAndItsResultIsDiscarded(inline: Int?) async throws {
        let gate = Gate()
        let handler = HTTPClosureHandler { request in
            if request.target == "/slow" { gate.pass() }
            return HTTPResponse(text: "late")
        }
        var configuration = Self.shortTimeout(\.handlerTimeout)
        configuration.inlineHandlerLimit = inline
        try await withServer(configuration, handler: handler) { server in
            let client = try TestClient(port: server.port)
            client.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            if inline != 0 {
                // Inline: only the connection's own thread writes to its transport, and it is inside
                // the handler, so the 503 replaces the late result when the handler returns.
                #expect(await gate.waitForEntries(1))
                try await Task.sleep(for: .milliseconds(600))  // twice the 300 ms deadline
                gate.open()
            }
            let response = try await client.readResponse()  // offloaded: while the handler is still blocked
            #expect(response.status == 503)
            #expect(response.header("Retry-After") == "1")
            #expect(response.header("Connection") == "close")
            gate.open()
            #expect(await client.waitForEOF())  // and "late" is never sent
        }
    }

    @Test(arguments: inlineLimits)
    func inFlightHandlerCapAnswers503(inline: Int?) async throws {
        let gate = Gate()
        let handler = HTTPClosureHandler { request in
            if request.target == "/block" { gate.pass() }
            return HTTPResponse(text: "done")
        }
        var configuration = Self.configuration(inline: inline)
        configuration.maxInFlightHandlers = 1
        try await withServer(configuration, handler: handler) { server in
            let first = try TestClient(port: server.port)
            first.send("GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await gate.waitForEntries(1))
            let second = try TestClient(port: server.port)
            second.send("GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
            let rejected = try await second.readResponse()
            #expect(rejected.status == 503)
            #expect(rejected.header("Retry-After") == "1")
            gate.open()
            #expect(try await first.readResponse().text == "done")
        }
    }

    // MARK: - Connection cap (docs/http.md §12)

    @Test(arguments: inlineLimits)
    func connectionCapQueuesExtraClientsInTheBacklog(inline: Int?) async throws {
        let gate = Gate()
        let serverBox = Locked<HTTPServer?>(nil)
        let peak = Atomic<Int>(0)
        let handler = HTTPClosureHandler { request in
            let open = serverBox.withLock { $0?.activeConnections ?? 0 }
            var current = peak.load(ordering: .relaxed)
            while open > current {
                let (exchanged, original) = peak.compareExchange(expected: current, desired: open, ordering: .relaxed)
                if exchanged { break }
                current = original
            }
            gate.pass()
            return HTTPResponse(text: request.target)
        }
        var configuration = Self.configuration(inline: inline)
        configuration.maxConnections = 4
        try await withServer(configuration, handler: handler) { server in
            serverBox.withLock { $0 = server }
            var clients: [TestClient] = []
            for i in 0..<6 {
                let client = try TestClient(port: server.port)  // connect succeeds: the backlog holds it
                client.send("GET /\(i) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                clients.append(client)
            }
            #expect(await gate.waitForEntries(4))
            #expect(server.activeConnections == 4)
            gate.open()
            for (i, client) in clients.enumerated() {
                #expect(try await client.readResponse().text == "/\(i)")
            }
            let peakConnections = peak.load(ordering: .relaxed)
            let served = gate.entered.load(ordering: .relaxed)
            #expect(peakConnections <= 4)
            #expect(served == 6)
        }
    }

    // MARK: - Graceful shutdown (docs/http.md §16)

    @Test(arguments: inlineLimits)
    func shutdownLetsTheInFlightRequestFinishWithConnectionClose(inline: Int?) async throws {
        let gate = Gate()
        let state = HTTPServerState()
        let handler = HTTPClosureHandler { request in
            if request.target == "/slow" { gate.pass() }
            return HTTPResponse(text: state.isDraining ? "draining" : "serving")
        }
        var configuration = Self.configuration(inline: inline)
        configuration.host = "127.0.0.1"
        configuration.port = 0
        configuration.logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        // Neither the handler deadline nor the drain deadline is under test: make them unreachable,
        // so a slow machine cannot turn the in-flight request into a 503 or a force-close.
        configuration.handlerTimeout = .seconds(600)
        let server = HTTPServer(configuration: configuration, state: state, handler: handler)
        try server.start()
        let port = server.port

        let idle = try TestClient(port: port)
        idle.send("GET /warm HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try await idle.readResponse().text == "serving")

        let busy = try TestClient(port: port)
        busy.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(await gate.waitForEntries(1))

        let finished = Atomic<Bool>(false)
        server.shutdown(deadline: .now() + .seconds(600)) { finished.store(true, ordering: .sequentiallyConsistent) }
        #expect(server.isDraining)
        #expect(await idle.waitForEOF())  // idle keep-alive connection closed right away
        #expect(await eventually { (try? TestClient(port: port)) == nil })  // new connects refused
        let finishedEarly = finished.load(ordering: .sequentiallyConsistent)
        #expect(!finishedEarly)

        gate.open()
        let response = try await busy.readResponse()
        #expect(response.status == 200)
        #expect(response.text == "draining")
        #expect(response.header("Connection") == "close")
        #expect(await busy.waitForEOF())
        #expect(await eventually { finished.load(ordering: .sequentiallyConsistent) })
        #expect(server.activeConnections == 0)
    }

    @Test func shutdownForceClosesAtTheDeadline() async throws {
        var configuration = HTTPServerConfiguration.forTests  // no connection deadline can close it first
        configuration.host = "127.0.0.1"
        configuration.port = 0
        configuration.logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        let server = HTTPServer(configuration: configuration, handler: echoTargetHandler)
        try server.start()
        let client = try TestClient(port: server.port)
        // A request whose body never comes keeps the connection busy. The 100 Continue proves the
        // server consumed the head, so the connection is mid-request (drain must not close it as
        // idle) and holds no unread bytes (a close then ends with FIN, not RST).
        client.send("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        let interim = await client.readBytes(25)
        #expect(String(decoding: interim, as: UTF8.self) == "HTTP/1.1 100 Continue\r\n\r\n")
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            server.shutdown(deadline: .now() + .milliseconds(200)) { done.resume() }
        }
        #expect(await client.waitForEOF())
    }

    @Test func startFailsWithAddressInUse() async throws {
        try await withServer(handler: echoTargetHandler) { server in
            var configuration = HTTPServerConfiguration.forTests
            configuration.host = "127.0.0.1"
            configuration.port = server.port
            configuration.logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
            let second = HTTPServer(configuration: configuration, handler: echoTargetHandler)
            #expect(throws: HTTPServerError.systemCall(call: "bind", errno: EADDRINUSE)) { try second.start() }
            #expect(throws: HTTPServerError.alreadyStarted) { try second.start() }
            #expect(throws: HTTPServerError.invalidHost("nope")) {
                try HTTPServer(configuration: HTTPServerConfiguration(host: "nope", port: 0), handler: echoTargetHandler).start()
            }
        }
    }

    @Test func servesOverIPv6Loopback() async throws {
        var configuration = HTTPServerConfiguration(host: "::1", port: 0)
        configuration.logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        let server = HTTPServer(configuration: configuration, handler: echoTargetHandler)
        do {
            try server.start()
        } catch {
            return  // No IPv6 loopback in this environment; nothing to test.
        }
        #expect(server.localAddress == "[::1]:\(server.port)")
        await server.shutdown()
    }
}
