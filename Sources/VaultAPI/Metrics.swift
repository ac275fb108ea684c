// SPDX-License-Identifier: Apache-2.0
import Primitives
import VaultCore

/// Prometheus metrics for the service, rendered in text exposition format 0.0.4.
///
/// Labels are route *templates* (`/v1/sessions/{name}`), methods and status codes: never a session
/// name, token, address or any other request value, so `/metrics` can be scraped without auth.
public final class Metrics: Sendable {
    /// Upper bounds of the latency histogram, in seconds.
    public static let buckets: [Double] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

    private struct RequestKey: Hashable {
        let route: String
        let method: String
        let status: Int
    }

    private struct Histogram {
        var counts = [UInt64](repeating: 0, count: Metrics.buckets.count)
        var sum: Double = 0
        var total: UInt64 = 0

        mutating func record(_ seconds: Double, bucket: Int?) {
            if let bucket { counts[bucket] += 1 }
            sum += seconds
            total += 1
        }
    }

    private struct State {
        var requests: [RequestKey: UInt64] = [:]
        var latency: [String: Histogram] = [:]
        var counters: [String: UInt64] = [:]
    }

    private let state = Locked(State())

    public init() {}

    /// Records one answered request.
    public func observe(route: String, method: String, status: Int, seconds: Double) {
        let bucket = Metrics.buckets.firstIndex(where: { seconds <= $0 })
        state.withLock { s in
            s.requests[RequestKey(route: route, method: method, status: status), default: 0] += 1
            // In place (the dictionary's `default:` subscript modifies its value): a copy taken
            // out and stored back shared `counts` with the stored one, so every request copied
            // the bucket array (an allocation and a free on every request).
            s.latency[route, default: Histogram()].record(seconds, bucket: bucket)
        }
    }

    /// Adds one to a plain counter (`name` must be a valid metric name).
    public func increment(_ name: String, by n: UInt64 = 1) {
        state.withLock { $0.counters[name, default: 0] += n }
    }

    /// Renders everything, plus the given gauges (name, help, value).
    public func render(gauges: [(name: String, help: String, labels: String, value: Double)]) -> String {
        let snapshot = state.withLock { $0 }
        var out = ""
        out += "# HELP sv_http_requests_total Requests answered, by route template, method and status.\n"
        out += "# TYPE sv_http_requests_total counter\n"
        for (k, v) in snapshot.requests.sorted(by: { ($0.key.route, $0.key.method, $0.key.status) < ($1.key.route, $1.key.method, $1.key.status) }) {
            out += "sv_http_requests_total{route=\"\(k.route)\",method=\"\(k.method)\",status=\"\(k.status)\"} \(v)\n"
        }
        out += "# HELP sv_http_request_duration_seconds Time from parsed request to response, by route template.\n"
        out += "# TYPE sv_http_request_duration_seconds histogram\n"
        for (route, h) in snapshot.latency.sorted(by: { $0.key < $1.key }) {
            var cumulative: UInt64 = 0
            for (i, le) in Metrics.buckets.enumerated() {
                cumulative += h.counts[i]
                out += "sv_http_request_duration_seconds_bucket{route=\"\(route)\",le=\"\(le)\"} \(cumulative)\n"
            }
            out += "sv_http_request_duration_seconds_bucket{route=\"\(route)\",le=\"+Inf\"} \(h.total)\n"
            out += "sv_http_request_duration_seconds_sum{route=\"\(route)\"} \(h.sum)\n"
            out += "sv_http_request_duration_seconds_count{route=\"\(route)\"} \(h.total)\n"
        }
        for (name, v) in snapshot.counters.sorted(by: { $0.key < $1.key }) {
            out += "# TYPE \(name) counter\n\(name) \(v)\n"
        }
        var seen = Set<String>()
        for g in gauges {
            if seen.insert(g.name).inserted {
                out += "# HELP \(g.name) \(g.help)\n# TYPE \(g.name) gauge\n"
            }
            let value = g.value == g.value.rounded() ? String(Int64(g.value)) : String(g.value)
            out += "\(g.name)\(g.labels.isEmpty ? "" : "{\(g.labels)}") \(value)\n"
        }
        return out
    }
}

/// Slows down repeated failed authentication from one address: after `maxFailures` failures
/// within a window of `windowSeconds` (from the address's first failure), further *failures* from
/// that address get 429 until the window ends.
///
/// Only failures are throttled: a request whose token is valid is answered whatever its address
/// did (the router checks the token first), so a flood of bad tokens from a shared address (a
/// NAT, a proxy) never locks its valid users out. A bad token from a throttled address still
/// gets 429, and the check costs the same keyed hash and look-up either way.
///
/// Windows run on the monotonic clock, so a wall clock stepped back or forward neither extends
/// nor ends them. Memory is bounded: at most `capacity` addresses (the oldest window goes
/// first), in a map and a first-in first-out queue of window starts, with constant work per
/// failure (amortised).
public final class AuthThrottle: Sendable {
    private struct Window {
        var start: UInt64
        var failures: Int
    }

