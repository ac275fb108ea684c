// SPDX-License-Identifier: Apache-2.0
import CSocketShims
import Foundation
import FoundationNetworking
import Glibc
import HTTPServerTLS
import RunOptions

/// Exit statuses of the wrapper itself (BSD `sysexits.h`); otherwise it exits with the child's.
enum RunStatus {
    static let usage: Int32 = 64
    static let noInput: Int32 = 66
    static let unavailable: Int32 = 69
    static let software: Int32 = 70
    static let tempFail: Int32 = 75
    static let noPermission: Int32 = 77
    static let config: Int32 = 78
    static let notExecutable: Int32 = 126
    static let notFound: Int32 = 127
}

/// `session-vault run`: acquire, start the child, keep the lease, stop the child when the lease
/// is lost, release on exit.
///
/// Threads: the main thread owns every piece of state below and is the only one to act (spawn,
/// signal, reap, decide); the signal thread and URLSession's callbacks only post ``Event``s to
/// the ``EventQueue``. Deadlines are on ``MonotonicClock``.
struct Wrapper {
    let options: RunOptions
    let client: VaultClient
    let events: EventQueue
    let holder: String

    static func main(_ options: RunOptions) -> Int32 {
        // Before any thread exists, so that every thread inherits the mask.
        Signals.blockAll()
        // Orphaned descendants of the child are re-parented here and reaped, as by PID 1.
        _ = csocket_set_child_subreaper()

        let environment = ProcessInfo.processInfo.environment
        guard let address = environment["SESSION_VAULT_ADDR"], !address.isEmpty else {
            report("SESSION_VAULT_ADDR is not set (the vault's URL, e.g. https://vault.example:8080)")
            return RunStatus.config
        }
        let token: String
        if let value = environment["SESSION_VAULT_TOKEN"], !value.isEmpty {
            token = value
        } else if let path = environment["SESSION_VAULT_TOKEN_FILE"], !path.isEmpty {
            guard let data = FileManager.default.contents(atPath: path) else {
                report("cannot read SESSION_VAULT_TOKEN_FILE \(path)")
                return RunStatus.config
            }
            token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty else {
                report("SESSION_VAULT_TOKEN_FILE \(path) is empty")
                return RunStatus.config
            }
        } else {
            report("no token: set SESSION_VAULT_TOKEN or SESSION_VAULT_TOKEN_FILE")
            return RunStatus.config
        }
        guard token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            report("the token holds characters a token never has (spaces or control characters)")
            return RunStatus.config
        }
        // SESSION_VAULT_CACERT: the CA (PEM) that signed the vault's certificate, the only one
        // trusted for it (as the Python client's); only for an https:// address.
        var tls: TLSClientContext?
        if let caFile = environment["SESSION_VAULT_CACERT"], !caFile.isEmpty {
            guard address.lowercased().hasPrefix("https://") else {
                report("SESSION_VAULT_CACERT is set but SESSION_VAULT_ADDR is not an https:// URL (\(address)): "
                    + "a CA file only applies to TLS")
                return RunStatus.config
            }
            do {
                tls = try TLSClientContext(caFile: caFile)
            } catch {
                report("SESSION_VAULT_CACERT: \(error.reason)")
                return RunStatus.config
            }
        }
        let client: VaultClient
        do {
            client = try VaultClient(address: address, sessionName: options.session, token: token, tls: tls)
        } catch {
            report("SESSION_VAULT_ADDR must be an http:// or https:// URL with a host, got \(address)")
            return RunStatus.config
        }
        let events = EventQueue()
        Signals.startThread(posting: events)
        let wrapper = Wrapper(
            options: options, client: client, events: events, holder: options.holder ?? defaultHolder())
        return wrapper.run()
    }

    static func defaultHolder() -> String {
        var name = [CChar](repeating: 0, count: 256)
        let host = gethostname(&name, name.count - 1) == 0 ? String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            : "unknown-host"
        return "\(host) pid \(getpid())"
    }

    /// A lease this wrapper holds.
    struct Lease {
        var id: String
        var ttl: Double
        var sessionString: String
        /// When the acquisition was sent: the vault started counting no earlier.
        var sent: Double
    }

    func run() -> Int32 {
        switch acquire() {
        case .failure(let status):
            return status
        case .success(var lease):
            return supervise(&lease)
        }
    }

    enum Acquisition {
        case success(Lease)
        case failure(Int32)
    }

    // MARK: - Acquisition

    func acquire() -> Acquisition {
        let name = options.session
        let waitEnd = MonotonicClock.now() + Double(options.wait)
        while true {
            let sent = MonotonicClock.now()
            let waitSeconds = max(0, Int((waitEnd - sent).rounded(.down)))
            let task = client.acquire(
                format: options.format.rawValue, holder: holder, ttl: options.ttl, wait: waitSeconds, events: events)
            var answer: HTTPOutcome?
            while answer == nil {
                switch events.next(within: 1) {
                case .signal(let signo, _):
                    task.cancel()
                    report("stopped by signal \(signo) before the command started")
                    return .failure(128 + signo)
                case .http(.acquire, let outcome):
                    answer = outcome
                case .childChanged:
                    _ = Child.reap(child: -1)
                default:
                    continue
                }
            }
            guard case .response(let status, let headers, let body)? = answer else {
                if case .failure(let text, let kind)? = answer {
                    if kind == .untrusted {
                        let hint = client.usesCAFile ? "" : "; for a private CA, set SESSION_VAULT_CACERT to its PEM file"
                        report("the vault at \(client.address) is not trusted: \(text)\(hint)")
                        return .failure(RunStatus.config)
                    }
                    report("cannot reach the vault at \(client.address): \(text)")
                }
                return .failure(RunStatus.unavailable)
            }
            let object = JSONObject(body)
            let detail = object?.string("detail").map { ": \($0)" } ?? ""
            switch status {
            case 201:
                guard let object, let id = object.string("lease_id"), !id.isEmpty,
                    let sessionString = object.string("session_string"), !sessionString.isEmpty
                else {
                    report("the vault's lease answer lacks lease_id or session_string")
                    return .failure(RunStatus.unavailable)
                }
                let ttl = object.int("ttl_seconds").flatMap { $0 > 0 ? Double($0) : nil } ?? Double(options.ttl)
                let epoch = object.int("epoch").map { " (epoch \($0))" } ?? ""
                report("acquired the lease on \(name)\(epoch), ttl \(Int(ttl)) s")
                var lease = Lease(id: id, ttl: ttl, sessionString: sessionString, sent: sent)
                if MonotonicClock.now() - sent > 1 {
                    // The vault granted the lease at some moment of a long poll, so the TTL
                    // cannot be counted from the request's start: count it from a renewal sent now.
                    if let status = confirm(&lease) { return .failure(status) }
                }
                return .success(lease)
            case 409:
                let other = object?.string("holder") ?? "another holder"
                let until = object?.string("expires_at").map { " until \($0)" } ?? ""
                let now = MonotonicClock.now()
                if now + 0.05 < waitEnd {
                    // The vault answered before the wait ran out (e.g. during a lock-delay):
                    // ask again after Retry-After, within the wait.
                    let retry = headers["retry-after"].flatMap { Double($0) } ?? 1
                    let resume = min(waitEnd, now + min(max(retry, 0.2), 5))
                    while MonotonicClock.now() < resume {
                        if case .signal(let signo, _) = events.next(within: resume - MonotonicClock.now()) {
                            report("stopped by signal \(signo) before the command started")
                            return .failure(128 + signo)
                        }
                    }
                    continue
                }
                report("session \(name) is held by \(other)\(until); gave up after --wait \(options.wait) s")
                return .failure(RunStatus.tempFail)
            case 401, 403:
                report("the vault refused the token (\(status))\(detail); it needs the lease and export operations on \(name)")
                return .failure(RunStatus.noPermission)
            case 404:
                report("no session named \(name) at \(client.address) (404)\(detail)")
                return .failure(RunStatus.noInput)
            case 400, 422:
                report("the vault refused the request (\(status))\(detail)")
                return .failure(RunStatus.usage)
            default:
                report("the vault answered \(status)\(detail)")
                return .failure(RunStatus.unavailable)
            }
        }
    }

    /// Renews `lease` at once and waits for the answer; nil when renewed (`lease.sent` is then
    /// the renewal's start), else the exit status (after releasing when that still makes sense).
    func confirm(_ lease: inout Lease) -> Int32? {
        let started = MonotonicClock.now()
        client.renew(leaseID: lease.id, started: started, timeout: 5, events: events)
        while true {
            switch events.next(within: 1) {
            case .signal(let signo, _):
                report("stopped by signal \(signo) before the command started")
                release(lease)
                return 128 + signo
            case .http(.renew, .response(200, _, let body)):
                lease.sent = started
                lease.ttl = JSONObject(body)?.int("ttl_seconds").flatMap { $0 > 0 ? Double($0) : nil } ?? lease.ttl
                return nil
            case .http(.renew, .response(409, _, _)):
                report("the lease was lost right after it was acquired")
                return RunStatus.tempFail
            case .http(.renew, .response(let status, _, _)):
                report("renewing the new lease answered \(status)")
                release(lease)
                return RunStatus.unavailable
            case .http(.renew, .failure(let text, _)):
                report("cannot reach the vault at \(client.address): \(text)")
                release(lease)
                return RunStatus.unavailable
            case .childChanged:
                _ = Child.reap(child: -1)
            default:
                continue
            }
        }
    }

    // MARK: - Supervision

    /// Why the lease was lost.
    enum Loss {
        case refused
        case expired
    }

    func supervise(_ lease: inout Lease) -> Int32 {
        // The child's environment: ours without any SESSION_VAULT_* (address, token, token file)
        // and with the session string in the one named variable.
        var environment = ProcessInfo.processInfo.environment
            .filter { !$0.key.hasPrefix("SESSION_VAULT_") && $0.key != options.envVar }
            .map { "\($0.key)=\($0.value)" }
        environment.append("\(options.envVar)=\(lease.sessionString)")
        lease.sessionString = ""
        let searchPath = ProcessInfo.processInfo.environment["PATH"]

        let child: pid_t
        do {
            child = try Child.spawn(options.command, environment: environment, path: searchPath)
        } catch {
            let program = options.command.first ?? ""
            let status: Int32
            switch error {
            case .notFound:
                report("\(program): command not found")
                status = RunStatus.notFound
            case .notExecutable(let reason):
                report("\(program): cannot execute: \(reason)")
                status = RunStatus.notExecutable
            }
            release(lease)
            return status
        }
        environment.removeAll()

        // The vault counts the TTL from when it received a request; the wrapper counts from when
        // it sent it, and gives up a margin earlier, so that it never believes in a lease the
        // vault has already let go.
        let margin = min(2, lease.ttl / 5)
        let renewEvery = lease.ttl / 3
        var deadline = lease.sent + lease.ttl - margin
        var nextRenewal = lease.sent + renewEvery
        var renewalInFlight = false
        var failing = false
        var loss: Loss?
        var killAt: Double?
        var killed = false

        while true {
            let now = MonotonicClock.now()
            if loss == nil && now >= deadline {
                report("no successful renewal before the lease would expire; stopping the command (SIGTERM)")
                loss = .expired
            }
            if loss != nil && killAt == nil {
                kill(child, SIGTERM)
                killAt = now + Double(options.killAfter)
            }
            if let killAt, !killed, now >= killAt {
                report("the command outlived --kill-after \(options.killAfter) s; sending SIGKILL")
                kill(child, SIGKILL)
                killed = true
            }
            if loss == nil && !renewalInFlight && now >= nextRenewal {
                // A first attempt may take a third of the TTL (at most 5 s); after a failure
                // every attempt takes at most a second, so that one starts at least every second.
                let timeout = failing ? 1 : min(5, max(1, renewEvery))
                client.renew(leaseID: lease.id, started: now, timeout: timeout, events: events)
                renewalInFlight = true
            }
            var wake = Double.infinity
            if loss == nil { wake = min(wake, deadline) }
            if loss == nil && !renewalInFlight { wake = min(wake, nextRenewal) }
            if let killAt, !killed { wake = min(wake, killAt) }

            switch events.next(within: wake - now) {
            case .signal(let signo, let fromTerminal):
                // A terminal's signal already reached the child (same process group).
                if !(fromTerminal && getpgid(child) == getpgrp()) { kill(child, signo) }
            case .childChanged:
                guard let status = Child.reap(child: child) else { continue }
                if loss != nil {
                    report("the command stopped after the lease was lost; exiting 75")
                    return RunStatus.tempFail
                }
                release(lease)
                return Child.exitCode(forWaitStatus: status)
            case .http(.renew(let started), let outcome):
                renewalInFlight = false
                guard loss == nil else { continue }
                switch outcome {
                case .response(200, _, let body):
                    let ttl = JSONObject(body)?.int("ttl_seconds").flatMap { $0 > 0 ? Double($0) : nil } ?? lease.ttl
                    deadline = max(deadline, started + ttl - min(2, ttl / 5))
                    nextRenewal = started + ttl / 3
                    if failing { report("renewed the lease again") }
                    failing = false
                case .response(409, _, _):
                    // Any 409 on a renewal means the lease is not ours any more (`lease_lost`).
                    report("the vault says the lease was lost; stopping the command (SIGTERM)")
                    loss = .refused
                case .response(let status, _, let body):
                    let detail = JSONObject(body)?.string("detail").map { ": \($0)" } ?? ""
                    if !failing { report("renewal answered \(status)\(detail); retrying every second") }
                    failing = true
                    nextRenewal = started + 1
                case .failure(let text, _):
                    if !failing {
                        let left = max(0, deadline - MonotonicClock.now())
                        report("renewal failed (\(text)); retrying every second for \(Int(left)) s more")
                    }
                    failing = true
                    nextRenewal = started + 1
                }
            case .http, nil:
                continue
            }
        }
    }

    /// Releases `lease`, waiting at most about five seconds for the answer (reaping meanwhile).
    func release(_ lease: Lease) {
        client.release(leaseID: lease.id, timeout: 5, events: events)
        let end = MonotonicClock.now() + 6
        while MonotonicClock.now() < end {
            switch events.next(within: end - MonotonicClock.now()) {
            case .http(.release, .response(let status, _, _)):
                if status != 200 && status != 204 { report("releasing the lease answered \(status)") }
                return
            case .http(.release, .failure(let text, _)):
                report("could not release the lease (\(text)); it expires by itself")
                return
            case .childChanged:
                _ = Child.reap(child: -1)
            default:
                continue
            }
        }
        report("no answer to the release; the lease expires by itself")
    }
}
