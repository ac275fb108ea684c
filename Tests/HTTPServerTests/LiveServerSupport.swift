// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Glibc
import HTTPServer
import Logging
import Synchronization
import Testing

extension HTTPServerConfiguration {
    /// The base configuration of the live tests: every connection and handler deadline is ten
    /// minutes, so none fires unless a test shortens it on purpose. With the whole suite running
    /// in parallel on two loaded CPUs, a test task can wait tens of seconds for a cooperative
    /// thread between two steps, while the server (on its own pool) keeps time; default deadlines
    /// (10 s, 30 s) would then close connections the test is about to use.
    static var forTests: HTTPServerConfiguration {
        HTTPServerConfiguration(
            headerTimeout: .seconds(600), idleTimeout: .seconds(600), bodyInactivityTimeout: .seconds(600),
            writeStallTimeout: .seconds(600), handlerTimeout: .seconds(600), lingerTimeout: .seconds(2))
    }
}

/// Starts a server on 127.0.0.1 port 0, runs `body` with it, then drains it (always).
func withServer<T>(
    _ configuration: HTTPServerConfiguration = .forTests,
    state: HTTPServerState = HTTPServerState(),
    handler: any HTTPHandler,
    _ body: (HTTPServer) async throws -> T
) async throws -> T {
    var configuration = configuration
    configuration.host = "127.0.0.1"
    configuration.port = 0
    configuration.logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
    let server = HTTPServer(configuration: configuration, state: state, handler: handler)
    try server.start()
    do {
        let result = try await body(server)
        await server.shutdown()
        return result
    } catch {
        await server.shutdown()
        throw error
    }
}

/// A handler that answers `200 <target>` for every request (and the body length in `X-Body-Length`).
let echoTargetHandler = HTTPClosureHandler { request in
    HTTPResponse(status: .ok, text: request.target, headers: ["X-Body-Length": String(request.body.count)])
}

/// A parsed response as seen on the wire.
struct WireResponse: Sendable {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    var text: String { String(decoding: body, as: UTF8.self) }
}

enum TestClientError: Error {
    case connectFailed(Int32)
    case malformedResponse(String)
}

/// Runs blocking socket work on a thread of its own (a fresh serial queue of Dispatch's overcommit
/// pool), never on Swift's cooperative pool: that pool has one thread per CPU and is shared by every
/// test running in parallel, so two tests blocked in `recv` on a 2-CPU machine would stall all the
/// others, including the ones whose progress (opening a gate) the blocked ones wait for.
func offCooperativePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue(label: "TestClient.blocking").async {
            continuation.resume(with: Result { try work() })
        }
    }
}

/// A minimal blocking HTTP client over a raw socket, with a generous receive timeout so a broken
/// server fails the test instead of hanging it, while a slow (loaded, sanitized) one still passes.
/// Reads are `async` and run off the cooperative pool (``offCooperativePool(_:)``).
///
/// `@unchecked Sendable`: each client is used by one test at a time, one call at a time.
final class TestClient: @unchecked Sendable {
    let fd: Int32
    private var buffer: [UInt8] = []
    private(set) var sawEOF = false

    /// Connects to 127.0.0.1:`port`, from the loopback address `source` when given (another
    /// 127.x.y.z is another client to the server).
    init(port: Int, receiveTimeoutSeconds: Int = 30, source: String? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard bound == 0 else {
                let code = errno
                Glibc.close(fd)
                throw TestClientError.connectFailed(code)
            }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            Glibc.close(fd)
            throw TestClientError.connectFailed(code)
        }
        var timeout = timeval(tv_sec: receiveTimeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { Glibc.close(fd) }

    func send(_ text: String) { send([UInt8](text.utf8)) }

    func send(_ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    func shutdownWrite() { Glibc.shutdown(fd, Int32(SHUT_WR)) }

    /// Reads more bytes into the buffer; false on EOF, error or timeout.
    @discardableResult
    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 {
            buffer.append(contentsOf: chunk[0..<n])
            return true
        }
        if n == 0 { sawEOF = true }
        return false
    }

    /// Reads exactly `count` raw bytes (or fewer on EOF/timeout).
    func readBytes(_ count: Int) async -> [UInt8] {
        (try? await offCooperativePool { self.blockingReadBytes(count) }) ?? []
    }

    /// Reads one response; `isHead` means the request was HEAD (no body despite Content-Length).
    func readResponse(isHead: Bool = false) async throws -> WireResponse {
        try await offCooperativePool { try self.blockingReadResponse(isHead: isHead) }
    }

    /// True once the server has closed the connection (EOF; pending bytes are discarded); false if
    /// the receive timeout passes first or the connection is reset.
    func waitForEOF() async -> Bool {
        (try? await offCooperativePool { self.blockingWaitForEOF() }) ?? false
    }

    private func blockingReadBytes(_ count: Int) -> [UInt8] {
        while buffer.count < count && fill() {}
        let n = min(count, buffer.count)
        defer { buffer.removeFirst(n) }
        return Array(buffer[0..<n])
    }

    private func blockingReadResponse(isHead: Bool) throws -> WireResponse {
        let terminator: [UInt8] = [13, 10, 13, 10]
        var headEnd: Int?
        while headEnd == nil {
            if let range = firstRange(of: terminator) {
                headEnd = range
            } else if !fill() {
                throw TestClientError.malformedResponse("no complete head (\(buffer.count) bytes, eof \(sawEOF))")
            }
        }
        guard let headEnd else { throw TestClientError.malformedResponse("unreachable") }
        let headText = String(decoding: buffer[0..<headEnd], as: UTF8.self)
        buffer.removeFirst(headEnd + 4)
        var lines = headText.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0] == "HTTP/1.1", let status = Int(parts[1]) else {
            throw TestClientError.malformedResponse("status line \(statusLine)")
        }
        let headers = lines.map { line -> (String, String) in
            guard let colon = line.firstIndex(of: ":") else { return (line, "") }
            let value = line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
            return (String(line[..<colon]), String(value))
        }
        var response = WireResponse(status: status, headers: headers, body: [])
        if isHead || status == 204 || status == 304 || (100..<200).contains(status) { return response }
        let length = Int(response.header("Content-Length") ?? "0") ?? 0
        response.body = blockingReadBytes(length)
        guard response.body.count == length else {
            throw TestClientError.malformedResponse("body \(response.body.count) of \(length)")
        }
        return response
    }

