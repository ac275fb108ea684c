// SPDX-License-Identifier: Apache-2.0
import Foundation
import FoundationNetworking
import Glibc
import HTTPServerTLS

/// A lease request in flight, cancellable from the main thread.
protocol LeaseRequest: Sendable {
    func cancel()
}

extension URLSessionDataTask: LeaseRequest {}

/// HTTPS to a vault whose certificate comes from a private CA (`SESSION_VAULT_CACERT`): one
/// HTTP/1.1 exchange per connection (`Connection: close`) over ``TLSClientContext``, each on its
/// own thread, its outcome posted like URLSession's.
///
/// Why not URLSession: on Linux it cannot be given a CA file. FoundationNetworking (libcurl
/// underneath) sets libcurl's CA bundle to the system's and offers no option for another; the
/// server-trust challenge of a `URLSessionDelegate` is never raised there (only a 401 raises a
/// challenge, and `URLProtectionSpace.serverTrust` is unsupported); its
/// `URLSessionCertificateAuthorityInfoFile` variable is read only on Android; and libcurl, given
/// its built-in bundle, ignores `SSL_CERT_FILE` (docs/leases.md, "TLS with a private CA").
/// So with a CA file the wrapper speaks HTTP/1.1 itself: the requests are its own three
/// (acquire, renew, release), the answers small JSON; the TLS and the certificate checks are
/// OpenSSL's (HTTPServerTLS). Without a CA file, URLSession is used as before.
struct CAFileHTTPS: Sendable {
    let context: TLSClientContext
    /// Answers larger than this are refused (a lease answer is well under 4 KiB).
    static let responseLimit = 1 << 20
    /// A response head larger than this is refused.
    static let headLimit = 64 * 1024

    /// Starts `request` on a new thread; `completion` runs on that thread.
    func start(_ request: URLRequest, completion: @escaping @Sendable (HTTPOutcome) -> Void) -> any LeaseRequest {
        let exchange = Exchange(
            method: request.httpMethod ?? "GET", url: request.url, headers: request.allHTTPHeaderFields ?? [:],
            body: request.httpBody, timeout: request.timeoutInterval)
        let socket = CancellableSocket()
        let context = self.context
        let thread = Thread {
            completion(exchange.perform(context: context, socket: socket))
        }
        thread.name = "https"
        thread.start()
        return socket
    }
}

/// The descriptor of one exchange, which the main thread may shut down (cancel) while the
/// exchange's thread blocks on it. The descriptor is closed only under the lock, so a cancel never
/// reaches a number reused by another socket.
final class CancellableSocket: LeaseRequest, @unchecked Sendable {
    // `@unchecked`: `fd` and `cancelled` are only touched under `lock`.
    private let lock = NSLock()
    private var fd: Int32 = -1
    private var cancelled = false

    func cancel() {
        lock.lock()
        defer { lock.unlock() }
        cancelled = true
        if fd >= 0 { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
    }

    /// Takes `descriptor` over; false (and closed) if the exchange was cancelled already.
    func adopt(_ descriptor: Int32) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard !cancelled else {
            Glibc.close(descriptor)
            return false
        }
        fd = descriptor
        return true
    }

    var isCancelled: Bool {
        lock.lock()
        defer { lock.unlock() }
        return cancelled
    }

    func close() {
        lock.lock()
        defer { lock.unlock() }
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }
}

/// One request and its answer.
struct Exchange: Sendable {
    let method: String
    let url: URL?
    let headers: [String: String]
    let body: Data?
    let timeout: Double

    struct Failure: Error {
        let text: String
        let kind: TransportFailure
        init(_ text: String, _ kind: TransportFailure = .unreachable) {
            self.text = text
            self.kind = kind
        }
    }

    func perform(context: TLSClientContext, socket: CancellableSocket) -> HTTPOutcome {
        defer { socket.close() }
        do {
            return try run(context: context, socket: socket)
        } catch {
            return .failure(socket.isCancelled ? "cancelled" : error.text, error.kind)
        }
    }

