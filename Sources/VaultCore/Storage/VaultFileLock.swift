// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// The one-process-per-file rule of the file engine: an exclusive `flock` on `PATH.lock` beside
/// the database, held for the life of the process (the kernel drops it when the process dies,
/// even by SIGKILL, so a crash never leaves a stale lock behind).
///
/// A second `serve`, or an offline `rekey`, on a database that a running vault has open would
/// otherwise act on a keyring the other process does not see change. The lock file holds a line
/// naming its holder (pid, command, host, start time) so the refusal can say who has it.
public final class VaultFileLock: Sendable {
    /// Why the lock could not be taken.
    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        /// Another process holds it; `holder` is what that process wrote (may be empty).
        case held(holder: String)
        /// The lock file cannot be created or opened (`errno` text): the folder is not writable.
        case cannotOpen(path: String, reason: String)

        public var description: String {
            switch self {
            case .held(let holder):
                return holder.isEmpty ? "another process has the vault open" : "the vault is in use by \(holder)"
            case .cannotOpen(let path, let reason): return "cannot open the lock file \(path): \(reason)"
            }
        }
    }

    /// The lock file's path.
    public let path: String
    private let descriptor: Int32

    /// The lock file of the database at `databasePath`.
    public static func lockPath(forDatabase databasePath: String) -> String { databasePath + ".lock" }

    /// Takes the lock of the database at `databasePath` without waiting.
    /// - Parameter holder: what to record, e.g. `pid 123 (serve) on host since 2026-01-01T00:00:00Z`.
    /// - Throws: ``Failure/held(holder:)`` when another process has it; ``Failure/cannotOpen(path:reason:)``.
    public init(databasePath: String, holder: String) throws(Failure) {
        let path = Self.lockPath(forDatabase: databasePath)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            let recorded = Self.readHolder(fd)
            close(fd)
            if reason == EWOULDBLOCK { throw .held(holder: recorded) }
            throw .cannotOpen(path: path, reason: String(cString: strerror(reason)))
        }
        var line = Array((holder + "\n").utf8)
        // Best effort: the lock is the flock, the text only names its holder.
        if ftruncate(fd, 0) == 0 {
            _ = line.withUnsafeMutableBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        }
        line.removeAll()
        self.path = path
        self.descriptor = fd
    }

    deinit { close(descriptor) }

    /// The holder line another process wrote (at most 512 bytes, printable ASCII only).
    private static func readHolder(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return "" }
        let text = buffer[..<count].prefix { $0 != UInt8(ascii: "\n") }.filter { $0 >= 0x20 && $0 < 0x7F }
        return String(decoding: text, as: UTF8.self)
    }
}
