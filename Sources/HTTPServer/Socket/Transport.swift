// SPDX-License-Identifier: Apache-2.0
import CSocketShims
import Glibc

/// The outcome of one ``Transport`` read, write or handshake step.
public enum TransportIO: Equatable, Sendable {
    /// `count` bytes were read or written (more than 0 unless nothing was asked for); for
    /// ``Transport/handshake()``, the handshake is complete.
    case done(Int)
    /// Nothing can move now; wait for the operation's own readiness (readable for a read or a
    /// handshake, writable for a write: EAGAIN).
    case wouldBlock
    /// Nothing can move until the socket is *writable*, although this was a read or a handshake
    /// step (TLS: `SSL_ERROR_WANT_WRITE`). The plain socket never answers this.
    case needsWritable
    /// Nothing can move until the socket is *readable*, although this was a write (TLS:
    /// `SSL_ERROR_WANT_READ`). The plain socket never answers this.
    case needsReadable
    /// The peer closed its write side (reads only).
    case endOfStream
    /// The transport failed (reset, broken pipe, …) with this errno; the connection is over.
    case failed(Int32)
}

/// The byte stream under one HTTP/1.1 connection: what ``Connection`` reads from and writes to.
///
/// Issue 15 item 3: the socket work sits behind this protocol so that a TLS transport can wrap
/// the plain one later (HummingbirdTLS's decorator idea) and the HTTP code never learns whether
/// bytes were encrypted. Every method is non-blocking, and **only the connection's own thread
/// (its serial queue) calls them**: no watchdog or listener touches a connection's transport.
///
/// Readiness still comes from the server's epoll loop, which watches ``fileDescriptor``; a
/// transport whose readiness differs from the socket's (TLS wanting to read while writing, or
/// to write while reading) says so with ``TransportIO/needsWritable`` and
/// ``TransportIO/needsReadable``, and the connection waits for that readiness instead.
///
/// A transport with a handshake (TLS, issue 20) answers ``needsHandshake`` with true: the
/// connection then calls ``handshake()`` on readiness, under the handshake deadline
/// (``HTTPServerConfiguration/handshakeTimeout``), before the first read; a failed handshake
/// closes the connection without a word (the transport logs why, once, at debug). Other
/// transports are made by ``HTTPServerConfiguration/transportFactory``; without one the server
/// uses the plain socket directly.
public protocol Transport {
    /// The descriptor the event loop registers for readiness.
    var fileDescriptor: Int32 { get }
    /// Whether ``handshake()`` must complete before the first read or write. Read once, at accept.
    var needsHandshake: Bool { get }
    /// Advances the handshake: `.done` when complete, `.wouldBlock`/`.needsWritable` to wait,
    /// `.endOfStream` or `.failed` when it cannot complete (the connection closes).
    func handshake() -> TransportIO
    /// Reads at most `buffer.count` bytes into `buffer`.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> TransportIO
    /// Writes `first` then `second` (either may be empty), as far as they go without blocking.
    func write(vectors first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) -> TransportIO
    /// Whether at least one byte could be read now (consumes nothing). Used only when a deadline
    /// expires or a connection is about to be shed, never per request.
    func hasPendingInput() -> Bool
    /// Ends the write side (TCP FIN) and keeps reading possible: the start of a lingering close.
    func shutdownWrite()
    /// Releases the transport. Called exactly once, after the event loop stopped watching it.
    func close()
}

extension Transport {
    /// No handshake.
    public var needsHandshake: Bool { false }
    /// Nothing to do.
    public func handshake() -> TransportIO { .done(0) }
}

/// The plain TCP socket: `recv`, `sendmsg` with `MSG_NOSIGNAL`, `shutdown(SHUT_WR)` and
/// `close`, each retried on EINTR (``SocketIO``). A value holding only the descriptor, so
/// storing it in a connection allocates nothing.
struct PlainSocketTransport: Transport {
    /// The connected, non-blocking, close-on-exec socket.
    let fileDescriptor: Int32

    /// Wraps an accepted socket; the transport owns it from now on.
    init(fileDescriptor: Int32) { self.fileDescriptor = fileDescriptor }

    @inline(__always)
    func read(into buffer: UnsafeMutableRawBufferPointer) -> TransportIO {
        guard let base = buffer.baseAddress else { return .failed(EINVAL) }
        let n = SocketIO.receive(fileDescriptor, base, buffer.count)
        if n > 0 { return .done(n) }
        if n == 0 { return .endOfStream }
        return PlainSocketTransport.failure(errno)
    }

    @inline(__always)
    func write(vectors first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) -> TransportIO {
        let n = SocketIO.send(fileDescriptor, first, second)
        if n > 0 { return .done(n) }
        if n == 0 { return first.isEmpty && second.isEmpty ? .done(0) : .wouldBlock }
        return PlainSocketTransport.failure(errno)
    }

    func hasPendingInput() -> Bool { SocketIO.hasPendingInput(fileDescriptor) }

    func shutdownWrite() { _ = Glibc.shutdown(fileDescriptor, Int32(SHUT_WR)) }

    func close() { SocketIO.close(fileDescriptor) }

    /// EAGAIN/EWOULDBLOCK as ``TransportIO/wouldBlock``, any other errno as a failure.
    @inline(__always)
    private static func failure(_ code: Int32) -> TransportIO {
        code == EAGAIN || code == EWOULDBLOCK ? .wouldBlock : .failed(code)
    }
}
