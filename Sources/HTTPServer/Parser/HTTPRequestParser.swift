// SPDX-License-Identifier: Apache-2.0
import Glibc

/// What ``HTTPRequestParser/next()`` found in the buffered bytes.
public enum HTTPParserEvent: Sendable {
    /// The buffered bytes do not complete the next element; append more.
    case needMoreData
    /// A request head is complete and valid. The body (if any) follows; ``HTTPRequestParser/bufferedByteCount``
    /// tells whether any of it has arrived yet (for `100 Continue`, RFC 9110 §10.1.1).
    case head(HTTPRequestHead)
    /// The request is complete, body included. The parser is ready for the next (pipelined) request.
    case request(HTTPRequest)
    /// The bytes are not acceptable; the parser stays failed and every later call returns the same
    /// error. The connection must answer `error.status` and close.
    case error(HTTPParseError)
}

/// A pure, incremental HTTP/1.1 request parser (RFC 9112), fed bytes as they arrive.
///
/// Feed bytes with ``append(_:)`` and call ``next()`` until it returns ``HTTPParserEvent/needMoreData``.
/// Each request yields `.head` then `.request` (body aggregated up to the limit), or `.error`.
///
/// Design rules, each closing a known parser-differential or resource attack:
/// - CRLF only: a bare LF or bare CR anywhere in the head is an error (RFC 9112 §2.2 allows
///   rejecting both; one strict rule is simpler than a lenient one).
/// - Limits are checked before bytes are kept: a line longer than its cap fails as soon as the cap
///   is exceeded, so an endless header line costs at most the cap in memory.
/// - Framing numbers (`Content-Length`, chunk sizes) are parsed by hand from ASCII digits with
///   overflow checks; `Int(_:)` would accept `+5` and `-0`.
/// - The result never depends on how the bytes were split into chunks: every decision is taken
///   on a complete line, or on the first `limit + 1` bytes of an over-long one.
/// - Empty lines (CRLF) before a request line are skipped (RFC 9112 §2.2 robustness rule).
///
/// The parser performs no I/O and allocates only the buffer, the head's strings and the body.
///
/// ```swift
/// var parser = HTTPRequestParser(configuration: .init())
/// parser.append(Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
/// loop: while true {
///     switch parser.next() {
///     case .needMoreData: break loop              // read more bytes, append, call next() again
///     case .head(let head): print(head.method)    // e.g. decide on 100 Continue
///     case .request(let request): print(request.target)
///     case .error(let error): print(error.status) // answer it and close the connection
///     }
/// }
/// ```
public struct HTTPRequestParser: Sendable {
    /// Where the parser is within the current request.
    private enum State: Sendable {
        /// Expecting a request line (empty lines are skipped).
        case requestLine
        /// Expecting field lines or the empty line that ends the head.
        case headers
        /// `Content-Length` body with `remaining` bytes still to come (0 for no body).
        case body(remaining: Int)
        /// Expecting a chunk-size line.
        case chunkSize
        /// Inside chunk data with `remaining` bytes to go.
        case chunkData(remaining: Int)
        /// Expecting the CRLF after chunk data.
        case chunkDataEnd
        /// After the last chunk: trailer lines until an empty line.
        case trailers
        /// An error was reported; it is reported again on every call.
        case failed(HTTPParseError)
    }

    /// ``HTTPServerConfiguration/maxRequestLineBytes`` (at least 16).
    private let maxRequestLineBytes: Int
    /// ``HTTPServerConfiguration/maxFieldLineBytes``.
    private let maxFieldLineBytes: Int
    /// ``HTTPServerConfiguration/maxHeaderSectionBytes``.
    private let maxHeaderSectionBytes: Int
    /// ``HTTPServerConfiguration/maxFieldCount``.
    private let maxFieldCount: Int
    /// ``HTTPServerConfiguration/maxBodyBytes``.
    private let maxBodyBytes: Int
    /// ``HTTPServerConfiguration/maxChunkLineBytes``.
    private let maxChunkLineBytes: Int

    /// Received bytes; `buffer[start...]` is not consumed yet.
    private var buffer: [UInt8] = []
    /// Index of the first unconsumed byte in `buffer`.
    private var start = 0
    /// Bytes after `start` already searched for LF without success (keeps line search linear).
    private var scanned = 0
    /// Current position in the grammar.
    private var state: State = .requestLine

