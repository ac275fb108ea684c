// SPDX-License-Identifier: Apache-2.0
public import Logging

/// Every limit, timeout and address setting of an ``HTTPServer``, in one place.
///
/// The defaults follow docs/http.md ("Settings at a glance"; RFC 9110/9112). Limits are enforced
/// *while reading*, before bytes are buffered, and each maps to one status code:
///
/// | Field | Default | Exceeded → |
/// |---|---|---|
/// | ``maxRequestLineBytes`` | 8 KiB | 414 |
/// | ``maxFieldLineBytes`` | 8 KiB | 431 |
/// | ``maxHeaderSectionBytes`` | 32 KiB | 431 |
/// | ``maxFieldCount`` | 100 | 431 |
/// | ``maxBodyBytes`` | 256 KiB | 413 |
/// | ``headerTimeout`` | 10 s | 408 (if nothing was received) or close |
/// | ``idleTimeout`` | 30 s | silent close |
/// | ``bodyInactivityTimeout`` | 10 s | close |
/// | ``writeStallTimeout`` | 10 s | close |
/// | ``handlerTimeout`` | 10 s | 503 with `Retry-After` |
/// | ``maxConnections`` | 512 | the longest-idle connection is shed; else the kernel backlog waits |
/// | ``maxConnectionsPerAddress`` | 128 | 503 and close at accept |
/// | ``bodyMemoryBudgetBytes`` | 256 MiB | 503 with `Retry-After`, before the body is read |
/// | ``maxInFlightHandlers`` | 64 | 503 with `Retry-After` |
/// | ``handlerThreads`` | 32 | further offloaded handlers wait for a pool thread |
/// | ``maxRequestsPerConnection`` | 1000 | `Connection: close` on the last one |
/// | ``drainTimeout`` | 8 s | remaining connections are force-closed |
///
/// All durations are `Duration` values; the server converts them to monotonic nanoseconds once.
///
/// ```swift
/// var configuration = HTTPServerConfiguration(host: "::", port: 8080)
/// configuration.maxBodyBytes = 512 * 1024
/// configuration.headerTimeout = .seconds(5)
/// ```
///
/// Values are not validated beyond clamping: zero or negative limits make every request fail
/// with the corresponding status, zero timeouts close connections at once.
public struct HTTPServerConfiguration: Sendable {
    /// Address to bind: a numeric IPv4 (`"127.0.0.1"`, `"0.0.0.0"`) or IPv6 (`"::1"`, `"::"`) literal.
    /// `"localhost"` is accepted as an alias for `127.0.0.1`. Brackets around IPv6 literals are tolerated.
    public var host: String
    /// TCP port to bind; `0` lets the kernel choose (read it back from ``HTTPServer/port``).
    public var port: Int
    /// `listen(2)` backlog; the default is glibc's `SOMAXCONN` (4096). The kernel caps it at
    /// `net.core.somaxconn`.
    public var backlog: Int32

    /// Longest accepted request line (`method SP target SP version`), CRLF excluded. Longer → 414.
    /// RFC 9112 §3 asks servers to support at least 8000 octets.
    public var maxRequestLineBytes: Int
    /// Longest accepted single header (or trailer) field line, CRLF excluded. Longer → 431.
    public var maxFieldLineBytes: Int
    /// Largest accepted header section: the sum of all field lines including their CRLFs, trailers
    /// included. Larger → 431.
    public var maxHeaderSectionBytes: Int
    /// Most header plus trailer field lines accepted in one request. More → 431.
    public var maxFieldCount: Int
    /// Largest accepted request body after chunked decoding. Larger → 413, sent before the body is
    /// read when `Content-Length` announces it.
    public var maxBodyBytes: Int
    /// Appended to the 413's detail, which states ``maxBodyBytes``: how the deployment raises the
    /// limit (the application knows its setting's name; the server does not). Nil adds nothing.
    public var contentTooLargeAdvice: String? = nil
    /// Longest accepted chunk-size line including chunk extensions (RFC 9112 §7.1.1). Longer → 400.
    public var maxChunkLineBytes: Int

