// SPDX-License-Identifier: Apache-2.0
import Glibc

/// A value guarded by a `pthread_mutex_t`, used instead of `Synchronization.Mutex` for state that
/// several threads contend on.
///
/// Why: on Linux, `Mutex` waits for a contended lock inside the (uninstrumented) Swift runtime,
/// so ThreadSanitizer never sees that acquisition and reports the guarded accesses as races
/// (seen in `--sanitize=thread` runs: `connectionClosed` versus `shutdown`, both inside
/// `withLock`). TSan intercepts `pthread_mutex_lock`, so this lock is understood, and CI can keep
/// treating every TSan report as a failure. The mutex lives in its own allocation: a
/// `pthread_mutex_t` must not move.
final class Locked<Value: Sendable>: @unchecked Sendable {
    /// The mutex, heap-allocated so that its address is stable.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// The guarded value; accessed only with `mutex` held.
    private var value: Value

    /// Wraps `value`.
    init(_ value: Value) {
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        self.value = value
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with exclusive access to the value.
    func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
