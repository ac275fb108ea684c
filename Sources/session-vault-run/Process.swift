// SPDX-License-Identifier: Apache-2.0
import CSocketShims
import Foundation
import Glibc

/// A clock for deadlines: CLOCK_BOOTTIME, which is monotonic and, unlike CLOCK_MONOTONIC, keeps
/// counting while the machine is suspended (the vault's clock elsewhere does too).
enum MonotonicClock {
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_BOOTTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1_000_000_000
    }
}

/// Writes `session-vault run: <line>` to standard error. Never given a secret.
func report(_ line: String) {
    let bytes = Array("session-vault run: \(line)\n".utf8)
    bytes.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let n = write(2, buffer.baseAddress.map { $0 + offset }, buffer.count - offset)
            if n > 0 {
                offset += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return
            }
        }
    }
}

/// What the wrapper's main loop reacts to. Posted by the signal thread and by URLSession's
/// completion handlers; consumed only by the main thread.
enum Event: Sendable {
    /// SIGTERM, SIGINT or SIGHUP; `fromTerminal` when the kernel sent it (a terminal's Ctrl-C
    /// reaches the whole foreground process group, the child included).
    case signal(Int32, fromTerminal: Bool)
    /// SIGCHLD: some child changed state; reap.
    case childChanged
    /// A lease request finished.
    case http(RequestKind, HTTPOutcome)
}

enum RequestKind: Sendable, Equatable {
    case acquire
    case renew(started: Double)
    case release
}

/// A queue of events with a monotonic timed wait (DispatchSemaphore counts on the monotonic
/// clock), shared by the posting threads and the main thread.
final class EventQueue: @unchecked Sendable {
    // `@unchecked`: `items` is only touched under `lock`.
    private let lock = NSLock()
    private var items: [Event] = []
    private let wake = DispatchSemaphore(value: 0)

    func post(_ event: Event) {
        lock.lock()
        items.append(event)
        lock.unlock()
        wake.signal()
    }

    /// The next event, or nil after `seconds` (at most one second, so that a wait across a
    /// suspend of the machine is re-measured on the boot-time clock).
    func next(within seconds: Double) -> Event? {
        if let event = pop() { return event }
        let wait = min(max(seconds, 0), 1)
        _ = wake.wait(timeout: .now() + .nanoseconds(Int(wait * 1_000_000_000)))
        return pop()
    }

    private func pop() -> Event? {
        lock.lock()
        defer { lock.unlock() }
        return items.isEmpty ? nil : items.removeFirst()
    }
}

/// Signals: SIGTERM, SIGINT, SIGHUP and SIGCHLD are blocked in every thread (before any thread
/// exists) and taken by one thread with `sigwaitinfo`, which posts them as events. Each also gets
/// a handler that does nothing, so that as PID 1 (where the kernel drops signals whose action is
/// the default) none is lost; the child's dispositions and mask are reset before its exec.
enum Signals {
    static let handled: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGCHLD]

    static func blockAll() {
        var set = sigset_t()
        sigemptyset(&set)
        for signo in handled {
            sigaddset(&set, signo)
            signal(signo, { _ in })
        }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        // A write to a closed connection is an error, not the wrapper's death.
        signal(SIGPIPE, SIG_IGN)
    }

    static func startThread(posting events: EventQueue) {
        let thread = Thread {
            var set = sigset_t()
            sigemptyset(&set)
            for signo in handled { sigaddset(&set, signo) }
            while true {
                var info = siginfo_t()
                let signo = sigwaitinfo(&set, &info)
                if signo < 0 { continue }  // EINTR
                if signo == SIGCHLD {
                    events.post(.childChanged)
                } else {
                    events.post(.signal(signo, fromTerminal: info.si_code == SI_KERNEL))
                }
            }
        }
        thread.name = "signals"
        thread.start()
    }
}

/// The child process: start with an exact environment, signal, reap.
enum Child {
    enum SpawnFailure: Error {
        case notFound
        case notExecutable(String)
    }

    /// Starts `command` with `environment` (each `NAME=value`). The child gets SIGKILL if the
    /// wrapper dies (PR_SET_PDEATHSIG): a child left running without its lease's keeper could
    /// overlap the next holder.
    static func spawn(_ command: [String], environment: [String], path searchPath: String?) throws(SpawnFailure) -> pid_t {
        guard let program = command.first, let resolved = resolve(program, searchPath: searchPath) else {
            throw .notFound
        }
        var argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            // The environment holds the session string: zero it before freeing.
            for pointer in envp {
                if let pointer { memset(pointer, 0, strlen(pointer)) }
                free(pointer)
            }
        }
        var code: Int32 = 0
        let pid = csocket_spawn_child(resolved, &argv, &envp, SIGKILL, &code)
        guard pid > 0 else {
            throw code == ENOENT ? .notFound : .notExecutable(String(cString: strerror(code)))
        }
        return pid
    }

    /// `program` itself when it has a slash, else the first executable regular file of that name
    /// in `searchPath` (like execvp, resolved before fork so the child only calls execve).
    static func resolve(_ program: String, searchPath: String?) -> String? {
        if program.contains("/") { return program }
        let directories = (searchPath ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":", omittingEmptySubsequences: false)
        for directory in directories {
            let candidate = (directory.isEmpty ? "." : String(directory)) + "/" + program
            var info = stat()
            if stat(candidate, &info) == 0, info.st_mode & S_IFMT == S_IFREG, access(candidate, X_OK) == 0 {
                return candidate
            }
        }
        return nil
    }

    /// Reaps every child that has exited (the wrapper is a subreaper, or PID 1, so orphaned
    /// descendants end up here too); returns the wait status of `child` if it was among them.
    static func reap(child: pid_t) -> Int32? {
        var childStatus: Int32?
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid > 0 {
                if pid == child { childStatus = status }
                continue
            }
            if pid < 0 && errno == EINTR { continue }
            return childStatus
        }
    }

    /// The wrapper's exit status for a child's wait status: its exit code, or 128 + its signal.
    static func exitCode(forWaitStatus status: Int32) -> Int32 {
        let signal = status & 0x7f
        if signal == 0 { return (status >> 8) & 0xff }
        return 128 + signal
    }
}