    private struct State {
        var windows: [String: Window] = [:]
        /// Window starts in the order they began (the clock is monotonic): expired ones are at
        /// the front. `order[head...]` is live.
        var order: [(address: String, start: UInt64)] = []
        var head = 0

        /// Drops the windows that ended before `now` (and queue entries of windows since restarted).
        mutating func expire(now: UInt64, window: UInt64) {
            while head < order.count, elapsed(order[head].start, now) >= window {
                removeFront()
            }
            compact()
        }

        mutating func removeFront() {
            let (address, start) = order[head]
            if windows[address]?.start == start { windows[address] = nil }
            head += 1
        }

        /// Keeps the queue's dead prefix from growing: moved out once it is half the array.
        mutating func compact() {
            if head > 64, head * 2 >= order.count {
                order.removeFirst(head)
                head = 0
            }
        }
    }

    private let maxFailures: Int
    private let window: UInt64
    private let windowSeconds: Int64
    private let capacity: Int
    private let clock: @Sendable () -> UInt64
    private let state = Locked(State())

    /// - Parameters:
    ///   - maxFailures: failures answered 401 per window; later ones get 429.
    ///   - windowSeconds: window length.
    ///   - capacity: most addresses tracked (the oldest window is dropped first), bounding memory.
    ///   - clock: monotonic nanoseconds (injectable for tests); `DispatchTime`'s uptime by default.
    public init(maxFailures: Int = 10, windowSeconds: Int64 = 60, capacity: Int = 10_000,
                clock: (@Sendable () -> UInt64)? = nil) {
        self.maxFailures = maxFailures
        self.windowSeconds = max(1, windowSeconds)
        self.window = UInt64(max(1, windowSeconds)) * 1_000_000_000
        self.capacity = max(1, capacity)
        self.clock = clock ?? { VaultRouter.monotonicNanoseconds() }
    }

    /// Records a failed authentication from `address`.
    /// - Returns: the seconds to wait (for `Retry-After`) when the address had already failed
    ///   `maxFailures` times in its window (answer 429), else nil (answer 401).
    public func failure(from address: String) -> Int64? {
        failure(from: address, now: clock())
    }

    /// ``failure(from:)`` at a given monotonic time (nanoseconds).
    func failure(from address: String, now: UInt64) -> Int64? {
        state.withLock { s in
            s.expire(now: now, window: window)
            if var w = s.windows[address] {
                let throttled = w.failures >= maxFailures
                if w.failures < Int.max { w.failures += 1 }
                s.windows[address] = w
                return throttled ? retryAfter(w, now: now) : nil
            }
            while s.windows.count >= capacity, s.head < s.order.count { s.removeFront() }
            s.compact()
            s.windows[address] = Window(start: now, failures: 1)
            s.order.append((address, now))
            return maxFailures < 1 ? retryAfter(Window(start: now, failures: 1), now: now) : nil
        }
    }

    /// Seconds until `address`'s window ends if it is throttled now, else nil. Records nothing.
    public func retryAfter(_ address: String) -> Int64? {
        retryAfter(address, now: clock())
    }

    /// ``retryAfter(_:)`` at a given monotonic time (nanoseconds).
    func retryAfter(_ address: String, now: UInt64) -> Int64? {
        state.withLock { s in
            guard let w = s.windows[address], elapsed(w.start, now) < window, w.failures >= maxFailures else { return nil }
            return retryAfter(w, now: now)
        }
    }

    /// Addresses tracked now (for tests).
    var trackedAddresses: Int { state.withLock { $0.windows.count } }
    /// Entries in the window queue, live or not (for tests: bounded by about twice `capacity`).
    var queuedWindows: Int { state.withLock { $0.order.count } }

    /// Whole seconds left in `w`, rounded up, 1…windowSeconds.
    private func retryAfter(_ w: Window, now: UInt64) -> Int64 {
        let left = window - min(window, elapsed(w.start, now))
        return min(windowSeconds, max(1, Int64((left + 999_999_999) / 1_000_000_000)))
    }
}

/// `now - start`, or 0 when an injected clock went backwards (a monotonic one never does).
private func elapsed(_ start: UInt64, _ now: UInt64) -> UInt64 {
    now >= start ? now - start : 0
}
