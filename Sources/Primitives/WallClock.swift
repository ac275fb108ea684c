// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one wall clock (`CLOCK_REALTIME`, Unix time) of the product: log and audit timestamps, the
/// `Date` header, key-term and `.session` creation times, export times, uptime.
///
/// Deadlines and intervals never use it: they use the monotonic clock (`DispatchTime`,
/// `CLOCK_MONOTONIC`), which a clock step cannot move.
public enum WallClock {
    /// Milliseconds since the Unix epoch.
    public static func nowMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// Whole seconds since the Unix epoch.
    public static func nowSeconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec)
    }
}
