// SPDX-License-Identifier: Apache-2.0
// Public: `withLock` is inlined into other modules, which then call the pthread functions.
#if canImport(Glibc)
public import Glibc
#elseif canImport(Darwin)
public import Darwin
#endif

/// A value guarded by a plain `pthread_mutex_t`: the one lock type of the whole product, used
/// instead of `Synchronization.Mutex` for two reasons.
///
/// - Speed: on Linux `Mutex` spins in `_lockSlow` before sleeping, and with more threads than
///   cores (request threads on 2 vCPUs) a profile of the store's reader pool showed about half of
///   all CPU time spent spinning there while the holder was preempted. glibc's default mutex goes
///   straight to a futex wait.
/// - ThreadSanitizer: `Mutex` waits for a contended lock with raw futex calls inside the
///   (uninstrumented) Swift runtime, so TSan never sees that acquisition and reports every guarded
///   access as a race. TSan intercepts `pthread_mutex_lock`, so CI can treat every report as a
///   failure.
///
/// The mutex lives in its own allocation (a `pthread_mutex_t` must not move). `Locked<Void>`
/// (``init()``) is a bare mutex for code that guards something other than a stored value.
///
/// `withLock` is `@inlinable` so that callers in other modules get it specialised, with no
/// closure context on the heap, as when the lock lived in each module.
///
/// `@unchecked Sendable`: `value` is only reachable inside ``withLock(_:)``, under the mutex.
public final class Locked<Value>: @unchecked Sendable {
    /// The mutex, heap-allocated so that its address is stable.
    @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// The guarded value; accessed only with `mutex` held.
    @usableFromInline var value: Value

    /// Wraps `value`.
    public init(_ value: Value) {
        mutex = .allocate(capacity: 1)
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
    @inlinable
    public func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}

extension Locked where Value == Void {
    /// A bare mutex.
    public convenience init() { self.init(()) }

    /// Runs `body` while holding the mutex. It never touches `value`: an access to a zero-size
    /// stored property is instrumented at an address that can be another object's first bytes,
    /// so ThreadSanitizer reported races between this lock and unrelated memory.
    @inlinable
    public func withLock<Result, Failure: Error>(_ body: () throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}
