// SPDX-License-Identifier: Apache-2.0
import Glibc
import Synchronization

/// Decides whether a handler may run inline on its connection queue (no thread hop) or must move to
/// the server's bounded handler pool (``HandlerPool``).
///
/// **Why.** Connection queues share one Dispatch worker pool (``HTTPServer/connectionPool``), which
/// has one worker per CPU. On Linux, libdispatch adds a worker when all of them are blocked only about once a second
/// (and not at all while some are runnable), so handlers sleeping inline (SQLite waiting for a group
/// commit, a stuck call) on every worker would stall the socket I/O of every connection.
///
/// **Rule.** A process-wide count of the handlers running inline: a new handler runs inline if
/// fewer than the server's limit (default CPUs − 1, at least 1) are running inline *anywhere in
/// the process*, and is offloaded otherwise. The pool is process-wide, so the count is too
/// (several servers in one process, as in tests, share it).
///
/// - With the default limit, at least one worker is never inside a handler, whatever the
///   handlers do and however they are timed: socket I/O cannot starve. (On a single-CPU machine
///   the limit is 1, and a blocked inline handler holds the only worker until it returns.)
/// - Cheap handlers run inline, with no hop, unless the limit is reached at that instant.
/// - The check costs two uncontended atomic operations: no clock, no system call, no `/proc`.
/// - Offloaded handlers run on the handler pool, at most
///   ``HTTPServerConfiguration/handlerThreads`` threads; requests the handler does not place
///   ``HTTPPlacement/inline`` (``HTTPHandler/placement(of:)``) always go there.
///
/// Age-based or thread-state-based guesses ("this one looks blocked") were rejected: a handler can
/// start cheap and then block, so any rule that lets every worker enter a handler can wedge the
/// pool when several block at once.
enum InlineHandlerSlots {
    /// Online CPUs, the width of Dispatch's default pool (at least 1).
    static let cpuCount: Int = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))

    /// The default limit: CPUs − 1 (at least 1), so that one worker stays free for socket I/O.
    static var defaultLimit: Int { max(1, cpuCount - 1) }

    /// Handlers running inline right now, across every server in the process.
    private static let running = Atomic<Int>(0)

    /// Claims an inline slot if fewer than `limit` handlers run inline; false means offload.
    /// A `true` result must be paired with ``release()``. `limit` 0 always offloads.
    @inline(__always)
    static func acquire(limit: Int) -> Bool {
        if limit <= 0 { return false }
        if running.wrappingAdd(1, ordering: .relaxed).newValue <= limit { return true }
        running.wrappingSubtract(1, ordering: .relaxed)
        return false
    }

    /// Frees a slot claimed by ``acquire(limit:)``.
    @inline(__always)
    static func release() {
        running.wrappingSubtract(1, ordering: .relaxed)
    }
}
