// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Glibc
@testable import HTTPServer
import Primitives
import Synchronization
import Testing

/// Issue 14 items 3 and 4: connection slots (per-address bound, shedding idle connections at the
/// cap) and request bodies (the handler sees every head that announces a body before it is
/// read; the bodies in memory stay within a budget).
@Suite("Connection slots and body memory")
struct AdmissionTests {
    // MARK: - Pieces

    @Test func peerKeyIsTheAddressWithoutThePort() throws {
        func key(_ host: String, _ port: Int) throws -> PeerKey {
            try #require(SocketAddress(host: host, port: port)).peerKey
        }
        #expect(try key("127.0.0.5", 1) == key("127.0.0.5", 2))
        #expect(try key("127.0.0.5", 1) != key("127.0.0.6", 1))
        #expect(try key("1.2.3.4", 80) == key("::ffff:1.2.3.4", 80))  // one client, either family
        #expect(try key("::1", 80) != key("127.0.0.1", 80))
        #expect(try key("2001:db8::1", 80) != key("2001:db8::2", 80))
    }

    @Test func addressSlotsBoundEachAddressSeparately() {
        let a = PeerKey(high: 0, low: 1)
        let b = PeerKey(high: 0, low: 2)
        let slots = AddressSlots(limit: 2)
        #expect(slots.claim(a) && slots.claim(a))
        #expect(!slots.claim(a))
        #expect(slots.claim(b))
        slots.release(a)
        #expect(slots.count(a) == 1)
        #expect(slots.claim(a))
        let unbounded = AddressSlots(limit: 0)
        #expect((0..<1000).allSatisfy { _ in unbounded.claim(a) })
    }

    @Test func bodyBudgetRefusesWhatDoesNotFit() {
        let budget = BodyMemoryBudget(limit: 100)
        #expect(!budget.reserve(101))
        #expect(budget.reserve(60))
        #expect(!budget.reserve(50))
        #expect(budget.reserve(40))
        #expect(!budget.reserve(1))
        #expect(budget.reserve(10, force: true))  // bytes already read are counted anyway
        #expect(budget.inUse == 110)
        budget.release(110)
        #expect(budget.inUse == 0)
        #expect(budget.reserve(100))
    }

    // MARK: - Connection slots (item 3)

