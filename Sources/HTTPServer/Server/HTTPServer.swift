// SPDX-License-Identifier: Apache-2.0
public import Dispatch
import CSocketShims
import Glibc
import Logging
import Primitives
import Synchronization

/// A general HTTP/1.1 server on BSD sockets and Dispatch.
///
/// ```swift
/// let state = HTTPServerState()
/// let server = HTTPServer(configuration: .init(host: "127.0.0.1", port: 8080),
///                         state: state, handler: MyHandler(state: state))
/// try server.start()                       // binds, listens, accepts; returns immediately
/// print(server.port)                       // the bound port (useful with port 0)
/// server.shutdown(deadline: .now() + .seconds(8)) { exit(0) }
/// dispatchMain()
/// ```
///
/// **Threading.** The listener runs on its own serial queue. Each connection is confined to its
/// own serial queue; all of them target Dispatch's user-initiated global queue (a worker pool
/// sized to the CPUs, apart from the default pool that Swift concurrency uses on Linux), and
/// handlers usually run inline on the connection's queue, the others on a bounded handler pool
/// (see ``HTTPHandler``). Socket readiness comes from process-wide epoll threads, one per two
/// CPUs (``EventLoop``), not Dispatch sources; for a handler that classifies its blocking requests,
/// those threads also run the connection's work themselves, with no hop to a worker. One
/// watchdog timer finds the connections whose deadline passed and queues a check on their own
/// queue; it never touches a connection's transport.
///
/// **Connection slots (issue 14 item 3).** A connection beyond
/// ``HTTPServerConfiguration/maxConnectionsPerAddress`` from one client address gets a
/// best-effort 503 and is closed at accept. At ``HTTPServerConfiguration/maxConnections`` the
/// newcomer is accepted and held aside while the connection idle longest (keep-alive between
/// requests, or silent since accept, for at least ``HTTPServerConfiguration/shedGracePeriod``;
/// or still receiving a request head after ``HTTPServerConfiguration/headShedGracePeriod``)
/// is closed to make room, as nginx reuses idle connections; a connection reading a body,
/// running a handler or writing a response is never shed. When none can be shed the listener's read source is
/// suspended, so further clients wait in the kernel backlog, until a connection closes or one
/// becomes idle long enough (checked every watchdog tick).
/// `EMFILE`/`ENFILE`/`ENOBUFS`/`ENOMEM` from `accept` pause accepting for 100 ms; the listener never
/// stops on its own (docs/http.md §12).
///
/// **Body memory (issue 14 item 4).** Every request that announces a body is shown to the
/// handler's ``HTTPHandler/responseBeforeBody(_:)`` first, then its announced length is reserved
/// from ``HTTPServerConfiguration/bodyMemoryBudgetBytes`` (503 before reading when it does not
/// fit) and released once its response is queued.
public final class HTTPServer: Sendable {
    /// The configuration the server was created with.
    public let configuration: HTTPServerConfiguration
    /// Lifecycle flags shared with handlers (``HTTPServerState/isDraining``).
    public let state: HTTPServerState

    /// The application's request handler.
    let handler: any HTTPHandler
    /// The configured timeouts in nanoseconds, shared by all connections.
    let timeouts: Connection.Timeouts
    /// Prebuilt bytes of the server-generated error responses.
    let errorResponses: ErrorResponses
    /// Handlers currently running, across all connections.
    let inFlightHandlers = Atomic<Int>(0)
    /// Handlers that may run inline at once, process-wide, before this server offloads (see
    /// ``InlineHandlerSlots``): ``HTTPServerConfiguration/inlineHandlerLimit``, or CPUs (only
    /// requests placed ``HTTPPlacement/inline`` run inline).
    let inlineLimit: Int
    /// Runs the handlers that do not run inline (bounded, see ``HandlerPool``).
    let handlerPool: HandlerPool
    /// Open client connections (accepted and not yet fully closed).
    let connectionCount = Atomic<Int>(0)
    /// Set by the listener when it paused at the connection cap; closers then wake it.
    let listenerWaitingForCapacity = Atomic<Bool>(false)
    /// Open connections per client address (``HTTPServerConfiguration/maxConnectionsPerAddress``).
    let addressSlots: AddressSlots
    /// Request-body bytes in memory (``HTTPServerConfiguration/bodyMemoryBudgetBytes``).
    let bodyBudget: BodyMemoryBudget
    /// ``HTTPServerConfiguration/shedGracePeriod`` in nanoseconds.
    let shedGrace: UInt64
    /// ``HTTPServerConfiguration/headShedGracePeriod`` in nanoseconds.
    let headShedGrace: UInt64
    #if DEBUG
    /// Events delivered to this server's connections, and `epoll_ctl` re-arms they made (tests
    /// of the persistent registration; debug builds only).
    let loopEventsDelivered = Atomic<Int>(0)
    let loopRearms = Atomic<Int>(0)
    /// Responses held back to the end of a loop's batch (``EventLoop/deferFlush(_:)``).
    let responsesDeferred = Atomic<Int>(0)
    #endif

