// SPDX-License-Identifier: Apache-2.0
import CSocketShims
import Glibc

/// The outcome of one ``Transport`` read or write.
enum TransportIO: Equatable, Sendable {
    /// `count` bytes were read or written (more than 0 unless nothing was asked for).
    case done(Int)
    /// Nothing can move now; wait for readiness (EAGAIN).
    case wouldBlock
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
/// transport whose readiness differs from the socket's (TLS wanting to read while writing)
/// will need to say so here.
protocol Transport {
    /// The descriptor the event loop registers for readiness.
    var fileDescriptor: Int32 { get }
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
