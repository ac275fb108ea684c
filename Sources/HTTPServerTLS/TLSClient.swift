// SPDX-License-Identifier: Apache-2.0
import COpenSSLTLS
import Glibc

/// Why a client-side TLS connection failed. The reason is OpenSSL's (or the system's) text,
/// never bytes from the peer.
public struct TLSClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What failed.
    public enum Kind: Sendable, Equatable {
        /// The server's certificate does not chain to the trusted CA, or does not name the host.
        case untrusted
        /// The handshake or a record was refused (protocol version, alert, garbage).
        case refused
        /// The socket failed, timed out or was shut down.
        case io
    }
    /// What failed.
    public let kind: Kind
    /// For a message.
    public let reason: String
    public var description: String { reason }

    init(_ kind: Kind, _ reason: String) {
        self.kind = kind
        self.reason = reason
    }
}

/// The client side of TLS for a server whose certificate comes from a private CA: what
/// `session-vault-run` uses when `SESSION_VAULT_CACERT` names one (URLSession on Linux cannot be
/// given a CA file; docs/leases.md says why). Only the CA file's certificates are trusted (not
/// the system's), TLS 1.2 and 1.3 only, ALPN `http/1.1`, the host name (or IP address) checked
/// against the certificate.
///
/// The caller owns the connected, blocking socket and its timeouts (`SO_RCVTIMEO`,
/// `SO_SNDTIMEO`): a call that runs into one fails with ``TLSClientError/Kind/io``.
public final class TLSClientContext: @unchecked Sendable {
    // `@unchecked`: the `SSL_CTX` is configured in `init` and only read afterwards (`SSL_new`),
    // which OpenSSL allows from any thread.
    private let context: OpaquePointer
    /// The CA file the server's certificate must chain to.
    public let caFile: String

    /// Loads `caFile` (PEM, one or more CA certificates).
    /// - Throws: ``TLSSetupError`` (file `.clientCA`) when the file cannot be read or holds no
    ///   certificate.
    public init(caFile: String) throws(TLSSetupError) {
        ERR_clear_error()
        guard let method = TLS_client_method(), let ctx = SSL_CTX_new(method) else {
            throw TLSSetupError(file: .none, reason: "OpenSSL cannot create a TLS context: \(TLSServerContext.lastError())")
        }
        guard sv_tls_configure_client(ctx) == 1 else {
            SSL_CTX_free(ctx)
            throw TLSSetupError(file: .none, reason: "OpenSSL refuses the TLS policy: \(TLSServerContext.lastError())")
        }
        let fd = open(caFile, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            SSL_CTX_free(ctx)
            throw TLSSetupError(file: .clientCA, reason: "CA file \(caFile) cannot be read: \(reason)")
        }
        Glibc.close(fd)
        guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else {
            SSL_CTX_free(ctx)
            throw TLSSetupError(
                file: .clientCA, reason: "CA file \(caFile) holds no PEM certificate (\(TLSServerContext.lastError()))")
        }
        ERR_clear_error()
        context = ctx
        self.caFile = caFile
    }

    deinit { SSL_CTX_free(context) }

    /// Makes the TLS handshake on `fileDescriptor` (connected, blocking) with a server that must
    /// present a certificate for `host` (a DNS name, or an IP address literal without brackets)
    /// chaining to ``caFile``.
    public func connect(fileDescriptor: Int32, host: String) throws(TLSClientError) -> TLSClientConnection {
        ERR_clear_error()
        guard let ssl = SSL_new(context) else {
            throw TLSClientError(.io, "OpenSSL cannot create a connection: \(TLSServerContext.lastError())")
        }
        guard SSL_set_fd(ssl, fileDescriptor) == 1, sv_tls_client_expect_peer(ssl, host) == 1 else {
            let reason = TLSServerContext.lastError()
            SSL_free(ssl)
            throw TLSClientError(.io, "OpenSSL cannot prepare the connection to \(host): \(reason)")
        }
        SSL_set_connect_state(ssl)
        let r = SSL_connect(ssl)
        if r == 1 { return TLSClientConnection(ssl: ssl) }
        let error = TLSClientConnection.failure(ssl, r, during: "the TLS handshake")
        SSL_free(ssl)
        throw error
    }
}

