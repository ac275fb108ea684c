// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A plain `pthread_mutex_t` (glibc's default type: no spinning, straight to a futex wait).
///
/// Used instead of `Synchronization.Mutex` on the store's hot paths: on Linux the latter spins
/// in `_lockSlow` before sleeping, and with more threads than cores (8 request threads on 2
/// vCPUs) a profile of the reader pool showed about half of all CPU time spent spinning there
/// while the holder was preempted.
///
/// `@unchecked Sendable`: the mutex is heap-allocated once, never moved, and only used through
/// `pthread_mutex_lock`/`unlock`, which are thread-safe by definition.
final class PThreadMutex: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` while holding the mutex.
    func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

/// A value guarded by a ``PThreadMutex``: the lock the whole product uses instead of
/// `Synchronization.Mutex`, for two reasons. On Linux `Mutex` spins before sleeping (see above),
/// and it locks with raw futex calls that ThreadSanitizer cannot see, so every `Mutex`-guarded
/// access shows up as a false "Swift access race" and CI's TSan run could never pass.
///
/// `@unchecked Sendable`: `value` is only reachable inside `withLock`, under the mutex.
public final class PThreadLocked<Value>: @unchecked Sendable {
    private let lock = PThreadMutex()
    private var value: Value

    /// Wraps `value`.
    public init(_ value: Value) { self.value = value }

    /// Runs `body` with exclusive access to the value.
    public func withLock<T, E: Error>(_ body: (inout Value) throws(E) -> T) throws(E) -> T {
        try lock.withLock { () throws(E) -> T in try body(&value) }
    }
}
