// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization
import VaultCore

/// A small structured logger writing one line per event to stderr, as text or JSON lines.
///
/// Secrets never reach it by construction: callers pass only non-secret metadata (names, ids,
/// statuses, accessors); there is no API that takes a request body or header. Values are escaped
/// so a hostile session name or path cannot forge log lines.
public final class Log: Sendable {
    /// Severity, lowest first.
    public enum Level: Int, Sendable, Comparable, CaseIterable {
        case debug, info, warning, error
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        var name: String {
            switch self {
            case .debug: return "debug"
            case .info: return "info"
            case .warning: return "warning"
            case .error: return "error"
            }
        }
        /// Parses `debug|info|warning|error`.
        public init?(name: String) {
            guard let l = Level.allCases.first(where: { $0.name == name.lowercased() }) else { return nil }
            self = l
        }
    }

    /// Output shape.
    public enum Format: String, Sendable {
        case text, json
    }

    private let level: Level
    private let format: Format
    private let lock = PThreadLocked(())
    private let sink: @Sendable (String) -> Void

    /// - Parameter sink: where lines go (tests capture them); defaults to stderr.
    public init(level: Level = .info, format: Format = .text, sink: (@Sendable (String) -> Void)? = nil) {
        self.level = level
        self.format = format
        self.sink = sink ?? { line in
            // write(2) on fd 2 directly: the C `stderr` FILE* is global mutable state to Swift.
            let bytes = Array(line.utf8)
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes { raw in write(2, raw.baseAddress.map { $0 + offset }, raw.count - offset) }
                if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { break }
            }
        }
    }

    /// True when events at `level` are written.
    public func enabled(_ level: Level) -> Bool { level >= self.level }

    /// Writes one event. `fields` must hold only non-secret values.
    public func log(_ level: Level, _ message: String, _ fields: [(String, String)] = []) {
        guard enabled(level) else { return }
        let line: String
        let time = Timestamp.rfc3339(milliseconds: Timestamp.nowMilliseconds())
        switch format {
        case .text:
            var s = "\(time) \(level.name) \(Self.escapeText(message))"
            for (k, v) in fields { s += " \(k)=\(Self.quoteIfNeeded(v))" }
            line = s + "\n"
        case .json:
            var members: [(String, JSONValue)] = [("time", .string(time)), ("level", .string(level.name)), ("msg", .string(message))]
            for (k, v) in fields { members.append((k, .string(v))) }
            line = String(decoding: JSONWriter.encode(.object(members)), as: UTF8.self) + "\n"
        }
        lock.withLock { _ in sink(line) }
    }

    public func debug(_ m: String, _ f: [(String, String)] = []) { log(.debug, m, f) }
    public func info(_ m: String, _ f: [(String, String)] = []) { log(.info, m, f) }
    public func warning(_ m: String, _ f: [(String, String)] = []) { log(.warning, m, f) }
    public func error(_ m: String, _ f: [(String, String)] = []) { log(.error, m, f) }

    static func escapeText(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 || u.value == 0x7F { out += "?" } else { out.unicodeScalars.append(u) }
            }
        }
        return out
    }

    static func quoteIfNeeded(_ s: String) -> String {
        let escaped = escapeText(s)
        if escaped.isEmpty || escaped.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" }) {
            var quoted = "\""
            for c in escaped { if c == "\"" { quoted += "\\\"" } else { quoted.append(c) } }
            return quoted + "\""
        }
        return escaped
    }
}

/// Wall-clock helpers (UTC, no Foundation date formatting on the hot path).
public enum Timestamp {
    /// Milliseconds since the Unix epoch.
    public static func nowMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// Seconds since the Unix epoch.
    public static func nowSeconds() -> Int64 { nowMilliseconds() / 1000 }

    /// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds.
    public static func rfc3339(seconds: Int64) -> String {
        let (y, mo, d, h, mi, s) = civil(seconds)
        return "\(pad(y, 4))-\(pad(mo, 2))-\(pad(d, 2))T\(pad(h, 2)):\(pad(mi, 2)):\(pad(s, 2))Z"
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` for Unix milliseconds.
    public static func rfc3339(milliseconds: Int64) -> String {
        let secs = milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000
        let ms = milliseconds - secs * 1000
        let (y, mo, d, h, mi, s) = civil(secs)
        return "\(pad(y, 4))-\(pad(mo, 2))-\(pad(d, 2))T\(pad(h, 2)):\(pad(mi, 2)):\(pad(s, 2)).\(pad(ms, 3))Z"
    }

    /// Days-from-civil inverse (Howard Hinnant's algorithm), valid for the proleptic Gregorian calendar.
    static func civil(_ t: Int64) -> (Int64, Int64, Int64, Int64, Int64, Int64) {
        var days = t / 86_400
        var rem = t % 86_400
        if rem < 0 { rem += 86_400; days -= 1 }
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d, rem / 3600, (rem % 3600) / 60, rem % 60)
    }

    private static func pad(_ v: Int64, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
}
