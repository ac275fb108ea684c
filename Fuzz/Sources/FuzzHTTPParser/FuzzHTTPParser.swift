// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the incremental HTTP/1.1 request parser (`HTTPRequestParser`).
//
// Invariants (a violation aborts, so libFuzzer saves the input):
//  1. Any bytes give a sequence of `.head` / `.request` events ending in `.needMoreData` or a
//     sticky `.error`; never a crash, and `next()` after an error repeats the same error.
//  2. Chunking does not matter (HTTPRequestParser docs, "the result never depends on how the
//     bytes were split"): the events for the whole input in one `append` equal the events for
//     the input split at an offset chosen from the input, and byte by byte for short inputs.
//  3. Every accepted head/request satisfies the configured limits and the grammar the parser
//     promises (token names, no CR/LF/NUL in values, framing consistent with the body, one
//     `.head` before each `.request` with the same fields).
// Two configurations run on each input: the defaults and tiny limits (so that every limit is
// reachable with short inputs). Seeds: Fuzz/Corpus/FuzzHTTPParser; dictionary: Fuzz/http.dict.
import HTTPServer

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

private func fail(_ message: String) -> Never {
    var text = "FuzzHTTPParser invariant violated: \(message)\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    abort()
}

private let configurations: [(name: String, config: HTTPServerConfiguration)] = [
    ("default", HTTPServerConfiguration()),
    (
        "tiny",
        HTTPServerConfiguration(
            maxRequestLineBytes: 40, maxFieldLineBytes: 48, maxHeaderSectionBytes: 160, maxFieldCount: 6,
            maxBodyBytes: 64, maxChunkLineBytes: 12)
    ),
]

/// An event in comparable form (`HTTPRequest` is not `Equatable`).
private enum Event: Equatable, CustomStringConvertible {
    case head(HTTPRequestHead)
    case request(method: HTTPMethod, target: String, version: HTTPVersion, headers: HTTPHeaders, body: [UInt8],
                 keepAlive: Bool)
    case error(HTTPParseError)

    var description: String {
        switch self {
        case .head(let h): return "head(\(h.method) \(h.target.utf8.count)B \(h.headers.count) fields \(h.framing))"
        case .request(let m, let t, _, let h, let b, let k):
            return "request(\(m) \(t.utf8.count)B \(h.count) fields body \(b.count)B keepAlive \(k))"
        case .error(let e): return "error(\(e))"
        }
    }
}

/// Drains `parser` until it needs more data or fails; appends the events to `events`.
/// Returns false once the parser has failed.
private func drain(_ parser: inout HTTPRequestParser, into events: inout [Event]) -> Bool {
    // Bounded: every event consumes input or ends the loop; the bound only guards the harness.
    for _ in 0..<100_000 {
        switch parser.next() {
        case .needMoreData:
            return true
        case .head(let head):
            events.append(.head(head))
        case .request(let r):
            events.append(.request(method: r.method, target: r.target, version: r.version, headers: r.headers,
                                   body: r.body, keepAlive: r.keepAlive))
        case .error(let error):
            events.append(.error(error))
            // Sticky: the same error again, whatever is appended.
            parser.append([0x0d, 0x0a])
            guard case .error(let again) = parser.next(), again == error else {
                fail("error \(error) is not sticky")
            }
            return false
        }
    }
    fail("next() produced 100000 events without needing data")
}

/// Parses `input` fed as the given chunks.
private func parse(_ input: [UInt8], cuts: [Int], config: HTTPServerConfiguration) -> [Event] {
    var parser = HTTPRequestParser(configuration: config)
    var events: [Event] = []
    var from = 0
    for cut in cuts + [input.count] where cut >= from {
        input[from..<cut].withUnsafeBytes { parser.append($0) }
        from = cut
        guard drain(&parser, into: &events) else { break }
    }
    return events
}

private func isTokenByte(_ b: UInt8) -> Bool {
    switch b {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    default:
        return Array("!#$%&'*+-.^_`|~".utf8).contains(b)
    }
}

/// The fewest raw bytes `text` can have come from: the parser decodes values as UTF-8 and turns
/// each invalid byte into U+FFFD (3 UTF-8 bytes), so count U+FFFD as 1.
private func rawByteLowerBound(_ text: String) -> Int {
    text.unicodeScalars.reduce(0) { $0 + ($1 == "\u{FFFD}" ? 1 : String($1).utf8.count) }
}

