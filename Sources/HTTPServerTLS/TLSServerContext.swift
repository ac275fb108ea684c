// SPDX-License-Identifier: Apache-2.0
import COpenSSLTLS
import Glibc
public import Logging
import Primitives
public import HTTPServer

/// The files a TLS listener serves (PEM): the certificate (the leaf first, then any intermediate
/// certificates), its private key, and optionally the CA whose client certificates are required
/// (mutual TLS).
public struct TLSFiles: Sendable, Equatable {
    /// The certificate chain, leaf first.
    public var certificateFile: String
    /// The unencrypted private key of the leaf certificate.
    public var keyFile: String
    /// With mutual TLS: the CA certificate(s) client certificates must chain to.
    public var clientCAFile: String?

    /// Names the files.
    public init(certificateFile: String, keyFile: String, clientCAFile: String? = nil) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.clientCAFile = clientCAFile
    }
}

/// Why the TLS files could not be used. The message names the file and OpenSSL's reason, never
/// any byte of the file.
public struct TLSSetupError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Which file was at fault.
    public enum File: Sendable, Equatable {
        case certificate, key, clientCA, none
    }
    /// The file at fault (`.none`: OpenSSL itself failed).
    public let file: File
    /// What went wrong, for a log line.
    public let reason: String
    public var description: String { reason }
}

/// The server side of TLS over ``HTTPServer``'s transport seam (issue 20): an OpenSSL context
/// loaded from ``TLSFiles`` under a fixed policy (TLS 1.2 and 1.3 only, the server's cipher
/// preference, no compression, no renegotiation, no session tickets or session cache, ALPN
/// `http/1.1`; with a client CA, a verified client certificate is required), and the factory of
/// one ``Transport`` per accepted socket.
///
/// ``reload()`` (SIGHUP) loads the files again into a new context and swaps it in only if every
/// file loads and the key matches the certificate: new connections use the new context, open
/// ones keep the one they started with (OpenSSL counts each connection's reference to its
/// context), and a bad new pair changes nothing.
///
/// The process must ignore SIGPIPE: OpenSSL writes to the socket with `write(2)`.
public final class TLSServerContext: @unchecked Sendable {
    /// The files loaded at start and at every reload.
    public let files: TLSFiles
    /// Receives the per-connection refusals (at debug).
    private let logger: Logger
    /// The current `SSL_CTX`, swapped by ``reload()``; `SSL_new` runs with the lock held, so a
    /// context is never freed while a connection is being made from it.
    private let current: Locked<OpaquePointer>

    /// Loads `files`.
    /// - Throws: ``TLSSetupError`` naming the file that cannot be used.
    public init(files: TLSFiles, logger: Logger) throws(TLSSetupError) {
        self.files = files
        self.logger = logger
        current = Locked(try TLSServerContext.load(files))
    }

    deinit { current.withLock { SSL_CTX_free($0) } }

    /// Loads the files again and, if they are usable, serves them to new connections.
    /// - Throws: ``TLSSetupError``; the context in use is then unchanged.
    public func reload() throws(TLSSetupError) {
        let fresh = try TLSServerContext.load(files)
        let old = current.withLock { context in
            let old = context
            context = fresh
            return old
        }
        SSL_CTX_free(old)
    }

    /// A transport for an accepted socket (``HTTPServerConfiguration/transportFactory``).
    public func makeTransport(fileDescriptor fd: Int32) -> any Transport {
        let ssl = current.withLock { SSL_new($0) }
        if ssl == nil { logger.warning("TLS: cannot create a connection (SSL_new failed); closing it") }
        return TLSTransport(fileDescriptor: fd, ssl: ssl, logger: logger)
    }

    /// Sets `configuration`'s transport factory to this context.
    public func install(into configuration: inout HTTPServerConfiguration) {
        configuration.transportFactory = { [self] fd in makeTransport(fileDescriptor: fd) }
    }

    // MARK: - Loading

    /// A configured context holding `files`, or the reason it cannot be made.
    static func load(_ files: TLSFiles) throws(TLSSetupError) -> OpaquePointer {
        ERR_clear_error()
        guard let method = TLS_server_method(), let ctx = SSL_CTX_new(method) else {
            throw TLSSetupError(file: .none, reason: "OpenSSL cannot create a TLS context: \(lastError())")
        }
        var ok = false
        defer { if !ok { SSL_CTX_free(ctx) } }
        guard sv_tls_configure(ctx) == 1 else {
            throw TLSSetupError(file: .none, reason: "OpenSSL refuses the TLS policy: \(lastError())")
        }
        try checkReadable(files.certificateFile, .certificate, "certificate file")
        guard SSL_CTX_use_certificate_chain_file(ctx, files.certificateFile) == 1 else {
            throw TLSSetupError(
                file: .certificate,
                reason: "certificate file \(files.certificateFile) holds no usable PEM certificate chain (\(lastError()))")
        }
        try checkReadable(files.keyFile, .key, "key file")
        guard SSL_CTX_use_PrivateKey_file(ctx, files.keyFile, SSL_FILETYPE_PEM) == 1 else {
            throw TLSSetupError(
                file: .key,
                reason: "key file \(files.keyFile) holds no unencrypted PEM private key of the certificate in "
                    + "\(files.certificateFile) (\(lastError()))")
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            throw TLSSetupError(
                file: .key,
                reason: "key file \(files.keyFile) does not match the certificate in \(files.certificateFile) (\(lastError()))")
        }
        if let ca = files.clientCAFile {
            try checkReadable(ca, .clientCA, "client CA file")
            guard SSL_CTX_load_verify_locations(ctx, ca, nil) == 1, let names = SSL_load_client_CA_file(ca) else {
                throw TLSSetupError(file: .clientCA, reason: "client CA file \(ca) holds no usable PEM certificate (\(lastError()))")
            }
            sv_tls_require_client_certificate(ctx, names)
        }
        ok = true
        ERR_clear_error()
        return ctx
    }

    /// Throws a clear message when `path` cannot be opened for reading (before OpenSSL's
    /// vaguer "system lib").
    private static func checkReadable(_ path: String, _ file: TLSSetupError.File, _ what: String) throws(TLSSetupError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            throw TLSSetupError(file: file, reason: "\(what) \(path) cannot be read: \(String(cString: strerror(errno)))")
        }
        Glibc.close(fd)
    }

    /// OpenSSL's reason for the oldest queued error (the reason text only: never data that
    /// could quote a file), and clears the queue.
    static func lastError() -> String {
        let code = ERR_get_error()
        ERR_clear_error()
        guard code != 0 else { return "no detail" }
        if let text = ERR_reason_error_string(code) { return String(cString: text) }
        return "error \(sv_tls_error_reason(code))"
    }
}
