// SPDX-License-Identifier: Apache-2.0
import Glibc
import Testing

@testable import HTTPServer

/// Issue 15 item 3: ``PlainSocketTransport`` maps the socket calls onto ``TransportIO``
/// (on a non-blocking `socketpair`, no network).
@Suite("PlainSocketTransport")
struct TransportTests {
    /// A connected non-blocking pair: the transport's end and the peer's.
    static func pair() throws -> (PlainSocketTransport, Int32) {
        var fds: [Int32] = [-1, -1]
        let made = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds)
        try #require(made == 0)
        return (PlainSocketTransport(fileDescriptor: fds[0]), fds[1])
    }

    @Test func readsWritesVectorsAndReportsWouldBlockAndEndOfStream() throws {
        let (transport, peer) = try Self.pair()
        defer { Glibc.close(peer) }
        var buffer = [UInt8](repeating: 0, count: 64)
        #expect(buffer.withUnsafeMutableBytes { transport.read(into: $0) } == .wouldBlock)
        #expect(!transport.hasPendingInput())

        let head = Array("HEAD|".utf8)
        let body = Array("body".utf8)
        let written = head.withUnsafeBytes { h in body.withUnsafeBytes { b in transport.write(vectors: h, b) } }
        #expect(written == .done(9))
        var received = [UInt8](repeating: 0, count: 64)
        #expect(recv(peer, &received, 64, 0) == 9)
        #expect(Array(received[0..<9]) == Array("HEAD|body".utf8))

        _ = send(peer, "ping", 4, 0)
        #expect(transport.hasPendingInput())
        #expect(buffer.withUnsafeMutableBytes { transport.read(into: $0) } == .done(4))
        Glibc.shutdown(peer, Int32(SHUT_WR))
        #expect(buffer.withUnsafeMutableBytes { transport.read(into: $0) } == .endOfStream)

        transport.shutdownWrite()
        #expect(recv(peer, &received, 64, 0) == 0)  // the peer sees our FIN
        transport.close()
    }

    @Test func aFullSocketWouldBlockAndAClosedPeerFails() throws {
        let (transport, peer) = try Self.pair()
        let chunk = [UInt8](repeating: 7, count: 64 * 1024)
        var sawWouldBlock = false
        for _ in 0..<1024 {  // bounded: a socketpair buffer is far smaller than 64 MiB
            let result = chunk.withUnsafeBytes { transport.write(vectors: UnsafeRawBufferPointer(start: nil, count: 0), $0) }
            if result == .wouldBlock {
                sawWouldBlock = true
                break
            }
        }
        #expect(sawWouldBlock)
        Glibc.close(peer)
        let after = chunk.withUnsafeBytes { transport.write(vectors: UnsafeRawBufferPointer(start: nil, count: 0), $0) }
        #expect(after == .failed(EPIPE) || after == .failed(ECONNRESET))
        transport.close()
    }
}