    // The request being parsed; reset by `finishRequest()`.
    /// Method from the request line.
    private var method: HTTPMethod = .get
    /// Target from the request line.
    private var target = ""
    /// Version from the request line.
    private var version: HTTPVersion = .http1_1
    /// Header fields so far.
    private var headers = HTTPHeaders()
    /// Field lines so far, trailers included (limit: `maxFieldCount`).
    private var fieldCount = 0
    /// Bytes of field lines so far, CRLFs and trailers included (limit: `maxHeaderSectionBytes`).
    private var headerSectionBytes = 0
    /// `Host` lines seen.
    private var hostCount = 0
    /// The `Content-Length` value, if one was sent.
    private var contentLength: Int?
    /// Whether a `Transfer-Encoding` line was seen.
    private var sawTransferEncoding = false
    /// Whether that line said exactly `chunked`.
    private var transferEncodingChunked = false
    /// `Connection` contained the `close` token.
    private var connectionClose = false
    /// `Connection` contained the `keep-alive` token.
    private var connectionKeepAlive = false
    /// `Expect: 100-continue` was sent.
    private var expectContinue = false
    /// Some other expectation was sent (417 on HTTP/1.1).
    private var expectOther = false
    /// The validated head, between `.head` and `.request`.
    private var head: HTTPRequestHead?
    /// The body collected so far (de-chunked).
    private var body: [UInt8] = []
    /// Sum of announced chunk sizes so far (limit: `maxBodyBytes`).
    private var bodyTotal = 0

    /// Creates a parser enforcing the limits of `configuration`.
    ///
    /// Only the size limits are used (request line, field line, header section, field count,
    /// body, chunk line); timeouts and addresses are the connection's business.
    ///
    /// - Parameter configuration: the limits; defaults to the documented defaults.
    public init(configuration: HTTPServerConfiguration = HTTPServerConfiguration()) {
        maxRequestLineBytes = max(16, configuration.maxRequestLineBytes)
        maxFieldLineBytes = max(1, configuration.maxFieldLineBytes)
        maxHeaderSectionBytes = max(0, configuration.maxHeaderSectionBytes)
        maxFieldCount = max(0, configuration.maxFieldCount)
        maxBodyBytes = max(0, configuration.maxBodyBytes)
        maxChunkLineBytes = max(1, configuration.maxChunkLineBytes)
    }

    /// Bytes appended but not yet consumed by ``next()``.
    public var bufferedByteCount: Int { buffer.count - start }

    /// True when no byte of a next request has been consumed or buffered: the parser sits exactly
    /// between two requests.
    public var isAtRequestBoundary: Bool {
        if case .requestLine = state { return start == buffer.count }
        return false
    }

    /// Sum of the chunk sizes announced so far by the current chunked body (each checked against
    /// the body limit before its data is read); 0 for other framings. The connection reserves
    /// body memory against it (``HTTPServerConfiguration/bodyMemoryBudgetBytes``).
    public var announcedChunkedBytes: Int { bodyTotal }

    /// True while the current request's head is complete and its body is still being read.
    public var isReadingBody: Bool {
        switch state {
        case .body(let remaining): remaining > 0
        case .chunkSize, .chunkData, .chunkDataEnd, .trailers: true
        default: false
        }
    }

