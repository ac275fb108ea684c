// SPDX-License-Identifier: Apache-2.0
import COpenSSLTLS
import Glibc
import HTTPServer
import Logging
import Primitives

/// One TLS connection over an accepted, non-blocking socket: OpenSSL's socket BIO on the
/// descriptor, server side. Like every ``Transport`` it is used only on its connection's queue,
/// one call at a time (possibly from different threads over its life: OpenSSL allows that; its
/// error queue is per thread and cleared before every call).
///
/// - The handshake runs step by step from ``handshake()`` on readiness; a refusal (garbage,
///   plain HTTP, an old protocol version, a missing or untrusted client certificate, a client
///   that gives up) is logged once, at debug, and the connection closes. Plain HTTP gets a
///   plain `400` first, so a client that forgot `https://` learns why.
/// - Reads return as many whole records as fit without another system call (what OpenSSL
///   already holds is drained, so the level-triggered event loop never waits on bytes hidden in
///   OpenSSL's buffers).
/// - Writes coalesce a response's head and body into one record when they fit in 16 KiB, so a
///   small answer is one record and one `write(2)`.
final class TLSTransport: Transport {
    let fileDescriptor: Int32
    /// The OpenSSL connection; nil after ``close()`` (or when it could not be made).
    private var ssl: OpaquePointer?
    private let logger: Logger
    /// A fatal error happened: no close_notify may be sent (OpenSSL forbids `SSL_shutdown` then).
    private var broken = false
    /// `SSL_shutdown` was called once already.
    private var shutdownSent = false
    /// The handshake completed.
    private var established = false

    init(fileDescriptor: Int32, ssl: OpaquePointer?, logger: Logger) {
        self.fileDescriptor = fileDescriptor
        self.logger = logger
        if let ssl, SSL_set_fd(ssl, fileDescriptor) == 1 {
            SSL_set_accept_state(ssl)
            self.ssl = ssl
        } else {
            if let ssl { SSL_free(ssl) }
            self.ssl = nil
            broken = true
        }
    }

    var needsHandshake: Bool { true }

