// SPDX-License-Identifier: Apache-2.0
import HTTPServer
import Testing

/// Pure parser tests on bytes, grouped by the section of docs/http.md they prove ("Item N" is §N).
@Suite("HTTPRequestParser")
struct HTTPRequestParserTests {
    static let small = HTTPServerConfiguration(maxBodyBytes: 16)

    // MARK: - Well-formed requests

    @Test func parsesSimpleGet() throws {
        let parsed = try #require(onlyRequest("GET /a/b?x=1&y=%20z HTTP/1.1\r\nHost: example.com\r\nX-Test:  value \t\r\n\r\n"))
        #expect(parsed.head.method == .get)
        #expect(parsed.head.target == "/a/b?x=1&y=%20z")
        #expect(parsed.head.version == .http1_1)
        #expect(parsed.head.headers["x-test"] == "value")  // OWS trimmed, lookup case-insensitive
        #expect(parsed.head.headers["HOST"] == "example.com")
        #expect(parsed.head.keepAlive)
        #expect(parsed.head.framing == .none)
        #expect(parsed.body.isEmpty)
    }

    @Test func parsesContentLengthBody() throws {
        let parsed = try #require(onlyRequest("POST /s HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"))
        #expect(parsed.head.framing == .contentLength(5))
        #expect(parsed.body == [UInt8]("hello"))
    }

    @Test func preservesHeaderOrderAndDuplicates() throws {
        let parsed = try #require(onlyRequest("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nb: 2\r\na: 3\r\n\r\n"))
        #expect(parsed.head.headers.map(\.name) == ["Host", "A", "b", "a"])
        #expect(parsed.head.headers.values(for: "a") == ["1", "3"])
    }

    @Test func skipsEmptyLinesBeforeRequestLine() throws {
        // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line.
        #expect(onlyRequest("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n") != nil)
    }

    @Test func acceptsAllImplementedMethodsAndAsteriskForm() {
        for method in HTTPMethod.allCases {
            #expect(onlyRequest("\(method.rawValue) /x HTTP/1.1\r\nHost: h\r\n\r\n")?.head.method == method)
        }
        #expect(onlyRequest("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")?.head.target == "*")
    }

    @Test func http10WithoutHostIsAccepted() {
        #expect(onlyRequest("GET / HTTP/1.0\r\n\r\n")?.head.version == .http1_0)
    }

    // MARK: - Item 1: request line and version

