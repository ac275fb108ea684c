// SPDX-License-Identifier: Apache-2.0
import Glibc
@testable import HTTPServer
import Logging
import Primitives
import Synchronization
import Testing
@testable import VaultAPI
import VaultCore

/// The route table: matching (404, 405 and `Allow`, trailing slashes, encoded and dot segments
/// taken as text), the metrics labels, and placement failing safe.
@Suite struct RouteTableTests {
    typealias H = RouterTests.Harness

    static func get(_ target: String, method: HTTPMethod = .get) -> HTTPRequest {
        HTTPRequest(method: method, target: target, headers: HTTPHeaders(), body: [], remoteAddress: "")
    }

    @Test(arguments: [
        ("PUT", "/v1/sessions", "GET, POST, HEAD"),
        ("POST", "/v1/sessions/a", "GET, PATCH, DELETE, HEAD"),
        ("DELETE", "/v1/sessions/a/export", "GET, HEAD"),
        ("POST", "/v1/sessions/a/peers", "GET, PUT, HEAD"),
        ("PATCH", "/v1/tokens", "GET, POST, HEAD"),
        ("PUT", "/v1/tokens/abc", "GET, DELETE, HEAD"),
        ("GET", "/v1/sys/rotate", "POST"),
        ("HEAD", "/v1/sys/rewrap", "POST"),
        ("POST", "/healthz", "GET, HEAD"),
        ("DELETE", "/metrics", "GET, HEAD"),
    ])
    func wrongMethodIs405WithTheAllowOfItsPath(_ method: String, _ target: String, _ allow: String) throws {
        let h = try H()
        let r = h.call(try #require(HTTPMethod(rawValue: method)), target, token: nil)
        #expect(r.status.code == 405)
        #expect(r.headers["Allow"] == allow)
    }

    @Test(arguments: [
        "/", "//", "/v1", "/v1/", "/v2/sessions", "/v1/session", "/v1/sessionsx", "/v1/sessions/a/exports",
        "/v1/sessions/a/peers/1", "/v1/sys", "/v1/sys/nope", "/v1/sys/status/", "/healthz/", "/healthz/x", "/healthzz",
        "/v1/sessions/a/export/", "//v1/sessions", "/V1/sessions", "/v1/sessions/a/b/c/d/e/f/g/h", "healthz", "*",
    ])
    func unknownPathsAre404WithoutAToken(_ target: String) throws {
        let h = try H()
        #expect(h.call(.get, target, token: nil).status.code == 404, "\(target)")
        #expect(h.router.placement(of: Self.get(target)) == .inline, "a 404 touches no storage")
    }

    /// Segments are matched as bytes and never decoded: a trailing slash, an encoded slash or a
    /// dot segment is the text of `{name}`, which a session name refuses (400 naming `name`),
    /// before the token is looked at.
    @Test(arguments: ["/v1/sessions/", "/v1/sessions//export", "/v1/sessions/a%2Fb", "/v1/sessions/a%2Fb/export",
                      "/v1/sessions/../export", "/v1/sessions/./peers", "/v1/sessions/%2E%2E"])
    func oddNameSegmentsAre400NamingName(_ target: String) throws {
        let h = try H()
        let r = h.call(.get, target, token: nil)
        #expect(try r.status.code == 400 && RouterTests.body(r)["field"] == .string("name"), "\(target)")
    }

    /// The labels dashboards and tests read: every route's is its pattern, and these are all.
    @Test func metricsLabelsAreThePatterns() throws {
        let labels = Set(VaultRouter.routes.map(\.label))
        #expect(labels == [
            "/healthz", "/readyz", "/metrics", "/v1/sessions", "/v1/sessions/{name}", "/v1/sessions/{name}/export",
            "/v1/sessions/{name}/peers", "/v1/sessions/{name}/state", "/v1/tokens", "/v1/tokens/{accessor}", "/v1/audit",
            "/v1/sys/status", "/v1/sys/rotate", "/v1/sys/rewrap", "/v1/tokens/root/rotate",
            "/v1/sessions/{name}/lease",
        ])
        let h = try H()
        _ = h.call(.get, "/v1/sessions/x/export")
        _ = h.call(.get, "/v1/tokens/abc")
        _ = h.call(.put, "/v1/sessions/x/export")
        _ = h.call(.get, "/nope")
        let metrics = RouterTests.text(h.call(.get, "/metrics", token: nil))
        #expect(metrics.contains(#"route="/v1/sessions/{name}/export",method="GET",status="404""#))
        #expect(metrics.contains(#"route="/v1/tokens/{accessor}",method="GET",status="404""#))
        #expect(metrics.contains(#"route="/v1/sessions/{name}/export",method="PUT",status="405""#))
        #expect(metrics.contains(#"route="unmatched",method="GET",status="404""#))
        #expect(!metrics.contains("/x/") && !metrics.contains("abc"))
    }

    /// No two entries share a method and a pattern, and every pattern starts with `/`.
    @Test func theTableIsWellFormed() {
        var seen = Set<String>()
        for route in VaultRouter.routes {
            #expect(route.label.hasPrefix("/"))
            #expect(seen.insert("\(route.method.rawValue) \(route.label)").inserted, "\(route.label)")
            #expect(route.placement != nil, "every production route declares its placement: \(route.label)")
            if route.placement?.placement == .afterCommit { #expect(route.later != nil) }
        }
    }

    // MARK: Placement fails safe

    /// Extra routes as the binary's test routes are given: one with no placement, one on the
    /// loop, one declared after-commit without a later handler.
    static func extraRoutes(_ seen: ThreadLog) -> [Route] {
        [
            Route(.get, "/x/unplaced", placement: nil, access: .open) { _, c in
                seen.note(c.request.target)
                return HTTPResponse(text: "unplaced")
            },
            Route(.get, "/x/loop", placement: .loop, access: .open) { _, c in
                seen.note(c.request.target)
                return HTTPResponse(text: "loop")
            },
            Route(.post, "/x/later", placement: .afterCommit, access: .open, body: .any) { _, _ in HTTPResponse(text: "now") },
        ]
    }

    @Test func aRouteWithoutPlacementIsOffloaded() throws {
        let h = try H(try PlacementFile.location(), routes: Self.extraRoutes(ThreadLog()))
        #expect(h.router.placement(of: Self.get("/x/unplaced")) == .offloaded)
        #expect(h.router.placement(of: Self.get("/x/unplaced", method: .head)) == .offloaded)
        #expect(h.router.placement(of: Self.get("/x/loop")) == .inline)
        #expect(h.router.placement(of: Self.get("/x/later", method: .post)) == .offloaded, "after-commit needs a later handler")
        #expect(RouterTests.text(h.call(.post, "/x/later", token: nil)) == "now")
    }

    /// The same, through a real server on loopback: the route without placement runs on a
    /// handler-pool thread, the `.loop` one on the event-loop thread. (The `.loop` request goes
    /// first: a request pipelined after an offloaded one is read where that one's answer lands.)
    @Test func aRouteWithoutPlacementRunsOnAHandlerThread() async throws {
        let seen = ThreadLog()
        let h = try H(try PlacementFile.location(), routes: Self.extraRoutes(seen))
        var configuration = HTTPServerConfiguration()
        configuration.host = "127.0.0.1"
        configuration.port = 0
        configuration.logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        configuration.inlineHandlerLimit = 1_000  // no other suite's inline handlers can push /x/loop off the loop
        let server = HTTPServer(configuration: configuration, state: HTTPServerState(), handler: h.router)
        try server.start()
        let reply = try LoopbackClient.exchange(
            port: server.port, "GET /x/loop HTTP/1.1\r\nHost: x\r\n\r\nGET /x/unplaced HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await server.shutdown()
        #expect(reply.contains("unplaced") && reply.contains("loop"))
        #expect(seen["/x/unplaced"] == false)
        #expect(seen["/x/loop"] == true)
    }
}

/// Records, per target, whether the handler ran on an event-loop thread.
final class ThreadLog: Sendable {
    private let onLoop = Locked<[String: Bool]>([:])
    func note(_ target: String) { onLoop.withLock { $0[target] = EventLoop.isCurrentThreadALoop } }
    subscript(target: String) -> Bool? { onLoop.withLock { $0[target] } }
}

/// A blocking loopback client: sends `request`, reads until the server closes (5 s at most).
enum LoopbackClient {
    struct Failure: Error {}

    static func exchange(port: Int, _ request: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure() }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw Failure() }
        let bytes = Array(request.utf8)
        guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == bytes.count else { throw Failure() }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            reply.append(contentsOf: buffer[0..<n])
        }
        return String(decoding: reply, as: UTF8.self)
    }
}
