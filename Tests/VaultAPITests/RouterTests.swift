// SPDX-License-Identifier: Apache-2.0
import Foundation
import Logging
import Primitives
import Synchronization
import HTTPServer
import Testing
@testable import VaultAPI
import VaultCore

/// Router-level tests: requests go straight into `VaultRouter.handle` (no sockets), against a
/// real in-memory SQLite store and a real keyring.
@Suite struct RouterTests {
    static let root = "root-token-for-tests"

    struct Harness {
        let router: VaultRouter
        let vault: VaultService
        let store: SQLiteSessionStore
        let logs: LogCapture

        /// `location`: the memory engine by default; placement tests use a file (its reads do
        /// not share the writer's connection, so they may run on an event loop).
        init(_ location: StoreLocation = .memory, throttle: AuthThrottle = AuthThrottle(maxFailures: 3, windowSeconds: 60),
             routes: [Route] = []) throws {
            store = try SQLiteSessionStore(location)
            vault = try VaultService(store: store, master: try MasterKey.generate())
            _ = try vault.installRootToken(configured: RouterTests.root)
            logs = LogCapture()
            let capture = logs
            router = VaultRouter(
                vault: vault,
                info: ServiceInfo(engine: "memory", path: nil, fallbackReason: nil, synchronous: "full", version: "test", startedAt: 0),
                serverState: HTTPServerState(), log: Logger.vault(level: .debug, format: .json, sink: { capture.append($0) }),
                throttle: throttle, routes: routes)
        }

        func call(_ method: HTTPMethod, _ target: String, token: String? = RouterTests.root, json: String? = nil,
                  headers: [(String, String)] = [], body: [UInt8]? = nil, remote: String = "127.0.0.1") -> HTTPResponse {
            var h = HTTPHeaders()
            if let token { h.add(name: "Authorization", value: "Bearer \(token)") }
            if json != nil { h.add(name: "Content-Type", value: "application/json") }
            for (k, v) in headers { h.add(name: k, value: v) }
            return router.handle(HTTPRequest(method: method, target: target, headers: h,
                                             body: body ?? Array((json ?? "").utf8), remoteAddress: remote))
        }
    }

    static func body(_ r: HTTPResponse) throws -> JSONValue { try JSONParser.parse(r.body) }
    static func text(_ r: HTTPResponse) -> String { String(decoding: r.body, as: UTF8.self) }

    static let pyrogramString: String = {
        // dc 2, api_id 12345, user 42, not a bot, key bytes 1…255,0 — built with the codec itself.
        let key = (try? AuthKey((0..<256).map { UInt8(($0 + 1) & 0xFF) }))
        let s = TelegramSession(dcID: 2, apiID: 12345, testMode: false, authKey: key, userID: 42, isBot: false)
        return (try? SessionStringCodec.encode(s, as: .pyrogram)) ?? ""
    }()