    @Test func connectionsOverThePerAddressBoundAreRefusedAtAccept() async throws {
        var configuration = HTTPServerConfiguration.forTests
        configuration.maxConnectionsPerAddress = 2
        try await withServer(configuration, handler: echoTargetHandler) { server in
            let first = try TestClient(port: server.port, source: "127.0.0.21")
            let second = try TestClient(port: server.port, source: "127.0.0.21")
            for client in [first, second] {
                client.send("GET /kept HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(try await client.readResponse().text == "/kept")
            }
            let third = try TestClient(port: server.port, source: "127.0.0.21")
            let refused = try await third.readResponse()
            #expect(refused.status == 503)
            #expect(refused.header("Retry-After") != nil)
            #expect(await third.waitForEOF())
            let other = try TestClient(port: server.port, source: "127.0.0.22")
            other.send("GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await other.readResponse().text == "/other")
            first.send("GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await first.readResponse().text == "/again")
        }
    }

    @Test func fullServerShedsTheLongestIdleConnectionForANewcomer() async throws {
        var configuration = HTTPServerConfiguration.forTests
        configuration.maxConnections = 2
        configuration.shedGracePeriod = .zero
        try await withServer(configuration, handler: echoTargetHandler) { server in
            let oldest = try TestClient(port: server.port)
            oldest.send("GET /oldest HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await oldest.readResponse().text == "/oldest")
            let recent = try TestClient(port: server.port)
            recent.send("GET /recent HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await recent.readResponse().text == "/recent")

            let newcomer = try TestClient(port: server.port)
            newcomer.send("GET /new HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await newcomer.readResponse().text == "/new")
            #expect(await oldest.waitForEOF())  // closed silently, as the idle deadline would
            recent.send("GET /still HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await recent.readResponse().text == "/still")
            #expect(server.activeConnections <= 2)
        }
    }

    @Test func aHeadTricklingPastItsGraceIsShedButABodyInProgressIsNot() async throws {
        var configuration = HTTPServerConfiguration.forTests
        configuration.maxConnections = 2
        configuration.headShedGracePeriod = .milliseconds(100)
        try await withServer(configuration, handler: echoTargetHandler) { server in
            let body = try TestClient(port: server.port)  // mid-body: never shed
            body.send("POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
            let trickler = try TestClient(port: server.port)
            trickler.send("GET /slow HTTP/1.1\r\nHo")
            try await Task.sleep(for: .milliseconds(200))

            let newcomer = try TestClient(port: server.port)
            newcomer.send("GET /new HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await newcomer.readResponse().text == "/new")
            #expect(await trickler.waitForEOF())  // closed without an answer
            body.send("cd")
            #expect(try await body.readResponse().text == "/body")
        }
    }

    @Test func aConnectionInTheMiddleOfARequestIsNeverShed() async throws {
        let gate = Gate()
        let handler = HTTPClosureHandler { request in
            if request.target == "/held" { gate.pass() }
            return HTTPResponse(text: request.target)
        }
        var configuration = HTTPServerConfiguration.forTests
        configuration.maxConnections = 1
        configuration.shedGracePeriod = .zero
        configuration.inlineHandlerLimit = 0  // the held handler blocks a pool thread, not a loop
        try await withServer(configuration, handler: handler) { server in
            let busy = try TestClient(port: server.port)
            busy.send("GET /held HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(await gate.waitForEntries(1))
            let waiting = try TestClient(port: server.port)
            waiting.send("GET /waiting HTTP/1.1\r\nHost: x\r\n\r\n")
            try await Task.sleep(for: .milliseconds(300))  // several watchdog ticks: retries happen
            #expect(server.activeConnections == 1)
            gate.open()
            #expect(try await busy.readResponse().text == "/held")
            #expect(try await waiting.readResponse().text == "/waiting")
        }
    }

    // MARK: - Bodies (item 4)

    @Test func everyHeadWithABodyIsOfferedToTheHandlerBeforeTheBodyIsRead() async throws {
        let handled = Atomic<Int>(0)
        let seenAddress = Locked<String>("")
        let handler = HTTPClosureHandler(beforeBody: { head in
            seenAddress.withLock { $0 = head.remoteAddress }
            return head.headers["Authorization"] == nil ? .problem(.unauthorized) : nil
        }) { request in
            handled.wrappingAdd(1, ordering: .relaxed)
            return HTTPResponse(text: String(request.body.count))
        }
        try await withServer(handler: handler) { server in
            // No Expect: 100-continue; a large body announced and not sent.
            let refused = try TestClient(port: server.port)
            refused.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n")
            let response = try await refused.readResponse()
            #expect(response.status == 401)
            #expect(response.header("Connection") == "close")
            #expect(await refused.waitForEOF())
            #expect(handled.load(ordering: .relaxed) == 0)
            #expect(seenAddress.withLock { $0 }.hasPrefix("127.0.0.1:"))

            let chunked = try TestClient(port: server.port)
            chunked.send("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            #expect(try await chunked.readResponse().status == 401)

            let allowed = try TestClient(port: server.port)
            allowed.send("POST /upload HTTP/1.1\r\nHost: x\r\nAuthorization: t\r\nContent-Length: 3\r\n\r\nabc")
            #expect(try await allowed.readResponse().text == "3")
            #expect(server.bodyBudget.inUse == 0)
        }
    }

    @Test func bodiesBeyondTheMemoryBudgetGet503BeforeTheyAreRead() async throws {
        var configuration = HTTPServerConfiguration.forTests
        configuration.bodyMemoryBudgetBytes = 1000
        try await withServer(configuration, handler: echoTargetHandler) { server in
            let admitted = try TestClient(port: server.port)
            admitted.send("POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 600\r\n\r\n")
            #expect(String(decoding: await admitted.readBytes(25), as: UTF8.self) == "HTTP/1.1 100 Continue\r\n\r\n")
            #expect(server.bodyBudget.inUse == 600)

            let over = try TestClient(port: server.port)
            over.send("POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 600\r\n\r\n")
            let refused = try await over.readResponse()
            #expect(refused.status == 503)
            #expect(refused.header("Retry-After") != nil)
            #expect(refused.header("Connection") == "close")
            #expect(await over.waitForEOF())

            admitted.send([UInt8](repeating: 0x61, count: 600))
            let done = try await admitted.readResponse()
            #expect(done.header("X-Body-Length") == "600")
            #expect(await eventually { server.bodyBudget.inUse == 0 })

            let later = try TestClient(port: server.port)
            later.send("POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 600\r\n\r\n" + String(repeating: "c", count: 600))
            #expect(try await later.readResponse().header("X-Body-Length") == "600")
        }
    }

    @Test func aChunkedBodyReservesItsMemoryAsItsChunksAreAnnounced() async throws {
        var configuration = HTTPServerConfiguration.forTests
        configuration.bodyMemoryBudgetBytes = 1000
        try await withServer(configuration, handler: echoTargetHandler) { server in
            let growing = try TestClient(port: server.port)
            growing.send("POST /g HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n")  // 800 bytes
            growing.send(String(repeating: "g", count: 800) + "\r\n")
            #expect(await eventually { server.bodyBudget.inUse == 800 })

            let over = try TestClient(port: server.port)
            over.send("POST /o HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n\r\n")
            #expect(try await over.readResponse().status == 503)

            growing.send("c8\r\n" + String(repeating: "g", count: 200) + "\r\n")  // 1000 in all: fits
            growing.send("1\r\ng\r\n")  // 1001: over the budget
            let refused = try await growing.readResponse()
            #expect(refused.status == 503)
            #expect(await growing.waitForEOF())
            #expect(await eventually { server.bodyBudget.inUse == 0 })
        }
    }
}
