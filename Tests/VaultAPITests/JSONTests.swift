// SPDX-License-Identifier: Apache-2.0
import Logging
import Testing
import HTTPServer
@testable import VaultAPI

@Suite struct JSONTests {
    private func parse(_ s: String) throws -> JSONValue { try JSONParser.parse(Array(s.utf8)) }

    @Test func exactInt64Extremes() throws {
        #expect(try parse("9223372036854775807") == .int(Int64.max))
        #expect(try parse("-9223372036854775808") == .int(Int64.min))
        // 2^53 + 1 would be lost through Double.
        #expect(try parse("9007199254740993") == .int(9_007_199_254_740_993))
        #expect(try parse("9223372036854775808") == .number("9223372036854775808"))
        #expect(try parse("1.5") == .number("1.5"))
        #expect(try parse("1e3") == .number("1e3"))
    }

    @Test(arguments: [
        "", "{", "{\"a\":1,}", "[1,]", "01", "-", "1.", "1e", "tru", "nul", "\"abc", "{\"a\" 1}",
        "{\"a\":1}x", "{\"a\":1,\"a\":2}", "\"\\x\"", "\"\\ud800\"", "\"\u{01}\"", "[1 2]", "{1:2}", "+1",
        "NaN", "Infinity", "// c\n1",
    ])
    func rejectsMalformed(_ text: String) {
        #expect(throws: JSONParseError.self) { try parse(text) }
    }

