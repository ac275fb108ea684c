// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import Logging
import Primitives
import VaultCore

/// The output shape of the service's log.
public enum LogFormat: String, Sendable {
    case text, json
}

extension Logger.Level {
    /// Parses the configuration's level names, `debug|info|warning|error` (any case).
    public init?(configurationName name: String) {
        switch name.lowercased() {
        case "debug": self = .debug
        case "info": self = .info
        case "warning": self = .warning
        case "error": self = .error
        default: return nil
        }
    }
}

extension Logger {
    /// The service's logger: one line per event on stderr (or `sink`), as text or JSON lines,
    /// through ``VaultLogHandler``. The HTTP server logs through a copy of it.
    public static func vault(level: Logger.Level = .info, format: LogFormat = .text,
                             sink: (@Sendable (String) -> Void)? = nil) -> Logger {
        Logger(label: "session-vault") { _ in VaultLogHandler(level: level, format: format, sink: sink) }
    }
}

/// The swift-log handler that writes the service's log: one line per event, as text
/// (`TIME LEVEL message key=value …`) or as one JSON object (`time`, `level`, `msg`, then the
/// metadata), with the metadata keys in sorted order.
///
/// Secrets never reach it by construction: callers pass only non-secret metadata (names, ids,
/// statuses, accessors); there is no API that takes a request body or header. Values are escaped
/// so a hostile session name or path cannot forge log lines.
public struct VaultLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let format: LogFormat
    /// A caller's sink (tests); `nil`: lines go to stderr as bytes, without a `String` copy.
    private let sink: (@Sendable (String) -> Void)?
    /// Held while a line is written: lines never interleave, whichever logger copy writes them.
    private static let lock = Locked()

    /// - Parameter sink: where lines go (tests capture them); defaults to stderr.
    public init(level: Logger.Level = .info, format: LogFormat = .text, sink: (@Sendable (String) -> Void)? = nil) {
        self.logLevel = level
        self.format = format
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata, !extra.isEmpty { merged.merge(extra) { _, new in new } }
        let fields = merged.sorted { $0.key < $1.key }.map { ($0.key, $0.value.description) }
        let line = Self.line(time: WallClock.nowMilliseconds(), level: event.level, message: event.message.description,
                             fields: fields, format: format)
        Self.lock.withLock {
            if let sink {
                sink(String(decoding: line, as: UTF8.self))
            } else {
                Self.writeToStderr(line)
            }
        }
    }

    /// One event as a line, ending in a line feed.
    static func line(time milliseconds: Int64, level: Logger.Level, message: String, fields: [(String, String)],
                     format: LogFormat) -> [UInt8] {
        let time = Timestamp.rfc3339(milliseconds: milliseconds)
        var line: [UInt8]
        switch format {
        case .text:
            // Built as bytes in one buffer: this runs on every create and revoke.
            line = []
            line.reserveCapacity(96 + message.utf8.count + fields.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count + 4 })
            line.append(contentsOf: time.utf8)
            line.append(UInt8(ascii: " "))
            line.append(contentsOf: level.rawValue.utf8)
            line.append(UInt8(ascii: " "))
            Self.appendEscaped(message, to: &line)
            for (k, v) in fields {
                line.append(UInt8(ascii: " "))
                line.append(contentsOf: k.utf8)
                line.append(UInt8(ascii: "="))
                Self.appendQuotedIfNeeded(v, to: &line)
            }
        case .json:
            var members: [(String, JSONValue)] = [("time", .string(time)), ("level", .string(level.rawValue)), ("msg", .string(message))]
            for (k, v) in fields { members.append((k, .string(v))) }
            line = JSONWriter.encode(.object(members))
        }
        line.append(UInt8(ascii: "\n"))
        return line
    }

    /// write(2) on fd 2 directly: the C `stderr` FILE* is global mutable state to Swift.
    private static func writeToStderr(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw in write(2, raw.baseAddress.map { $0 + offset }, raw.count - offset) }
            if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { break }
        }
    }

    /// Appends `s` with line breaks and tabs escaped and other control characters replaced by
    /// `?`, so a value cannot forge a log line. Bytes from 0x80 up (the rest of UTF-8) pass
    /// through unchanged, as the scalars they encode are never control characters below 0x80.
    static func appendEscaped(_ s: String, to out: inout [UInt8]) {
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\n"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
            case UInt8(ascii: "\r"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
            case UInt8(ascii: "\t"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
            case 0..<0x20, 0x7F: out.append(UInt8(ascii: "?"))
            default: out.append(b)
            }
        }
    }

    /// Appends the escaped `s`, in double quotes (with `"` as `\"`) when it is empty or holds a
    /// space, a quote or `=`.
    static func appendQuotedIfNeeded(_ s: String, to out: inout [UInt8]) {
        let start = out.count
        appendEscaped(s, to: &out)
        let escaped = out[start...]
        guard escaped.isEmpty || escaped.contains(where: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "=") })
        else { return }
        var quoted: [UInt8] = [UInt8(ascii: "\"")]
        for b in escaped {
            if b == UInt8(ascii: "\"") { quoted.append(UInt8(ascii: "\\")) }
            quoted.append(b)
        }
        quoted.append(UInt8(ascii: "\""))
        out.replaceSubrange(start..., with: quoted)
    }
}

/// RFC 3339 formatting of wall-clock times (UTC, no Foundation date formatting on the hot path).
public enum Timestamp {
    /// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds.
    public static func rfc3339(seconds: Int64) -> String {
        format(seconds, milliseconds: nil)
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` for Unix milliseconds.
    public static func rfc3339(milliseconds: Int64) -> String {
        let secs = milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000
        return format(secs, milliseconds: milliseconds - secs * 1000)
    }

    /// Writes the digits into one fixed-size buffer: three timestamps per listed session and one
    /// per log line made String interpolation of padded integers a hot spot.
    private static func format(_ secs: Int64, milliseconds ms: Int64?) -> String {
        let (y, mo, d, h, mi, s) = civil(secs)
        guard (0...9999).contains(y) else {
            // Outside four-digit years: the general (slow) form.
            let base = "\(pad(y, 4))-\(pad(mo, 2))-\(pad(d, 2))T\(pad(h, 2)):\(pad(mi, 2)):\(pad(s, 2))"
            return base + (ms.map { ".\(pad($0, 3))" } ?? "") + "Z"
        }
        let length = ms == nil ? 20 : 24
        return String(unsafeUninitializedCapacity: length) { buffer in
            func put(_ value: Int64, _ width: Int, at index: Int) {
                var v = value
                for i in stride(from: index + width - 1, through: index, by: -1) {
                    buffer[i] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: v % 10)
                    v /= 10
                }
            }
            put(y, 4, at: 0)
            buffer[4] = UInt8(ascii: "-")
            put(mo, 2, at: 5)
            buffer[7] = UInt8(ascii: "-")
            put(d, 2, at: 8)
            buffer[10] = UInt8(ascii: "T")
            put(h, 2, at: 11)
            buffer[13] = UInt8(ascii: ":")
            put(mi, 2, at: 14)
            buffer[16] = UInt8(ascii: ":")
            put(s, 2, at: 17)
            if let ms {
                buffer[19] = UInt8(ascii: ".")
                put(ms, 3, at: 20)
            }
            buffer[length - 1] = UInt8(ascii: "Z")
            return length
        }
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
