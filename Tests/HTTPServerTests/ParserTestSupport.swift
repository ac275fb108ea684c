// SPDX-License-Identifier: Apache-2.0
import HTTPServer

/// A comparable summary of one parser event.
enum Outcome: Equatable, CustomStringConvertible {
    case head(HTTPRequestHead)
    case request(method: HTTPMethod, target: String, version: HTTPVersion, headers: HTTPHeaders, body: [UInt8], keepAlive: Bool)
    case error(HTTPParseError)

    var description: String {
        switch self {
        case .head(let h): "head(\(h.method) \(h.target))"
        case .request(let m, let t, _, _, let b, _): "request(\(m) \(t), \(b.count) body bytes)"
        case .error(let e): "error(\(e))"
        }
    }
}

extension Array where Element == UInt8 {
    /// The bytes of `text` (tests spell requests as Swift strings with explicit `\r\n`).
    init(_ text: String) { self = Array(text.utf8) }
}

/// Feeds `chunks` in order, draining events after each, and returns every event until the first error.
func parse(_ chunks: [[UInt8]], configuration: HTTPServerConfiguration = HTTPServerConfiguration()) -> [Outcome] {
    var parser = HTTPRequestParser(configuration: configuration)
    var outcomes: [Outcome] = []
    for chunk in chunks {
        parser.append(chunk)
        events: while true {
            switch parser.next() {
            case .needMoreData:
                break events
            case .head(let head):
                outcomes.append(.head(head))
            case .request(let r):
                outcomes.append(
                    .request(method: r.method, target: r.target, version: r.version, headers: r.headers, body: r.body, keepAlive: r.keepAlive))
            case .error(let error):
                outcomes.append(.error(error))
                return outcomes
            }
        }
    }
    return outcomes
}

/// Parses `text` in one chunk.
func parse(_ text: String, configuration: HTTPServerConfiguration = HTTPServerConfiguration()) -> [Outcome] {
    parse([[UInt8](text)], configuration: configuration)
}

/// The error the parser reports for `text`, or nil if it reports none.
func parseError(_ text: String, configuration: HTTPServerConfiguration = HTTPServerConfiguration()) -> HTTPParseError? {
    parseError([UInt8](text), configuration: configuration)
}

/// The error the parser reports for `bytes`, or nil if it reports none.
func parseError(_ bytes: [UInt8], configuration: HTTPServerConfiguration = HTTPServerConfiguration()) -> HTTPParseError? {
    if case .error(let e)? = parse([bytes], configuration: configuration).last { return e }
    return nil
}

/// The status code the parser's error maps to, or nil when the bytes were accepted (or incomplete).
func statusFor(_ text: String, configuration: HTTPServerConfiguration = HTTPServerConfiguration()) -> Int? {
    parseError(text, configuration: configuration)?.status.code
}

/// The single complete request parsed from `text`, or nil.
func onlyRequest(_ text: String, configuration: HTTPServerConfiguration = HTTPServerConfiguration())
    -> (head: HTTPRequestHead, body: [UInt8])?
{
    let outcomes = parse(text, configuration: configuration)
    guard outcomes.count == 2, case .head(let head) = outcomes[0], case .request(_, _, _, _, let body, _) = outcomes[1] else {
        return nil
    }
    return (head, body)
}
