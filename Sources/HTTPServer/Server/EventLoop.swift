// SPDX-License-Identifier: Apache-2.0
import CSocketShims
import Dispatch
import Glibc
import Primitives
import Synchronization

/// A readiness watcher of the client sockets: one thread in `epoll_wait`, delivering each event
/// to its connection's serial queue. There is one loop per CPU (``all``); connections are
/// spread over them round-robin (``next()``).
///
/// **Delivery.** An event is handled *on the loop thread*, through `queue.sync`: Dispatch runs
/// the block on the calling thread when the queue is idle, so reading, parsing, a non-blocking
/// handler and the write cost no thread hop and no worker wake-up. (The hop was a quarter of an
/// export's CPU time: a measured 32 → 24 µs of server CPU per request with `wrk -c64`.) This is
/// the event-loop contract of swift-nio: work that may block must not run there, so only a
/// request the handler places ``HTTPPlacement/inline`` (``HTTPHandler/placement(of:)``) runs on
/// the loop; any other goes to the handler pool.
///
/// Nothing that runs on a connection queue waits for a loop thread (re-arming is an `epoll_ctl`,
/// not a message to the loop), so `sync` cannot deadlock; it waits only while the queue is busy
/// with a short block of its own (a deadline check, an offloaded handler's answer), and then only
/// for that connection's event.
///
/// **Why not `DispatchSourceRead`/`DispatchSourceWrite`.** On Linux those sources share
/// libdispatch's epoll "muxnote" bookkeeping, whose registration, suspension and cancellation run
/// on Dispatch's manager thread. Under connection churn on error paths (rejected requests,
/// lingering close, clients that reset) the manager thread crashed the process about once in ten
/// CI runs with `BUG IN LIBDISPATCH: Source finalized twice` (`_dispatch_source_merge_evt` →
/// `_dispatch_source_refs_finalize_unregistration`, SIGILL). A server that must never crash
/// cannot depend on that path, so connections talk to epoll directly; Dispatch still runs their
/// queues, the listener and the timers.
///
/// **Protocol.** Every registration carries a registration id, not the fd. Registrations are
/// `EPOLLONESHOT`: an event disarms the fd, and the connection re-arms it with the interest it
/// has *after* handling the event (``Connection`` does this on its queue). Ids are never reused,
/// so an event that was already fetched for a connection that has since closed (and whose fd
/// number a new connection may now hold) finds no registration and is dropped. Level-triggered
/// readiness plus one-shot arming means no event is lost and none is delivered twice
/// concurrently. One exception: a connection keeps a *persistent* `EPOLLIN` registration while
/// it only waits to read, which is most of its life. Its events run synchronously on this
/// thread, so no second delivery can overlap, and the `epoll_ctl` re-arm per request (2 % of
/// the loop's time under export load) goes away. Any other interest (writable, paused, handling
/// off the loop) is armed one-shot again, so nothing level-triggered can fire while the loop
/// cannot consume it.
///
/// **Responses go out at the end of a batch.** A response made on this thread while it hands out
/// the events of one `epoll_wait` is not sent at once: the connection is queued
/// (``deferFlush(_:)``) and sent after the batch, or as soon as ``deferredFlushLimit`` are
/// waiting. A client that waits in `epoll_wait` for its answers is then woken once for a burst of
/// them instead of once for each. Measured with `wrk -t1 -c64` on export (BENCHMARKS.md, seventh
/// session): wrk's voluntary context switches per request 0.77 → 0.065 and its CPU 47–53 % → 35–38 %;
/// the loop's own cost per request barely moves (it no longer pays for most wake-ups, and pays
/// for one more `queue.sync`). The cost is latency for the first responses of a batch: at most the
/// handler time of ``deferredFlushLimit`` inline requests (a few hundred microseconds).
///
/// `@unchecked Sendable`: `epfd` is immutable, the registry and the id counter are
/// locked, and `batching`/`deferred` are touched only by this loop's thread (``run()`` and
/// ``deferFlush(_:)``, which checks the thread first).
final class EventLoop: @unchecked Sendable {
    /// The process's loops, shared by every server (like Dispatch's manager thread); empty only
    /// if the kernel refused epoll or a thread, in which case servers refuse to start.
    ///
    /// One per CPU (at most 64), as swift-nio sizes its group. Measured on the 2-CPU machine of
    /// BENCHMARKS.md (shared kit, export, `wrk -t1 -c64`, medians of 3): one loop 16.6k req/s at
    /// 108 % server CPU, leaving a quarter of the machine idle; two loops 23.8k req/s at 151 %,
    /// p99 9.0 → 6.8 ms, create unchanged (12.1/10.6k → 12.9/12.8k). A loop costs more CPU per
    /// request than one loop did (smaller `epoll_wait` batches), but it uses the machine.
    static let all: [EventLoop] = {
        made.store(true, ordering: .sequentiallyConsistent)
        return (0..<count).compactMap { _ in try? EventLoop() }
    }()