    private func run(context: TLSClientContext, socket: CancellableSocket) throws(Failure) -> HTTPOutcome {
        let deadline = MonotonicClock.now() + max(timeout, 0.1)
        guard let url, let components = URLComponents(url: url, resolvingAgainstBaseURL: false),
            var host = components.host, !host.isEmpty
        else { throw Failure("the vault's address has no host") }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let port = components.port ?? 443
        let fd = try Self.connect(host: host, port: port, deadline: deadline)
        guard socket.adopt(fd) else { throw Failure("cancelled") }
        try Self.setTimeouts(fd, until: deadline)
        let tls: TLSClientConnection
        do {
            tls = try context.connect(fileDescriptor: fd, host: host)
        } catch {
            if error.kind == .untrusted {
                throw Failure(
                    "\(error.reason) (checked against SESSION_VAULT_CACERT \(context.caFile) and the host \(host))",
                    .untrusted)
            }
            throw Failure("TLS with \(host):\(port): \(error.reason)")
        }
        defer { tls.close() }

        // The request: origin form, Host as in the address, our headers, a body length, close.
        var target = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        if let query = components.percentEncodedQuery { target += "?" + query }
        let hostHeader = (host.contains(":") ? "[\(host)]" : host) + (components.port.map { ":\($0)" } ?? "")
        var head = "\(method) \(target) HTTP/1.1\r\nHost: \(hostHeader)\r\n"
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) {
            let lower = name.lowercased()
            guard lower != "host", lower != "content-length", lower != "connection" else { continue }
            guard !(name + value).contains(where: { $0 == "\r" || $0 == "\n" }) else {
                throw Failure("a request header holds a line break")
            }
            head += "\(name): \(value)\r\n"
        }
        if body != nil || method == "POST" || method == "PUT" { head += "Content-Length: \(body?.count ?? 0)\r\n" }
        head += "Connection: close\r\n\r\n"
        var bytes = Array(head.utf8)
        if let body { bytes += body }
        let unsent = bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> TLSClientError? in
            do throws(TLSClientError) {
                try tls.write(raw)
                return nil
            } catch {
                return error
            }
        }
        if let unsent { throw Failure("sending to \(host):\(port): \(unsent.reason)") }
        var reader = ResponseReader(tls: tls, fd: fd, deadline: deadline)
        return try reader.response(to: method)
    }

    /// A connected, blocking socket to `host`:`port` (every address `getaddrinfo` gives, in order).
    static func connect(host: String, port: Int, deadline: Double) throws(Failure) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo(host, String(port), &hints, &list)
        guard resolved == 0, let first = list else {
            throw Failure("cannot resolve \(host): \(String(cString: gai_strerror(resolved)))")
        }
        defer { freeaddrinfo(first) }
        var lastError = "no address"
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            entry = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else {
                lastError = String(cString: strerror(errno))
                continue
            }
            var connected = Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0
            if !connected && errno == EINPROGRESS {
                var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let wait = Int32(max(1, min(Double(Int32.max), (deadline - MonotonicClock.now()) * 1000)))
                var code: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                if poll(&poller, 1, wait) == 1, getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length) == 0 {
                    connected = code == 0
                    if code != 0 { lastError = String(cString: strerror(code)) }
                } else {
                    lastError = "connection timed out"
                }
            } else if !connected {
                lastError = String(cString: strerror(errno))
            }
            if connected {
                let flags = fcntl(fd, F_GETFL)
                if flags >= 0, fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0 { return fd }
                lastError = String(cString: strerror(errno))
            }
            Glibc.close(fd)
            if MonotonicClock.now() >= deadline { break }
        }
        throw Failure("cannot connect to \(host):\(port): \(lastError)")
    }

    /// Each send and receive on `fd` blocks at most until `deadline`.
    static func setTimeouts(_ fd: Int32, until deadline: Double) throws(Failure) {
        let left = deadline - MonotonicClock.now()
        guard left > 0 else { throw Failure("timed out") }
        var value = timeval(tv_sec: Int(left), tv_usec: Int((left - left.rounded(.down)) * 1_000_000))
        if value.tv_sec == 0 && value.tv_usec == 0 { value.tv_usec = 1000 }
        let size = socklen_t(MemoryLayout<timeval>.size)
        guard setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, size) == 0,
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, size) == 0
        else { throw Failure("cannot set the socket's timeouts: \(String(cString: strerror(errno)))") }
    }
}

/// Reads one HTTP/1.1 response (RFC 9112): status line, fields, a body framed by chunked
/// transfer coding, Content-Length or the end of the connection. Interim 1xx answers are skipped.
struct ResponseReader {
    let tls: TLSClientConnection
    let fd: Int32
    let deadline: Double
    private var buffer: [UInt8] = []
    private var ended = false

    init(tls: TLSClientConnection, fd: Int32, deadline: Double) {
        self.tls = tls
        self.fd = fd
        self.deadline = deadline
    }

    typealias Failure = Exchange.Failure

