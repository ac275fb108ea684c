// SPDX-License-Identifier: Apache-2.0

/// A validated request head, as produced by ``HTTPRequestParser`` before the body arrives.
///
/// Every field has already passed the parser's checks: the method is implemented, the target is
/// origin-form (or `*` for `OPTIONS`), the version is 1.0 or 1.1, header names are tokens, values
/// hold no control bytes, and the framing (`Content-Length` / `Transfer-Encoding`) is unambiguous.
public struct HTTPRequestHead: Sendable, Equatable {
    /// The request method.
    public var method: HTTPMethod
    /// The raw request-target: origin-form path plus optional `?query`, not percent-decoded.
    public var target: String
    /// The protocol version of the request.
    public var version: HTTPVersion
    /// Header fields in arrival order.
    public var headers: HTTPHeaders
    /// Whether the connection may carry another request after this one (RFC 9112 §9.3): HTTP/1.1
    /// unless `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    public var keepAlive: Bool
    /// HTTP/1.1 request with `Expect: 100-continue` (ignored on HTTP/1.0, RFC 9110 §10.1.1).
    public var expectsContinue: Bool
    /// The announced body framing.
    public var framing: HTTPBodyFraming
    /// The peer's address as `ip:port` (`[ip]:port` for IPv6), filled in by the server before it
    /// asks ``HTTPHandler/responseBeforeBody(_:)``; empty when unknown (and from the parser).
    public var remoteAddress: String = ""

    /// Creates a head; meant for tests and for callers that build requests by hand.
    public init(
        method: HTTPMethod,
        target: String,
        version: HTTPVersion = .http1_1,
        headers: HTTPHeaders = [:],
        keepAlive: Bool = true,
        expectsContinue: Bool = false,
        framing: HTTPBodyFraming = .none,
        remoteAddress: String = ""
    ) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.keepAlive = keepAlive
        self.expectsContinue = expectsContinue
        self.framing = framing
        self.remoteAddress = remoteAddress
    }
}

/// How a request body is delimited (RFC 9112 §6.3).
public enum HTTPBodyFraming: Sendable, Equatable {
    /// No `Content-Length` and no `Transfer-Encoding`: the body is empty.
    case none
    /// `Content-Length: n`.
    case contentLength(Int)
    /// `Transfer-Encoding: chunked`.
    case chunked

    /// True when body bytes follow the head.
    public var hasBody: Bool {
        switch self {
        case .none: false
        case .contentLength(let n): n > 0
        case .chunked: true
        }
    }
}

/// A complete request: the head plus its whole (de-chunked) body.
///
/// Handlers receive it; tests build it directly with
/// ``init(method:target:version:headers:body:remoteAddress:keepAlive:)``.
///
/// ```swift
/// let request = HTTPRequest(method: .get, target: "/sessions?limit=10")
/// request.path                  // "/sessions"
/// request.queryValue("limit")   // "10"
/// ```
public struct HTTPRequest: Sendable {
    /// The request method.
    public var method: HTTPMethod
    /// The raw request-target (path plus optional `?query`), not percent-decoded.
    public var target: String {
        didSet { queryOffset = Self.queryOffset(in: target) }
    }
    /// The protocol version of the request.
    public var version: HTTPVersion
    /// Header fields in arrival order, looked up case-insensitively.
    public var headers: HTTPHeaders
    /// The body after chunked decoding; empty when there is none. At most
    /// ``HTTPServerConfiguration/maxBodyBytes`` bytes.
    public var body: [UInt8]
    /// The peer's address as `ip:port` (`[ip]:port` for IPv6); empty when unknown.
    public var remoteAddress: String
    /// Whether the client allows the connection to stay open after this request.
    public var keepAlive: Bool

    /// Creates a request by hand (tests, direct `handle(_:)` calls).
    public init(
        method: HTTPMethod,
        target: String,
        version: HTTPVersion = .http1_1,
        headers: HTTPHeaders = [:],
        body: [UInt8] = [],
        remoteAddress: String = "",
        keepAlive: Bool = true
    ) {
        self.method = method
        self.target = target
        self.queryOffset = Self.queryOffset(in: target)
        self.version = version
        self.headers = headers
        self.body = body
        self.remoteAddress = remoteAddress
        self.keepAlive = keepAlive
    }

    /// Creates a request from a parsed head and its body; `remoteAddress` defaults to the head's.
    public init(head: HTTPRequestHead, body: [UInt8], remoteAddress: String? = nil) {
        self.init(
            method: head.method, target: head.target, version: head.version, headers: head.headers,
            body: body, remoteAddress: remoteAddress ?? head.remoteAddress, keepAlive: head.keepAlive)
    }

    /// The path part of the target (before `?`), still percent-encoded.
    public var path: Substring {
        guard let q = queryOffset else { return target[...] }
        return target[..<target.utf8.index(target.startIndex, offsetBy: q)]
    }

    /// The query part of the target (after the first `?`), or nil when there is no `?`.
    public var query: Substring? {
        guard let q = queryOffset else { return nil }
        return target[target.utf8.index(target.startIndex, offsetBy: q + 1)...]
    }

    /// The UTF-8 offset of the first `?` in ``target``, kept with it: `path` and `query` are
    /// read several times a request (the scans cost about 800 instructions an export).
    private var queryOffset: Int?

    /// Where the first `?` is. A scan of the contiguous bytes: the generic
    /// `utf8.firstIndex(of:)` steps `String.Index` by `String.Index`, about 25 instructions a byte.
    private static func queryOffset(in target: String) -> Int? {
        var target = target
        return target.withUTF8 { bytes in bytes.firstIndex(of: UInt8(ascii: "?")) }
    }

    /// The query as decoded `name=value` pairs in order (`application/x-www-form-urlencoded`
    /// rules: `+` is a space, `%XX` is a byte). Pairs whose encoding is invalid are skipped; a
    /// name without `=` gets an empty value.
    public var queryItems: [(name: String, value: String)] {
        guard let query else { return [] }
        var items: [(name: String, value: String)] = []
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let name: Substring, value: Substring
            if let eq = pair.firstIndex(of: "=") {
                name = pair[..<eq]
                value = pair[pair.index(after: eq)...]
            } else {
                name = pair
                value = ""
            }
            guard let n = HTTPRequest.percentDecode(name, plusAsSpace: true),
                let v = HTTPRequest.percentDecode(value, plusAsSpace: true)
            else { continue }
            items.append((name: n, value: v))
        }
        return items
    }

    /// The decoded value of the first query parameter called `name`, or nil.
    public func queryValue(_ name: String) -> String? {
        queryItems.first { $0.name == name }?.value
    }

    /// Percent-decodes `text` (RFC 3986 §2.1). Returns nil for a malformed escape or when the
    /// decoded bytes are not valid UTF-8. With `plusAsSpace`, `+` decodes to a space (form encoding).
    public static func percentDecode(_ text: Substring, plusAsSpace: Bool = false) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        var it = text.utf8.makeIterator()
        while let b = it.next() {
            switch b {
            case UInt8(ascii: "%"):
                guard let h = it.next(), let l = it.next(), let hv = hexValue(h), let lv = hexValue(l) else {
                    return nil
                }
                out.append(hv << 4 | lv)
            case UInt8(ascii: "+") where plusAsSpace:
                out.append(0x20)
            default:
                out.append(b)
            }
        }
        return String(validating: out, as: UTF8.self)
    }
}

/// The value of one ASCII hex digit, or nil.
@inline(__always)
func hexValue(_ b: UInt8) -> UInt8? {
    switch b {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): b - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): b - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): b - UInt8(ascii: "A") + 10
    default: nil
    }
}