    /// How many loops ``all`` holds: as configured (``HTTPServer/configureEventLoops(_:)``), else
    /// one per CPU (1…64).
    static var count: Int {
        let configured = requested.load(ordering: .sequentiallyConsistent)
        return configured > 0 ? configured : min(64, InlineHandlerSlots.cpuCount)
    }

    /// The count asked for before the loops were made (0: the default).
    private static let requested = Atomic<Int>(0)
    /// Set when ``all`` is first made; later requests change nothing.
    private static let made = Atomic<Bool>(false)

    /// Asks for `count` loops (1…64); false if the loops already exist or `count` is out of range.
    static func request(_ count: Int) -> Bool {
        guard (1...64).contains(count), !made.load(ordering: .sequentiallyConsistent) else { return false }
        requested.store(count, ordering: .sequentiallyConsistent)
        return !made.load(ordering: .sequentiallyConsistent)
    }

    /// Round-robin position for ``next()``.
    private static let cursor = Atomic<Int>(0)

    /// The loop a new connection goes to: the next one round-robin; nil when there is none.
    static func next() -> EventLoop? {
        let loops = all
        guard !loops.isEmpty else { return nil }
        let turn = cursor.wrappingAdd(1, ordering: .relaxed).oldValue
        return loops[Int(UInt(bitPattern: turn) % UInt(loops.count))]
    }

    /// `EPOLLIN`: readable, or end of stream.
    static let readable = EPOLLIN.rawValue
    /// `EPOLLOUT`: writable.
    static let writable = EPOLLOUT.rawValue
    /// `EPOLLERR | EPOLLHUP`: always reported while armed.
    static let failed = EPOLLERR.rawValue | EPOLLHUP.rawValue

    /// The epoll instance.
    private let epfd: Int32
    /// Connections by registration id.
    private let registry = Locked<[UInt64: Connection]>([:])
    /// The next registration id (0 is never used).
    private let nextID = Locked<UInt64>(1)
    /// Loop thread only: true while ``run()`` hands out the events of one `epoll_wait`.
    private var batching = false
    /// Loop thread only: connections whose response waits for the end of the batch.
    private var deferred: [Connection] = []
    /// Most responses held back at once: bounds the latency that deferring adds.
    static let deferredFlushLimit = 16
    #if DEBUG
    /// The most responses this loop has held back at once (tests check the bound).
    let largestDeferredBatch = Atomic<Int>(0)
    #endif

