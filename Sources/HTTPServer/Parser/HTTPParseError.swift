// SPDX-License-Identifier: Apache-2.0

/// Why a request could not be parsed. Each case carries the status the server answers with
/// (``status``); after any of them the server sends that status and closes the connection.
///
/// Descriptions name the offending element but never contain request bytes.
public enum HTTPParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Request line is not `method SP origin-form SP HTTP/x.y` with single spaces (RFC 9112 §3). 400.
    case invalidRequestLine
    /// The method is a valid token but not one we implement (RFC 9110 §9.1). 501.
    case methodNotImplemented
    /// The request line is longer than ``HTTPServerConfiguration/maxRequestLineBytes`` (RFC 9112 §3). 414.
    case uriTooLong
    /// `HTTP/x.y` is well-formed but not 1.0 or 1.1 (RFC 9110 §15.6.6). 505.
    case versionNotSupported
    /// A line ended in a bare LF, or a CR was not followed by LF (RFC 9112 §2.2). 400.
    case invalidLineEnding
    /// A field line has whitespace before the colon, no colon, a non-token name, starts with
    /// whitespace (obs-fold), or holds a control byte in its value (RFC 9112 §5, RFC 9110 §5.5). 400.
    case invalidHeaderField
    /// One field line exceeds ``HTTPServerConfiguration/maxFieldLineBytes``. 431.
    case headerFieldTooLarge
    /// The header section (trailers included) exceeds ``HTTPServerConfiguration/maxHeaderSectionBytes``. 431.
    case headerSectionTooLarge
    /// More than ``HTTPServerConfiguration/maxFieldCount`` field lines (trailers included). 431.
    case tooManyHeaderFields
    /// HTTP/1.1 request without `Host`, with several `Host` fields, or with an invalid one (RFC 9112 §3.2). 400.
    case invalidHost
    /// `Content-Length` is not `1*DIGIT`, overflows, or appears more than once (RFC 9112 §6.3). 400.
    case invalidContentLength
    /// Both `Transfer-Encoding` and `Content-Length` (request smuggling, RFC 9112 §6.1/§11.2). 400.
    case transferEncodingWithContentLength
    /// `Transfer-Encoding` repeated, empty, or sent in an HTTP/1.0 request (RFC 9112 §6.1). 400.
    case invalidTransferEncoding
    /// `Transfer-Encoding` other than exactly `chunked` (RFC 9112 §6.1). 501.
    case transferEncodingNotImplemented
    /// A chunk-size line is malformed, overflows, or exceeds
    /// ``HTTPServerConfiguration/maxChunkLineBytes``; or chunk data is not followed by CRLF
    /// (RFC 9112 §7.1). 400.
    case invalidChunkedEncoding
    /// The declared or decoded body exceeds ``HTTPServerConfiguration/maxBodyBytes`` (RFC 9110 §15.5.14). 413.
    case contentTooLarge
    /// An `Expect` value other than `100-continue` on an HTTP/1.1 request (RFC 9110 §10.1.1). 417.
    case expectationFailed

    /// The status the server answers with.
    public var status: HTTPStatus {
        switch self {
        case .invalidRequestLine, .invalidLineEnding, .invalidHeaderField, .invalidHost,
            .invalidContentLength, .transferEncodingWithContentLength, .invalidTransferEncoding,
            .invalidChunkedEncoding:
            .badRequest
        case .methodNotImplemented, .transferEncodingNotImplemented: .notImplemented
        case .uriTooLong: .uriTooLong
        case .versionNotSupported: .httpVersionNotSupported
        case .headerFieldTooLarge, .headerSectionTooLarge, .tooManyHeaderFields: .requestHeaderFieldsTooLarge
        case .contentTooLarge: .contentTooLarge
        case .expectationFailed: .expectationFailed
        }
    }

    /// A short, byte-free explanation, suitable for logs.
    public var description: String {
        switch self {
        case .invalidRequestLine: "invalid request line"
        case .methodNotImplemented: "method not implemented"
        case .uriTooLong: "request line too long"
        case .versionNotSupported: "HTTP version not supported"
        case .invalidLineEnding: "line not terminated by CRLF"
        case .invalidHeaderField: "invalid header field line"
        case .headerFieldTooLarge: "header field line too long"
        case .headerSectionTooLarge: "header section too large"
        case .tooManyHeaderFields: "too many header fields"
        case .invalidHost: "missing, repeated or invalid Host"
        case .invalidContentLength: "invalid or repeated Content-Length"
        case .transferEncodingWithContentLength: "Transfer-Encoding together with Content-Length"
        case .invalidTransferEncoding: "invalid, repeated or HTTP/1.0 Transfer-Encoding"
        case .transferEncodingNotImplemented: "transfer coding not implemented"
        case .invalidChunkedEncoding: "invalid chunked framing"
        case .contentTooLarge: "request body too large"
        case .expectationFailed: "unsupported Expect value"
        }
    }
}