    /// Every open connection, for shutdown, shedding and the deadline watchdog.
    private let connections = Locked<[ObjectIdentifier: Connection]>([:])
    /// Start/stop state, bound address, listener, watchdog and pending shutdown completions.
    private let lifecycle = Locked<Lifecycle>(Lifecycle())
    /// Set once shutdown completions have run (they run exactly once).
    private let shutdownFinished = Atomic<Bool>(false)

    /// The pool every connection queue targets: the user-initiated QoS global queue, not the default
    /// one. Each QoS class has its own root queue and CPU-sized worker pool, and on Linux Swift's
    /// global concurrency executor runs default-priority tasks on the *default* pool; async code
    /// that blocks there (a synchronous SQLite call or semaphore in a task) would otherwise queue
    /// the server's socket I/O behind it, for seconds on a small machine.
    static let connectionPool = DispatchQueue.global(qos: .userInitiated)

    /// Serial queue of the listener (an overcommit-pool queue, so blocked handlers never starve it).
    let listenerQueue = DispatchQueue(label: "HTTPServer.listener")
    /// Serial queue of the deadline watchdog (overcommit pool for the same reason).
    private let watchdogQueue = DispatchQueue(label: "HTTPServer.watchdog")

    /// Mutable lifecycle state, guarded by `lifecycle`.
    private struct Lifecycle {
        /// created → running → draining → stopped (or created → stopped).
        enum Phase { case created, running, draining, stopped }
        /// Where the server is in its lifecycle.
        var phase = Phase.created
        /// The bound address, once listening.
        var address: SocketAddress?
        /// The accept loop, once listening.
        var listener: Listener?
        /// The handler-deadline timer, once listening.
        var watchdog: Watchdog?
        /// Callers of `shutdown` waiting for the drain to finish.
        var completions: [@Sendable () -> Void] = []
    }

    /// Creates a server. Nothing is bound until ``start()``.
    ///
    /// The handler and state are retained for the server's lifetime; the server itself must be
    /// kept alive (for example in a local of the function that calls `dispatchMain()`).
    ///
    /// - Parameters:
    ///   - configuration: limits, timeouts and the listen address.
    ///   - state: shared lifecycle flags; pass the instance your handler reads.
    ///   - handler: answers every request (see ``HTTPHandler`` for where it runs).
    public init(
        configuration: HTTPServerConfiguration = HTTPServerConfiguration(),
        state: HTTPServerState = HTTPServerState(),
        handler: any HTTPHandler
    ) {
        self.configuration = configuration
        self.state = state
        self.handler = handler
        self.timeouts = Connection.Timeouts(configuration)
        self.errorResponses = ErrorResponses(
            retryAfterSeconds: configuration.retryAfterSeconds, maxBodyBytes: configuration.maxBodyBytes,
            contentTooLargeAdvice: configuration.contentTooLargeAdvice)
        self.inlineLimit = max(0, configuration.inlineHandlerLimit ?? InlineHandlerSlots.cpuCount)
        self.handlerPool = HandlerPool(maxThreads: configuration.handlerThreads)
        self.addressSlots = AddressSlots(limit: configuration.maxConnectionsPerAddress)
        self.bodyBudget = BodyMemoryBudget(limit: configuration.bodyMemoryBudgetBytes)
        self.shedGrace = configuration.shedGracePeriod.clampedNanoseconds
        self.headShedGrace = configuration.headShedGracePeriod.clampedNanoseconds
    }