    mutating func response(to method: String) throws(Failure) -> HTTPOutcome {
        while true {
            let (status, headers) = try head()
            if (100...199).contains(status) {
                if status == 101 { throw Failure("the vault switched protocols (101)") }
                continue
            }
            let body: [UInt8]
            if method == "HEAD" || status == 204 || status == 304 {
                body = []
            } else if let coding = headers["transfer-encoding"] {
                guard coding.lowercased().split(separator: ",").last?.trimmingCharacters(in: .whitespaces) == "chunked"
                else { throw Failure("the vault's answer has an unknown transfer coding") }
                body = try chunked()
            } else if let length = headers["content-length"] {
                guard let count = Int(length), count >= 0, length.allSatisfy(\.isASCII),
                    length.allSatisfy({ $0.isNumber })
                else { throw Failure("the vault's answer has an invalid Content-Length") }
                guard count <= CAFileHTTPS.responseLimit else { throw Failure("the vault's answer is too large") }
                body = try exactly(count)
            } else {
                body = try toEnd()
            }
            return .response(status: status, headers: headers, body: Data(body))
        }
    }

    /// The status and the fields (names lowercased; repeated fields joined with ", ").
    private mutating func head() throws(Failure) -> (Int, [String: String]) {
        let statusLine = try line(limit: CAFileHTTPS.headLimit)
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1].count == 3, let status = Int(parts[1]),
            (100...599).contains(status)
        else { throw Failure("the vault's answer is not HTTP/1.1") }
        var headers: [String: String] = [:]
        var size = statusLine.utf8.count
        while true {
            let field = try line(limit: CAFileHTTPS.headLimit)
            if field.isEmpty { break }
            size += field.utf8.count
            guard size <= CAFileHTTPS.headLimit else { throw Failure("the vault's answer head is too large") }
            guard let colon = field.firstIndex(of: ":") else { throw Failure("the vault's answer has a malformed field") }
            let name = field[..<colon].lowercased()
            let value = field[field.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            headers[name] = headers[name].map { "\($0), \(value)" } ?? value
        }
        return (status, headers)
    }

    /// A line without its CRLF (a bare LF is accepted as the end too).
    private mutating func line(limit: Int) throws(Failure) -> String {
        while true {
            if let end = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                var bytes = buffer[..<end]
                if bytes.last == UInt8(ascii: "\r") { bytes = bytes.dropLast() }
                let text = String(decoding: bytes, as: UTF8.self)
                buffer.removeSubrange(...end)
                return text
            }
            guard buffer.count <= limit else { throw Failure("the vault's answer has a line that is too long") }
            guard try fill() else { throw Failure("the vault closed the connection before a whole answer") }
        }
    }

    private mutating func exactly(_ count: Int) throws(Failure) -> [UInt8] {
        while buffer.count < count {
            guard try fill() else { throw Failure("the vault closed the connection before a whole answer") }
        }
        let out = Array(buffer[..<count])
        buffer.removeSubrange(..<count)
        return out
    }

    private mutating func toEnd() throws(Failure) -> [UInt8] {
        while try fill() {
            guard buffer.count <= CAFileHTTPS.responseLimit else { throw Failure("the vault's answer is too large") }
        }
        defer { buffer.removeAll() }
        return buffer
    }

    private mutating func chunked() throws(Failure) -> [UInt8] {
        var out: [UInt8] = []
        while true {
            let sizeLine = try line(limit: 1024)
            let digits = sizeLine.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            guard let size = Int(digits.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                throw Failure("the vault's answer has a malformed chunk")
            }
            if size == 0 {
                while try !line(limit: CAFileHTTPS.headLimit).isEmpty {}  // trailer fields, ignored
                return out
            }
            guard out.count + size <= CAFileHTTPS.responseLimit else { throw Failure("the vault's answer is too large") }
            out += try exactly(size)
            guard try line(limit: 2).isEmpty else { throw Failure("the vault's answer has a malformed chunk") }
        }
    }

    /// Reads more; false at the end of the stream.
    private mutating func fill() throws(Failure) -> Bool {
        if ended { return false }
        try Exchange.setTimeouts(fd, until: deadline)
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        let tls = self.tls
        let result = chunk.withUnsafeMutableBytes { (raw: UnsafeMutableRawBufferPointer) -> Result<Int, TLSClientError> in
            do throws(TLSClientError) {
                return .success(try tls.read(into: raw))
            } catch {
                return .failure(error)
            }
        }
        let n: Int
        switch result {
        case .success(let count): n = count
        case .failure(let error): throw Failure("receiving from the vault: \(error.reason)")
        }
        if n == 0 {
            ended = true
            return false
        }
        buffer += chunk[..<n]
        return true
    }
}
