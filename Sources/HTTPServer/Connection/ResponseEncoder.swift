// SPDX-License-Identifier: Apache-2.0

/// Serialises response heads into a reusable byte buffer, enforcing response hygiene
/// (docs/http.md §19): header names must be tokens, values and reason phrases must not contain
/// CR, LF or NUL (response splitting), and framing fields belong to the server.
enum ResponseEncoder {
    /// Why a handler's response could not be sent as is.
    enum Rejection: Error {
        /// The code is outside 200...999 or the reason phrase holds CR, LF or NUL.
        case invalidStatus
        /// A header name is not a token or its value holds CR, LF or NUL (name shown only if printable).
        case invalidHeader(name: String)
    }

    /// Options decided by the connection, not the handler.
    struct Framing {
        /// The request was `HEAD`: describe the body but do not send it.
        var isHead: Bool
        /// Add `Connection: close`.
        var close: Bool
        /// Add `Connection: keep-alive` (an HTTP/1.0 client asked for it).
        var keepAliveHeader: Bool
    }

    /// True when the handler's `Connection` header asks to close.
    static func handlerRequestsClose(_ headers: HTTPHeaders) -> Bool {
        headers.containsToken("close", in: "Connection")
    }

    /// Checks the parts of `response` that the handler controls.
    static func validate(_ response: HTTPResponse) -> Rejection? {
        let code = response.status.code
        guard (200...999).contains(code),
            HTTPSyntax.isSafeOutgoingValue(response.status.reasonPhrase.utf8)
        else { return .invalidStatus }
        for field in response.headers {
            guard HTTPSyntax.isToken(field.name.utf8), HTTPSyntax.isSafeOutgoingValue(field.value.utf8) else {
                return .invalidHeader(name: HTTPSyntax.isSafeOutgoingValue(field.name.utf8) ? field.name : "?")
            }
        }
        return nil
    }

    /// Appends the status line and header section of `response` to `out`. The caller validated it.
    /// Returns whether the body is to be sent.
    static func appendHead(
        _ response: HTTPResponse, framing: Framing, date: [UInt8], to out: inout [UInt8]
    ) -> Bool {
        // Assembled in stack memory and appended once: ten-odd `Array.append(contentsOf:)` calls
        // cost about 90 instructions each, a copy into a buffer a fraction of that. A head that
        // does not fit (large handler headers) is written straight to `out` instead.
        let fitted = withUnsafeTemporaryAllocation(byteCount: stackHeadBytes, alignment: 1) { raw -> Bool in
            var sink = FixedSink(raw)
            writeHead(response, framing: framing, date: date, to: &sink)
            guard !sink.overflowed else { return false }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[..<sink.count]))
            return true
        }
        if !fitted {
            var sink = ArraySink(bytes: out)
            out = []  // keeps the buffer uniquely referenced while the sink appends
            writeHead(response, framing: framing, date: date, to: &sink)
            out = sink.bytes
        }
        return !framing.isHead && !response.status.forbidsBody && !response.body.isEmpty
    }

    /// Heads up to this size are assembled on the stack.
    static let stackHeadBytes = 1024

    /// The status line and header section, written once for both sinks.
    private static func writeHead<Sink: HeadSink>(
        _ response: HTTPResponse, framing: Framing, date: [UInt8], to sink: inout Sink
    ) {
        let status = response.status
        sink.write(literal: "HTTP/1.1 ")
        writeDecimal(status.code, to: &sink)
        sink.write(literal: " ")
        sink.write(status.reasonPhrase)
        sink.write(literal: "\r\n")
        for field in response.headers {
            // The server owns framing and Date (RFC 9112 §6; RFC 9110 §6.6.1).
            if isServerOwned(field.name) { continue }
            sink.write(field.name)
            sink.write(literal: ": ")
            sink.write(field.value)
            sink.write(literal: "\r\n")
        }
        // RFC 9110 §8.6: no Content-Length in 1xx/204 responses; for 304 it is optional and we omit it.
        if !status.forbidsBody {
            sink.write(literal: "Content-Length: ")
            writeDecimal(response.body.count, to: &sink)
            sink.write(literal: "\r\n")
        }
        sink.write(literal: "Date: ")
        date.withUnsafeBytes { sink.write($0) }
        sink.write(literal: "\r\n")
        if framing.close {
            sink.write(literal: "Connection: close\r\n")
        } else if framing.keepAliveHeader {
            sink.write(literal: "Connection: keep-alive\r\n")
        }
        sink.write(literal: "\r\n")
    }

    /// `Content-Length`, `Transfer-Encoding`, `Date` and `Connection` are written by the server.
    private static func isServerOwned(_ name: String) -> Bool {
        switch name.utf8.count {
        case 4: HTTPHeaders.namesEqual(name, "Date")
        case 10: HTTPHeaders.namesEqual(name, "Connection")
        case 14: HTTPHeaders.namesEqual(name, "Content-Length")
        case 17: HTTPHeaders.namesEqual(name, "Transfer-Encoding")
        default: false
        }
    }

    /// Writes the decimal digits of a non-negative integer (a negative one writes 0).
    private static func writeDecimal<Sink: HeadSink>(_ value: Int, to sink: inout Sink) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
            UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var v = max(0, value)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[19 - count] = UInt8(truncatingIfNeeded: 0x30 + v % 10)
                v /= 10
                count += 1
            } while v > 0 && count < 20
            sink.write(UnsafeRawBufferPointer(rebasing: d[(20 - count)...]))
        }
    }
}