    /// Sets how many event-loop threads the process runs (1…64; default one per CPU, at most 64).
    /// The loops are shared by every server and made when the first one starts, so call this
    /// before that. Returns false, changing nothing, if they already exist or `count` is out of
    /// range. Fewer loops than CPUs leave room for the handler pool and the SQLite writer at some
    /// cost in throughput (BENCHMARKS.md).
    @discardableResult
    public static func configureEventLoops(_ count: Int) -> Bool { EventLoop.request(count) }

    /// True once ``shutdown(deadline:completion:)`` has been called.
    public var isDraining: Bool { state.isDraining }

    /// The bound TCP port (the kernel's choice when the configuration asked for port 0), or 0
    /// before ``start()``.
    public var port: Int { lifecycle.withLock { $0.address?.port ?? 0 } }

    /// The bound address as `host:port` (`[host]:port` for IPv6), or nil before ``start()``.
    public var localAddress: String? { lifecycle.withLock { $0.address?.description } }

    /// Number of open client connections.
    public var activeConnections: Int { connectionCount.load(ordering: .relaxed) }

    // MARK: - Start

    /// Binds, listens and starts accepting connections; returns as soon as the socket listens.
    ///
    /// Also raises the soft `RLIMIT_NOFILE` to the hard limit when it is below what
    /// ``HTTPServerConfiguration/maxConnections`` needs.
    ///
    /// - Throws: ``HTTPServerError`` naming the failing step (`invalidHost`, `bind` with
    ///   `EADDRINUSE`, …) or `alreadyStarted`.
    public func start() throws(HTTPServerError) {
        try lifecycle.withLock { (life: inout Lifecycle) throws(HTTPServerError) in
            guard life.phase == .created else { throw .alreadyStarted }
            life.phase = .running
        }
        checkFileDescriptorLimit()
        let fd: Int32
        let address: SocketAddress
        do throws(HTTPServerError) {
            guard !EventLoop.all.isEmpty else { throw .systemCall(call: "epoll_create1", errno: errno) }
            guard (0...65535).contains(configuration.port) else { throw HTTPServerError.invalidPort(configuration.port) }
            guard let parsed = SocketAddress(host: configuration.host, port: configuration.port) else {
                throw HTTPServerError.invalidHost(configuration.host)
            }
            address = parsed
            fd = try HTTPServer.makeListeningSocket(address: address, backlog: configuration.backlog)
        } catch {
            // A server that failed to start is finished: shutdown() completes at once.
            lifecycle.withLock { $0.phase = .stopped }
            throw error
        }
        var bound = address
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        if named == 0 { bound = SocketAddress(storage: storage, length: length) }

        let listener = Listener(fd: fd, server: self)
        let watchdog = makeWatchdog()
        lifecycle.withLock {
            $0.address = bound
            $0.listener = listener
            $0.watchdog = watchdog
        }
        listenerQueue.async { listener.start() }
        watchdog.timer.activate()
        configuration.logger.info("listening on \(bound.description)")
    }

