// SPDX-License-Identifier: Apache-2.0

/// A complete response produced by an ``HTTPHandler``.
///
/// The server owns framing: it always writes `Content-Length` (omitted for 204 and 304), `Date`,
/// and `Connection` when it closes; handler-supplied `Content-Length`, `Transfer-Encoding` and
/// `Date` fields are replaced. A handler may send `Connection: close` to end the connection after
/// this response. Header names must be tokens and values must not contain CR, LF or NUL; a
/// response that breaks this rule is replaced by a 500 (response splitting guard, RFC 9112 §4).
///
/// ```swift
/// HTTPResponse(status: .ok, text: "ok")
/// HTTPResponse(status: .created, json: #"{"id":"s1"}"#, headers: ["Location": "/sessions/s1"])
/// HTTPResponse.problem(.notFound, detail: "no such session")
/// ```
public struct HTTPResponse: Sendable {
    /// The status line's code and reason phrase.
    public var status: HTTPStatus
    /// Header fields, written in order.
    public var headers: HTTPHeaders
    /// The body. Not sent for `HEAD` requests or 204/304 responses (`Content-Length` still
    /// describes it for `HEAD`).
    public var body: [UInt8]

    /// Creates a response with raw body bytes.
    public init(status: HTTPStatus = .ok, headers: HTTPHeaders = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A `text/plain; charset=utf-8` response.
    public init(status: HTTPStatus = .ok, text: String, headers: HTTPHeaders = [:]) {
        var headers = headers
        headers.replaceOrAdd(name: "Content-Type", value: "text/plain; charset=utf-8")
        self.init(status: status, headers: headers, body: Array(text.utf8))
    }

    /// An `application/json; charset=utf-8` response from already-encoded JSON bytes.
    public init(status: HTTPStatus = .ok, json: [UInt8], headers: HTTPHeaders = [:]) {
        var headers = headers
        headers.replaceOrAdd(name: "Content-Type", value: "application/json; charset=utf-8")
        self.init(status: status, headers: headers, body: json)
    }

    /// An `application/json; charset=utf-8` response from an already-encoded JSON string.
    public init(status: HTTPStatus = .ok, json: String, headers: HTTPHeaders = [:]) {
        self.init(status: status, json: Array(json.utf8), headers: headers)
    }

    /// An RFC 9457 problem response: `application/problem+json` with
    /// `{"type":"about:blank","title":…,"status":…}` plus `detail` when given. `title` defaults to
    /// the status's reason phrase. Adds `Cache-Control: no-store`.
    public static func problem(
        _ status: HTTPStatus, title: String? = nil, detail: String? = nil, headers: HTTPHeaders = [:]
    ) -> HTTPResponse {
        var headers = headers
        headers.replaceOrAdd(name: "Content-Type", value: "application/problem+json")
        headers.replaceOrAdd(name: "Cache-Control", value: "no-store")
        return HTTPResponse(
            status: status, headers: headers,
            body: problemBody(status: status.code, title: title ?? status.reasonPhrase, detail: detail))
    }

    /// The bytes of a problem document; strings are JSON-escaped (RFC 8259 §7).
    static func problemBody(status: Int, title: String, detail: String?) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(96)
        out.append(contentsOf: #"{"type":"about:blank","title":"#.utf8)
        appendJSONString(title, to: &out)
        out.append(contentsOf: #","status":"#.utf8)
        out.append(contentsOf: String(status).utf8)
        if let detail {
            out.append(contentsOf: #","detail":"#.utf8)
            appendJSONString(detail, to: &out)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// Appends `text` as a quoted JSON string.
    static func appendJSONString(_ text: String, to out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for b in text.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20, 0x7F:
                out.append(contentsOf: Array(#"\u00"#.utf8))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xF)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
