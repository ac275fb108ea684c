// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Glibc
import VaultAPI
import VaultCore

// Shared plumbing of the offline commands (`inspect`, `convert`): reading the input, exit codes,
// JSON output and atomic, private file output. Secrets (session strings, auth keys, `.session`
// bytes) are only ever read from a file or standard input — no flag takes one — and never appear
// in a message.

/// The exit statuses of the offline commands, from BSD `sysexits.h` so that scripts can tell a
/// typo from bad data from a full disk.
enum CLIStatus: Int32, Sendable {
    /// Success.
    case ok = 0
    /// EX_USAGE: a bad flag value, an unknown format, a missing `--out` for a file format.
    case usage = 64
    /// EX_DATAERR: an invalid session string or file, or a conversion lacking data.
    case dataError = 65
    /// EX_NOINPUT: the input does not exist, is a directory, or cannot be opened.
    case noInput = 66
    /// EX_CANTCREAT: the output exists (without `--force`) or cannot be created.
    case cannotCreate = 73
    /// EX_IOERR: reading or writing failed half-way.
    case ioError = 74
}

/// A failure of an offline command: what to print (never a secret) and how to exit.
struct CLIFailure: Error, Sendable {
    var status: CLIStatus
    var message: String

    init(_ status: CLIStatus, _ message: String) {
        self.status = status
        self.message = message
    }
}

/// Exit-code documentation shared by the commands' `--help`.
let exitStatusHelp = """
    Exit status: 0 success; 64 usage error (bad flag value, unknown format, file format without \
    --out); 65 data error (invalid session string or file, conversion lacking data); 66 input \
    missing or unreadable; 73 output exists (without --force) or cannot be created; 74 I/O error.
    """