    @Test func rejectsInvalidUTF8AndDeepNesting() {
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xFF, 0x22]) }
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: JSONParseError.self) { try parse(deep) }
    }

    @Test func stringsAndEscapesRoundTrip() throws {
        let v = try parse(#"{"s":"a\"b\\c\n\u00e9\ud83d\ude00\u0001","n":null,"b":[true,false]}"#)
        #expect(v["s"] == .string("a\"b\\c\né😀\u{01}"))
        let again = try JSONParser.parse(JSONWriter.encode(v))
        #expect(again == v)
    }

    @Test func objectReaderNamesFields() throws {
        let body = try parse(#"{"name":"x","api_id":"12","extra":1}"#)
        #expect(throws: Problem.self) { try JSONObjectReader(body, allowed: ["name", "api_id"]) }
        do {
            _ = try JSONObjectReader(body, allowed: ["name", "api_id"])
        } catch {
            #expect(error.field == "extra")
            #expect(error.status == 422)
        }
        let r = try JSONObjectReader(body, allowed: ["name", "api_id", "extra"])
        do {
            _ = try r.int("api_id", in: 1...10)
            Issue.record("expected a type error")
        } catch {
            #expect(error.field == "api_id")
            #expect(error.detail.contains("integer"))
        }
        #expect(throws: Problem.self) { try r.int("extra", in: 2...10) }
        #expect(try r.string("name") == "x")
        do {
            _ = try r.required("missing", r.string)
            Issue.record("expected missing")
        } catch {
            #expect(error.missingFields == ["missing"])
        }
    }

    @Test func problemBodyIsJSON() throws {
        let p = Problem.invalid("api_id", "must be an integer")
        let v = try JSONParser.parse(p.body)
        #expect(v["status"] == .int(422))
        #expect(v["field"] == .string("api_id"))
    }
}

@Suite struct TimestampTests {
    @Test func knownDates() {
        #expect(Timestamp.rfc3339(seconds: 0) == "1970-01-01T00:00:00Z")
        #expect(Timestamp.rfc3339(seconds: 1_700_000_000) == "2023-11-14T22:13:20Z")
        #expect(Timestamp.rfc3339(seconds: 951_782_400) == "2000-02-29T00:00:00Z")
        #expect(Timestamp.rfc3339(milliseconds: 1_700_000_000_123) == "2023-11-14T22:13:20.123Z")
        #expect(Timestamp.rfc3339(seconds: 4_102_444_799) == "2099-12-31T23:59:59Z")
        #expect(Timestamp.rfc3339(milliseconds: 7) == "1970-01-01T00:00:00.007Z")
        #expect(Timestamp.rfc3339(milliseconds: -1) == "1969-12-31T23:59:59.999Z")
        #expect(Timestamp.rfc3339(seconds: 253_402_300_799) == "9999-12-31T23:59:59Z")
        // Beyond four-digit years the general form still answers.
        #expect(Timestamp.rfc3339(seconds: 253_402_300_800) == "10000-01-01T00:00:00Z")
    }
}

/// The text log format, built as bytes: escaping and quoting that keep one event on one line.
@Suite struct LogTextTests {
    @Test func linesAreEscapedAndQuoted() {
        let lines = LogCapture()
        let log = Logger.vault(level: .info, format: .text, sink: { line in lines.append(line) })
        log.info("session\ncreated", metadata: ["name": "a b", "q": "say \"hi\"", "eq": "k=v", "empty": "",
                                                "plain": "s-1.x", "ctl": "a\u{1}b\tc\u{7F}", "uni": "zürich"])
        log.debug("not written")
        let written = lines.lines
        #expect(written.count == 1)
        let line = written.first ?? ""
        // `YYYY-MM-DDTHH:MM:SS.mmmZ info ` then the escaped message and fields.
        #expect(line.utf8.count > 25 && line.dropFirst(24).hasPrefix(" info session\\ncreated "))
        #expect(line.hasSuffix(
            #" ctl=a?b\tc? empty="" eq="k=v" name="a b" plain=s-1.x q="say \"hi\"" uni=zürich"# + "\n"))
        #expect(line.filter { $0 == "\n" }.count == 1)
    }
}

@Suite struct MetricsTests {
    @Test func rendersCountersHistogramsAndGauges() {
        let m = Metrics()
        m.observe(route: "/v1/sessions/{name}", method: "GET", status: 200, seconds: 0.0003)
        m.observe(route: "/v1/sessions/{name}", method: "GET", status: 200, seconds: 0.2)
        m.increment("sv_auth_failures_total")
        let text = m.render(gauges: [(name: "sv_sessions", help: "Sessions.", labels: "", value: 3)])
        #expect(text.contains(#"sv_http_requests_total{route="/v1/sessions/{name}",method="GET",status="200"} 2"#))
        #expect(text.contains(#"sv_http_request_duration_seconds_bucket{route="/v1/sessions/{name}",le="0.0005"} 1"#))
        #expect(text.contains(#"sv_http_request_duration_seconds_bucket{route="/v1/sessions/{name}",le="+Inf"} 2"#))
        #expect(text.contains("sv_auth_failures_total 1"))
        #expect(text.contains("sv_sessions 3"))
    }

    @Test func throttleBlocksAfterFailuresAndExpires() {
        let t = AuthThrottle(maxFailures: 3, windowSeconds: 60, capacity: 2)
        let s: UInt64 = 1_000_000_000
        for _ in 0..<3 { #expect(t.failure(from: "10.0.0.1", now: 100 * s) == nil) }
        #expect(t.retryAfter("10.0.0.1", now: 110 * s) == 50)
        #expect(t.failure(from: "10.0.0.1", now: 110 * s) == 50)
        #expect(t.retryAfter("10.0.0.2", now: 110 * s) == nil)
        #expect(t.retryAfter("10.0.0.1", now: 160 * s) == nil)
        #expect(t.failure(from: "10.0.0.1", now: 160 * s) == nil)
        // Capacity is bounded: a flood of addresses never grows the map past 2.
        for i in 0..<100 { _ = t.failure(from: "a\(i)", now: 200 * s) }
        #expect(t.retryAfter("a99", now: 200 * s) == nil)
        #expect(t.trackedAddresses <= 2)
    }
}

@Suite struct ConfigurationTests {
    typealias C = ServiceConfiguration

    @Test func zeroConfigurationDefault() throws {
        let c = try C.resolve(environment: [:], flags: .init())
        #expect(c.host == "127.0.0.1" && c.port == 8080)
        #expect(c.storage == .file("data/vault.db"))
        #expect(c.masterKey == .generatedFile("data/master.key"))
        #expect(c.rootToken == .storedOrGenerated)
        #expect(c.synchronousFull)
    }

    @Test func environmentThenFlags() throws {
        let env = ["SESSION_VAULT_LISTEN": "0.0.0.0:9000", "SESSION_VAULT_STORAGE": "memory",
                   "SESSION_VAULT_MASTER_KEY": "k", "SESSION_VAULT_ROOT_TOKEN": "t", "PORT": "1234"]
        let c = try C.resolve(environment: env, flags: .init())
        #expect(c.host == "0.0.0.0" && c.port == 9000)
        #expect(c.storage == .memory)
        #expect(c.masterKey == .environment("k"))
        #expect(c.rootToken == .environment("t"))
        var flags = C.Flags()
        flags.listen = "[::1]:7000"
        flags.storage = "file:/tmp/x.db"
        let d = try C.resolve(environment: env, flags: flags)
        #expect(d.host == "::1" && d.port == 7000)
        #expect(d.storage == .file("/tmp/x.db"))
    }

    @Test func portConventionAndDev() throws {
        let c = try C.resolve(environment: ["PORT": "5000"], flags: .init())
        #expect(c.host == "0.0.0.0" && c.port == 5000)
        var flags = C.Flags()
        flags.dev = true
        let d = try C.resolve(environment: ["SESSION_VAULT_STORAGE": "file:/x"], flags: flags)
        #expect(d.storage == .memory && d.masterKey == .ephemeral)
    }

    @Test(arguments: [
        ["SESSION_VAULT_LISTEN": "nope"], ["SESSION_VAULT_LISTEN": "1.2.3.4:99999"], ["PORT": "+80"],
        ["SESSION_VAULT_STORAGE": "disk"], ["SESSION_VAULT_LOG_FORMAT": "xml"], ["SESSION_VAULT_DEV": "maybe"],
        ["SESSION_VAULT_SYNCHRONOUS": "off"], ["SESSION_VAULT_MAX_BODY_BYTES": "-1"],
    ])
    func badValuesNameTheVariable(_ env: [String: String]) {
        do {
            _ = try C.resolve(environment: env, flags: .init())
            Issue.record("expected an error for \(env)")
        } catch {
            let name = env.keys.first ?? ""
            #expect(error.message.contains(name))
        }
    }
}

/// The byte-level helpers of the router: media type and client host from request fields.
@Suite struct RequestFieldTests {
    static func request(contentType: String?) -> HTTPRequest {
        var headers = HTTPHeaders()
        if let contentType { headers.add(name: "Content-Type", value: contentType) }
        return HTTPRequest(method: .post, target: "/", headers: headers, body: [])
    }

    @Test(arguments: [
        ("application/json", "application/json"), ("Application/JSON; charset=utf-8", "application/json"),
        (" \tapplication/vnd.sqlite3 \t;x=1", "application/vnd.sqlite3"), ("", ""), (";", ""), ("   ", ""),
        ("text/plain;", "text/plain"), ("é/ü", "é/ü"),
    ])
    func mediaTypeIsTheLowercasedTrimmedPartBeforeParameters(_ header: String, _ expected: String) {
        #expect(VaultRouter.mediaType(Self.request(contentType: header)) == expected)
    }

    @Test func noContentTypeHasNoMediaType() {
        #expect(VaultRouter.mediaType(Self.request(contentType: nil)) == nil)
    }

    @Test(arguments: [
        ("127.0.0.1:5000", "127.0.0.1"), ("[::1]:443", "::1"), ("[fe80::1%eth0]:1", "fe80::1%eth0"), ("::1", "::1"),
        ("host", "host"), ("", ""), ("[unclosed", "[unclosed"),
    ])
    func clientHostDropsThePort(_ remote: String, _ expected: String) {
        #expect(VaultRouter.clientHost(remote) == expected)
    }

    @Test(arguments: [
        ("Bearer abc", "abc"), ("bearer abc", "abc"), ("BEARER x.y-z~", "x.y-z~"), ("bEaReR t", "t"),
        ("Bearer", nil), ("Bearer ", nil), ("Bearer  abc", nil), ("Bearer a b", nil), ("Bearer\tabc", nil),
        ("Basic abcdef", nil), ("Bearerabc", nil), ("Bearér abc", nil), ("Bearer abc\u{7F}", nil),
        ("Bearer tøken", nil), ("Bearar abc", nil), ("Bbarer abc", nil), ("", nil),
    ] as [(String, String?)])
    func bearerTokenIsTheCaseInsensitiveSchemeAndOneVisibleToken(_ header: String, _ expected: String?) {
        #expect(VaultRouter.bearerToken(header) == expected)
    }

    @Test func placementRecognisesListingsAndPeersByBytes() throws {
        func get(_ target: String) -> HTTPRequest { HTTPRequest(method: .get, target: target, headers: HTTPHeaders(), body: [], remoteAddress: "") }
        let h = try RouterTests.Harness(try PlacementFile.location())
        #expect(h.router.placement(of: get("/v1/sessions/a/peers")) == .offloaded)
        #expect(h.router.placement(of: get("/v1/sessions/a/peers?limit=5")) == .offloaded)
        #expect(h.router.placement(of: get("/v1/sessions/peers-a")) != .offloaded)
        #expect(h.router.placement(of: get("/v1/sessions/a/export")) != .offloaded)
        #expect(h.router.placement(of: get("/peer")) != .offloaded)
        #expect(h.router.placement(of: get("/v1/sessions/a/export?format=telethon")) != .offloaded)
        #expect(h.router.placement(of: get("/v1/sessions/a/export?format=pyrogram")) != .offloaded)
        #expect(h.router.placement(of: get("/v1/sessions/a/export?format=pyrogram-file")) == .offloaded)
        #expect(h.router.placement(of: get("/v1/sessions/a/export?format=telethon%2Dfile")) == .offloaded)
        #expect(h.router.placement(of: get("/v1/sessions/a/export?format=kurigram-file&x=1")) == .offloaded)
    }

    @Test func parseErrorsPointPastTheBadString() throws {
        do {
            _ = try JSONParser.parse([0x5B, 0x22, 0x61, 0xFF, 0x22, 0x5D])  // ["a\xFF"]
            Issue.record("expected an error")
        } catch {
            #expect(error.offset == 5)
        }
        // A string with an escape after a plain prefix, and a plain one after it.
        #expect(try JSONParser.parse(Array(#"["abc\tdef","xyz"]"#.utf8)) == .array([.string("abc\tdef"), .string("xyz")]))
    }
}

/// The router's byte-wise path split agrees with the standard library's.
@Suite struct PathSegmentTests {
    @Test(arguments: ["", "/", "//", "/v1/sessions", "/v1/sessions/", "/v1/sessions/a/export", "a/b", "/é/ü/", "/%2F/x"])
    func matchesStandardSplit(_ path: String) {
        let expected = path.split(separator: "/", omittingEmptySubsequences: false)
        #expect(VaultRouter.pathSegments(path[...]) == expected)
    }
}