    /// `socket` + `SO_REUSEADDR` + `bind` + `listen(backlog)`, non-blocking and close-on-exec.
    private static func makeListeningSocket(address: SocketAddress, backlog: Int32) throws(HTTPServerError) -> Int32 {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .systemCall(call: "socket", errno: errno) }
        // SO_REUSEADDR: restart while old connections sit in TIME_WAIT.
        guard SocketIO.setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1) else {
            let code = errno
            SocketIO.close(fd)
            throw .systemCall(call: "setsockopt(SO_REUSEADDR)", errno: code)
        }
        var storage = address.storage
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, address.length) }
        }
        guard bound == 0 else {
            let code = errno
            SocketIO.close(fd)  // No DispatchSource watches this fd yet.
            throw .systemCall(call: "bind", errno: code)
        }
        guard listen(fd, backlog) == 0 else {
            let code = errno
            SocketIO.close(fd)
            throw .systemCall(call: "listen", errno: code)
        }
        return fd
    }

    /// docs/http.md §12: the process needs at least maxConnections + 64 descriptors (listener, DB,
    /// logs, slack). Raise the soft limit to the hard limit if it is lower; warn if still short.
    private func checkFileDescriptorLimit() {
        let needed = rlim_t(max(0, configuration.maxConnections) + 64)
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        if limit.rlim_cur < needed && limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        if limit.rlim_cur < needed {
            configuration.logger.warning(
                "RLIMIT_NOFILE is \(limit.rlim_cur), below the \(needed) needed for \(configuration.maxConnections) connections")
        }
    }

    // MARK: - Connections

    /// Takes ownership of an accepted socket whose address slot (``AddressSlots``) is already
    /// claimed; the connection releases it when it closes. Called on the listener queue.
    func adopt(fd: Int32, peer: SocketAddress) {
        if state.isDraining {
            SocketIO.close(fd)  // Accepted during shutdown: no source watches it yet.
            addressSlots.release(peer.peerKey)
            return
        }
        _ = SocketIO.setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        connectionCount.wrappingAdd(1, ordering: .sequentiallyConsistent)
        // Connection queues target a global queue: Dispatch's CPU-sized (non-overcommit) pool, so
        // thread count stays bounded under load. Handlers that may block, or beyond what that pool
        // can absorb, move to the bounded handler pool (see InlineHandlerSlots, Connection.handle).
        guard let loop = EventLoop.next() else {
            SocketIO.close(fd)  // Unreachable once start() succeeded; no watcher has this fd.
            addressSlots.release(peer.peerKey)
            connectionCount.wrappingSubtract(1, ordering: .sequentiallyConsistent)
            return
        }
        let queue = DispatchQueue(label: "HTTPServer.connection", target: HTTPServer.connectionPool)
        let transport: any Transport = configuration.transportFactory?(fd) ?? PlainSocketTransport(fileDescriptor: fd)
        let connection = Connection(transport: transport, peer: peer, server: self, loop: loop, queue: queue)
        connections.withLock { $0[ObjectIdentifier(connection)] = connection }
        queue.async { connection.start() }
    }

    /// Refuses an accepted socket whose address is at ``HTTPServerConfiguration/maxConnectionsPerAddress``:
    /// discards what already arrived (so the close is less likely to reset the answer away),
    /// sends a prebuilt 503 if the socket takes it at once, and closes. Never blocks; called on
    /// the listener queue.
    func refuse(fd: Int32) {
        let buffer = ReadBuffer.current()
        if let base = buffer.baseAddress { _ = recv(fd, base, buffer.count, Int32(MSG_DONTWAIT)) }
        let bytes = errorResponses.bytes(code: 503, date: HTTPDate.format(HTTPDate.nowSeconds()))
        _ = bytes.withUnsafeBytes { SocketIO.send(fd, UnsafeRawBufferPointer(start: nil, count: 0), $0) }
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
        SocketIO.close(fd)
    }

    /// Issue 14 item 3: asks the connection idle longest to close, to make room for a newcomer at
    /// ``HTTPServerConfiguration/maxConnections``: idle (``Connection/idleSince``) for at least
    /// the grace period, or receiving one request head (``Connection/headSince``) for longer than
    /// the head grace; the oldest of either kind goes first. Returns false when no connection can
    /// be shed now. The chosen connection checks again on its own queue (``Connection/shed()``)
    /// and either closes, which wakes the listener as any close does, or declines, which asks the
    /// listener to try again (``shedDeclined()``).
    func shedIdleConnection(now: UInt64) -> Bool {
        connections.withLock { all -> Bool in
            var best: Connection?
            var bestSince = UInt64.max
            var bestIsHead = false
            for connection in all.values {
                let idle = connection.idleSince.load(ordering: .relaxed)
                if idle != 0, idle < bestSince, now >= idle, now - idle >= shedGrace {
                    best = connection
                    bestSince = idle
                    bestIsHead = false
                }
                let head = connection.headSince.load(ordering: .relaxed)
                if head != 0, head < bestSince, now >= head, now - head >= headShedGrace {
                    best = connection
                    bestSince = head
                    bestIsHead = true
                }
            }
            // Claim it: a connection that moved on meanwhile published 0 or a newer time.
            guard let best else { return false }
            let claimed =
                bestIsHead
                ? best.headSince.compareExchange(expected: bestSince, desired: 0, ordering: .relaxed).exchanged
                : best.idleSince.compareExchange(expected: bestSince, desired: 0, ordering: .relaxed).exchanged
            guard claimed else { return false }
            best.queue.async { best.shed() }
            return true
        }
    }

    /// A connection asked to close by ``shedIdleConnection(now:)`` was busy after all.
    func shedDeclined() {
        let listener = lifecycle.withLock { $0.listener }
        listenerQueue.async { listener?.retryAdmission(shedDeclined: true) }
    }

    /// Called on the connection's queue once its fd is closed.
    func connectionClosed(_ connection: Connection) {
        connections.withLock { $0[ObjectIdentifier(connection)] = nil }
        addressSlots.release(connection.peerKey)
        let remaining = connectionCount.wrappingSubtract(1, ordering: .sequentiallyConsistent).newValue
        if listenerWaitingForCapacity.load(ordering: .sequentiallyConsistent) {
            let listener = lifecycle.withLock { $0.listener }
            listenerQueue.async { listener?.capacityFreed() }
        }
        if remaining == 0 && state.isDraining { finishShutdown() }
    }

    // MARK: - Watchdog: connection deadlines

    /// A tenth of the shortest timeout, between 10 ms and 100 ms: every deadline is honoured to
    /// within one tick, and an idle server wakes at most ten times a second.
    static func watchdogTick(_ t: Connection.Timeouts) -> UInt64 {
        let shortest = [t.header, t.idle, t.body, t.write, t.linger, t.handler].min() ?? 0
        return max(10_000_000, min(100_000_000, shortest / 10))
    }

    /// The server's one repeating timer. Every tick it queues a deadline check on each connection
    /// whose published deadline has passed (docs/http.md §11; connections have no timer of their
    /// own, see ``Connection``), and retries admission while a newcomer waits for a slot. It only
    /// ever enqueues work on a connection's queue: the connection decides and does the I/O.
    private func makeWatchdog() -> Watchdog {
        let tick = HTTPServer.watchdogTick(timeouts)
        let timer = DispatchSource.makeTimerSource(queue: watchdogQueue)
        timer.schedule(
            deadline: .now() + .nanoseconds(Int(tick)), repeating: .nanoseconds(Int(tick)),
            leeway: .nanoseconds(Int(tick / 10)))
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            // A newcomer waits for a slot: connections may have become idle long enough to shed.
            if self.listenerWaitingForCapacity.load(ordering: .relaxed) {
                let listener = self.lifecycle.withLock { $0.listener }
                self.listenerQueue.async { listener?.retryAdmission(shedDeclined: false) }
            }
            let now = Connection.now()
            self.connections.withLock { all in
                for connection in all.values { connection.checkDeadline(now: now) }
            }
        }
        return Watchdog(timer: timer)
    }

    // MARK: - Shutdown (docs/http.md §16)

    /// Drains the server gracefully, then calls `completion` exactly once.
    ///
    /// - Parameters:
    ///   - deadline: when remaining connections are force-closed; typically
    ///     `.now() + configuration.drainTimeout` (keep it below the orchestrator's kill timeout).
    ///   - completion: runs once the server is drained, e.g. to close the store and `exit(0)`.
    ///
    /// 1. ``isDraining`` becomes true (health checks can answer 503).
    /// 2. The listener is cancelled: its fd is closed and new connections are refused.
    /// 3. Idle connections are closed now; busy ones finish their current request, answer it with
    ///    `Connection: close`, and close.
    /// 4. When no connection is left, or at `deadline`, remaining connections are force-closed and
    ///    `completion` runs (on an arbitrary thread). A handler still blocked at the deadline cannot
    ///    be interrupted; its connection closes when it returns.
    ///
    /// Calling it again only adds another completion. Calling it before ``start()`` completes at once.
    public func shutdown(deadline: DispatchTime, completion: @escaping @Sendable () -> Void) {
        state.beginDraining()
        let (first, alreadyDone) = lifecycle.withLock { life -> (Bool, Bool) in
            if life.phase == .stopped { return (false, true) }
            life.completions.append(completion)
            if life.phase == .created {
                life.phase = .stopped
                return (false, true)
            }
            let first = life.phase == .running
            life.phase = .draining
            return (first, false)
        }
        if alreadyDone {
            let pending = lifecycle.withLock { life -> [@Sendable () -> Void] in
                defer { life.completions = [] }
                return life.completions
            }
            pending.forEach { $0() }
            if pending.isEmpty { completion() }
            return
        }
        guard first else { return }
        configuration.logger.info("draining: no longer accepting connections")
        let listener = lifecycle.withLock { $0.listener }
        listenerQueue.async { [self] in
            listener?.cancel()
            let open = connections.withLock { Array($0.values) }
            for connection in open { connection.queue.async { connection.beginDrain() } }
            if connectionCount.load(ordering: .sequentiallyConsistent) == 0 { finishShutdown() }
        }
        listenerQueue.asyncAfter(deadline: deadline) { [self] in
            guard !shutdownFinished.load(ordering: .sequentiallyConsistent) else { return }
            let open = connections.withLock { Array($0.values) }
            if !open.isEmpty {
                configuration.logger.warning("drain deadline reached; closing \(open.count) connection(s)")
            }
            for connection in open { connection.queue.async { connection.close() } }
            finishShutdown()
        }
    }

    /// ``shutdown(deadline:completion:)`` with ``HTTPServerConfiguration/drainTimeout``, awaited.
    ///
    /// Convenient in tests: `defer`-style cleanup after `try server.start()`.
    public func shutdown() async {
        let deadline = DispatchTime.now() + .nanoseconds(Int(min(configuration.drainTimeout.clampedNanoseconds, UInt64(Int.max))))
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            shutdown(deadline: deadline) { continuation.resume() }
        }
    }

    /// Runs the shutdown completions exactly once and stops the watchdog.
    private func finishShutdown() {
        guard shutdownFinished.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged
        else { return }
        let (completions, watchdog) = lifecycle.withLock { life -> ([@Sendable () -> Void], Watchdog?) in
            life.phase = .stopped
            defer {
                life.completions = []
                life.watchdog = nil
                life.listener = nil
            }
            return (life.completions, life.watchdog)
        }
        watchdog?.timer.cancel()
        configuration.logger.info("drained")
        for completion in completions { completion() }
    }
}