    /// Creates the epoll instance and starts its thread.
    /// - Throws: ``HTTPServerError/systemCall(call:errno:)`` if epoll or the thread cannot be
    ///   created.
    init() throws(HTTPServerError) {
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epfd >= 0 else { throw .systemCall(call: "epoll_create1", errno: errno) }
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread: pthread_t = 0
        let created = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            let loop = Unmanaged<EventLoop>.fromOpaque(raw).takeRetainedValue()
            loop.run()
            return nil
        }, context)
        guard created == 0 else {
            Unmanaged<EventLoop>.fromOpaque(context).release()
            Glibc.close(epfd)
            throw .systemCall(call: "pthread_create", errno: created)
        }
        pthread_detach(thread)
    }

    /// Registers `fd` for `connection`, armed for `events` (one shot unless `persistent`); returns
    /// the id to use with ``rearm(fd:id:events:persistent:)`` and ``remove(fd:id:)``, or nil if
    /// epoll refused the fd.
    func add(fd: Int32, connection: Connection, events: UInt32, persistent: Bool = false) -> UInt64? {
        let id = nextID.withLock { next -> UInt64 in
            defer { next &+= 1 }
            return next
        }
        registry.withLock { $0[id] = connection }
        var event = epoll_event()
        event.events = events | (persistent ? 0 : EPOLLONESHOT.rawValue)
        event.data.u64 = id
        guard epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) == 0 else {
            registry.withLock { $0[id] = nil }
            return nil
        }
        return id
    }

    /// Re-arms `fd` for `events` (0: registered but silent), one shot unless `persistent` (see
    /// the protocol above). Called on the connection's queue.
    func rearm(fd: Int32, id: UInt64, events: UInt32, persistent: Bool = false) {
        var event = epoll_event()
        event.events = events | (persistent ? 0 : EPOLLONESHOT.rawValue)
        event.data.u64 = id
        _ = epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &event)
    }

    /// Stops watching `fd` and forgets the registration; call before closing the fd.
    func remove(fd: Int32, id: UInt64) {
        _ = epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nil)
        registry.withLock { $0[id] = nil }
    }

    /// Queues `connection` to send its response at the end of the batch being handed out, if
    /// called on this loop's thread during one; false otherwise (the caller sends at once).
    /// `connection` must then expect ``Connection/sendDeferred()`` on its queue.
    func deferFlush(_ connection: Connection) -> Bool {
        guard isCurrentThread, batching else { return false }
        deferred.append(connection)
        #if DEBUG
        if deferred.count > largestDeferredBatch.load(ordering: .relaxed) {
            largestDeferredBatch.store(deferred.count, ordering: .relaxed)
        }
        #endif
        return true
    }

    /// Sends the held-back responses, each on its connection's queue. Not batching meanwhile: a
    /// pipelined request answered while sending goes out at once, not into the list being sent.
    private func sendDeferred() {
        if deferred.isEmpty { return }
        let wasBatching = batching
        batching = false
        for connection in deferred { connection.queue.sync { connection.sendDeferred() } }
        deferred.removeAll(keepingCapacity: true)
        batching = wasBatching
    }

    /// Whether the calling thread is this loop's thread.
    private var isCurrentThread: Bool {
        guard let key = Self.loopThreadKey else { return false }
        // pthread_getspecific is imported as an implicitly unwrapped optional: keep it optional.
        let value: UnsafeMutableRawPointer? = pthread_getspecific(key)
        return value == Unmanaged.passUnretained(self).toOpaque()
    }

    /// Marks loop threads (the thread-specific value is the loop), for ``isCurrentThreadALoop``.
    private static let loopThreadKey: pthread_key_t? = {
        var key = pthread_key_t()
        return pthread_key_create(&key, nil) == 0 ? key : nil
    }()

    /// Whether the calling thread is an event-loop thread (tests check where work ran).
    static var isCurrentThreadALoop: Bool {
        guard let key = loopThreadKey else { return false }
        return pthread_getspecific(key) != nil
    }

    /// The thread: wait, then hand each event to its connection's queue. It lives as long as the
    /// process (the loop is shared and never torn down, so its fds are never closed under a
    /// concurrent `epoll_ctl`).
    private func run() {
        let capacity = 128
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        if let key = Self.loopThreadKey {
            _ = pthread_setspecific(key, UnsafeRawPointer(Unmanaged.passUnretained(self).toOpaque()))
        }
        while true {
            let count = epoll_wait(epfd, events, Int32(capacity), -1)
            if count < 0 {
                if errno == EINTR { continue }
                return  // EBADF/EINVAL cannot happen while this thread owns epfd.
            }
            batching = true
            for index in 0..<Int(count) {
                let event = events[index]
                let id = event.data.u64
                guard let connection = registry.withLock({ $0[id] }) else { continue }
                let mask = event.events
                connection.queue.sync { connection.ioEvent(mask, id: id) }
                if deferred.count >= Self.deferredFlushLimit { sendDeferred() }
            }
            batching = false
            sendDeferred()
        }
    }
}
