// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Dispatch
import Glibc
import HTTPServer
import VaultAPI
import VaultCore

/// Process exit codes (sysexits.h), documented in `serve --help`.
enum Exit {
    static let usage: Int32 = 64
    static let dataError: Int32 = 65
    static let unavailable: Int32 = 69
    static let cannotCreate: Int32 = 73
    static let config: Int32 = 78
}

/// Wires configuration, storage, keys, the API and the server; owns them while the process runs.
final class ServiceRunner {
    let server: HTTPServer
    let store: any SessionStore
    let signalSources: [any DispatchSourceSignal]

    private init(server: HTTPServer, store: any SessionStore, signalSources: [any DispatchSourceSignal]) {
        self.server = server
        self.store = store
        self.signalSources = signalSources
    }

    static func fail(_ log: Log, _ code: Int32, _ message: String) -> ExitCode {
        log.error(message)
        return ExitCode(code)
    }

    /// Starts everything or throws an `ExitCode` after logging why.
    static func start(flags: ServiceConfiguration.Flags, testRoutes: Bool) throws -> ServiceRunner {
        let startedAt = Timestamp.nowMilliseconds()
        let env = FileSystem.environment()
        let config: ServiceConfiguration
        do {
            config = try ServiceConfiguration.resolve(environment: env, flags: flags)
        } catch {
            throw fail(Log(), Exit.config, "configuration error: \(error.message)")
        }
        let log = Log(level: config.logLevel, format: config.logFormat)

        var http = HTTPServerConfiguration(host: config.host, port: config.port)
        http.maxBodyBytes = config.maxBodyBytes
        // The server's own messages (accept back-off, EMFILE, resets at debug) go through the
        // service's log, so a JSON log stream stays JSON.
        http.logger = HTTPServerLogger(minimumLevel: httpLevel(config.logLevel)) { level, message in
            log.log(logLevel(level), message, [("component", "http")])
        }
        do { try ServeCommand.applyEnvironment(to: &http) } catch {
            throw fail(log, Exit.config, "configuration error: \(error)")
        }

        // Storage: the file engine, or memory (asked for, or as a loud fallback).
        let (store, info) = try openStorage(config, log: log, startedAt: startedAt)

        // Keys: never generate a master key over an existing keyring.
        let master = try loadMasterKey(config, store: store, log: log)
        let vault: VaultService
        do {
            vault = try VaultService(store: store, master: master)
        } catch {
            store.close()
            throw fail(log, Exit.dataError, "cannot open the vault: \(error)")
        }
        if let reason = vault.sealedReason {
            log.error("THE VAULT IS SEALED: it serves no secrets until it is restarted with the right master key", [("reason", reason)])
        } else {
            try installRootToken(config, vault: vault, log: log)
            if let path = config.importFile { try importSessions(from: path, into: vault, log: log) }
        }
        // Audit retention: prunes now (in the background) and hourly.
        vault.startAuditRetention(days: config.auditRetentionDays) { result in
            switch result {
            case .success(let deleted) where deleted > 0:
                log.info("audit retention: pruned old events", [("deleted", String(deleted)), ("days", String(config.auditRetentionDays))])
            case .success: break
            case .failure(let error): log.warning("audit retention: prune failed", [("error", "\(error)")])
            }
        }

        let state = HTTPServerState()
        let router = VaultRouter(vault: vault, info: info, serverState: state, log: log)
        let handler: any HTTPHandler = testRoutes ? TestRouteHandler(testRoutes: ServeHandler(state: state, testRoutes: true), main: router) : router
        let server = HTTPServer(configuration: http, state: state, handler: handler)
        do {
            try server.start()
        } catch {
            store.close()
            throw fail(log, Exit.unavailable, "cannot listen on \(config.host):\(config.port): \(error)")
        }
        let address = server.localAddress ?? "\(config.host):\(config.port)"
        // The server itself has logged "listening on ADDRESS" (scripts and tests wait for it),
        // through `log`, so JSON logs stay one JSON object per line.
        log.info("session-vault started", [("listen", address), ("storage", info.engine), ("version", VaultVersion.current)])

        // HTTP.md item 16: drain on SIGTERM/SIGINT, close the database cleanly, exit 0.
        let drain = http.drainTimeout
        var sources: [any DispatchSourceSignal] = []
        // Handlers run on the main queue, one at a time: a second signal during the drain
        // (a supervisor repeating SIGTERM, or SIGINT after SIGTERM) must not start another.
        nonisolated(unsafe) var shuttingDown = false
        for signo in [SIGTERM, SIGINT] {
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: .main)
            source.setEventHandler {
                guard !shuttingDown else { return }
                shuttingDown = true
                log.info("shutting down: draining in-flight requests")
                let nanos = drain.components.seconds * 1_000_000_000 + drain.components.attoseconds / 1_000_000_000
                server.shutdown(deadline: .now() + .nanoseconds(Int(max(0, nanos)))) {
                    vault.flushAuthFailures()  // Unauthenticated failures counted since the last audit write.
                    vault.flushExportTimes()  // Noted export times first (VaultService.exportTimes).
                    store.close()
                    log.info("stopped cleanly")
                    Glibc.exit(0)
                }
            }
            source.activate()
            sources.append(source)
        }
        return ServiceRunner(server: server, store: store, signalSources: sources)
    }

    static func httpLevel(_ level: Log.Level) -> HTTPLogLevel {
        switch level {
        case .debug: return .debug
        case .info: return .info
        case .warning: return .warning
        case .error: return .error
        }
    }

    static func logLevel(_ level: HTTPLogLevel) -> Log.Level {
        switch level {
        case .debug: return .debug
        case .info: return .info
        case .warning: return .warning
        case .error: return .error
        }
    }

    // MARK: Storage

    static func openStorage(_ config: ServiceConfiguration, log: Log, startedAt: Int64) throws -> (any SessionStore, ServiceInfo) {
        let sqliteConfig = SQLiteStoreConfiguration(synchronous: config.synchronousFull ? .full : .normal)
        let sync = config.synchronousFull ? "full" : "normal"
        func memory(_ reason: String?) throws -> (any SessionStore, ServiceInfo) {
            do {
                let s = try SQLiteSessionStore(.memory, configuration: sqliteConfig)
                return (s, ServiceInfo(engine: "memory", path: nil, fallbackReason: reason, synchronous: sync,
                                       version: VaultVersion.current, startedAt: startedAt))
            } catch {
                throw fail(log, Exit.unavailable, "cannot open in-memory storage: \(error)")
            }
        }
        switch config.storage {
        case .memory:
            if !config.dev {
                log.warning("storage is in memory: every session is lost when the process stops")
            }
            return try memory(nil)
        case .file(let path):
            let dir = FileSystem.parentDirectory(of: path)
            var reason: String?
            if !dir.isEmpty && !FileSystem.exists(dir) && !FileSystem.makeDirectories(dir, mode: 0o700) {
                reason = "cannot create the data folder \(dir)"
            }
            if reason == nil {
                do {
                    let s = try SQLiteSessionStore(.file(path), configuration: sqliteConfig)
                    return (s, ServiceInfo(engine: "file", path: path, fallbackReason: nil, synchronous: sync,
                                           version: VaultVersion.current, startedAt: startedAt))
                } catch {
                    switch error {
                    case .cannotOpen, .readOnly, .diskFull:
                        reason = "cannot write \(path): \(error)"
                    default:
                        // Data exists but is not usable: never hide that behind a fresh memory vault.
                        throw fail(log, Exit.dataError, "refusing to start: \(path): \(error)")
                    }
                }
            }
            let why = reason ?? "storage unavailable"
            if config.requirePersistence {
                throw fail(log, Exit.cannotCreate, "refusing to start without persistence (--require-persistence): \(why)")
            }
            log.error("FALLING BACK TO MEMORY STORAGE: nothing will survive a restart", [("reason", why)])
            return try memory(why)
        }
    }

    // MARK: Keys

    static func loadMasterKey(_ config: ServiceConfiguration, store: any SessionStore, log: Log) throws -> MasterKey? {
        switch config.masterKey {
        case .environment(let text):
            do { return try MasterKey(base64: text, source: "SESSION_VAULT_MASTER_KEY") } catch {
                store.close()
                throw fail(log, Exit.config, "configuration error: \(error)")
            }
        case .file(let path):
            return try readKeyFile(path, store: store, log: log, source: "SESSION_VAULT_MASTER_KEY_FILE")
        case .ephemeral:
            if !config.dev { log.warning("using a throwaway master key: memory storage keeps nothing anyway") }
            do { return try MasterKey.generate() } catch { throw fail(log, Exit.unavailable, "cannot generate a key: \(error)") }
        case .generatedFile(let path):
            if FileSystem.exists(path) {
                return try readKeyFile(path, store: store, log: log, source: path)
            }
            let hasKeyring = ((try? store.loadKeyTerms()) ?? []).isEmpty == false
            if hasKeyring {
                log.error("the master key file is missing but the database has a keyring; not generating a new key", [("path", path)])
                return nil
            }
            do {
                let key = try MasterKey.generate()
                try writeSecretFile(path, contents: key.base64() + "\n")
                log.warning("GENERATED A NEW MASTER KEY next to the data. Anyone who can read both can open every session: "
                            + "move it to a secret store and pass SESSION_VAULT_MASTER_KEY_FILE in production", [("path", path)])
                return key
            } catch {
                throw fail(log, Exit.cannotCreate, "cannot write the master key file \(path): \(error)")
            }
        }
    }

    static func readKeyFile(_ path: String, store: any SessionStore, log: Log, source: String) throws -> MasterKey {
        guard var bytes = try? CLI.readFile(path) else {
            store.close()
            throw fail(log, Exit.config, "configuration error: cannot read the master key file \(path)")
        }
        defer { SecretBytes.wipe(&bytes) }
        if let mode = FileSystem.permissions(path), mode & 0o077 != 0 {
            log.warning("the master key file is readable by other users; chmod 600 it", [("path", path)])
        }
        do { return try MasterKey(base64UTF8: bytes, source: source) } catch {
            store.close()
            throw fail(log, Exit.config, "configuration error: \(error)")
        }
    }

    /// Creates `path` exclusively with mode 0600 and writes `contents`, fsynced.
    static func writeSecretFile(_ path: String, contents: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileSystem.Failure(errno: errno) }
        defer { close(fd) }
        var bytes = Array(contents.utf8)
        do { try CLI.writeAll(fd, &bytes, wipe: true) } catch { throw FileSystem.Failure(errno: errno) }
        guard fsync(fd) == 0 else { throw FileSystem.Failure(errno: errno) }
    }

    // MARK: Root token

    static func installRootToken(_ config: ServiceConfiguration, vault: VaultService, log: Log) throws {
        var configured: String?
        switch config.rootToken {
        case .environment(let t): configured = t
        case .file(let path):
            guard var bytes = try? CLI.readFile(path) else {
                throw fail(log, Exit.config, "configuration error: cannot read the root token file \(path)")
            }
            defer { SecretBytes.wipe(&bytes) }
            guard var text = String(validating: bytes, as: UTF8.self) else {
                throw fail(log, Exit.config, "configuration error: cannot read the root token file \(path)")
            }
            if text.hasSuffix("\n") { text.removeLast() }
            if text.hasSuffix("\r") { text.removeLast() }
            configured = text
        case .storedOrGenerated: configured = nil
        }
        do {
            if let token = try vault.installRootToken(configured: configured) {
                // Printed once, on stdout (not the log stream): the only time it is ever shown.
                let banner = """
                    ================================================================
                    session-vault root token (shown once, store it now):
                    root token: \(token)
                    ================================================================

                    """
                var bytes = Array(banner.utf8)
                try? CLI.writeAll(STDOUT_FILENO, &bytes, wipe: true)
                log.warning("a new root token was generated and printed once on standard output")
            }
        } catch {
            throw fail(log, Exit.config, "cannot install the root token: \(error)")
        }
    }

    // MARK: Import at start

    /// Imports `NAME SESSION_STRING` lines (blank lines and `#` comments ignored). Every line is
    /// checked before anything is stored; names that already exist are skipped (restarts).
    static func importSessions(from path: String, into vault: VaultService, log: Log) throws {
        guard let bytes = try? CLI.readFile(path), bytes.count <= 64 << 20,
            let text = String(validating: bytes, as: UTF8.self) else {
            throw fail(log, Exit.dataError, "cannot read the import file \(path)")
        }
        var parsed: [(SessionName, ImportedSession)] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(rawLine)
            if line.hasSuffix("\r") { line = line.dropLast() }
            if line.isEmpty || line.hasPrefix("#") { continue }
            let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            guard parts.count == 2 else {
                throw fail(log, Exit.dataError, "import file line \(index + 1): expected NAME SESSION_STRING")
            }
            do {
                let name = try SessionName(String(parts[0]))
                let imported = try SessionStringCodec.decode(String(parts[1]))
                parsed.append((name, imported))
            } catch let e as ModelError {
                throw fail(log, Exit.dataError, "import file line \(index + 1): \(e)")
            } catch let e as CodecError {
                throw fail(log, Exit.dataError, "import file line \(index + 1): session_string: \(e)")
            } catch {
                throw fail(log, Exit.dataError, "import file line \(index + 1): invalid")
            }
        }
        var created = 0
        for (name, imported) in parsed {
            do {
                _ = try vault.create(name: name, imported: imported, context: RequestContext(accessor: "import", remoteAddress: nil))
                created += 1
            } catch VaultError.conflict {
                continue
            } catch {
                throw fail(log, Exit.dataError, "import of \(name.rawValue) failed: \(error)")
            }
        }
        log.info("imported sessions at start", [("count", String(created)), ("lines", String(parsed.count))])
    }
}

/// Serves the black-box test routes (`/_test/…`, only with `SESSION_VAULT_TEST_ROUTES=1`) and
/// everything else through the API.
struct TestRouteHandler: HTTPHandler {
    let testRoutes: ServeHandler
    let main: any HTTPHandler

    func handle(_ request: HTTPRequest) -> HTTPResponse {
        request.path.hasPrefix("/_test/") ? testRoutes.handle(request) : main.handle(request)
    }

    func responseBeforeBody(_ head: HTTPRequestHead) -> HTTPResponse? {
        HTTPRequest(head: head, body: []).path.hasPrefix("/_test/") ? nil : main.responseBeforeBody(head)
    }

    /// `/_test/slow` sleeps, so it is declared blocking like the API's writes; the API decides the rest.
    func mayBlock(_ request: HTTPRequest) -> Bool {
        let path = request.path
        return path.hasPrefix("/_test/") ? path == "/_test/slow" : main.mayBlock(request)
    }

    /// As the API: its blocking requests are all flagged.
    var classifiesBlocking: Bool { main.classifiesBlocking }
}

/// The service version.
enum VaultVersion {
    static let current = "0.1.0"
}
