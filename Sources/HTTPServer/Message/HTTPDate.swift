// SPDX-License-Identifier: Apache-2.0
import Glibc
import Primitives

/// IMF-fixdate formatting for the `Date` header (RFC 9110 §5.6.7), e.g.
/// `Sun, 06 Nov 1994 08:49:37 GMT`, computed from the epoch without `gmtime` or Foundation.
enum HTTPDate {
    /// Seconds since the Unix epoch, from the wall clock.
    @inline(__always)
    static func nowSeconds() -> Int { Int(WallClock.nowSeconds()) }

    /// The 29-byte IMF-fixdate for `epochSeconds` (clamped to 1970...9999).
    static func format(_ epochSeconds: Int) -> [UInt8] {
        let secs = max(0, min(epochSeconds, 253_402_300_799))
        let days = secs / 86_400
        let secOfDay = secs % 86_400
        // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian calendar.
        let z = days + 719_468
        let era = z / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        let weekday = (days + 4) % 7  // 1970-01-01 was a Thursday.

        let dayNames = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let monthNames = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        var out: [UInt8] = []
        out.reserveCapacity(29)
        out.append(contentsOf: dayNames[weekday].utf8)
        out.append(contentsOf: ", ".utf8)
        appendTwoDigits(day, to: &out)
        out.append(0x20)
        out.append(contentsOf: monthNames[month - 1].utf8)
        out.append(0x20)
        appendTwoDigits(year / 100, to: &out)
        appendTwoDigits(year % 100, to: &out)
        out.append(0x20)
        appendTwoDigits(secOfDay / 3600, to: &out)
        out.append(UInt8(ascii: ":"))
        appendTwoDigits(secOfDay / 60 % 60, to: &out)
        out.append(UInt8(ascii: ":"))
        appendTwoDigits(secOfDay % 60, to: &out)
        out.append(contentsOf: " GMT".utf8)
        return out
    }

    /// Appends `value` (0...99) as two ASCII digits.
    private static func appendTwoDigits(_ value: Int, to out: inout [UInt8]) {
        out.append(UInt8(truncatingIfNeeded: 0x30 + value / 10))
        out.append(UInt8(truncatingIfNeeded: 0x30 + value % 10))
    }
}

/// A per-connection cache of the `Date` header value, refreshed at most once per second. Being
/// confined to one connection queue, it needs no lock.
struct HTTPDateCache {
    /// The epoch second `value` was formatted for.
    private var second = -1
    /// The cached IMF-fixdate bytes.
    private(set) var value: [UInt8] = []

    /// Returns the current IMF-fixdate bytes, reformatting only when the second changed.
    mutating func current() -> [UInt8] {
        let now = HTTPDate.nowSeconds()
        if now != second {
            second = now
            value = HTTPDate.format(now)
        }
        return value
    }
}
