// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Glibc
@testable import HTTPServer
import Primitives
import Synchronization
import Testing

/// The bounded handler pool: every job runs, the thread count never exceeds the ceiling, and idle
/// threads leave.
@Suite("HandlerPool")
struct HandlerPoolTests {
    @Test func runsEveryJobWithAtMostMaxThreadsAtOnce() {
        let pool = HandlerPool(maxThreads: 3)
        let running = Atomic<Int>(0)
        let peak = Atomic<Int>(0)
        let done = DispatchSemaphore(value: 0)
        let jobs = 60
        for _ in 0..<jobs {
            pool.submit {
                let now = running.wrappingAdd(1, ordering: .relaxed).newValue
                var seen = peak.load(ordering: .relaxed)
                while now > seen {
                    let (exchanged, current) = peak.compareExchange(expected: seen, desired: now, ordering: .relaxed)
                    if exchanged { break }
                    seen = current
                }
                usleep(2_000)  // A blocking handler: the pool must not start a thread per job.
                running.wrappingSubtract(1, ordering: .relaxed)
                done.signal()
            }
        }
        for _ in 0..<jobs { done.wait() }
        #expect(peak.load(ordering: .relaxed) <= 3)
        #expect(peak.load(ordering: .relaxed) >= 2)  // It did run jobs in parallel.
        #expect(pool.threadCount <= 3)
    }

    @Test func jobsStartInSubmissionOrderOnOneThread() {
        let pool = HandlerPool(maxThreads: 1)
        let order = Locked<[Int]>([])
        let done = DispatchSemaphore(value: 0)
        for i in 0..<200 {
            pool.submit {
                order.withLock { $0.append(i) }
                done.signal()
            }
        }
        for _ in 0..<200 { done.wait() }
        #expect(order.withLock { $0 } == Array(0..<200))
    }

    @Test func idleThreadsExit() {
        let pool = HandlerPool(maxThreads: 4, idleSeconds: 1)
        let done = DispatchSemaphore(value: 0)
        for _ in 0..<8 {
            pool.submit {
                usleep(20_000)
                done.signal()
            }
        }
        for _ in 0..<8 { done.wait() }
        #expect(pool.threadCount >= 1)
        // Bounded wait (not a timing assertion): poll for up to 10 s for the threads to leave.
        var polls = 0
        while pool.threadCount > 0 && polls < 200 {
            usleep(50_000)
            polls += 1
        }
        #expect(pool.threadCount == 0)
        // And the pool still works afterwards.
        pool.submit { done.signal() }
        done.wait()
    }
}