/// Invariant 3 for one configuration's events.
private func checkLimits(_ events: [Event], _ c: HTTPServerConfiguration, _ name: String) {
    var pendingHead: HTTPRequestHead?
    for event in events {
        switch event {
        case .error:
            break
        case .head(let h):
            guard pendingHead == nil else { fail("[\(name)] two heads without a request") }
            pendingHead = h
            // `METHOD SP target SP HTTP/1.x`
            let lineBytes = h.method.rawValue.utf8.count + 1 + h.target.utf8.count + 1 + 8
            guard lineBytes <= c.maxRequestLineBytes else {
                fail("[\(name)] request line of \(lineBytes) bytes accepted (limit \(c.maxRequestLineBytes))")
            }
            guard !h.target.isEmpty, h.target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
                fail("[\(name)] target with a control, space or non-ASCII byte accepted")
            }
            guard h.headers.count <= c.maxFieldCount else {
                fail("[\(name)] \(h.headers.count) fields accepted (limit \(c.maxFieldCount))")
            }
            var section = 0
            for field in h.headers {
                let lineBytes = field.name.utf8.count + 1 + rawByteLowerBound(field.value)
                guard lineBytes <= c.maxFieldLineBytes else {
                    fail("[\(name)] field line of at least \(lineBytes) bytes accepted (limit \(c.maxFieldLineBytes))")
                }
                section += lineBytes + 2
                guard !field.name.isEmpty, field.name.utf8.allSatisfy(isTokenByte) else {
                    fail("[\(name)] non-token field name accepted")
                }
                guard field.value.utf8.allSatisfy({ $0 != 0 && $0 != 0x0d && $0 != 0x0a && $0 != 0x7f }) else {
                    fail("[\(name)] field value with NUL/CR/LF/DEL accepted")
                }
                guard field.value.utf8.first != 0x20, field.value.utf8.last != 0x20,
                    field.value.utf8.first != 0x09, field.value.utf8.last != 0x09
                else { fail("[\(name)] field value keeps surrounding whitespace") }
            }
            guard section <= c.maxHeaderSectionBytes else {
                fail("[\(name)] header section of at least \(section) bytes accepted (limit \(c.maxHeaderSectionBytes))")
            }
            // RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host.
            if h.version == .http1_1, h.headers.values(for: "Host").count != 1 {
                fail("[\(name)] HTTP/1.1 request with \(h.headers.values(for: "Host").count) Host fields accepted")
            }
            let te = h.headers.values(for: "Transfer-Encoding")
            let cl = h.headers.values(for: "Content-Length")
            guard te.isEmpty || cl.isEmpty else { fail("[\(name)] Transfer-Encoding with Content-Length accepted") }
            guard cl.count <= 1, te.count <= 1 else { fail("[\(name)] repeated framing header accepted") }
            switch h.framing {
            case .none: guard te.isEmpty, cl.isEmpty else { fail("[\(name)] framing .none with framing headers") }
            case .contentLength(let n):
                guard n >= 0, n <= c.maxBodyBytes, cl.first == String(n) || cl.first.map({ Int($0) == n }) == true
                else { fail("[\(name)] Content-Length framing \(n) inconsistent or over the limit") }
            case .chunked: guard te.first?.lowercased() == "chunked" else { fail("[\(name)] chunked framing without chunked") }
            }
        case .request(let method, let target, let version, let headers, let body, _):
            guard let h = pendingHead else { fail("[\(name)] request without a head") }
            pendingHead = nil
            guard h.method == method, h.target == target, h.version == version, h.headers == headers else {
                fail("[\(name)] request differs from its head")
            }
            guard body.count <= c.maxBodyBytes else {
                fail("[\(name)] body of \(body.count) bytes accepted (limit \(c.maxBodyBytes))")
            }
            switch h.framing {
            case .none: guard body.isEmpty else { fail("[\(name)] body without framing") }
            case .contentLength(let n): guard body.count == n else { fail("[\(name)] body \(body.count) != Content-Length \(n)") }
            case .chunked: break
            }
        }
    }
}

/// A cheap deterministic hash of the input, to pick the split offset.
private func mix(_ bytes: [UInt8]) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}

/// libFuzzer entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafeRawPointer, _ size: Int) -> CInt {
    let input = Array(UnsafeRawBufferPointer(start: data, count: size))
    let h = mix(input)
    let split = input.isEmpty ? 0 : Int(h % UInt64(input.count + 1))
    let secondSplit = input.isEmpty ? 0 : Int((h >> 32) % UInt64(input.count + 1))
    for (name, config) in configurations {
        let whole = parse(input, cuts: [], config: config)
        checkLimits(whole, config, name)
        let two = parse(input, cuts: [min(split, secondSplit), max(split, secondSplit)], config: config)
        guard two == whole else {
            fail("[\(name)] split at \(split)/\(secondSplit) of \(input.count): \(two) != \(whole)")
        }
        if input.count <= 2048 {
            let bytewise = parse(input, cuts: Array(0..<input.count), config: config)
            guard bytewise == whole else {
                fail("[\(name)] byte by byte (\(input.count) bytes): \(bytewise) != \(whole)")
            }
        }
    }
    return 0
}
