// SPDX-License-Identifier: Apache-2.0

/// The request methods this server implements. Any other method token gets 501 Not Implemented
/// (RFC 9110 §9.1), so handlers can switch over this enum exhaustively.
///
/// `CONNECT` and `TRACE` are deliberately absent: we only serve origin-form targets and never
/// reflect requests.
public enum HTTPMethod: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case get = "GET"
    case head = "HEAD"
    case post = "POST"
    case put = "PUT"
    case delete = "DELETE"
    case patch = "PATCH"
    case options = "OPTIONS"

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

    public var description: String {
        switch self {
        case .http1_0: "HTTP/1.0"
        case .http1_1: "HTTP/1.1"
        }
    }
}