    @Test func createReadExportRevoke() throws {
        let h = try Harness()
        let created = h.call(.post, "/v1/sessions", json: #"{"name":"bot","session_string":"\#(Self.pyrogramString)"}"#)
        #expect(created.status.code == 201)
        #expect(created.headers["Location"] == "/v1/sessions/bot")
        #expect(created.headers["ETag"] == "\"1\"")
        let meta = try Self.body(h.call(.get, "/v1/sessions/bot"))
        #expect(meta["user_id"] == .int(42) && meta["api_id"] == .int(12345) && meta["revoked"] == .bool(false))
        let exported = h.call(.get, "/v1/sessions/bot/export")
        #expect(exported.status.code == 200 && Self.text(exported) == Self.pyrogramString)
        #expect(exported.headers["Cache-Control"] == "no-store")
        let asJSON = h.call(.get, "/v1/sessions/bot/export?format=telethon", headers: [("Accept", "application/json")])
        #expect(try Self.body(asJSON)["format"] == .string("telethon"))
        let file = h.call(.get, "/v1/sessions/bot/export?format=pyrogram-file")
        #expect(file.headers["Content-Type"] == "application/vnd.sqlite3")
        #expect(try SessionFileReader.read(bytes: file.body).session.userID == 42)
        #expect(h.call(.delete, "/v1/sessions/bot").status.code == 204)
        #expect(h.call(.get, "/v1/sessions/bot/export").status.code == 410)
        #expect(h.call(.delete, "/v1/sessions/bot").status.code == 410)
        #expect(try Self.body(h.call(.get, "/v1/sessions/bot"))["revoked"] == .bool(true))
    }

    @Test func problemsNameTheField() throws {
        let h = try Harness()
        let cases: [(String, Int, String)] = [
            (#"{"name":"a","session_string":"xyz"}"#, 422, "session_string"),
            (#"{"name":"a b","session_string":"x"}"#, 422, "name"),
            (#"{"name":"a","dc_id":2}"#, 422, "auth_key"),
            (#"{"name":"a","dc_id":"2","auth_key":"AA=="}"#, 422, "dc_id"),
            (#"{"name":"a","dc_id":2,"auth_key":"AAAA"}"#, 422, "auth_key"),
            (#"{"name":"a","colour":1}"#, 422, "colour"),
            (#"{"session_string":"x"}"#, 422, "name"),
            (#"{"name":"a","#, 400, "body"),
            (#"[1]"#, 422, "body"),
        ]
        for (json, status, field) in cases {
            let r = h.call(.post, "/v1/sessions", json: json)
            #expect(r.status.code == status, "\(json)")
            #expect(r.headers["Content-Type"] == "application/problem+json")
            #expect(try Self.body(r)["field"] == .string(field), "\(json)")
        }
        let wrongType = h.call(.post, "/v1/sessions", headers: [("Content-Type", "text/plain")], body: Array("x".utf8))
        #expect(wrongType.status.code == 415)
        let big = h.call(.post, "/v1/sessions", json: String(repeating: " ", count: VaultRouter.maxJSONBodyBytes + 1))
        #expect(big.status.code == 413)
        #expect(try Self.body(h.call(.get, "/v1/sessions"))["items"] == .array([]))
    }

    @Test func authenticationScopesAndThrottle() throws {
        let h = try Harness()
        #expect(h.call(.post, "/v1/sessions", json: #"{"name":"a","session_string":"\#(Self.pyrogramString)"}"#).status.code == 201)
        let tokenReply = try Self.body(h.call(.post, "/v1/tokens", json: #"{"operations":["export"],"sessions":["a"]}"#))
        guard case .string(let scoped) = tokenReply["token"] else { Issue.record("no token"); return }
        #expect(h.call(.get, "/v1/sessions/a/export", token: scoped).status.code == 200)
        // Out of scope: the same 403 whether the session exists or not.
        let read = h.call(.get, "/v1/sessions/a", token: scoped)
        let missing = h.call(.get, "/v1/sessions/zzz/export", token: scoped)
        let other = h.call(.get, "/v1/sessions/b/export", token: scoped)
        #expect(read.status.code == 403 && missing.status.code == 403 && other.status.code == 403)
        #expect(missing.body == other.body)
        #expect(h.call(.get, "/v1/tokens", token: scoped).status.code == 403)
        #expect(h.call(.get, "/v1/sessions", token: nil).headers["WWW-Authenticate"] != nil)
        // Three failures from one address, then 429 for that address's failures only.
        for _ in 0..<3 { #expect(h.call(.get, "/v1/sessions", token: "nope", remote: "10.9.9.9").status.code == 401) }
        let throttled = h.call(.get, "/v1/sessions", token: "nope", remote: "10.9.9.9")
        #expect(throttled.status.code == 429 && throttled.headers["Retry-After"] != nil)
        #expect(h.call(.get, "/v1/sessions", token: "nope", remote: "10.9.9.8").status.code == 401)
        #expect(h.call(.get, "/v1/sessions", remote: "10.9.9.8").status.code == 200)
    }

    /// Issue 14 item 4: the server asks `responseBeforeBody` for every head that announces a
    /// body; a refusal there is a whole request's refusal (throttled and audited like one).
    @Test func preflightAuthenticatesAndAuthorizesFromTheHead() throws {
        let h = try Harness()
        func head(_ method: HTTPMethod, _ target: String, token: String?, type: String = "application/json",
                  length: Int = 100, remote: String = "127.0.0.1:4000") -> HTTPResponse? {
            var headers = HTTPHeaders()
            if let token { headers.add(name: "Authorization", value: "Bearer \(token)") }
            headers.add(name: "Content-Type", value: type)
            return h.router.responseBeforeBody(HTTPRequestHead(
                method: method, target: target, headers: headers, framing: .contentLength(length), remoteAddress: remote))
        }
        let sqlite = "application/vnd.sqlite3"
        #expect(head(.post, "/v1/sessions?name=a", token: Self.root, type: sqlite) == nil)
        #expect(head(.post, "/v1/sessions", token: Self.root, length: VaultRouter.maxJSONBodyBytes + 1)?.status.code == 413)

        // Failed tokens refused from the head count toward the throttle of their address (any
        // port); a valid token from there is never refused for them (issue 14 item 7).
        for _ in 0..<3 { #expect(head(.post, "/v1/sessions", token: "nope", remote: "10.8.8.8:1")?.status.code == 401) }
        #expect(head(.post, "/v1/sessions", token: "nope", remote: "10.8.8.8:2")?.status.code == 429)
        // A valid token is never throttled for its address's failures (issue 14 item 7).
        #expect(head(.post, "/v1/sessions", token: Self.root, remote: "10.8.8.8:3") == nil)
        #expect(head(.post, "/v1/sessions", token: nil, remote: "10.8.8.7:1")?.status.code == 401)

        // A token may be refused writing from the head: by the query name, the path, or at all.
        let reply = try Self.body(h.call(.post, "/v1/tokens", json: #"{"operations":["write"],"prefixes":["app-"]}"#))
        let readReply = try Self.body(h.call(.post, "/v1/tokens", json: #"{"operations":["read"],"prefixes":["app-"]}"#))
        guard case .string(let writer) = reply["token"], case .string(let reader) = readReply["token"] else {
            Issue.record("no token")
            return
        }
        #expect(head(.post, "/v1/sessions?name=app-1", token: writer, type: sqlite) == nil)
        #expect(head(.post, "/v1/sessions?name=other", token: writer, type: sqlite)?.status.code == 403)
        #expect(head(.post, "/v1/sessions", token: writer) == nil)  // the name is in the body
        #expect(head(.post, "/v1/sessions", token: reader)?.status.code == 403)
        #expect(head(.patch, "/v1/sessions/other", token: writer)?.status.code == 403)
        #expect(head(.put, "/v1/sessions/app-1/peers", token: writer) == nil)
        #expect(head(.put, "/v1/sessions/app-1/peers", token: reader)?.status.code == 403)
    }

    @Test func patchHonoursIfMatch() throws {
        let h = try Harness()
        _ = h.call(.post, "/v1/sessions", json: #"{"name":"a","session_string":"\#(Self.pyrogramString)"}"#)
        #expect(h.call(.patch, "/v1/sessions/a", json: #"{"api_id":7}"#, headers: [("If-Match", "\"9\"")]).status.code == 412)
        let ok = h.call(.patch, "/v1/sessions/a", json: #"{"api_id":7}"#, headers: [("If-Match", "\"1\"")])
        #expect(ok.status.code == 200 && ok.headers["ETag"] == "\"2\"")
        #expect(h.call(.patch, "/v1/sessions/a", json: #"{"api_id":null}"#).status.code == 422)
        #expect(h.call(.patch, "/v1/sessions/a", json: #"{}"#).status.code == 422)
        #expect(h.call(.put, "/v1/sessions/a").status.code == 405)
        #expect(h.call(.put, "/v1/sessions/a").headers["Allow"] == "GET, PATCH, DELETE, HEAD")
    }

    @Test func secretsNeverReachLogsMetricsOrErrors() throws {
        let h = try Harness()
        var bodies: [[UInt8]] = []
        bodies.append(h.call(.post, "/v1/sessions", json: #"{"name":"a","session_string":"\#(Self.pyrogramString)"}"#).body)
        bodies.append(h.call(.post, "/v1/sessions", json: #"{"name":"a","session_string":"\#(Self.pyrogramString)"}"#).body)
        bodies.append(h.call(.post, "/v1/sessions", json: #"{"name":"b","session_string":"\#(Self.pyrogramString.dropLast())"}"#).body)
        bodies.append(h.call(.get, "/v1/sessions", token: Self.root + "x").body)
        bodies.append(h.call(.get, "/metrics", token: nil).body)
        bodies.append(h.call(.get, "/v1/audit").body)
        let haystack = bodies.map { String(decoding: $0, as: UTF8.self) }.joined() + h.logs.text
        #expect(!haystack.contains(Self.pyrogramString.prefix(40)))
        #expect(!haystack.contains(Self.root))
        #expect(!haystack.contains("0102030405060708090a0b0c"))
        #expect(haystack.contains("sv_http_requests_total"))
    }

    @Test func healthReadinessMetrics() throws {
        let h = try Harness()
        #expect(Self.text(h.call(.get, "/healthz", token: nil)) == "ok")
        #expect(try Self.body(h.call(.get, "/readyz", token: nil))["ready"] == .bool(true))
        _ = h.call(.get, "/v1/sessions/x")
        let metrics = Self.text(h.call(.get, "/metrics", token: nil))
        #expect(metrics.contains(#"route="/v1/sessions/{name}""#))
        #expect(!metrics.contains("/v1/sessions/x\""))
        #expect(h.call(.get, "/nope", token: nil).status.code == 404)
    }
}

final class LogCapture: Sendable {
    private let captured = Locked<[String]>([])
    func append(_ s: String) { captured.withLock { $0.append(s) } }
    var lines: [String] { captured.withLock { $0 } }
    var text: String { lines.joined() }
}

/// Which requests the router sends to the server's bounded handler pool instead of running
/// them inline on the event loop (``VaultRouter/placement(of:)``, from the route table).
@Suite struct RouterPlacementTests {
    @Test func writesAndLongListingsMayBlockSingleReadsDoNot() throws {
        let h = try RouterTests.Harness(try PlacementFile.location())
        func placement(_ method: HTTPMethod, _ target: String, type: String? = nil) -> HTTPPlacement {
            var headers = HTTPHeaders()
            if let type { headers.add(name: "Content-Type", value: type) }
            return h.router.placement(of: HTTPRequest(method: method, target: target, headers: headers, body: [], remoteAddress: ""))
        }
        func blocks(_ method: HTTPMethod, _ target: String) -> Bool { placement(method, target) == .offloaded }
        for method in [HTTPMethod.patch, .delete] {
            #expect(blocks(method, "/v1/sessions/a"), "\(method) waits for its commit")
        }
        // No route: the 405 comes from the table alone, with no storage, on the loop.
        #expect(placement(.post, "/v1/sessions/a") == .inline)
        #expect(placement(.put, "/v1/sessions/a") == .inline)
        // A JSON create is answered after its commit; a `.session` upload parses on a handler thread.
        #expect(placement(.post, "/v1/sessions", type: "application/json") == .deferred)
        #expect(placement(.post, "/v1/sessions", type: "Application/VND.sqlite3; x=1") == .offloaded)
        #expect(blocks(.put, "/v1/sessions/a/peers"))
        #expect(blocks(.post, "/v1/tokens"))
        #expect(blocks(.delete, "/v1/tokens/abc"))
        #expect(blocks(.post, "/v1/sys/rotate"))
        #expect(blocks(.post, "/v1/sys/rewrap"))
        #expect(blocks(.get, "/v1/sessions"))
        #expect(blocks(.get, "/v1/sessions?limit=1000"))
        #expect(blocks(.get, "/v1/sessions/a/peers"))
        #expect(blocks(.get, "/v1/audit"))
        #expect(blocks(.get, "/v1/tokens"))
        #expect(!blocks(.get, "/healthz"))
        #expect(blocks(.get, "/metrics"), "counts whole tables")
        #expect(blocks(.get, "/readyz"), "counts whole tables")
        #expect(blocks(.get, "/v1/sys/status"), "lists tokens")
        #expect(!blocks(.get, "/v1/sessions/a"))
        #expect(!blocks(.get, "/v1/sessions/a/export"))
        #expect(!blocks(.get, "/v1/sessions/a/export?format=telethon"))
        #expect(!blocks(.head, "/healthz"))
        // Exact paths and suffixes, compared as bytes: near misses are single reads (or 404s).
        #expect(!blocks(.get, "/v1/sessions/peers-x"))
        #expect(!blocks(.get, "/v1/sessions/a/peersx"))
        #expect(!blocks(.get, "/metricsx"))
        #expect(!blocks(.get, "/v1/session"))
        #expect(blocks(.get, "/v1/sessions/a/export?format=pyrogram-file"), "builds a .session file")
    }

    /// The memory engine's reads share the writer's connection and wait for its batch: every
    /// read is flagged there, `/healthz` (no storage) is not.
    @Test func memoryEngineReadsMayBlock() throws {
        let h = try RouterTests.Harness(.memory)
        func blocks(_ target: String) -> Bool {
            h.router.placement(of: HTTPRequest(method: .get, target: target, headers: HTTPHeaders(), body: [], remoteAddress: "")) == .offloaded
        }
        #expect(h.store.mayWaitNow)
        #expect(blocks("/v1/sessions/a/export"))
        #expect(blocks("/v1/sessions/a"))
        #expect(!blocks("/healthz"))
    }
}

/// A fresh database file per test, in the system temporary directory.
enum PlacementFile {
    static func location() throws -> StoreLocation {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sv-placement-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return .file(dir.appendingPathComponent("vault.sqlite3").path)
    }
}

/// `VaultRouter.pathSegments` cuts at byte offsets of the base string: it must agree with the
/// standard library's split on every path, including paths that are a slice of a longer target.
@Suite struct RouterPathSegmentTests {
    static let paths = [
        "", "/", "//", "///", "/healthz", "/v1/sessions", "/v1/sessions/", "/v1/sessions/a/export",
        "/v1/sessions/a//export", "v1/sessions", "/v1/sys/status/", "/é/ü/x", "/a%2Fb/c", "/v1/sessions/" + String(repeating: "n", count: 300),
    ]

    @Test(arguments: paths)
    func agreesWithSplitOnWholeStrings(_ path: String) {
        let expected = path.split(separator: "/", omittingEmptySubsequences: false)
        #expect(VaultRouter.pathSegments(path[...]) == expected)
    }

    @Test(arguments: paths)
    func agreesWithSplitOnSlicesOfALongerTarget(_ path: String) {
        // As `HTTPRequest.path` is: the part of the target before `?`, here also after a prefix.
        let target = "xx/y" + path + "?q=/a/b"
        let start = target.utf8.index(target.startIndex, offsetBy: 4)
        let end = target.utf8.index(start, offsetBy: path.utf8.count)
        let slice = target[start..<end]
        #expect(String(slice) == path)
        let segments = VaultRouter.pathSegments(slice)
        #expect(segments == path.split(separator: "/", omittingEmptySubsequences: false))
        // Every segment lies inside the slice.
        for segment in segments {
            #expect(segment.startIndex >= slice.startIndex && segment.endIndex <= slice.endIndex)
        }
    }
}

/// Issue 14 (API hardening), the router side.
@Suite struct HardeningRouterTests {
    typealias H = RouterTests.Harness

    static func create(_ h: H, _ name: String) -> Int {
        h.call(.post, "/v1/sessions", json: #"{"name":"\#(name)","session_string":"\#(RouterTests.pyrogramString)"}"#).status.code
    }

    // MARK: Item 9: names made only of dots

    @Test(arguments: [".", "..", "..."])
    func item9DotNamesAreRefusedWhereverANameIsAccepted(_ name: String) throws {
        let h = try H()
        let created = h.call(.post, "/v1/sessions", json: #"{"name":"\#(name)","session_string":"\#(RouterTests.pyrogramString)"}"#)
        #expect(try created.status.code == 422 && RouterTests.body(created)["field"] == .string("name"))
        let upload = h.call(.post, "/v1/sessions?name=\(name)", headers: [("Content-Type", "application/vnd.sqlite3")], body: [1, 2, 3])
        #expect(try upload.status.code == 422 && RouterTests.body(upload)["field"] == .string("name"))
        for path in ["/v1/sessions/\(name)", "/v1/sessions/\(name)/export", "/v1/sessions/\(name)/peers"] {
            let r = h.call(.get, path)
            #expect(try r.status.code == 400 && RouterTests.body(r)["field"] == .string("name"), "\(path)")
        }
        #expect(h.call(.delete, "/v1/sessions/\(name)").status.code == 400)
        let token = h.call(.post, "/v1/tokens", json: #"{"operations":["read"],"sessions":["\#(name)"]}"#)
        #expect(try token.status.code == 422 && RouterTests.body(token)["field"] == .string("sessions"))
        #expect(try RouterTests.body(h.call(.get, "/v1/sessions"))["items"] == .array([]))
        #expect(Self.create(h, "a\(name)") == 201)
    }

    // MARK: Item 2: listing within a token's scope

    @Test func item2ScopedListingNamesNothingOutsideTheScope() throws {
        let h = try H()
        let hidden = ["alice", "bob", "carol-ceo-account", "myb", "mybot2", "team", "team_2"]
        let visible = ["mybot", "team-1", "team-2"]
        for n in hidden + visible { #expect(Self.create(h, n) == 201) }
        let reply = try RouterTests.body(h.call(.post, "/v1/tokens", json: #"{"operations":["read"],"sessions":["mybot"],"prefixes":["team-"]}"#))
        guard case .string(let token) = reply["token"] else { Issue.record("no token"); return }
        var names: [String] = []
        var after: String?
        for _ in 0..<10 {
            let r = h.call(.get, "/v1/sessions?limit=1" + (after.map { "&after=\($0)" } ?? ""), token: token)
            #expect(r.status.code == 200)
            let text = RouterTests.text(r)
            for n in hidden { #expect(!text.contains("\"\(n)\""), "\(n) in \(text)") }
            let page = try RouterTests.body(r)
            if case .array(let items) = page["items"] {
                for item in items { if case .string(let n) = item["name"] { names.append(n) } }
            }
            guard case .string(let next) = page["next_after"] else { after = nil; break }
            #expect(visible.contains(next))
            after = next
        }
        #expect(after == nil && names == visible)
        // Root still sees everything.
        if case .array(let items) = try RouterTests.body(h.call(.get, "/v1/sessions?limit=1000"))["items"] {
            #expect(items.count == hidden.count + visible.count)
        } else {
            Issue.record("no items")
        }
    }

    // MARK: Item 7: the throttle refuses failures only, on the monotonic clock

    @Test func item7ValidTokensAreNeverThrottled() throws {
        let h = try H()
        #expect(Self.create(h, "x") == 201)
        let reply = try RouterTests.body(h.call(.post, "/v1/tokens", json: #"{"operations":["read"],"sessions":["x"]}"#))
        guard case .string(let scoped) = reply["token"] else { Issue.record("no token"); return }
        let attacker = "10.1.2.3"
        var statuses: [Int] = []
        for _ in 0..<200 { statuses.append(Int(h.call(.get, "/v1/sessions", token: "svt_bad", remote: attacker).status.code)) }
        #expect(statuses.prefix(3).allSatisfy { $0 == 401 } && statuses.dropFirst(3).allSatisfy { $0 == 429 })
        for _ in 0..<20 {
            #expect(h.call(.get, "/v1/sessions/x", remote: attacker).status.code == 200)
            #expect(h.call(.get, "/v1/sessions/x", token: scoped, remote: attacker).status.code == 200)
            // A bad token, or none, from that address is still refused with 429.
            let bad = h.call(.get, "/v1/sessions/x", token: "svt_bad", remote: attacker)
            #expect(bad.status.code == 429 && bad.headers["Retry-After"].flatMap { Int($0) }.map { (1...60).contains($0) } == true)
            #expect(h.call(.get, "/v1/sessions/x", token: nil, remote: attacker).status.code == 429)
        }
    }

    @Test func item7ThrottleWindowsRunOnItsMonotonicClock() throws {
        let now = Atomic<UInt64>(5_000_000_000_000)
        let throttle = AuthThrottle(maxFailures: 3, windowSeconds: 60, clock: { now.load(ordering: .relaxed) })
        let h = try H(throttle: throttle)
        for _ in 0..<3 { #expect(h.call(.get, "/v1/sessions", token: "svt_bad", remote: "10.0.0.7").status.code == 401) }
        let first = h.call(.get, "/v1/sessions", token: "svt_bad", remote: "10.0.0.7")
        #expect(first.status.code == 429 && first.headers["Retry-After"] == "60")
        now.add(59_500_000_000, ordering: .relaxed)
        #expect(h.call(.get, "/v1/sessions", token: "svt_bad", remote: "10.0.0.7").headers["Retry-After"] == "1")
        // The window ends when the monotonic clock says so, whatever the wall clock does.
        now.add(1_000_000_000, ordering: .relaxed)
        #expect(h.call(.get, "/v1/sessions", token: "svt_bad", remote: "10.0.0.7").status.code == 401)
    }

    @Test func item7ThrottleMemoryIsBounded() {
        let s: UInt64 = 1_000_000_000
        let t = AuthThrottle(maxFailures: 10, windowSeconds: 60, capacity: 1000)
        for i in 0..<3500 { _ = t.failure(from: "10.0.\(i / 256).\(i % 256)", now: 100 * s + UInt64(i)) }
        #expect(t.trackedAddresses == 1000 && t.queuedWindows <= 2000)
        // The newest windows are the ones kept: the last address is still counted.
        for _ in 0..<9 { _ = t.failure(from: "10.0.13.171", now: 101 * s) }
        #expect(t.failure(from: "10.0.13.171", now: 101 * s) != nil)
        // Once every window has ended, the next failure finds an empty queue.
        _ = t.failure(from: "10.9.9.9", now: 1000 * s)
        #expect(t.trackedAddresses == 1 && t.queuedWindows <= 65)
    }

    @Test func item7AuditRetentionSetting() throws {
        typealias C = ServiceConfiguration
        #expect(try C.resolve(environment: [:], flags: .init()).auditRetentionDays == 90)
        #expect(try C.resolve(environment: ["SESSION_VAULT_AUDIT_RETENTION_DAYS": "0"], flags: .init()).auditRetentionDays == 0)
        var flags = C.Flags()
        flags.auditRetentionDays = "7"
        #expect(try C.resolve(environment: ["SESSION_VAULT_AUDIT_RETENTION_DAYS": "30"], flags: flags).auditRetentionDays == 7)
        for bad in ["-1", "ten", "36501", "1.5"] {
            #expect(throws: C.Error.self) { try C.resolve(environment: ["SESSION_VAULT_AUDIT_RETENTION_DAYS": bad], flags: .init()) }
        }
    }
}
