// SPDX-License-Identifier: Apache-2.0
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

    private let state = PThreadLocked(State())

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
/// within `window` seconds, further requests from that address get 429 until the window ends.
public final class AuthThrottle: Sendable {
    private struct Entry {
        var windowStart: Int64
        var failures: Int
    }

    private let maxFailures: Int
    private let window: Int64
    private let capacity: Int
    private let entries = PThreadLocked([String: Entry]())

    /// - Parameters:
    ///   - maxFailures: failures tolerated per window.
    ///   - windowSeconds: window length.
    ///   - capacity: most addresses tracked (oldest windows are dropped first), bounding memory.
    public init(maxFailures: Int = 10, windowSeconds: Int64 = 60, capacity: Int = 10_000) {
        self.maxFailures = maxFailures
        self.window = windowSeconds
        self.capacity = capacity
    }

    /// Seconds to wait when `address` is throttled now, else nil.
    public func retryAfter(_ address: String, now: Int64) -> Int64? {
        entries.withLock { map in
            guard let e = map[address] else { return nil }
            if now - e.windowStart >= window {
                map[address] = nil
                return nil
            }
            return e.failures >= maxFailures ? max(1, e.windowStart + window - now) : nil
        }
    }

    /// Records a failed authentication from `address`.
    public func recordFailure(_ address: String, now: Int64) {
        entries.withLock { map in
            if var e = map[address], now - e.windowStart < window {
                e.failures += 1
                map[address] = e
                return
            }
            if map.count >= capacity {
                // Drop expired entries; if still full, drop the oldest window.
                map = map.filter { now - $0.value.windowStart < window }
                if map.count >= capacity, let oldest = map.min(by: { $0.value.windowStart < $1.value.windowStart }) {
                    map[oldest.key] = nil
                }
            }
            map[address] = Entry(windowStart: now, failures: 1)
        }
    }
}
