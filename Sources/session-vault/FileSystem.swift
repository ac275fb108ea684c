// SPDX-License-Identifier: Apache-2.0
import Glibc

/// The few file-system and process calls the executable needs, on Glibc directly.
///
/// The executable used Foundation for these, which mapped Foundation, its ICU data and
/// internationalisation libraries into every server process: about 6 MiB of resident memory for
/// five calls. These wrappers keep the server's footprint to what it actually uses.
enum FileSystem {
    /// A failed system call, with its `errno`.
    struct Failure: Error, CustomStringConvertible {
        /// The `errno` of the failed call.
        let errno: Int32
        /// `strerror` text, e.g. "Permission denied".
        var description: String { String(cString: strerror(errno)) }
    }

    /// The process environment as a dictionary (later duplicates win, like `getenv` would not;
    /// duplicates do not occur in practice).
    static func environment() -> [String: String] {
        var result: [String: String] = [:]
        var cursor: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> = environ
        while let entry = cursor.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            cursor += 1
        }
        return result
    }

    /// Whether anything exists at `path` (following symlinks).
    static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    /// The size of the file at `path` in bytes, or nil if it cannot be stat'ed.
    static func size(_ path: String) -> Int64? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int64(info.st_size)
    }

    /// Whether this process may write `path` (`access(W_OK)`: false on a read-only mount even
    /// for root, and for a file or folder whose permissions forbid it to this user).
    static func isWritable(_ path: String) -> Bool {
        access(path.isEmpty ? "." : path, W_OK) == 0
    }

    /// The permission bits of `path`, or nil if it cannot be stat'ed.
    static func permissions(_ path: String) -> Int? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int(info.st_mode & 0o7777)
    }

    /// The directory part of `path`: "data/vault.db" → "data", "/vault.db" → "/", "vault.db" → "".
    static func parentDirectory(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "" }
        if slash == trimmed.startIndex { return "/" }
        var parent = trimmed[..<slash]
        while parent.count > 1 && parent.hasSuffix("/") { parent = parent.dropLast() }
        return String(parent)
    }

    /// `mkdir -p` with `mode` for every directory it creates; true if `path` is a directory after.
    static func makeDirectories(_ path: String, mode: mode_t) -> Bool {
        if isDirectory(path) { return true }
        let parent = parentDirectory(of: path)
        if !parent.isEmpty && parent != path && !makeDirectories(parent, mode: mode) { return false }
        if mkdir(path, mode) == 0 { return true }
        return errno == EEXIST && isDirectory(path)
    }

    /// Whether `path` is a directory (following symlinks).
    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }
}
