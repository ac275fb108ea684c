// SPDX-License-Identifier: Apache-2.0
import Glibc

/// A bounded pool of threads for handlers that must not run inline on a connection queue.
///
/// **Why not Dispatch's overcommit pool.** An overcommit queue starts a new thread whenever work
/// arrives and no thread is idle, so 64 connections whose handlers wait on a group commit meant up
/// to 64 extra threads, each with its stack and thread-local buffers in RSS. Here the thread count
/// has a hard ceiling (``HTTPServerConfiguration/handlerThreads``); threads start lazily, only
/// when work waits and none is idle, park on a condition variable between jobs, and exit after
/// ``idleSeconds`` without work. Jobs start in submission order.
///
/// **Concurrency.** All mutable state is guarded by one pthread mutex; jobs run outside it. This is
/// the one place that does not use the product's lock type (`Locked`): idle threads park on a
/// condition variable, and `pthread_cond_timedwait` needs the raw mutex it is paired with, which
/// `Locked` deliberately does not hand out. Both are plain pthread objects, so ThreadSanitizer sees
/// them. The condition variable waits on `CLOCK_MONOTONIC`, so a wall-clock step cannot make idle
/// threads exit early or linger.
final class HandlerPool: @unchecked Sendable {
    /// A unit of work.
    typealias Job = @Sendable () -> Void

    /// Most threads this pool will ever start.
    let maxThreads: Int
    /// Guards every `var` below.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// Signalled when a job is queued.
    private let wakeup: UnsafeMutablePointer<pthread_cond_t>
    /// Queued jobs; `head` is the next to run (a growable ring would save the compaction, but the
    /// queue is short: at most the in-flight handler cap).
    private var jobs: [Job?] = []
    /// Index of the next job in `jobs`.
    private var head = 0
    /// Threads started so far.
    private var threads = 0
    /// Threads parked in `pthread_cond_wait`.
    private var idle = 0

    /// Seconds an idle thread waits for work before it exits (threads return after a burst).
    let idleSeconds: Int

    /// A pool that starts at most `maxThreads` threads (at least 1), whose threads exit after
    /// `idleSeconds` without work.
    init(maxThreads: Int, idleSeconds: Int = 10) {
        self.maxThreads = max(1, maxThreads)
        self.idleSeconds = max(1, idleSeconds)
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        wakeup = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        wakeup.initialize(to: pthread_cond_t())
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(wakeup, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    /// Threads started so far (for tests and diagnostics).
    var threadCount: Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return threads
    }

    /// Queues `job`; wakes an idle thread or starts one if none is idle and the ceiling allows.
    /// If a thread cannot be created the job still runs, on an existing thread, later.
    func submit(_ job: @escaping Job) {
        pthread_mutex_lock(mutex)
        jobs.append(job)
        let waiting = jobs.count - head
        var start = false
        if idle >= waiting {
            pthread_cond_signal(wakeup)
        } else if threads < maxThreads {
            threads += 1
            start = true
            if idle > 0 { pthread_cond_signal(wakeup) }
        } else if idle > 0 {
            pthread_cond_signal(wakeup)
        }
        pthread_mutex_unlock(mutex)
        if start && !startThread() {
            pthread_mutex_lock(mutex)
            threads -= 1
            let orphaned = threads == 0
            pthread_mutex_unlock(mutex)
            // No thread at all could be started: run it here rather than never.
            if orphaned { drainOnCaller() }
        }
    }

    /// Starts one detached worker thread; false if `pthread_create` failed.
    private func startThread() -> Bool {
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread: pthread_t = 0
        let created = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            let pool = Unmanaged<HandlerPool>.fromOpaque(raw).takeRetainedValue()
            pool.work()
            return nil
        }, context)
        if created != 0 {
            Unmanaged<HandlerPool>.fromOpaque(context).release()
            return false
        }
        pthread_detach(thread)  // Workers are never joined: an idle one simply exits.
        return true
    }

    /// Takes the next job, waiting while there is none; nil when the thread has been idle for
    /// ``idleSeconds`` and should exit (it is then no longer counted). Called with `mutex` held.
    private func nextJob() -> Job? {
        while true {
            if head < jobs.count, let job = jobs[head] {
                jobs[head] = nil
                head += 1
                if head == jobs.count {
                    jobs.removeAll(keepingCapacity: jobs.count <= 256)
                    head = 0
                } else if head >= 64 && head * 2 >= jobs.count {
                    jobs.removeSubrange(0..<head)
                    head = 0
                }
                return job
            }
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            var until = now
            until.tv_sec += idleSeconds
            idle += 1
            let waited = pthread_cond_timedwait(wakeup, mutex, &until)
            idle -= 1
            if waited == ETIMEDOUT && head >= jobs.count {
                threads -= 1
                return nil
            }
        }
    }

    /// A worker thread's loop, until it has been idle for ``idleSeconds``.
    private func work() {
        while true {
            pthread_mutex_lock(mutex)
            let job = nextJob()
            pthread_mutex_unlock(mutex)
            guard let job else { return }
            job()
        }
    }

    /// Runs every queued job on the calling thread (only when no worker thread could be started).
    private func drainOnCaller() {
        while true {
            pthread_mutex_lock(mutex)
            guard head < jobs.count, let job = jobs[head] else {
                pthread_mutex_unlock(mutex)
                return
            }
            jobs[head] = nil
            head += 1
            pthread_mutex_unlock(mutex)
            job()
        }
    }
}