/// Holds the handler-watchdog timer. `@unchecked Sendable`: the timer is set up before it is
/// shared, and afterwards only `activate()`/`cancel()` are called, which libdispatch allows from
/// any thread.
final class Watchdog: @unchecked Sendable {
    /// The repeating watchdog timer.
    let timer: any DispatchSourceTimer
    /// Wraps a configured, not yet activated timer.
    init(timer: any DispatchSourceTimer) { self.timer = timer }
}

/// The listening socket and its accept loop, confined to the server's listener queue.
///
/// `@unchecked Sendable`: all mutable state is touched only on `server.listenerQueue` (the source
/// delivers there and every other entry point is reached with `listenerQueue.async`).
final class Listener: @unchecked Sendable {
    /// The listening socket; closed only in the source's cancel handler.
    private let fd: Int32
    /// The server that adopts accepted sockets.
    private let server: HTTPServer
    /// Fires when connections are pending; nil once cancelled.
    private var source: (any DispatchSourceRead)?
    /// Paused because ``HTTPServerConfiguration/maxConnections`` are open: `parked` waits.
    private var pausedForCapacity = false
    /// A newcomer accepted at the cap (its address slot claimed), admitted once a slot frees.
    private var parked: (fd: Int32, peer: SocketAddress)?
    /// When a shed was last requested for `parked` (0: none pending); a close or a decline ends it.
    private var shedRequestedAt: UInt64 = 0
    /// Paused for 100 ms after a resource error from `accept`.
    private var pausedForBackoff = false
    /// Whether `source` is currently suspended.
    private var suspended = false