    func handshake() -> TransportIO {
        guard let ssl else { return .failed(ENOMEM) }
        ERR_clear_error()
        let r = SSL_do_handshake(ssl)
        if r == 1 {
            established = true
            return .done(0)
        }
        let savedErrno = errno
        switch SSL_get_error(ssl, r) {
        case SSL_ERROR_WANT_READ: return .wouldBlock
        case SSL_ERROR_WANT_WRITE: return .needsWritable
        case SSL_ERROR_ZERO_RETURN:
            refused("the client closed the connection during the handshake")
            return .endOfStream
        case SSL_ERROR_SYSCALL:
            broken = true
            ERR_clear_error()
            if savedErrno == 0 {
                refused("the client closed the connection during the handshake")
                return .endOfStream
            }
            refused("the handshake failed: \(String(cString: strerror(savedErrno)))")
            return .failed(savedErrno)
        default:
            broken = true
            let code = ERR_peek_error()
            let reason = TLSServerContext.lastError()
            if code != 0, sv_tls_error_reason(code) == SSL_R_HTTP_REQUEST {
                answerPlainHTTP()
                refused("plain HTTP on the TLS port, answered 400")
            } else {
                refused("the handshake was refused: \(reason)")
            }
            return .failed(EPROTO)
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> TransportIO {
        guard let ssl, let base = buffer.baseAddress else { return .failed(EINVAL) }
        ERR_clear_error()
        var total = 0
        while total < buffer.count {
            var n = 0
            let r = SSL_read_ex(ssl, base + total, buffer.count - total, &n)
            if r == 1 {
                total += n
                // More already inside OpenSSL: take it now (epoll cannot report it).
                if SSL_has_pending(ssl) == 1 { continue }
                return .done(total)
            }
            if total > 0 { return .done(total) }  // The error (or EAGAIN) comes back on the next call.
            return failure(ssl, r, reading: true)
        }
        return .done(total)
    }

    func write(vectors first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) -> TransportIO {
        guard let ssl else { return .failed(EPIPE) }
        guard established else { return .failed(ENOTCONN) }
        if first.isEmpty && second.isEmpty { return .done(0) }
        // The choice depends only on the vectors, so a retry after WANT_WRITE (same vectors,
        // nothing sent yet) passes the same bytes again, as OpenSSL requires.
        let record = WriteScratch.size
        if first.isEmpty { return write(ssl, second) }
        if second.isEmpty || first.count >= record { return write(ssl, first) }
        let scratch = WriteScratch.current()
        guard let target = scratch.baseAddress, let head = first.baseAddress, let body = second.baseAddress else {
            return write(ssl, first)
        }
        let fromBody = min(second.count, record - first.count)
        target.copyMemory(from: head, byteCount: first.count)
        (target + first.count).copyMemory(from: body, byteCount: fromBody)
        return write(ssl, UnsafeRawBufferPointer(start: target, count: first.count + fromBody))
    }

    /// During the handshake only the socket counts: part of a handshake record held by OpenSSL
    /// is a stalled handshake, which may be shed like a silent client (issue 14 item 3).
    func hasPendingInput() -> Bool {
        if established, let ssl, SSL_has_pending(ssl) == 1 { return true }
        var byte: UInt8 = 0
        return recv(fileDescriptor, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) > 0
    }

    func shutdownWrite() {
        sendCloseNotify()
        _ = Glibc.shutdown(fileDescriptor, Int32(SHUT_WR))
    }

    func close() {
        guard let ssl else {
            Glibc.close(fileDescriptor)
            return
        }
        sendCloseNotify()
        SSL_free(ssl)  // The socket BIO does not own the descriptor.
        self.ssl = nil
        Glibc.close(fileDescriptor)
    }

    // MARK: - Private

    /// One `SSL_write_ex` of `bytes`.
    private func write(_ ssl: OpaquePointer, _ bytes: UnsafeRawBufferPointer) -> TransportIO {
        ERR_clear_error()
        var n = 0
        if SSL_write_ex(ssl, bytes.baseAddress, bytes.count, &n) == 1 { return .done(n) }
        return failure(ssl, 0, reading: false)
    }

    /// Maps an unsuccessful `SSL_read_ex`/`SSL_write_ex` to a ``TransportIO``.
    private func failure(_ ssl: OpaquePointer, _ result: Int32, reading: Bool) -> TransportIO {
        let savedErrno = errno
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ: return reading ? .wouldBlock : .needsReadable
        case SSL_ERROR_WANT_WRITE: return reading ? .needsWritable : .wouldBlock
        case SSL_ERROR_ZERO_RETURN: return .endOfStream  // close_notify (or an EOF, which we accept).
        case SSL_ERROR_SYSCALL:
            broken = true
            ERR_clear_error()
            return savedErrno == 0 ? .endOfStream : .failed(savedErrno)
        default:
            broken = true
            logger.debug("TLS connection failed: \(TLSServerContext.lastError())")
            return .failed(EPROTO)
        }
    }

    /// Sends close_notify once, without waiting for the client's, unless the connection broke.
    private func sendCloseNotify() {
        guard let ssl, established, !broken, !shutdownSent else { return }
        shutdownSent = true
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    /// Best effort, never blocking: a plain `400` for a client that spoke HTTP to the TLS port.
    private func answerPlainHTTP() {
        let body = "This port speaks HTTPS: use an https:// URL.\n"
        let text = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { send(fileDescriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        _ = Glibc.shutdown(fileDescriptor, Int32(SHUT_WR))
    }

    /// The one debug line of a refused or abandoned handshake, with the client's address.
    private func refused(_ why: String) {
        logger.debug("TLS handshake with \(peerDescription()) ended: \(why)")
    }

    /// A NUL-terminated C string as text.
    private static func string(_ text: [CChar]) -> String {
        String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The peer's `ip:port` (only formatted for a log line that passes the level).
    private func peerDescription() -> String {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fileDescriptor, $0, &length) == 0 }
        }
        guard ok else { return "a client" }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var addr = sin.pointee.sin_addr
                    inet_ntop(AF_INET, &addr, &text, socklen_t(text.count))
                    return "\(Self.string(text)):\(UInt16(bigEndian: sin.pointee.sin_port))"
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                    var addr = sin6.pointee.sin6_addr
                    inet_ntop(AF_INET6, &addr, &text, socklen_t(text.count))
                    return "[\(Self.string(text))]:\(UInt16(bigEndian: sin6.pointee.sin6_port))"
                }
            }
        default:
            return "a client"
        }
    }
}

/// A per-thread 16 KiB buffer (one TLS record of plaintext) where a response's head and the
/// start of its body are joined into one record.
let WriteScratch = ThreadLocalBuffer(size: 16 * 1024)