enum CLI {
    /// Runs a command body; a ``CLIFailure`` is printed as `session-vault <command>: <message>`
    /// on standard error and becomes the process's exit status.
    static func run(_ command: String, _ body: () throws(CLIFailure) -> Void) throws(ExitCode) {
        // A closed pipe on stdout is an I/O error (74), not a silent death by SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        do {
            try body()
        } catch {
            printError("session-vault \(command): \(error.message)")
            throw ExitCode(error.status.rawValue)
        }
    }

    static func printError(_ line: String) {
        var bytes = Array((line + "\n").utf8)
        _ = try? writeAll(2, &bytes, wipe: false)
    }

    static func errnoText(_ code: Int32 = errno) -> String {
        String(cString: strerror(code))
    }

    // MARK: - Input

    /// Largest input accepted from a file or standard input. Real session files are tens of
    /// KiB; this equals ``SessionFileReader/Limits/maxBytes``.
    static let maxInputBytes = 64 << 20

    /// Where the session came from.
    enum InputKind: String, Sendable {
        case string, file
    }

    /// A decoded input and how to name it in messages.
    struct Input {
        var imported: ImportedSession
        var kind: InputKind
        var name: String
    }

    /// The SQLite header magic (sqlite.org/fileformat2.html §1.3.1).
    static let sqliteMagic: [UInt8] = Array("SQLite format 3".utf8) + [0]

    /// Reads and decodes the session named by a command's `PATH|-` argument.
    ///
    /// Input that starts with the SQLite magic is a `.session` file, read from an in-memory copy
    /// (the original is only ever opened read-only and never handed to SQLite, so a WAL-mode
    /// file and its directory stay untouched). Anything else is a session string; exactly one
    /// trailing `\n` is removed (what `echo` and most editors add) and everything else,
    /// whitespace included, goes to the codec as is.
    static func readSession(argument: String) throws(CLIFailure) -> Input {
        let name = argument == "-" ? "standard input" : argument
        var bytes: [UInt8]
        if argument == "-" {
            bytes = try readAll(fd: 0, name: name, expectedSize: nil)
        } else {
            try refuseSecretArgument(argument)
            bytes = try readFile(argument)
        }
        defer { SecretBytes.wipe(&bytes) }

        if bytes.starts(with: sqliteMagic) {
            do {
                let imported = try SessionFileReader.read(bytes: bytes)
                return Input(imported: imported, kind: .file, name: name)
            } catch {
                let status: CLIStatus = if case .io = error { .ioError } else { .dataError }
                throw CLIFailure(status, "\(name): invalid .session file: \(error)")
            }
        }
        if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
        guard !bytes.isEmpty else {
            throw CLIFailure(.dataError, "\(name): empty input; expected a session string or a .session file")
        }
        // Checked on bytes so that a large text file is refused before it becomes a String.
        guard bytes.count <= SessionStringCodec.maxInputLength else {
            throw CLIFailure(
                .dataError,
                "\(name): invalid session string: \(CodecError.tooLong(max: SessionStringCodec.maxInputLength)) "
                    + "(and not an SQLite file)")
        }
        // Invalid UTF-8 becomes U+FFFD, which the codec reports as non-ASCII at that position.
        let text = String(decoding: bytes, as: UTF8.self)
        do {
            let imported = try SessionStringCodec.decode(text)
            return Input(imported: imported, kind: .string, name: name)
        } catch {
            throw CLIFailure(.dataError, "\(name): invalid session string: \(error)")
        }
    }

    /// A session string passed where a path belongs would end up in shell history and `ps`,
    /// and echoing it in "no such file" would spread it further: refuse it without repeating it.
    /// A component longer than NAME_MAX (255 bytes) cannot name a file anyway.
    static func refuseSecretArgument(_ argument: String) throws(CLIFailure) {
        let longComponent = argument.utf8.split(separator: UInt8(ascii: "/")).contains { $0.count > 255 }
        guard SessionStringCodec.detect(argument) != nil || longComponent else { return }
        throw CLIFailure(
            .usage,
            "the argument looks like a session string, not a path; never pass secrets as arguments: "
                + "put it in a file, or pipe it and use '-' for standard input")
    }

    /// Opens `path` read-only and reads at most ``maxInputBytes``; regular files are
    /// size-checked before reading. Pipes and character devices (`/dev/stdin`, `<(…)`) are
    /// read until end of file within the same bound.
    static func readFile(_ path: String) throws(CLIFailure) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw CLIFailure(.noInput, "cannot open input \(path): \(errnoText())")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw CLIFailure(.noInput, "cannot open input \(path): \(errnoText())")
        }
        let type = info.st_mode & mode_t(S_IFMT)
        if type == mode_t(S_IFDIR) {
            throw CLIFailure(.noInput, "cannot open input \(path): is a directory")
        }
        var expectedSize: Int?
        if type == mode_t(S_IFREG) {
            guard Int(info.st_size) <= maxInputBytes else {
                throw CLIFailure(.dataError, "\(path): larger than \(maxInputBytes) bytes; not a session")
            }
            expectedSize = Int(info.st_size)
        }
        return try readAll(fd: fd, name: path, expectedSize: expectedSize)
    }

    /// Reads `fd` to end of file, refusing more than ``maxInputBytes``. Partial buffers are
    /// wiped on failure: they may hold a key.
    static func readAll(fd: Int32, name: String, expectedSize: Int?) throws(CLIFailure) -> [UInt8] {
        // One byte more than the expected size, so that a regular file that grew is noticed.
        var bytes = [UInt8](repeating: 0, count: min((expectedSize ?? 64 << 10) + 1, maxInputBytes + 1))
        var filled = 0
        while true {
            if filled == bytes.count {
                guard bytes.count <= maxInputBytes else {
                    SecretBytes.wipe(&bytes)
                    throw CLIFailure(.dataError, "\(name): larger than \(maxInputBytes) bytes; not a session")
                }
                // Grow by copying into a new buffer and wiping the old one (no realloc copies
                // left behind).
                var larger = [UInt8](repeating: 0, count: min(bytes.count * 2, maxInputBytes + 1))
                larger.withUnsafeMutableBytes { dst in
                    bytes.withUnsafeBytes { src in dst.copyMemory(from: src) }
                }
                SecretBytes.wipe(&bytes)
                bytes = larger
            }
            let n = bytes.withUnsafeMutableBytes { buffer in
                read(fd, buffer.baseAddress.map { $0 + filled }, buffer.count - filled)
            }
            if n > 0 {
                filled += n
            } else if n == 0 {
                break
            } else if errno == EINTR {
                continue
            } else {
                let code = errno
                SecretBytes.wipe(&bytes)
                // EISDIR: `-` bound to a directory, or a read of one.
                let status: CLIStatus = code == EISDIR ? .noInput : .ioError
                throw CLIFailure(status, "cannot read \(name): \(errnoText(code))")
            }
        }
        // Shrink in place (no copy): the tail is zeros.
        bytes.removeSubrange(filled...)
        return bytes
    }

    // MARK: - Output

    /// Writes every byte to `fd`, then wipes the buffer when `wipe` is true.
    static func writeAll(_ fd: Int32, _ bytes: inout [UInt8], wipe: Bool) throws(CLIFailure) {
        defer { if wipe { SecretBytes.wipe(&bytes) } }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { buffer in
                write(fd, buffer.baseAddress.map { $0 + written }, buffer.count - written)
            }
            if n > 0 {
                written += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                throw CLIFailure(.ioError, "write failed: \(errnoText())")
            }
        }
    }

    /// Writes `bytes` to `path` so that either the complete file exists, with mode 0600, or
    /// nothing does (not even a temporary file, except after SIGKILL or power loss):
    ///
    /// 1. a temporary file in the same directory, `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600;
    /// 2. write, `fsync`, close;
    /// 3. `link` it to `path` (fails atomically with EEXIST, so an existing file is never
    ///    replaced) or, with `replace`, `rename` over it; then `fsync` the directory.
    ///
    /// Termination signals are held back during these steps so that Ctrl-C cannot strand the
    /// temporary file; they are delivered once it is gone.
    /// - Throws: `.cannotCreate` (73) for an existing `path` without `replace` or when the file
    ///   cannot be created, `.ioError` (74) when writing it fails.
    static func writeFileAtomically(_ bytes: inout [UInt8], to path: String, replace: Bool) throws(CLIFailure) {
        defer { SecretBytes.wipe(&bytes) }
        let (directory, base) = try splitOutputPath(path)
        try checkOutputTarget(path, replace: replace)

        var blocked = sigset_t()
        var previous = sigset_t()
        sigemptyset(&blocked)
        for signo in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] { sigaddset(&blocked, signo) }
        sigprocmask(SIG_BLOCK, &blocked, &previous)
        defer { sigprocmask(SIG_SETMASK, &previous, nil) }

        var generator = SystemRandomNumberGenerator()
        var temporary = ""
        var fd: Int32 = -1
        for _ in 0..<16 {
            let suffix = String(generator.next() as UInt64, radix: 16)
            temporary = "\(directory)/.\(base).\(suffix).tmp"
            fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode_t(0o600))
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else {
            throw CLIFailure(.cannotCreate, "cannot create \(path): \(errnoText())")
        }
        var fdOpen = true
        var temporaryExists = true
        defer {
            if fdOpen { close(fd) }
            // The temporary name never survives: after link() the data lives on at `path`.
            if temporaryExists { unlink(temporary) }
        }
        // The umask can only clear bits; set exactly 0600 regardless of it.
        guard fchmod(fd, mode_t(0o600)) == 0 else {
            throw CLIFailure(.ioError, "cannot write \(path): \(errnoText())")
        }
        do {
            try writeAll(fd, &bytes, wipe: true)
        } catch {
            throw CLIFailure(.ioError, "cannot write \(path): \(error.message)")
        }
        guard fsync(fd) == 0 else { throw CLIFailure(.ioError, "cannot write \(path): \(errnoText())") }
        fdOpen = false
        guard close(fd) == 0 else { throw CLIFailure(.ioError, "cannot write \(path): \(errnoText())") }

        if replace {
            guard rename(temporary, path) == 0 else {
                throw CLIFailure(.cannotCreate, "cannot create \(path): \(errnoText())")
            }
            temporaryExists = false
        } else if link(temporary, path) != 0 {
            let code = errno
            if code == EEXIST {
                throw CLIFailure(.cannotCreate, "\(path) already exists; pass --force to replace it")
            }
            // File systems without hard links (EPERM/ENOTSUP): check, then rename. The window
            // between the two is the only non-atomic step, and only on those file systems.
            guard code == EPERM || code == ENOTSUP || code == EOPNOTSUPP || code == EMLINK else {
                throw CLIFailure(.cannotCreate, "cannot create \(path): \(errnoText(code))")
            }
            try checkOutputTarget(path, replace: false)
            guard rename(temporary, path) == 0 else {
                throw CLIFailure(.cannotCreate, "cannot create \(path): \(errnoText())")
            }
            temporaryExists = false
        }
        // Make the new directory entry durable; a failure here leaves a complete file behind,
        // so it is not reported.
        let directoryFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            _ = fsync(directoryFD)
            close(directoryFD)
        }
    }

    /// `(directory, last component)` of an output path; a trailing `/` names no file.
    static func splitOutputPath(_ path: String) throws(CLIFailure) -> (String, String) {
        guard !path.isEmpty, !path.hasSuffix("/") else {
            throw CLIFailure(.usage, "--out must name a file, got '\(path)'")
        }
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let base = String(path[path.index(after: slash)...])
        guard base != ".", base != ".." else { throw CLIFailure(.usage, "--out must name a file, got '\(path)'") }
        let directory = slash == path.startIndex ? "/" : String(path[..<slash])
        return (directory, base)
    }

    /// Refuses an existing output unless `replace`, and never replaces a directory.
    static func checkOutputTarget(_ path: String, replace: Bool) throws(CLIFailure) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if info.st_mode & mode_t(S_IFMT) == mode_t(S_IFDIR) {
            throw CLIFailure(.cannotCreate, "cannot create \(path): is a directory")
        }
        if !replace {
            throw CLIFailure(.cannotCreate, "\(path) already exists; pass --force to replace it")
        }
    }
}