/// Where ``ResponseEncoder`` writes a head.
private protocol HeadSink {
    mutating func write(_ bytes: UnsafeRawBufferPointer)
}

extension HeadSink {
    /// A literal. (A separate label: with `write(_:)` a literal would pick the `String` overload.)
    mutating func write(literal text: StaticString) {
        text.withUTF8Buffer { write(UnsafeRawBufferPointer($0)) }
    }

    mutating func write(_ text: String) {
        var text = text
        text.withUTF8 { write(UnsafeRawBufferPointer($0)) }
    }
}

/// A fixed buffer (stack memory); remembers an overflow instead of writing past the end.
private struct FixedSink: HeadSink {
    let buffer: UnsafeMutableRawBufferPointer
    var count = 0
    var overflowed = false

    init(_ buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }

    mutating func write(_ bytes: UnsafeRawBufferPointer) {
        guard !overflowed, bytes.count <= buffer.count - count else {
            overflowed = true
            return
        }
        if let source = bytes.baseAddress, let target = buffer.baseAddress {
            (target + count).copyMemory(from: source, byteCount: bytes.count)
        }
        count += bytes.count
    }
}

/// A growing array.
private struct ArraySink: HeadSink {
    var bytes: [UInt8]

    mutating func write(_ raw: UnsafeRawBufferPointer) { bytes.append(contentsOf: raw) }
}

/// Prebuilt server-generated error responses (docs/http.md §18): a fixed problem+json body,
/// `Content-Length`, `Connection: close`, `Cache-Control: no-store`, and nothing from the request.
/// Only the `Date` line is added per use. The 413's body states the body limit in bytes.
struct ErrorResponses: Sendable {
    /// One prebuilt response, split around the `Date` line.
    private struct Template: Sendable {
        /// Status line and fixed headers.
        var prefix: [UInt8]
        /// The problem+json body.
        var body: [UInt8]
    }

    /// Templates by status code.
    private let templates: [Int: Template]
    /// `Retry-After` seconds for 503.
    private let retryAfterSeconds: Int
    /// The 413's detail: the limit, and how to raise it when the application says.
    private let contentTooLargeDetail: String

    /// The statuses the server itself generates.
    static let codes = [400, 404, 408, 413, 414, 417, 431, 500, 501, 503, 505]

    /// Builds every template once, at server creation.
    init(retryAfterSeconds: Int, maxBodyBytes: Int, contentTooLargeAdvice: String? = nil) {
        self.retryAfterSeconds = retryAfterSeconds
        let detail = "body: request bodies are limited to \(maxBodyBytes) bytes"
        self.contentTooLargeDetail = contentTooLargeAdvice.map { "\(detail); \($0)" } ?? detail
        var templates: [Int: Template] = [:]
        for code in ErrorResponses.codes {
            templates[code] = ErrorResponses.makeTemplate(
                code: code, retryAfterSeconds: retryAfterSeconds, contentTooLargeDetail: contentTooLargeDetail)
        }
        self.templates = templates
    }

    /// The template for `code`: problem body, length, no-store, close (and Retry-After for 503).
    private static func makeTemplate(code: Int, retryAfterSeconds: Int, contentTooLargeDetail: String) -> Template {
        let status = HTTPStatus(code: code)
        let body = HTTPResponse.problemBody(
            status: code, title: status.reasonPhrase, detail: code == 413 ? contentTooLargeDetail : nil)
        var prefix: [UInt8] = []
        prefix.append(contentsOf: "HTTP/1.1 \(code) \(status.reasonPhrase)\r\n".utf8)
        prefix.append(contentsOf: "Content-Type: application/problem+json\r\n".utf8)
        prefix.append(contentsOf: "Content-Length: \(body.count)\r\n".utf8)
        prefix.append(contentsOf: "Cache-Control: no-store\r\n".utf8)
        if code == 503 { prefix.append(contentsOf: "Retry-After: \(max(0, retryAfterSeconds))\r\n".utf8) }
        prefix.append(contentsOf: "Connection: close\r\n".utf8)
        return Template(prefix: prefix, body: body)
    }

    /// Appends the complete response (head and body) for `code` to `out`.
    func append(code: Int, date: [UInt8], to out: inout [UInt8]) {
        let template = templates[code]
            ?? ErrorResponses.makeTemplate(
                code: code, retryAfterSeconds: retryAfterSeconds, contentTooLargeDetail: contentTooLargeDetail)
        out.append(contentsOf: template.prefix)
        out.append(contentsOf: "Date: ".utf8)
        out.append(contentsOf: date)
        out.append(contentsOf: "\r\n\r\n".utf8)
        out.append(contentsOf: template.body)
    }

    /// The complete response bytes for `code`.
    func bytes(code: Int, date: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        append(code: code, date: date, to: &out)
        return out
    }
}
