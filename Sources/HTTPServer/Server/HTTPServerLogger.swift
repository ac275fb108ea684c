// SPDX-License-Identifier: Apache-2.0
import Glibc

/// Severity of a server log line.
public enum HTTPLogLevel: Int, Sendable, Comparable, CustomStringConvertible {
    /// Per-connection noise: resets, timeouts, closed peers.
    case debug
    /// Lifecycle events: listening, draining.
    case info
    /// Recoverable trouble: accept back-off, rejected handler headers.
    case warning
    /// Something the operator must look at.
    case error

    /// Orders levels by severity.
    public static func < (lhs: HTTPLogLevel, rhs: HTTPLogLevel) -> Bool { lhs.rawValue < rhs.rawValue }

    /// The lowercase level name.
    public var description: String {
        switch self {
        case .debug: "debug"
        case .info: "info"
        case .warning: "warning"
        case .error: "error"
        }
    }
}

/// Where the server's log lines go. Messages never contain request bytes beyond the method and
/// status, so they are safe to ship to shared log storage.
public struct HTTPServerLogger: Sendable {
    /// Lines below this level are dropped before their message is even built.
    public var minimumLevel: HTTPLogLevel
    /// Receives the lines that pass the level filter.
    private let sink: @Sendable (HTTPLogLevel, String) -> Void

    /// Creates a logger that passes lines at or above `minimumLevel` to `sink`.
    public init(minimumLevel: HTTPLogLevel, sink: @escaping @Sendable (HTTPLogLevel, String) -> Void) {
        self.minimumLevel = minimumLevel
        self.sink = sink
    }

    /// Writes `http-server <level>: <message>` lines to standard error with one `write(2)` each.
    public static func standardError(minimumLevel: HTTPLogLevel = .warning) -> HTTPServerLogger {
        HTTPServerLogger(minimumLevel: minimumLevel) { level, message in
            var line = Array("http-server \(level): \(message)\n".utf8)
            line.withUnsafeMutableBytes { raw in
                guard let base = raw.baseAddress else { return }
                var written = 0
                while written < raw.count {
                    let n = Glibc.write(2, base + written, raw.count - written)
                    if n > 0 { written += n } else if n < 0 && errno == EINTR { continue } else { return }
                }
            }
        }
    }

    /// A logger that drops everything.
    public static let disabled = HTTPServerLogger(minimumLevel: .error) { _, _ in }

    /// Logs `message` if `level` passes ``minimumLevel``.
    @inlinable
    public func log(_ level: HTTPLogLevel, _ message: @autoclosure () -> String) {
        if level >= minimumLevel { emit(level, message()) }
    }

    /// Forwards a line to the sink (out of line, so `log` stays small when inlined).
    @usableFromInline
    func emit(_ level: HTTPLogLevel, _ message: String) { sink(level, message) }
}