    @Test(arguments: [
        ("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
        ("GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505),
        ("GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505),
        ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
        ("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        ("GET /  HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        (" GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        ("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        ("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400),
        ("GET / http/1.1\r\nHost: h\r\n\r\n", 400),
        ("GET / HTTP/1\r\nHost: h\r\n\r\n", 400),
        ("GET / HTTP/1.10\r\nHost: h\r\n\r\n", 400),
        ("GET /\r\n\r\n", 400),
        ("GET http://example.com/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        ("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        ("GET /a\u{7F}b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        ("GET /a\u{0}b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        ("G@T / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        ("FOO / HTTP/1.1\r\nHost: h\r\n\r\n", 501),
        ("get / HTTP/1.1\r\nHost: h\r\n\r\n", 501),
        ("CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n", 501),
        ("TRACE / HTTP/1.1\r\nHost: h\r\n\r\n", 501),
    ])
    func requestLineStatus(request: String, status: Int) {
        #expect(statusFor(request) == status, "\(request.debugDescription)")
    }

    @Test func nonASCIITargetByteIsRejected() {
        var bytes = [UInt8]("GET /caf")
        bytes += [0xC3, 0xA9]
        bytes += [UInt8](" HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(parseError(bytes)?.status.code == 400)
    }

    @Test func nineKiBTargetIs414() {
        let target = "/" + String(repeating: "a", count: 9 * 1024)
        #expect(statusFor("GET \(target) HTTP/1.1\r\nHost: h\r\n\r\n") == 414)
    }

    @Test func requestLineAtTheLimitIsAccepted() {
        // 8192 bytes of request line, CRLF excluded.
        let fixed = "GET  HTTP/1.1".utf8.count
        let target = "/" + String(repeating: "a", count: 8 * 1024 - fixed - 1)
        #expect(onlyRequest("GET \(target) HTTP/1.1\r\nHost: h\r\n\r\n") != nil)
        #expect(statusFor("GET \(target)a HTTP/1.1\r\nHost: h\r\n\r\n") == 414)
    }

    @Test func endlessRequestLineFailsAtTheCapWithoutBufferingMore() {
        var parser = HTTPRequestParser()
        parser.append([UInt8]("GET /"))
        var failure: HTTPParseError?
        for _ in 0..<100 {
            parser.append([UInt8](repeating: UInt8(ascii: "a"), count: 1024))
            if case .error(let e) = parser.next() {
                failure = e
                break
            }
            #expect(parser.bufferedByteCount <= 8 * 1024 + 2)
        }
        #expect(failure == .uriTooLong)
    }

    // MARK: - Item 2: header limits → 431

    @Test func hundredHeadersAreAcceptedAndOneMoreIs431() {
        let fields99 = (1..<100).map { "X-\($0): v\r\n" }.joined()
        #expect(onlyRequest("GET / HTTP/1.1\r\nHost: h\r\n\(fields99)\r\n") != nil)
        let fields100 = (1...100).map { "X-\($0): v\r\n" }.joined()
        #expect(statusFor("GET / HTTP/1.1\r\nHost: h\r\n\(fields100)\r\n") == 431)
    }

    @Test func fieldLineOverEightKiBIs431() {
        let name = "X-Long: "
        let exact = String(repeating: "v", count: 8 * 1024 - name.utf8.count)
        #expect(onlyRequest("GET / HTTP/1.1\r\nHost: h\r\n\(name)\(exact)\r\n\r\n") != nil)
        #expect(statusFor("GET / HTTP/1.1\r\nHost: h\r\n\(name)\(exact)v\r\n\r\n") == 431)
    }

    @Test func headerSectionOverThirtyTwoKiBIs431() {
        let field = "X-F: " + String(repeating: "v", count: 4000) + "\r\n"
        let fields = String(repeating: field, count: 9)  // ~36 KiB, each line under 8 KiB
        #expect(statusFor("GET / HTTP/1.1\r\nHost: h\r\n\(fields)\r\n") == 431)
    }

    @Test func endlessHeaderLineFailsAt431NotOutOfMemory() {
        var parser = HTTPRequestParser()
        parser.append([UInt8]("GET / HTTP/1.1\r\nHost: h\r\nX-Endless: "))
        var failure: HTTPParseError?
        for _ in 0..<1000 {
            parser.append([UInt8](repeating: UInt8(ascii: "a"), count: 512))
            if case .error(let e) = parser.next() {
                failure = e
                break
            }
            #expect(parser.bufferedByteCount <= 8 * 1024 + 2)
        }
        #expect(failure?.status.code == 431)
    }

    // MARK: - Item 3: field syntax

    @Test func exhaustiveHeaderNameBytes() {
        for byte in 0...255 {
            let b = UInt8(byte)
            var request = [UInt8]("GET / HTTP/1.1\r\nHost: h\r\nab")
            request.append(b)
            request += [UInt8]("cd: v\r\n\r\n")
            let error = parseError(request)
            let isTchar = b < 0x80 && (Character(Unicode.Scalar(b)).isLetter || Character(Unicode.Scalar(b)).isNumber
                || "!#$%&'*+-.^_`|~".utf8.contains(b))
            if isTchar || b == UInt8(ascii: ":") {
                // A colon just ends the name early ("ab" with value "cd: v"), which is valid.
                #expect(error == nil, "byte \(byte) in a field name should be accepted")
            } else {
                #expect(error?.status.code == 400, "byte \(byte) in a field name should be rejected")
            }
        }
    }

    @Test func exhaustiveHeaderValueBytes() {
        for byte in 0...255 {
            let b = UInt8(byte)
            var request = [UInt8]("GET / HTTP/1.1\r\nHost: h\r\nX: a")
            request.append(b)
            request += [UInt8]("b\r\n\r\n")
            let error = parseError(request)
            let allowed = b == 0x09 || b == 0x20 || (0x21...0x7E).contains(b) || b >= 0x80
            if allowed {
                #expect(error == nil, "byte \(byte) in a field value should be accepted")
            } else {
                #expect(error?.status.code == 400, "byte \(byte) in a field value should be rejected")
            }
        }
    }

    @Test(arguments: [
        ("host twice", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
        ("host missing on 1.1", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400),
        ("host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        ("host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
        ("host twice on 1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("space before colon", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\nhello", 400),
        ("tab before colon", "GET / HTTP/1.1\r\nHost: h\r\nX\t: 5\r\n\r\n", 400),
        ("obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n  b\r\n\r\n", 400),
        ("obs-fold with tab", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", 400),
        ("line without colon", "GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400),
        ("empty name", "GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", 400),
        ("bare CR in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", 400),
        ("bare CR line ending", "GET / HTTP/1.1\r\nHost: h\rX: a\r\n\r\n", 400),
        ("bare LF line ending", "GET / HTTP/1.1\r\nHost: h\nX: a\r\n\r\n", 400),
        ("bare LF request line", "GET / HTTP/1.1\nHost: h\r\n\r\n", 400),
        ("bare LF end of head", "GET / HTTP/1.1\r\nHost: h\r\n\n", 400),
        ("NUL in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\u{0}b\r\n\r\n", 400),
    ])
    func fieldSyntax(name: String, request: String, status: Int) {
        #expect(statusFor(request) == status, "\(name)")
    }

    @Test func emptyHostIsAllowed() {
        // RFC 9112 §3.2: a client sends an empty Host when the target has no authority.
        #expect(onlyRequest("GET / HTTP/1.1\r\nHost:\r\n\r\n") != nil)
        #expect(onlyRequest("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n") != nil)
    }

    // MARK: - Item 4: Content-Length

    @Test(arguments: [
        "+5", "-1", "5, 5", "5,5", "0x5", "5a", "", "99999999999999999999", "1 2", "١",
    ])
    func invalidContentLengthIs400(value: String) {
        let error = parseError("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \(value)\r\n\r\nhello")
        #expect(error == .invalidContentLength, "Content-Length: \(value)")
    }

    @Test func twoContentLengthLinesAre400EvenWhenEqual() {
        #expect(parseError("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello") == .invalidContentLength)
        #expect(parseError("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\nhello") == .invalidContentLength)
    }

    @Test func contentLengthWithLeadingZerosAndOWSIsAccepted() {
        #expect(onlyRequest("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:  005 \r\n\r\nhello")?.body == [UInt8]("hello"))
        #expect(onlyRequest("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")?.head.framing == .contentLength(0))
    }

    // MARK: - Item 5: Transfer-Encoding versus Content-Length

    @Test(arguments: [
        ("TE and CL", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
        ("CL and TE", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("smuggling: CL with gzip, chunked", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400),
        ("gzip, chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        ("chunked, gzip", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 501),
        ("xchunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501),
        ("identity", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", 501),
        ("chunked twice", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("empty TE", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", 400),
        ("TE on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ])
    func transferEncoding(name: String, request: String, status: Int) {
        #expect(statusFor(request) == status, "\(name)")
    }

    @Test func chunkedIsCaseInsensitive() {
        #expect(onlyRequest("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")?.body == [UInt8]("abc"))
    }

    // MARK: - Item 6: chunked decoding

    @Test func decodesChunksExtensionsAndTrailers() throws {
        let request =
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5;name=value\r\nhello\r\n1 ; x\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
        let parsed = try #require(onlyRequest(request))
        #expect(parsed.head.framing == .chunked)
        #expect(parsed.body == [UInt8]("hello 0123456789"))
        #expect(parsed.head.headers["X-Trailer"] == nil)  // trailers are discarded
    }

    @Test(arguments: ["+1", "-0", "0x5", " 5", "FFFFFFFFFFFFFFFFF", "FFFFFFFFFFFFFFFF", "", "5 ", "g", "5;\u{1}"])
    func invalidChunkSizeIs400(size: String) {
        let request = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\(size)\r\nhello\r\n0\r\n\r\n"
        #expect(parseError(request) == .invalidChunkedEncoding, "chunk size \(size.debugDescription)")
    }

    @Test func chunkExtensionOverOneKiBIs400() {
        let ext = String(repeating: "a", count: 2048)
        let request = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;\(ext)\r\nhello\r\n0\r\n\r\n"
        #expect(parseError(request) == .invalidChunkedEncoding)
        let fits = String(repeating: "a", count: 1000)
        #expect(onlyRequest("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;\(fits)\r\nhello\r\n0\r\n\r\n") != nil)
    }

    @Test(arguments: ["helloX\r\n0\r\n\r\n", "hello\n0\r\n\r\n", "hello\rX0\r\n\r\n", "hello0\r\n\r\n"])
    func missingCRLFAfterChunkDataIs400(rest: String) {
        let request = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n\(rest)"
        #expect(parseError(request) == .invalidChunkedEncoding)
    }

    @Test func chunkedBodyOverTheLimitIs413() {
        let atLimit = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n"
        #expect(onlyRequest(atLimit, configuration: Self.small)?.body.count == 16)
        let over = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n9\r\n"
        // 413 is reported as soon as the chunk size pushes the total over the limit, before its data.
        #expect(parseError(over, configuration: Self.small) == .contentTooLarge)
        #expect(parseError("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFF\r\n") == .contentTooLarge)
    }

    @Test func trailersCountAgainstHeaderLimits() {
        let trailers = (1...60).map { "T-\($0): v\r\n" }.joined()
        let headers = (1...40).map { "H-\($0): v\r\n" }.joined()
        let request = "POST / HTTP/1.1\r\nHost: h\r\n\(headers)Transfer-Encoding: chunked\r\n\r\n0\r\n\(trailers)\r\n"
        #expect(parseError(request) == .tooManyHeaderFields)
        #expect(parseError("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer: v\r\n\r\n") == .invalidHeaderField)
    }

    // MARK: - Item 7: body size

    @Test func contentLengthOverTheLimitIs413BeforeTheBody() {
        let outcomes = parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 17\r\n\r\n", configuration: Self.small)
        #expect(outcomes == [.error(.contentTooLarge)])
        #expect(onlyRequest("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 16\r\n\r\n0123456789abcdef", configuration: Self.small) != nil)
        #expect(parseError("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 262145\r\n\r\n") == .contentTooLarge)
    }

    // MARK: - Item 8: Expect

    @Test func expectContinue() throws {
        let head = try #require(onlyRequest("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx")?.head)
        #expect(head.expectsContinue)
        // HTTP/1.0 expectations are ignored (RFC 9110 §10.1.1), even unknown ones.
        let old = try #require(onlyRequest("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx")?.head)
        #expect(!old.expectsContinue)
        #expect(onlyRequest("POST / HTTP/1.0\r\nExpect: something\r\nContent-Length: 1\r\n\r\nx") != nil)
        // No body: nothing to continue.
        #expect(onlyRequest("GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n")?.head.expectsContinue == false)
    }

    @Test func unknownExpectationIs417() {
        #expect(statusFor("POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx") == 417)
        #expect(statusFor("GET / HTTP/1.1\r\nHost: h\r\nExpect:\r\n\r\n") == 417)
    }

    // MARK: - Item 9: keep-alive

    @Test(arguments: [
        ("GET / HTTP/1.1\r\nHost: h\r\n\r\n", true),
        ("GET / HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n", false),
        ("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, CLOSE\r\n\r\n", false),
        ("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nConnection: close\r\n\r\n", false),
        ("GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n", true),
        ("GET / HTTP/1.0\r\n\r\n", false),
        ("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
        ("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false),
    ])
    func keepAlive(request: String, expected: Bool) {
        #expect(onlyRequest(request)?.head.keepAlive == expected)
    }

    // MARK: - Item 10: pipelining

    @Test func pipelinedRequestsComeOutInOrderWithLeftoversKept() {
        var parser = HTTPRequestParser()
        parser.append([UInt8]("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nokGET /3 HT"))
        var targets: [String] = []
        while case let event = parser.next(), !isNeedMore(event) {
            if case .request(let r) = event { targets.append(r.target) }
        }
        #expect(targets == ["/1", "/2"])
        #expect(parser.bufferedByteCount == "GET /3 HT".utf8.count)
        #expect(!parser.isAtRequestBoundary)
        parser.append([UInt8]("TP/1.1\r\nHost: h\r\n\r\n"))
        guard case .head = parser.next(), case .request(let third) = parser.next() else {
            Issue.record("third request not parsed")
            return
        }
        #expect(third.target == "/3")
        #expect(parser.isAtRequestBoundary)
    }

    @Test func errorIsSticky() {
        var parser = HTTPRequestParser()
        parser.append([UInt8]("GET / HTTP/3.0\r\n\r\n"))
        guard case .error(let first) = parser.next() else {
            Issue.record("expected an error")
            return
        }
        parser.append([UInt8]("GET / HTTP/1.1\r\nHost: h\r\n\r\n"))
        guard case .error(let second) = parser.next() else {
            Issue.record("expected the same error again")
            return
        }
        #expect(first == second)
    }

    // MARK: - Chunking invariance (the fuzz harness's invariant, checked exhaustively here)

    static let splitCorpus: [String] = [
        "GET /a?b=c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        "POST /s HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world",
        "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n",
        "\r\nGET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX",
        "GET /" + String(repeating: "x", count: 200) + " HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX: " + String(repeating: "v", count: 300) + "\r\n\r\n",
    ]

    /// A configuration with tiny limits so that over-limit paths are split too.
    static let tiny = HTTPServerConfiguration(
        maxRequestLineBytes: 64, maxFieldLineBytes: 64, maxHeaderSectionBytes: 256, maxFieldCount: 8,
        maxBodyBytes: 8, maxChunkLineBytes: 8)

    @Test(arguments: splitCorpus)
    func splittingAtEveryOffsetGivesTheSameResult(text: String) {
        let bytes = [UInt8](text)
        for configuration in [HTTPServerConfiguration(), Self.tiny] {
            let whole = parse([bytes], configuration: configuration)
            for offset in 1..<bytes.count {
                let split = parse([Array(bytes[..<offset]), Array(bytes[offset...])], configuration: configuration)
                #expect(split == whole, "split at \(offset) of \(text.debugDescription)")
            }
            let byteByByte = parse(bytes.map { [$0] }, configuration: configuration)
            #expect(byteByByte == whole, "byte by byte: \(text.debugDescription)")
        }
    }

    @Test func overlongLinesClassifyTheSameWhicheverWayTheyArrive() {
        // Over-limit lines whose later bytes would be errors of a different kind.
        let cases = [
            "GET /" + String(repeating: "a", count: 80) + " BROKEN\r\n\r\n",
            "GET /ok HTTP/1.1" + String(repeating: "z", count: 80) + "\n",
            "GET /" + String(repeating: "a", count: 70) + "\n",
            "GET / HTTP/1.1\r\nX: " + String(repeating: "v", count: 80) + "\n",
            "VERYLONGMETHODNAMEEXCEEDS / HTTP/1.1\r\n\r\n",
        ]
        for text in cases {
            let bytes = [UInt8](text)
            let whole = parse([bytes], configuration: Self.tiny)
            let byteByByte = parse(bytes.map { [$0] }, configuration: Self.tiny)
            #expect(whole == byteByByte, "\(text.debugDescription)")
        }
    }
}

private func isNeedMore(_ event: HTTPParserEvent) -> Bool {
    if case .needMoreData = event { return true }
    return false
}

@Suite("HTTP message types")
struct HTTPMessageTests {
    @Test func queryParsing() {
        let request = HTTPRequest(method: .get, target: "/p/a%20b?x=1&y=a+b%21&empty&x=2&bad=%zz")
        #expect(request.path == "/p/a%20b")
        #expect(request.query == "x=1&y=a+b%21&empty&x=2&bad=%zz")
        #expect(request.queryValue("y") == "a b!")
        #expect(request.queryValue("x") == "1")
        #expect(request.queryValue("empty") == "")
        #expect(request.queryValue("bad") == nil)
        #expect(request.queryItems.map(\.name) == ["x", "y", "empty", "x"])
        #expect(HTTPRequest(method: .get, target: "/only").query == nil)
        #expect(HTTPRequest.percentDecode("%E2%9C%93") == "✓")
        #expect(HTTPRequest.percentDecode("%FF") == nil)
    }

    /// The path ends at the first `?`; the query is everything after it, even empty or with
    /// further `?`s (the split scans bytes, so the edges get their own cases).
    @Test(arguments: [
        ("/", "/", nil), ("/?", "/", ""), ("?", "", ""), ("/a?b?c", "/a", "b?c"), ("", "", nil),
        ("/ü?é", "/ü", "é"), ("*", "*", nil),
    ] as [(String, String, String?)])
    func pathAndQueryEdges(_ target: String, _ path: String, _ query: String?) {
        let request = HTTPRequest(method: .get, target: target)
        #expect(request.path == path[...])
        #expect(request.query == query.map { $0[...] })
        // The `?` offset is kept with the target: assigning a new target moves it too.
        var changed = HTTPRequest(method: .get, target: "/before?long=query&more")
        changed.target = target
        #expect(changed.path == path[...])
        #expect(changed.query == query.map { $0[...] })
    }

    @Test func headersAreCaseInsensitiveAndOrdered() {
        var headers: HTTPHeaders = ["Content-Type": "a", "X-One": "1"]
        headers.add(name: "x-one", value: "2")
        #expect(headers["x-ONE"] == "1")
        #expect(headers.values(for: "X-One") == ["1", "2"])
        headers.replaceOrAdd(name: "X-ONE", value: "3")
        #expect(headers.values(for: "x-one") == ["3"])
        headers.remove(name: "content-type")
        #expect(!headers.contains("Content-Type"))
        let connection: HTTPHeaders = ["Connection": "keep-alive, Close"]
        #expect(connection.containsToken("close", in: "connection"))
        #expect(!connection.containsToken("clos", in: "connection"))
    }

    @Test func responseConveniences() {
        let text = HTTPResponse(status: .created, text: "hé")
        #expect(text.headers["content-type"] == "text/plain; charset=utf-8")
        #expect(text.body == Array("hé".utf8))
        let json = HTTPResponse(json: #"{"a":1}"#)
        #expect(json.headers["Content-Type"] == "application/json; charset=utf-8")
        let problem = HTTPResponse.problem(.notFound, detail: "no \"such\"\nthing")
        #expect(String(decoding: problem.body, as: UTF8.self)
            == #"{"type":"about:blank","title":"Not Found","status":404,"detail":"no \"such\"\nthing"}"#)
        #expect(problem.headers["Cache-Control"] == "no-store")
        #expect(HTTPStatus(code: 431).reasonPhrase == "Request Header Fields Too Large")
        #expect(HTTPStatus.noContent.forbidsBody && HTTPStatus.notModified.forbidsBody && !HTTPStatus.ok.forbidsBody)
    }
}