    /// Time allowed from accept until the first request head is complete, and from the first byte of
    /// a later request until its head is complete. Trickling bytes do not extend it (slowloris).
    public var headerTimeout: Duration
    /// Time a keep-alive connection may sit between requests before it is closed silently.
    public var idleTimeout: Duration
    /// Time the body of a request may make no progress before the connection is closed.
    public var bodyInactivityTimeout: Duration
    /// Time pending response bytes may make no progress before the connection is closed.
    public var writeStallTimeout: Duration
    /// Time a handler may run; after it the client gets 503 and the handler's late result is dropped.
    public var handlerTimeout: Duration
    /// How long a closing connection keeps reading and discarding after an error response
    /// (RFC 9112 §9.6 lingering close), and ``lingerMaxBytes`` how much it discards at most.
    public var lingerTimeout: Duration
    /// Most bytes discarded during a lingering close. Large enough that a client which writes its
    /// whole request before reading (a refused upload of a few MiB) reads its error instead of a
    /// reset; discarding goes through the loop's read buffer (no memory per byte), and the
    /// deadline bounds the time.
    public var lingerMaxBytes: Int

    /// Most simultaneously open client connections. At the cap a newcomer is admitted by closing
    /// the connection that has been idle longest: between requests (keep-alive) or silent since
    /// accept, for at least ``shedGracePeriod`` (as nginx reuses idle connections), or still
    /// receiving an incomplete request head after ``headShedGracePeriod``. A connection reading a
    /// body, running a handler or writing a response is never shed; when every one is busy, the
    /// listener stops accepting and the kernel backlog holds further clients until a connection
    /// closes.
    public var maxConnections: Int
    /// Most simultaneously open connections from one client IP address (IPv4, or a whole IPv6
    /// address); a connection beyond it gets a best-effort 503 and is closed at accept, before it
    /// can take a slot. Keeps one client from holding ``maxConnections``. `0` means no bound
    /// (behind a reverse proxy every client shares the proxy's address: raise it or disable it).
    public var maxConnectionsPerAddress: Int
    /// How long a connection must have been idle (since accept, or since its last response)
    /// before it may be shed to admit a newcomer at ``maxConnections``: a client that has just
    /// connected or just been answered gets this long to send its request.
    public var shedGracePeriod: Duration
    /// How long a connection may take to deliver a request head (since its first byte, or since
    /// accept for a first request) before it may be shed, silently, to admit a newcomer at
    /// ``maxConnections``. A real client sends its head in one packet; this bounds how long
    /// header tricklers from many addresses can keep a fresh client out, well below
    /// ``headerTimeout`` (issue 14 item 3).
    public var headShedGracePeriod: Duration
    /// Most request-body bytes held in memory at once, across all connections. A body's
    /// announced `Content-Length` is reserved when its head arrives (a chunked body's size as its
    /// chunks are announced) and released once the response is queued; a request that does not
    /// fit gets 503 with `Retry-After` and `Connection: close` without its body being read.
    /// Keep it at least ``maxBodyBytes``, or the largest bodies are always refused.
    public var bodyMemoryBudgetBytes: Int
    /// Most handlers running at once across all connections; one more gets 503 with `Retry-After`.
    public var maxInFlightHandlers: Int
    /// How many handlers may run inline at once (on the event-loop threads, with no thread hop),
    /// counted across the whole process, before further handlers move to the bounded handler pool
    /// instead (one thread hop each). Only requests the handler places
    /// ``HTTPPlacement/inline`` (``HTTPHandler/placement(of:)``) run inline. `nil` means "active
    /// CPUs"; `0` offloads every handler.
    public var inlineHandlerLimit: Int?
    /// Most threads of the handler pool, which runs the handlers that do not run inline. Threads
    /// start lazily and are never more than this, whatever the load; queued handlers wait for one.
    /// It bounds memory (every thread has a stack) and also how many handlers can wait on a
    /// storage commit together, so keep it at least as large as the writes you want batched.
    public var handlerThreads: Int
    /// Requests served on one connection before it is closed with `Connection: close`.
    public var maxRequestsPerConnection: Int
    /// Default grace period for ``HTTPServer/shutdown(deadline:completion:)`` callers.
    public var drainTimeout: Duration
    /// Value of `Retry-After` (seconds) on 503 responses generated by the server.
    public var retryAfterSeconds: Int