/// One established client-side TLS connection, used by one thread at a time. The socket stays
/// its owner's: ``close()`` sends close_notify and frees the TLS state, not the descriptor.
public final class TLSClientConnection {
    private var ssl: OpaquePointer?

    init(ssl: OpaquePointer) { self.ssl = ssl }

    deinit { if let ssl { SSL_free(ssl) } }

    /// The protocol version in use (`TLSv1.3`, `TLSv1.2`).
    public var protocolVersion: String {
        guard let ssl, let name = SSL_get_version(ssl) else { return "" }
        return String(cString: name)
    }

    /// Sends all of `bytes`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(TLSClientError) {
        guard let ssl else { throw TLSClientError(.io, "the TLS connection is closed") }
        var offset = 0
        while offset < bytes.count {
            guard let base = bytes.baseAddress else { return }
            ERR_clear_error()
            var n = 0
            let r = SSL_write_ex(ssl, base + offset, bytes.count - offset, &n)
            guard r == 1 else { throw Self.failure(ssl, r, during: "sending") }
            offset += n
        }
    }

    /// Reads what is available (at least one byte, blocking up to the socket's timeout) into
    /// `buffer`; 0 at the end of the stream (close_notify, or the peer closed the socket).
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(TLSClientError) -> Int {
        guard let ssl, let base = buffer.baseAddress, buffer.count > 0 else {
            throw TLSClientError(.io, "the TLS connection is closed")
        }
        ERR_clear_error()
        var n = 0
        let r = SSL_read_ex(ssl, base, buffer.count, &n)
        if r == 1 { return n }
        let savedErrno = errno
        switch SSL_get_error(ssl, r) {
        case SSL_ERROR_ZERO_RETURN:
            return 0
        case SSL_ERROR_SYSCALL where savedErrno == 0:
            ERR_clear_error()
            return 0  // The socket's EOF without close_notify: HTTP framing detects a truncation.
        default:
            let code = ERR_peek_error()
            if code != 0, sv_tls_error_reason(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING {
                ERR_clear_error()
                return 0
            }
            errno = savedErrno
            throw Self.failure(ssl, r, during: "receiving")
        }
    }

    /// Sends close_notify (without waiting for the server's) and frees the TLS state.
    public func close() {
        guard let ssl else { return }
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
        SSL_free(ssl)
        self.ssl = nil
    }

    /// The error of an unsuccessful `SSL_connect`, `SSL_read_ex` or `SSL_write_ex` (clears
    /// OpenSSL's queue).
    static func failure(_ ssl: OpaquePointer, _ result: Int32, during what: String) -> TLSClientError {
        let savedErrno = errno
        let code = SSL_get_error(ssl, result)
        let verify = SSL_get_verify_result(ssl)
        if verify != Int(X509_V_OK), let text = X509_verify_cert_error_string(verify) {
            ERR_clear_error()
            return TLSClientError(.untrusted, String(cString: text))
        }
        switch code {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            ERR_clear_error()
            return TLSClientError(.io, "\(what) timed out")
        case SSL_ERROR_SYSCALL:
            ERR_clear_error()
            if savedErrno == 0 { return TLSClientError(.io, "the server closed the connection during \(what)") }
            return TLSClientError(.io, "\(what) failed: \(String(cString: strerror(savedErrno)))")
        case SSL_ERROR_ZERO_RETURN:
            ERR_clear_error()
            return TLSClientError(.io, "the server closed the connection during \(what)")
        default:
            return TLSClientError(.refused, "\(what) failed: \(TLSServerContext.lastError())")
        }
    }
}