    /// Wraps a listening socket; ``start()`` begins accepting.
    init(fd: Int32, server: HTTPServer) {
        self.fd = fd
        self.server = server
    }

    /// Creates and activates the read source. Runs on the listener queue.
    func start() {
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: server.listenerQueue)
        let fd = self.fd
        source.setEventHandler { [self] in acceptBatch() }
        // The listening fd is closed only here, after the source has stopped watching it.
        source.setCancelHandler { SocketIO.close(fd) }
        self.source = source
        source.activate()
    }

    /// Accepts up to 64 connections per wake-up, until EAGAIN (docs/http.md §12). A connection
    /// over its address's bound is refused at once; one that finds the server full is parked
    /// while an idle connection is shed for it (issue 14 item 3).
    private func acceptBatch() {
        guard source != nil, parked == nil else { return }
        let max = server.configuration.maxConnections
        for _ in 0..<64 {
            var peer = SocketAddress(storage: sockaddr_storage(), length: 0)
            let client = SocketIO.accept(fd, &peer)
            if client >= 0 {
                guard server.addressSlots.claim(peer.peerKey) else {
                    server.configuration.logger.debug("connection limit per address reached; refusing")
                    server.refuse(fd: client)
                    continue
                }
                if server.connectionCount.load(ordering: .sequentiallyConsistent) < max {
                    server.adopt(fd: client, peer: peer)
                    continue
                }
                parked = (client, peer)
                pauseForCapacity()
                return
            }
            let code = errno
            switch code {
            case EAGAIN, EWOULDBLOCK:
                return
            case EINTR, ECONNABORTED, EPROTO, EPERM:
                continue  // The pending connection vanished or a signal arrived; keep going.
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                server.configuration.logger.error("accept failed: errno \(code); pausing accepts for 100 ms")
                backOff()
                return
            default:
                server.configuration.logger.error("accept failed: errno \(code); pausing accepts for 100 ms")
                backOff()
                return
            }
        }
    }

    /// Stops accepting while `parked` waits for a slot (the kernel backlog holds further clients),
    /// and tries to make one by shedding an idle connection.
    private func pauseForCapacity() {
        pausedForCapacity = true
        server.listenerWaitingForCapacity.store(true, ordering: .sequentiallyConsistent)
        updateSuspension()
        // A connection may have closed between the count check and the flag store: the retry
        // re-checks the count, so the wake-up cannot be lost.
        retryAdmission(shedDeclined: false)
    }

    /// A connection closed: admit the parked newcomer and resume accepting.
    func capacityFreed() {
        shedRequestedAt = 0
        retryAdmission(shedDeclined: false)
    }

    /// Admits the parked newcomer if a slot is free, else asks for an idle connection to be shed
    /// (unless a shed is already under way). Called when pausing, on every close, every watchdog
    /// tick while waiting, and when a chosen connection declines to be shed.
    func retryAdmission(shedDeclined: Bool) {
        guard pausedForCapacity else { return }
        if shedDeclined { shedRequestedAt = 0 }
        if server.connectionCount.load(ordering: .sequentiallyConsistent) < server.configuration.maxConnections {
            if let waiting = parked {
                parked = nil
                shedRequestedAt = 0
                server.adopt(fd: waiting.fd, peer: waiting.peer)
            }
            pausedForCapacity = false
            server.listenerWaitingForCapacity.store(false, ordering: .sequentiallyConsistent)
            updateSuspension()
            return
        }
        guard parked != nil else { return }
        let now = Connection.now()
        // One shed at a time; a request lost to a connection that closed on its own is retried
        // after a second.
        if shedRequestedAt != 0 && now &- shedRequestedAt < 1_000_000_000 { return }
        if server.shedIdleConnection(now: now) {
            shedRequestedAt = max(1, now)
            server.configuration.logger.debug("connection limit reached; shedding the longest-idle connection")
        }
    }

    /// Pauses accepting for 100 ms after `EMFILE`/`ENFILE`/`ENOBUFS`/`ENOMEM` (never gives up).
    private func backOff() {
        pausedForBackoff = true
        updateSuspension()
        server.listenerQueue.asyncAfter(deadline: .now() + .milliseconds(100)) { [self] in
            pausedForBackoff = false
            updateSuspension()
        }
    }

    /// Suspends or resumes the source so that it is suspended exactly while a pause reason holds.
    private func updateSuspension() {
        guard let source else { return }
        let shouldSuspend = pausedForCapacity || pausedForBackoff
        if shouldSuspend && !suspended {
            source.suspend()
            suspended = true
        } else if !shouldSuspend && suspended {
            source.resume()
            suspended = false
        }
    }

    /// Stops accepting for good; the cancel handler closes the fd.
    func cancel() {
        if let waiting = parked {
            parked = nil
            SocketIO.close(waiting.fd)
            server.addressSlots.release(waiting.peer.peerKey)
        }
        guard let source else { return }
        if suspended {
            source.resume()  // Cancelling (and releasing) a suspended source traps.
            suspended = false
        }
        source.cancel()
        self.source = nil
    }
}