    /// Makes the transport of each accepted socket (TLS: `HTTPServerTLS`); the transport owns
    /// the descriptor from then on. `nil`, the default, uses the plain socket directly, with no
    /// call through this closure.
    public var transportFactory: (@Sendable (Int32) -> any Transport)? = nil
    /// Time allowed from accept until a transport's handshake (``Transport/needsHandshake``)
    /// completes; the client is then closed silently, like a slowloris client. The first request
    /// head's ``headerTimeout`` starts when the handshake completes. `nil`: ``headerTimeout``.
    public var handshakeTimeout: Duration? = nil


    /// Where the server's log lines go (swift-log). Messages never carry request bytes beyond the
    /// method and status, so they are safe to ship to shared log storage. Levels: `debug` for
    /// per-connection noise (resets, timeouts, closed peers), `info` for the lifecycle (listening,
    /// draining), `warning` for recoverable trouble (a handler over its deadline, a full budget),
    /// `error` for what the operator must look at. The default is the logging system's handler at
    /// `warning`.
    public var logger: Logger

    /// Creates a configuration; every parameter defaults to the documented value.
    public init(
        host: String = "127.0.0.1",
        port: Int = 8080,
        backlog: Int32 = 4096,
        maxRequestLineBytes: Int = 8 * 1024,
        maxFieldLineBytes: Int = 8 * 1024,
        maxHeaderSectionBytes: Int = 32 * 1024,
        maxFieldCount: Int = 100,
        maxBodyBytes: Int = 256 * 1024,
        maxChunkLineBytes: Int = 1024,
        headerTimeout: Duration = .seconds(10),
        idleTimeout: Duration = .seconds(30),
        bodyInactivityTimeout: Duration = .seconds(10),
        writeStallTimeout: Duration = .seconds(10),
        handlerTimeout: Duration = .seconds(10),
        lingerTimeout: Duration = .seconds(2),
        lingerMaxBytes: Int = 16 * 1024 * 1024,
        maxConnections: Int = 512,
        maxConnectionsPerAddress: Int = 128,
        shedGracePeriod: Duration = .milliseconds(250),
        headShedGracePeriod: Duration = .seconds(1),
        bodyMemoryBudgetBytes: Int = 256 * 1024 * 1024,
        maxInFlightHandlers: Int = 64,
        inlineHandlerLimit: Int? = nil,
        handlerThreads: Int = 32,
        maxRequestsPerConnection: Int = 1000,
        drainTimeout: Duration = .seconds(8),
        retryAfterSeconds: Int = 1,
        logger: Logger = HTTPServerConfiguration.defaultLogger
    ) {
        self.host = host
        self.port = port
        self.backlog = backlog
        self.maxRequestLineBytes = maxRequestLineBytes
        self.maxFieldLineBytes = maxFieldLineBytes
        self.maxHeaderSectionBytes = maxHeaderSectionBytes
        self.maxFieldCount = maxFieldCount
        self.maxBodyBytes = maxBodyBytes
        self.maxChunkLineBytes = maxChunkLineBytes
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
        self.bodyInactivityTimeout = bodyInactivityTimeout
        self.writeStallTimeout = writeStallTimeout
        self.handlerTimeout = handlerTimeout
        self.lingerTimeout = lingerTimeout
        self.lingerMaxBytes = lingerMaxBytes
        self.maxConnections = maxConnections
        self.maxConnectionsPerAddress = maxConnectionsPerAddress
        self.shedGracePeriod = shedGracePeriod
        self.headShedGracePeriod = headShedGracePeriod
        self.bodyMemoryBudgetBytes = bodyMemoryBudgetBytes
        self.maxInFlightHandlers = maxInFlightHandlers
        self.inlineHandlerLimit = inlineHandlerLimit
        self.handlerThreads = max(1, handlerThreads)
        self.maxRequestsPerConnection = maxRequestsPerConnection
        self.drainTimeout = drainTimeout
        self.retryAfterSeconds = retryAfterSeconds
        self.logger = logger
    }
}

extension Duration {
    /// The duration in whole nanoseconds, clamped to `0...UInt64.max / 2` (so it can be added to a
    /// monotonic timestamp without overflow).
    var clampedNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 { return 0 }
        let cap = UInt64.max / 4
        if UInt64(seconds) >= cap / 1_000_000_000 { return cap }
        return UInt64(seconds) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }
}

extension HTTPServerConfiguration {
    /// `http-server`, from the logging system, at `warning`.
    public static var defaultLogger: Logger {
        var logger = Logger(label: "http-server")
        logger.logLevel = .warning
        return logger
    }
}
