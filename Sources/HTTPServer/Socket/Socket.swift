// SPDX-License-Identifier: Apache-2.0
import CSocketShims
import Glibc

/// Errors from setting up the listening socket. Each names the failing call and carries its errno.
public enum HTTPServerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The host is not a numeric IPv4/IPv6 literal (or `localhost`).
    case invalidHost(String)
    /// The port is outside `0...65535`.
    case invalidPort(Int)
    /// A socket call failed; `call` is its name (`socket`, `bind`, `listen`, …).
    case systemCall(call: String, errno: Int32)
    /// ``HTTPServer/start()`` was called twice, or after shutdown.
    case alreadyStarted

    /// A readable message naming the failing step and errno.
    public var description: String {
        switch self {
        case .invalidHost(let host): "invalid listen host '\(host)' (expected an IPv4 or IPv6 literal)"
        case .invalidPort(let port): "invalid listen port \(port)"
        case .systemCall(let call, let code): "\(call) failed: \(String(cString: strerror(code))) (errno \(code))"
        case .alreadyStarted: "server already started"
        }
    }
}

/// A resolved socket address (IPv4 or IPv6) in `sockaddr_storage` form.
struct SocketAddress: Sendable {
    /// The raw address, large enough for either family.
    var storage = sockaddr_storage()
    /// The meaningful length of `storage` (`sizeof(sockaddr_in)` or `sizeof(sockaddr_in6)`).
    var length: socklen_t = 0

    /// Parses a numeric host literal. `localhost` maps to 127.0.0.1; `[::1]` brackets are stripped.
    init?(host: String, port: Int) {
        var host = host
        if host.hasPrefix("[") && host.hasSuffix("]") && host.count >= 2 {
            host = String(host.dropFirst().dropLast())
        }
        if host == "localhost" { host = "127.0.0.1" }
        guard (0...65535).contains(port) else { return nil }
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = in_port_t(UInt16(port).bigEndian)
            sin.sin_addr = v4
            withUnsafeMutableBytes(of: &storage) { dst in
                withUnsafeBytes(of: &sin) { dst.copyMemory(from: $0) }
            }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        } else if inet_pton(AF_INET6, host, &v6) == 1 {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = in_port_t(UInt16(port).bigEndian)
            sin6.sin6_addr = v6
            withUnsafeMutableBytes(of: &storage) { dst in
                withUnsafeBytes(of: &sin6) { dst.copyMemory(from: $0) }
            }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            return nil
        }
    }

    /// Wraps an address filled in by `accept` or `getsockname`.
    init(storage: sockaddr_storage, length: socklen_t) {
        self.storage = storage
        self.length = length
    }

    /// `AF_INET` or `AF_INET6`.
    var family: Int32 { Int32(storage.ss_family) }

    /// The port in host byte order.
    var port: Int {
        var s = storage
        // sin_port and sin6_port both sit at offset 2, in network byte order.
        return withUnsafeBytes(of: &s) { Int(UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self))) }
    }

    /// The numeric host (`1.2.3.4` or `::1`).
    var host: String {
        var s = storage
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let ok = withUnsafePointer(to: &s) { sp -> Bool in
            if family == AF_INET {
                return sp.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var a = sin.pointee.sin_addr
                    return inet_ntop(AF_INET, &a, &text, socklen_t(text.count)) != nil
                }
            } else if family == AF_INET6 {
                return sp.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                    var a = sin6.pointee.sin6_addr
                    return inet_ntop(AF_INET6, &a, &text, socklen_t(text.count)) != nil
                }
            }
            return false
        }
        guard ok else { return "" }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `host:port`, with brackets around IPv6 hosts (RFC 3986 §3.2.2).
    var description: String {
        family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// Thin, EINTR-retrying wrappers over the socket system calls (docs/http.md §13 and §15).
/// They return the raw result; callers read `errno` right after a negative return.
enum SocketIO {
    /// `recv(2)`, retried on EINTR.
    @inline(__always)
    static func receive(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
        while true {
            let n = recv(fd, buffer, count, 0)
            if n < 0 && errno == EINTR { continue }
            return n
        }
    }

    /// Whether at least one byte is waiting to be read (`recv` with `MSG_PEEK | MSG_DONTWAIT`;
    /// consumes nothing). Used only when a deadline expires, never per request.
    static func hasPendingInput(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        while true {
            let n = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
            if n < 0 && errno == EINTR { continue }
            return n > 0
        }
    }

    /// `sendmsg(2)` of up to two buffers with `MSG_NOSIGNAL` (never SIGPIPE, docs/http.md §14),
    /// retried on EINTR.
    static func send(
        _ fd: Int32, _ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer
    ) -> Int {
        var iov = (
            iovec(iov_base: UnsafeMutableRawPointer(mutating: first.baseAddress), iov_len: first.count),
            iovec(iov_base: UnsafeMutableRawPointer(mutating: second.baseAddress), iov_len: second.count)
        )
        return withUnsafeMutablePointer(to: &iov) { pair in
            pair.withMemoryRebound(to: iovec.self, capacity: 2) { vec in
                var msg = msghdr()
                if first.isEmpty {
                    msg.msg_iov = vec + 1
                    msg.msg_iovlen = 1
                } else {
                    msg.msg_iov = vec
                    msg.msg_iovlen = second.isEmpty ? 1 : 2
                }
                while true {
                    let n = sendmsg(fd, &msg, Int32(MSG_NOSIGNAL))
                    if n < 0 && errno == EINTR { continue }
                    return n
                }
            }
        }
    }

    /// `accept4(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC`, filling in the peer address.
    static func accept(_ fd: Int32, _ address: inout SocketAddress) -> Int32 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let client = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                csocket_accept_nonblocking_address(fd, $0, &length)
            }
        }
        if client >= 0 { address = SocketAddress(storage: storage, length: length) }
        return client
    }

    /// `close(2)`. Not retried on EINTR: on Linux the descriptor is released regardless.
    static func close(_ fd: Int32) { _ = Glibc.close(fd) }

    /// Sets an integer socket option, ignoring failure (used for best-effort tuning).
    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) -> Bool {
        var v = value
        return setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) == 0
    }
}