    private func blockingWaitForEOF() -> Bool {
        buffer.removeAll()
        while fill() { buffer.removeAll() }
        return sawEOF
    }

    private func firstRange(of needle: [UInt8]) -> Int? {
        guard buffer.count >= needle.count else { return nil }
        for i in 0...(buffer.count - needle.count) where buffer[i] == needle[0] {
            if Array(buffer[i..<(i + needle.count)]) == needle { return i }
        }
        return nil
    }
}

/// Sends three requests in one write (a GET, a POST with a 3-byte body, a GET) and expects the
/// answers of an echo-target handler (``echoTargetHandler``'s responses), in order.
func expectPipelinedRequestsAnsweredInOrder(_ client: TestClient) async throws {
    client.send(
        "GET /first HTTP/1.1\r\nHost: x\r\n\r\nPOST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            + "GET /third HTTP/1.1\r\nHost: x\r\n\r\n")
    #expect(try await client.readResponse().text == "/first")
    let second = try await client.readResponse()
    #expect(second.text == "/second")
    #expect(second.header("X-Body-Length") == "3")
    #expect(try await client.readResponse().text == "/third")
}

/// Sends two requests in one write, half-closes, and expects both echo answers, then EOF.
func expectPipelinedRequestsBeforeHalfCloseAnswered(_ client: TestClient) async throws {
    client.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    client.shutdownWrite()
    #expect(try await client.readResponse().text == "/a")
    #expect(try await client.readResponse().text == "/b")
    #expect(await client.waitForEOF())
}

/// `size` bytes of a 251-byte cycle (a prime, so a misplaced chunk cannot line up), built by
/// whole-chunk appends: per-byte loops in debug or sanitized builds would take seconds.
func cyclicPattern(size: Int) -> [UInt8] {
    let cycle = (0..<251).map { UInt8($0) }
    var pattern: [UInt8] = []
    pattern.reserveCapacity(size)
    while pattern.count < size { pattern.append(contentsOf: cycle.prefix(size - pattern.count)) }
    return pattern
}

/// Byte-wise equality via `memcmp` (fast even in debug and sanitized builds).
func sameBytes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    return a.withUnsafeBytes { x in
        b.withUnsafeBytes { y in
            guard let p = x.baseAddress, let q = y.baseAddress else { return true }  // both empty
            return memcmp(p, q, x.count) == 0
        }
    }
}

/// A thread-safe gate handlers can block on until a test opens it.
final class Gate: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    private let opened = Atomic<Bool>(false)
    let entered = Atomic<Int>(0)

    /// Called by handlers: counts the entry and blocks until `open()`.
    func pass() {
        entered.wrappingAdd(1, ordering: .sequentiallyConsistent)
        if opened.load(ordering: .sequentiallyConsistent) { return }
        semaphore.wait()
        semaphore.signal()  // Let the next waiter through too.
    }

    func open() {
        opened.store(true, ordering: .sequentiallyConsistent)
        semaphore.signal()
    }

    /// Waits (polling, bounded) until at least `count` handlers entered.
    func waitForEntries(_ count: Int, timeoutSeconds: Double = 30) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(timeoutSeconds)
        while entered.load(ordering: .sequentiallyConsistent) < count {
            if ContinuousClock.now > deadline { return false }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return true
    }
}

/// Polls `condition` until it holds or the bound passes (for conditions with no event to wait on).
func eventually(timeoutSeconds: Double = 30, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(timeoutSeconds)
    while !condition() {
        if ContinuousClock.now > deadline { return false }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return true
}
