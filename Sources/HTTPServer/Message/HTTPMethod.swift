// SPDX-License-Identifier: Apache-2.0

/// The request methods this server implements. Any other method token gets 501 Not Implemented
/// (RFC 9110 §9.1), so handlers can switch over this enum exhaustively.
///
/// `CONNECT` and `TRACE` are deliberately absent: we only serve origin-form targets and never
/// reflect requests.
public enum HTTPMethod: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// `GET` (RFC 9110 §9.3.1).
    case get = "GET"
    /// `HEAD`: like GET, but the server never sends the body (RFC 9110 §9.3.2).
    case head = "HEAD"
    /// `POST` (RFC 9110 §9.3.3).
    case post = "POST"
    /// `PUT` (RFC 9110 §9.3.4).
    case put = "PUT"
    /// `DELETE` (RFC 9110 §9.3.5).
    case delete = "DELETE"
    /// `PATCH` (RFC 5789).
    case patch = "PATCH"
    /// `OPTIONS` (RFC 9110 §9.3.7); the only method allowed with the `*` target.
    case options = "OPTIONS"

    /// The method token, e.g. `GET`.
    public var description: String { rawValue }

    /// Matches a method token byte for byte (methods are case-sensitive, RFC 9110 §9.1).
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> HTTPMethod? {
        @inline(__always) func eq(_ s: StaticString) -> Bool {
            guard s.utf8CodeUnitCount == bytes.count else { return false }
            let p = s.utf8Start
            for i in 0..<bytes.count where p[i] != bytes[i] { return false }
            return true
        }
        switch bytes.count {
        case 3: return eq("GET") ? .get : eq("PUT") ? .put : nil
        case 4: return eq("HEAD") ? .head : eq("POST") ? .post : nil
        case 5: return eq("PATCH") ? .patch : nil
        case 6: return eq("DELETE") ? .delete : nil
        case 7: return eq("OPTIONS") ? .options : nil
        default: return nil
        }
    }
}

/// The two protocol versions this server speaks. Anything else is rejected by the parser:
/// a major version other than 1 (or an unsupported minor) with 505, malformed text with 400.
public enum HTTPVersion: Sendable, Hashable, CustomStringConvertible {
    /// `HTTP/1.0`: connections close unless the client sends `Connection: keep-alive`.
    case http1_0
    /// `HTTP/1.1`: connections persist unless either side sends `Connection: close`.
    case http1_1

    /// `HTTP/1.0` or `HTTP/1.1`.
    public var description: String {
        switch self {
        case .http1_0: "HTTP/1.0"
        case .http1_1: "HTTP/1.1"
        }
    }
}