    /// Appends received bytes (copied; the pointer need not outlive the call).
    ///
    /// Consumed bytes are dropped first, so the buffer holds at most one partial request plus
    /// what the caller appends; the limits bound a partial head, the body limit its body.
    ///
    /// - Parameter bytes: bytes exactly as read from the socket.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        compact()
        buffer.append(contentsOf: bytes)
    }

    /// Appends received bytes; same as the raw-buffer overload.
    ///
    /// - Parameter bytes: bytes exactly as read from the socket.
    public mutating func append(_ bytes: [UInt8]) {
        compact()
        buffer.append(contentsOf: bytes)
    }

    /// Drops consumed bytes so the buffer does not grow across pipelined requests.
    private mutating func compact() {
        if start == 0 { return }
        if start == buffer.count {
            // Give back memory after a large body; keep a small buffer for the next request.
            if buffer.capacity > 64 * 1024 { buffer = [] } else { buffer.removeAll(keepingCapacity: true) }
            start = 0
        } else if start >= 4096 || start * 2 >= buffer.count {
            buffer.removeSubrange(0..<start)
            start = 0
        }
    }

    /// Parses as far as the buffered bytes allow and reports the next event.
    ///
    /// Call it repeatedly until ``HTTPParserEvent/needMoreData``: one `append` may complete several
    /// pipelined requests. After ``HTTPParserEvent/error(_:)`` the parser is failed for good.
    ///
    /// - Returns: `.head` once per request, then `.request`; or `.needMoreData`; or `.error`.
    public mutating func next() -> HTTPParserEvent {
        while true {
            switch state {
            case .failed(let error):
                return .error(error)

            case .requestLine:
                switch findLine(limit: maxRequestLineBytes) {
                case .needMore: return .needMoreData
                case .overflow: return fail(classifyOverlongRequestLine())
                case .bareLineEnding: return fail(.invalidLineEnding)
                case .line(let lo, let hi, let next):
                    if lo == hi {  // RFC 9112 §2.2: ignore empty lines before the request line.
                        start = next
                        continue
                    }
                    if let error = parseRequestLine(lo, hi) { return fail(error) }
                    start = next
                    state = .headers
                }

            case .headers:
                switch findLine(limit: maxFieldLineBytes) {
                case .needMore: return .needMoreData
                case .overflow: return fail(.headerFieldTooLarge)
                case .bareLineEnding: return fail(.invalidLineEnding)
                case .line(let lo, let hi, let next):
                    start = next
                    if lo == hi {
                        switch finishHead() {
                        case .success(let head): return .head(head)
                        case .failure(let error): return fail(error)
                        }
                    }
                    if let error = parseFieldLine(lo, hi, isTrailer: false) { return fail(error) }
                }

            case .body(let remaining):
                if remaining > 0 {
                    let n = min(remaining, buffer.count - start)
                    if n > 0 {
                        body.append(contentsOf: buffer[start..<(start + n)])
                        start += n
                    }
                    if n < remaining {
                        state = .body(remaining: remaining - n)
                        return .needMoreData
                    }
                }
                return .request(finishRequest())

            case .chunkSize:
                switch findLine(limit: maxChunkLineBytes) {
                case .needMore: return .needMoreData
                case .overflow, .bareLineEnding: return fail(.invalidChunkedEncoding)
                case .line(let lo, let hi, let next):
                    start = next
                    switch parseChunkSize(lo, hi) {
                    case .failure(let error): return fail(error)
                    case .success(0): state = .trailers
                    case .success(let size):
                        // Check the decoded total before reading the data (RFC 9112 §7.1: guard against overflow).
                        if size > maxBodyBytes - bodyTotal { return fail(.contentTooLarge) }
                        bodyTotal += size
                        state = .chunkData(remaining: size)
                    }
                }

            case .chunkData(let remaining):
                let n = min(remaining, buffer.count - start)
                if n > 0 {
                    body.append(contentsOf: buffer[start..<(start + n)])
                    start += n
                }
                if n < remaining {
                    state = .chunkData(remaining: remaining - n)
                    return .needMoreData
                }
                state = .chunkDataEnd

            case .chunkDataEnd:
                // RFC 9112 §7.1: chunk-data is followed by exactly CRLF.
                let available = buffer.count - start
                if available >= 1 && buffer[start] != HTTPSyntax.cr { return fail(.invalidChunkedEncoding) }
                if available < 2 { return .needMoreData }
                if buffer[start + 1] != HTTPSyntax.lf { return fail(.invalidChunkedEncoding) }
                start += 2
                state = .chunkSize

            case .trailers:
                switch findLine(limit: maxFieldLineBytes) {
                case .needMore: return .needMoreData
                case .overflow: return fail(.headerFieldTooLarge)
                case .bareLineEnding: return fail(.invalidLineEnding)
                case .line(let lo, let hi, let next):
                    start = next
                    if lo == hi { return .request(finishRequest()) }
                    // Trailers count against the header limits and are then discarded (RFC 9112 §7.1.2).
                    if let error = parseFieldLine(lo, hi, isTrailer: true) { return fail(error) }
                }
            }
        }
    }

    /// Enters the sticky failed state.
    private mutating func fail(_ error: HTTPParseError) -> HTTPParserEvent {
        state = .failed(error)
        return .error(error)
    }

    // MARK: - Lines

    /// Outcome of looking for the next CRLF-terminated line.
    private enum LineResult {
        case needMore
        /// Line content is `buffer[lo..<hi]`; the next line starts at `next`.
        case line(lo: Int, hi: Int, next: Int)
        /// The line is longer than its limit.
        case overflow
        /// LF without CR before it.
        case bareLineEnding
    }

    /// Finds the CRLF-terminated line starting at `start`, enforcing `limit` content bytes.
    ///
    /// Overflow is decided identically whether the line arrives whole or in pieces: it is reported
    /// once `limit + 2` bytes precede the LF (or are buffered without one), i.e. when the content
    /// certainly exceeds `limit`, before the CR check.
    private mutating func findLine(limit: Int) -> LineResult {
        let from = start + scanned
        let end = buffer.count
        var lfIndex = -1
        if from < end {
            lfIndex = buffer.withUnsafeBufferPointer { p -> Int in
                guard let base = p.baseAddress,
                    let hit = memchr(base + from, Int32(HTTPSyntax.lf), end - from)
                else { return -1 }
                return base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
            }
        }
        if lfIndex < 0 {
            scanned = end - start
            return scanned >= limit + 2 ? .overflow : .needMore
        }
        scanned = 0
        let length = lfIndex - start
        if length >= limit + 2 { return .overflow }
        guard length >= 1, buffer[lfIndex - 1] == HTTPSyntax.cr else { return .bareLineEnding }
        return .line(lo: start, hi: lfIndex - 1, next: lfIndex + 1)
    }

    // MARK: - Request line (RFC 9112 §3)

    /// Parses `method SP request-target SP HTTP-version` from `buffer[lo..<hi]`.
    private mutating func parseRequestLine(_ lo: Int, _ hi: Int) -> HTTPParseError? {
        let scanned = buffer.withUnsafeBufferPointer { Self.scanRequestLine($0, lo, hi) }
        guard let (methodEnd, targetStart, targetEnd) = scanned else { return .invalidRequestLine }
        let i = targetEnd + 1
        // HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 §2.3).
        guard hi - i == 8,
            buffer[i] == UInt8(ascii: "H"), buffer[i + 1] == UInt8(ascii: "T"),
            buffer[i + 2] == UInt8(ascii: "T"), buffer[i + 3] == UInt8(ascii: "P"),
            buffer[i + 4] == UInt8(ascii: "/"), buffer[i + 6] == UInt8(ascii: "."),
            (0x30...0x39).contains(buffer[i + 5]), (0x30...0x39).contains(buffer[i + 7])
        else { return .invalidRequestLine }
        switch (buffer[i + 5], buffer[i + 7]) {
        case (UInt8(ascii: "1"), UInt8(ascii: "1")): version = .http1_1
        case (UInt8(ascii: "1"), UInt8(ascii: "0")): version = .http1_0
        default: return .versionNotSupported
        }
        let parsedMethod = buffer.withUnsafeBufferPointer {
            HTTPMethod.parse(UnsafeBufferPointer(rebasing: $0[lo..<methodEnd]))
        }
        guard let parsedMethod else { return .methodNotImplemented }
        method = parsedMethod
        // Origin-form only (RFC 9112 §3.2.1), or asterisk-form for OPTIONS (§3.2.4).
        let first = buffer[targetStart]
        if first == UInt8(ascii: "*") {
            guard targetEnd - targetStart == 1, method == .options else { return .invalidRequestLine }
        } else if first != UInt8(ascii: "/") {
            return .invalidRequestLine
        }
        target = makeString(targetStart, targetEnd)
        return nil
    }

    /// Splits the request line `bytes[lo..<hi]` at its two spaces: `(methodEnd, targetStart,
    /// targetEnd)` with a non-empty token method and a non-empty target of visible ASCII, or nil.
    private static func scanRequestLine(_ bytes: UnsafeBufferPointer<UInt8>, _ lo: Int, _ hi: Int) -> (Int, Int, Int)? {
        guard lo >= 0, hi <= bytes.count, lo <= hi, let p = bytes.baseAddress else { return nil }
        var i = lo
        while i < hi && p[i] != HTTPSyntax.sp {
            guard HTTPSyntax.isTchar(p[i]) else { return nil }
            i += 1
        }
        let methodEnd = i
        guard methodEnd > lo, i < hi else { return nil }
        i += 1
        let targetStart = i
        while i < hi && p[i] != HTTPSyntax.sp {
            guard HTTPSyntax.isTargetByte(p[i]) else { return nil }
            i += 1
        }
        let targetEnd = i
        guard targetEnd > targetStart, i < hi else { return nil }
        return (methodEnd, targetStart, targetEnd)
    }

    /// Status for a request line longer than the limit, decided from its first `limit + 1` bytes
    /// only, so the answer does not depend on chunking: a bad method is 400 (or 501 when it is a
    /// token too long to be any method we implement), a bad target byte 400, a line whose target
    /// runs past the limit, or is followed by the start of a version, 414; anything else 400.
    private func classifyOverlongRequestLine() -> HTTPParseError {
        let end = start + maxRequestLineBytes + 1
        var i = start
        while i < end && buffer[i] != HTTPSyntax.sp {
            guard HTTPSyntax.isTchar(buffer[i]) else { return .invalidRequestLine }
            i += 1
            if i - start > 16 { return .methodNotImplemented }
        }
        if i == start { return .invalidRequestLine }
        i += 1
        let targetStart = i
        while i < end && buffer[i] != HTTPSyntax.sp {
            guard HTTPSyntax.isTargetByte(buffer[i]) else { return .invalidRequestLine }
            if i == targetStart && buffer[i] != UInt8(ascii: "/") && buffer[i] != UInt8(ascii: "*") {
                return .invalidRequestLine
            }
            i += 1
        }
        if i == end { return .uriTooLong }
        // The target ended inside the prefix. If what follows could still be the start of
        // `HTTP/d.d`, the target is what made the line too long (414); otherwise the version is bad.
        let pattern: [UInt8] = Array("HTTP/0.0".utf8)
        var k = 0
        i += 1
        while i < end {
            guard k < pattern.count else { return .invalidRequestLine }
            let b = buffer[i]
            let ok = pattern[k] == UInt8(ascii: "0") ? (0x30...0x39).contains(b) : b == pattern[k]
            guard ok else { return .invalidRequestLine }
            i += 1
            k += 1
        }
        return .uriTooLong
    }

    // MARK: - Field lines (RFC 9112 §5, RFC 9110 §5)

    /// Validates one field line `buffer[lo..<hi]` (non-empty), counts it against the header limits
    /// and records it (headers) or drops it (trailers).
    private mutating func parseFieldLine(_ lo: Int, _ hi: Int, isTrailer: Bool) -> HTTPParseError? {
        headerSectionBytes += hi - lo + 2
        if headerSectionBytes > maxHeaderSectionBytes { return .headerSectionTooLarge }
        fieldCount += 1
        if fieldCount > maxFieldCount { return .tooManyHeaderFields }

        let scanned = buffer.withUnsafeBufferPointer { Self.scanFieldLine($0, lo, hi) }
        guard let (nameEnd, valueStart, valueEnd) = scanned else { return .invalidHeaderField }
        if isTrailer { return nil }

        if let error = inspectFramingField(lo, nameEnd, valueStart, valueEnd) { return error }
        // One allocation for a typical head, instead of growing 1, 2, 4, 8.
        if headers.fields.capacity == 0 { headers.fields.reserveCapacity(8) }
        headers.add(name: makeString(lo, nameEnd), value: makeString(valueStart, valueEnd))
        return nil
    }

    /// Splits the field line `bytes[lo..<hi]` (without CRLF) into name and trimmed value:
    /// `(nameEnd, valueStart, valueEnd)`, or nil when it is not `token ":" OWS field-value OWS`.
    /// Over the buffer's memory: indexing the array checked bounds on every byte of every line.
    private static func scanFieldLine(_ bytes: UnsafeBufferPointer<UInt8>, _ lo: Int, _ hi: Int) -> (Int, Int, Int)? {
        guard lo >= 0, hi <= bytes.count, lo <= hi, let p = bytes.baseAddress else { return nil }
        // A leading SP/HTAB is obs-fold (RFC 9112 §5.2) or whitespace before the name: reject.
        var i = lo
        while i < hi && p[i] != HTTPSyntax.colon {
            // Whitespace before the colon MUST be rejected (RFC 9112 §5.1); it is not a tchar.
            guard HTTPSyntax.isTchar(p[i]) else { return nil }
            i += 1
        }
        let nameEnd = i
        guard nameEnd > lo, i < hi else { return nil }
        i += 1
        while i < hi && HTTPSyntax.isWhitespace(p[i]) { i += 1 }
        var valueEnd = hi
        while valueEnd > i && HTTPSyntax.isWhitespace(p[valueEnd - 1]) { valueEnd -= 1 }
        let valueStart = i
        while i < valueEnd {
            guard HTTPSyntax.isFieldValueByte(p[i]) else { return nil }
            i += 1
        }
        return (nameEnd, valueStart, valueEnd)
    }

    /// Records the fields that decide framing and connection handling, straight from bytes.
    private mutating func inspectFramingField(_ lo: Int, _ nameEnd: Int, _ vs: Int, _ ve: Int) -> HTTPParseError? {
        switch nameEnd - lo {
        case 4 where nameEquals(lo, "host"):
            hostCount += 1
            if hostCount > 1 { return .invalidHost }
            for j in vs..<ve where !HTTPSyntax.isHostByte(buffer[j]) { return .invalidHost }
        case 6 where nameEquals(lo, "expect"):
            if valueEquals(vs, ve, "100-continue") { expectContinue = true } else { expectOther = true }
        case 10 where nameEquals(lo, "connection"):
            forEachListElement(vs, ve) { s, e in
                if valueEquals(s, e, "close") { connectionClose = true }
                if valueEquals(s, e, "keep-alive") { connectionKeepAlive = true }
            }
        case 14 where nameEquals(lo, "content-length"):
            // One Content-Length line with 1*DIGIT; lists and repeats are rejected (RFC 9112 §6.3 item 5).
            guard contentLength == nil, let value = parseDecimal(vs, ve) else { return .invalidContentLength }
            contentLength = value
        case 17 where nameEquals(lo, "transfer-encoding"):
            guard !sawTransferEncoding, ve > vs else { return .invalidTransferEncoding }
            sawTransferEncoding = true
            transferEncodingChunked = valueEquals(vs, ve, "chunked")
        default:
            break
        }
        return nil
    }

    /// Applies the whole-head rules and moves to the body state.
    private mutating func finishHead() -> Result<HTTPRequestHead, HTTPParseError> {
        // RFC 9112 §3.2: exactly one Host in HTTP/1.1 (more than one was rejected while reading).
        if version == .http1_1 && hostCount == 0 { return .failure(.invalidHost) }
        let framing: HTTPBodyFraming
        if sawTransferEncoding {
            // RFC 9112 §6.1: TE+CL is smuggling; TE in HTTP/1.0 is faulty framing; only chunked is implemented.
            if contentLength != nil { return .failure(.transferEncodingWithContentLength) }
            if version == .http1_0 { return .failure(.invalidTransferEncoding) }
            if !transferEncodingChunked { return .failure(.transferEncodingNotImplemented) }
            framing = .chunked
        } else if let contentLength {
            framing = .contentLength(contentLength)
        } else {
            framing = .none
        }
        // RFC 9110 §10.1.1: expectations in HTTP/1.0 requests are ignored.
        if version == .http1_1 && expectOther { return .failure(.expectationFailed) }
        if let contentLength, contentLength > maxBodyBytes { return .failure(.contentTooLarge) }

        let keepAlive = version == .http1_1 ? !connectionClose : (connectionKeepAlive && !connectionClose)
        let head = HTTPRequestHead(
            method: method, target: target, version: version, headers: headers, keepAlive: keepAlive,
            expectsContinue: version == .http1_1 && expectContinue && framing.hasBody, framing: framing)
        self.head = head
        switch framing {
        case .none: state = .body(remaining: 0)
        case .contentLength(let n):
            body.reserveCapacity(n)
            state = .body(remaining: n)
        case .chunked: state = .chunkSize
        }
        return .success(head)
    }

    /// Hands out the finished request and resets per-request state for the next one.
    private mutating func finishRequest() -> HTTPRequest {
        let request: HTTPRequest
        if let head {
            request = HTTPRequest(head: head, body: body)
        } else {
            request = HTTPRequest(method: method, target: target, version: version, headers: headers, body: body)
        }
        head = nil
        body = []
        bodyTotal = 0
        headers = HTTPHeaders()
        target = ""
        fieldCount = 0
        headerSectionBytes = 0
        hostCount = 0
        contentLength = nil
        sawTransferEncoding = false
        transferEncodingChunked = false
        connectionClose = false
        connectionKeepAlive = false
        expectContinue = false
        expectOther = false
        state = .requestLine
        return request
    }

    // MARK: - Chunked (RFC 9112 §7.1)

    /// Parses `chunk-size [ BWS ";" chunk-ext ]` from `buffer[lo..<hi]`: hex digits only (no sign,
    /// no `0x`, no leading whitespace), overflow-checked.
    private func parseChunkSize(_ lo: Int, _ hi: Int) -> Result<Int, HTTPParseError> {
        var i = lo
        var size = 0
        while i < hi, let digit = hexValue(buffer[i]) {
            let (shifted, o1) = size.multipliedReportingOverflow(by: 16)
            let (sum, o2) = shifted.addingReportingOverflow(Int(digit))
            if o1 || o2 { return .failure(.invalidChunkedEncoding) }
            size = sum
            i += 1
        }
        if i == lo { return .failure(.invalidChunkedEncoding) }
        if i == hi { return .success(size) }
        // chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ): we ignore extensions but
        // require the ";" and forbid control bytes in them.
        while i < hi && HTTPSyntax.isWhitespace(buffer[i]) { i += 1 }
        guard i < hi, buffer[i] == UInt8(ascii: ";") else { return .failure(.invalidChunkedEncoding) }
        for j in (i + 1)..<hi where !HTTPSyntax.isFieldValueByte(buffer[j]) {
            return .failure(.invalidChunkedEncoding)
        }
        return .success(size)
    }

    // MARK: - Byte helpers

    /// Parses `1*DIGIT` from `buffer[lo..<hi]` with overflow checks (RFC 9110 §8.6).
    private func parseDecimal(_ lo: Int, _ hi: Int) -> Int? {
        guard hi > lo else { return nil }
        var value = 0
        for i in lo..<hi {
            let d = buffer[i] &- UInt8(ascii: "0")
            guard d < 10 else { return nil }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int(d))
            if o1 || o2 { return nil }
            value = s
        }
        return value
    }

    /// ASCII case-insensitive comparison of `buffer[lo...]` with lowercase `name` (same length checked by caller).
    private func nameEquals(_ lo: Int, _ name: StaticString) -> Bool {
        let p = name.utf8Start
        for k in 0..<name.utf8CodeUnitCount where asciiLower(buffer[lo + k]) != p[k] { return false }
        return true
    }

    /// ASCII case-insensitive comparison of `buffer[lo..<hi]` with lowercase `value`.
    private func valueEquals(_ lo: Int, _ hi: Int, _ value: StaticString) -> Bool {
        guard hi - lo == value.utf8CodeUnitCount else { return false }
        return nameEquals(lo, value)
    }

    /// Calls `body` with the trimmed bounds of each element of the comma list `buffer[lo..<hi]`.
    private func forEachListElement(_ lo: Int, _ hi: Int, _ body: (Int, Int) -> Void) {
        var s = lo
        while s <= hi {
            var e = s
            while e < hi && buffer[e] != UInt8(ascii: ",") { e += 1 }
            var a = s, b = e
            while a < b && HTTPSyntax.isWhitespace(buffer[a]) { a += 1 }
            while b > a && HTTPSyntax.isWhitespace(buffer[b - 1]) { b -= 1 }
            if b > a { body(a, b) }
            s = e + 1
        }
    }

    /// Decodes `buffer[lo..<hi]` as UTF-8 (invalid sequences become U+FFFD; obs-text survives as such).
    private func makeString(_ lo: Int, _ hi: Int) -> String {
        buffer.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[lo..<hi]), as: UTF8.self) }
    }
}