// MARK: - JSON

/// The CLI's JSON is the API's ``JSONValue`` (one JSON type in the product, exact 64-bit
/// integers, ordered keys), pretty-printed for a terminal.
extension JSONValue {
    /// `nil` becomes `null`.
    static func optional<T>(_ value: T?, _ wrap: (T) -> JSONValue) -> JSONValue {
        value.map(wrap) ?? .null
    }

    /// Pretty-printed with two-space indentation (RFC 8259); scalars and strings as the API's
    /// writer writes them.
    func rendered(indent: Int = 0) -> String {
        switch self {
        case .object(let members):
            guard !members.isEmpty else { return "{}" }
            let inner = String(repeating: " ", count: indent + 2)
            let lines = members.map { key, value in
                "\(inner)\(JSONValue.string(key).rendered()): \(value.rendered(indent: indent + 2))"
            }
            return "{\n" + lines.joined(separator: ",\n") + "\n" + String(repeating: " ", count: indent) + "}"
        case .array(let items):
            guard !items.isEmpty else { return "[]" }
            let inner = String(repeating: " ", count: indent + 2)
            let lines = items.map { inner + $0.rendered(indent: indent + 2) }
            return "[\n" + lines.joined(separator: ",\n") + "\n" + String(repeating: " ", count: indent) + "]"
        default:
            return String(decoding: JSONWriter.encode(self), as: UTF8.self)
        }
    }
}
