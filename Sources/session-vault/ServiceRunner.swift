// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Dispatch
import Glibc
import HTTPServer
import Logging
import Primitives
import HTTPServerTLS
import VaultAPI
import VaultCore

/// Process exit codes (sysexits.h), documented in `serve --help`.
enum Exit {
    static let usage: Int32 = 64
    static let dataError: Int32 = 65
    static let unavailable: Int32 = 69
    static let cannotCreate: Int32 = 73
    /// The vault file is in use by another process (a running `serve`, or a `rekey`).
    static let inUse: Int32 = 75
    /// An existing vault database cannot be written (read-only file, folder or mount).
    static let noPermission: Int32 = 77
    static let config: Int32 = 78
}

/// Wires configuration, storage, keys, the API and the server; owns them while the process runs.
final class ServiceRunner {
    let server: HTTPServer
    let store: any SessionStore
    let signalSources: [any DispatchSourceSignal]
    /// The file vault's one-process lock, held until the process exits.
    let lock: VaultFileLock?
    /// Watches the store's health and logs when writes start or stop failing.
    let healthWatch: any DispatchSourceTimer

    private init(server: HTTPServer, store: any SessionStore, signalSources: [any DispatchSourceSignal],
                 lock: VaultFileLock?, healthWatch: any DispatchSourceTimer) {
        self.server = server
        self.store = store
        self.signalSources = signalSources
        self.lock = lock
        self.healthWatch = healthWatch
    }

    static func fail(_ log: Logger, _ code: Int32, _ message: String) -> ExitCode {
        log.error("\(message)")
        return ExitCode(code)
    }

    /// Starts everything or throws an `ExitCode` after logging why.
    static func start(flags: ServiceConfiguration.Flags, testRoutes: Bool) throws -> ServiceRunner {
        let startedAt = WallClock.nowMilliseconds()
        let env = FileSystem.environment()
        let config: ServiceConfiguration
        do {
            config = try ServiceConfiguration.resolve(environment: env, flags: flags)
        } catch {
            throw fail(Logger.vault(), Exit.config, "configuration error: \(error.message)")
        }
        let log = Logger.vault(level: config.logLevel, format: config.logFormat)

        var http = HTTPServerConfiguration(host: config.host, port: config.port)
        http.maxBodyBytes = config.maxBodyBytes
        http.contentTooLargeAdvice = "raise the limit with SESSION_VAULT_MAX_BODY_BYTES"
        // The server's own messages (accept back-off, EMFILE, resets at debug) go through the
        // service's log, so a JSON log stream stays JSON.
        http.logger = log
        http.logger[metadataKey: "component"] = "http"
        do { try ServeCommand.applyEnvironment(to: &http) } catch {
            throw fail(log, Exit.config, "configuration error: \(error)")
        }
        // TLS (issue 20): the files are checked now; a bad one is a configuration error (78).
        let tls = try config.tls.map { files throws(ExitCode) in
            do throws(TLSSetupError) {
                let context = try TLSServerContext(
                    files: TLSFiles(certificateFile: files.certificateFile, keyFile: files.keyFile, clientCAFile: files.clientCAFile),
                    logger: http.logger)
                context.install(into: &http)
                return context
            } catch {
                throw fail(log, Exit.config, "TLS configuration error: \(tlsVariable(error.file)): \(error.reason)")
            }
        }

        // The import file is read and checked whole (every entry tried on a throwaway memory
        // vault) before anything else happens.
        let toImport = try config.importFile.map { try BootstrapFile.load($0, environment: env, log: log) }

        // Storage: the file engine, or memory (asked for, or as a loud fallback).
        let (store, info, lock) = try openStorage(config, log: log, startedAt: startedAt)

        // Keys: never generate a master key over an existing keyring.
        let master = try loadMasterKey(config, store: store, log: log, memoryFallback: info.fallbackReason != nil)
        let vault: VaultService
        do {
            vault = try VaultService(store: store, master: master)
        } catch {
            store.close()
            throw fail(log, Exit.dataError, "cannot open the vault: \(error)")
        }
        // Leases: the lock-delay, then the stored leases (each held one gets its whole TTL afresh).
        vault.configureLeases(LeaseSettings(lockDelaySeconds: config.leaseLockDelaySeconds))
        do { try vault.restoreLeases() } catch {
            store.close()
            throw fail(log, Exit.dataError, "cannot read the stored leases: \(error)")
        }
        let state = HTTPServerState()
        let router = VaultRouter(vault: vault, info: info, serverState: state, log: log, routes: testRoutes ? TestRoutes.all : [],
                                 trustedProxies: config.trustedProxies)
        if let reason = vault.sealedReason {
            log.error("THE VAULT IS SEALED: it serves no secrets until it is restarted with the right master key", metadata: ["reason": "\(reason)"])
        } else {
            try installRootToken(config, vault: vault, log: log)
            if let toImport { try toImport.apply(to: router, log: log) }
        }
        // Audit retention: prunes now (in the background) and hourly.
        vault.startAuditRetention(days: config.auditRetentionDays) { result in
            switch result {
            case .success(let deleted) where deleted > 0:
                log.info("audit retention: pruned old events", metadata: ["deleted": "\(deleted)", "days": "\(config.auditRetentionDays)"])
            case .success: break
            case .failure(let error): log.warning("audit retention: prune failed", metadata: ["error": "\(error)"])
            }
        }

        let server = HTTPServer(configuration: http, state: state, handler: router)
        // docs/http.md §16: drain on SIGTERM/SIGINT, close the database cleanly, exit 0. Installed
        // before the listener opens: a SIGTERM that comes as soon as the port answers must drain,
        // not kill (the handlers run on the main queue, so only once the server has started).
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
        // SIGHUP (a closed terminal, a supervisor's habit, or a renewed certificate) must neither
        // kill nor drain: with TLS it reloads the certificate and key for new connections (open
        // ones keep theirs); a bad new pair is refused and the one in use kept.
        signal(SIGHUP, SIG_IGN)
        let hangUp = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .main)
        hangUp.setEventHandler {
            guard let tls else {
                log.info("SIGHUP ignored: there is nothing to reload without TLS; SIGTERM stops the vault")
                return
            }
            do throws(TLSSetupError) {
                try tls.reload()
                log.info("SIGHUP: TLS certificate and key reloaded; new connections use them")
            } catch {
                log.error("SIGHUP: TLS reload refused, the certificate in use is kept: \(tlsVariable(error.file)): \(error.reason)")
            }
        }
        hangUp.activate()
        sources.append(hangUp)
        do {
            try server.start()
        } catch {
            store.close()
            throw fail(log, Exit.unavailable, "cannot listen on \(config.host):\(config.port): \(error)")
        }
        let address = server.localAddress ?? "\(config.host):\(config.port)"
        // The server itself has logged "listening on ADDRESS" (scripts and tests wait for it),
        // through `log`, so JSON logs stay one JSON object per line.
        log.info("session-vault started", metadata: ["listen": "\(address)", "storage": "\(info.engine)", "tls": "\(tlsMode(config.tls))", "version": "\(VaultVersion.current)"])

        return ServiceRunner(server: server, store: store, signalSources: sources, lock: lock,
                             healthWatch: watchHealth(of: store, vault: vault, log: log))
    }

    /// `off`, `on` or `mutual`, for the start line.
    static func tlsMode(_ tls: ServiceConfiguration.TLS?) -> String {
        guard let tls else { return "off" }
        return tls.clientCAFile == nil ? "on" : "mutual"
    }

    /// The setting that names a TLS file, for error messages.
    static func tlsVariable(_ file: TLSSetupError.File) -> String {
        switch file {
        case .certificate: "SESSION_VAULT_TLS_CERT_FILE"
        case .key: "SESSION_VAULT_TLS_KEY_FILE"
        case .clientCA: "SESSION_VAULT_TLS_CLIENT_CA_FILE"
        case .none: "TLS"
        }
    }

    /// Checks the store and the seal every two seconds and logs each change: loudly when writes
    /// start failing (a full disk, a database file removed under the vault) or the vault seals
    /// itself (another process re-sealed the keyring), once more when writes work again. The
    /// requests refused meanwhile are not logged one by one.
    static func watchHealth(of store: any SessionStore, vault: VaultService, log: Logger) -> any DispatchSourceTimer {
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "session-vault.health"))
        nonisolated(unsafe) var last = StoreHealth()
        nonisolated(unsafe) var lastSealed = vault.sealedReason
        timer.schedule(deadline: .now() + .seconds(2), repeating: .seconds(2), leeway: .milliseconds(500))
        timer.setEventHandler {
            let sealed = vault.sealedReason
            if sealed != lastSealed, let sealed {
                log.error("THE VAULT IS SEALED: it serves no secrets until it is restarted with the right master key", metadata: ["reason": "\(sealed)"])
            }
            lastSealed = sealed
            let now = store.health()
            defer { last = now }
            guard now != last else { return }
            if now.failed {
                log.error("STORAGE FAILURE: the vault can no longer write its data; readiness fails until a restart",
                          metadata: ["reason": "\(now.reason ?? "unknown")"])
            } else if !now.writable {
                log.error("storage is not writable: writes answer 503 until it is", metadata: ["reason": "\(now.reason ?? "unknown")"])
            } else {
                log.info("storage is writable again")
            }
        }
        timer.activate()
        return timer
    }

    /// What the lock file says about this process.
    static func holderLine(_ command: String) -> String {
        var name = [CChar](repeating: 0, count: 256)
        let host = gethostname(&name, name.count - 1) == 0
            ? String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "unknown host"
        return "pid \(getpid()) (session-vault \(command)) on \(host) since \(Timestamp.rfc3339(milliseconds: WallClock.nowMilliseconds()))"
    }

    /// Takes the file vault's one-process lock, or throws the exit that says who holds it.
    static func lockVault(_ path: String, command: String, log: Logger) throws -> VaultFileLock {
        do {
            return try VaultFileLock(databasePath: path, holder: holderLine(command))
        } catch .held(let holder) {
            throw inUse(path, holder: holder, command: command, log: log)
        } catch {
            throw fail(log, Exit.noPermission, "refusing to \(command): \(error)")
        }
    }

    static func inUse(_ path: String, holder: String, command: String, log: Logger) -> ExitCode {
        fail(log, Exit.inUse, "refusing to \(command): \(path) is in use by \(holder.isEmpty ? "another process" : holder); "
             + "one process at a time opens a vault file (stop it first)")
    }

    // MARK: Storage

    static func openStorage(_ config: ServiceConfiguration, log: Logger, startedAt: Int64) throws
        -> (any SessionStore, ServiceInfo, VaultFileLock?)
    {
        let options = StoreFactory.Options(durableCommits: config.synchronousFull)
        let sync = config.synchronousFull ? "full" : "normal"
        func memory(_ reason: String?) throws -> (any SessionStore, ServiceInfo, VaultFileLock?) {
            do {
                let s = try StoreFactory.open(.memory, options: options)
                return (s, ServiceInfo(engine: "memory", path: nil, fallbackReason: reason, synchronous: sync,
                                       version: VaultVersion.current, startedAt: startedAt), nil)
            } catch {
                throw fail(log, Exit.unavailable, "cannot open in-memory storage: \(error)")
            }
        }
        switch config.storage {
        case .postgres(let address):
            return try openPostgres(address, config: config, options: options, log: log, startedAt: startedAt)
        case .memory:
            if !config.dev {
                log.warning("storage is in memory: every session is lost when the process stops")
            }
            return try memory(nil)
        case .file(let path):
            let dir = FileSystem.parentDirectory(of: path)
            let existing = FileSystem.exists(path)
            try checkExistingData(path, existing: existing, config: config, log: log)
            var reason: String?
            if !dir.isEmpty && !FileSystem.isDirectory(dir) && !FileSystem.makeDirectories(dir, mode: 0o700) {
                reason = "cannot create the data folder \(dir)"
            } else if !existing && !FileSystem.isWritable(dir) {
                reason = "cannot write the data folder \(dir.isEmpty ? "." : dir)"
            }
            var lock: VaultFileLock?
            if reason == nil {
                do {
                    lock = try VaultFileLock(databasePath: path, holder: holderLine("serve"))
                } catch .held(let holder) {
                    throw inUse(path, holder: holder, command: "serve", log: log)
                } catch {
                    if existing { throw fail(log, Exit.noPermission, "refusing to start: \(error)") }
                    reason = "\(error)"
                }
            }
            if reason == nil {
                do {
                    let s = try StoreFactory.open(.file(path), options: options)
                    return (s, ServiceInfo(engine: "file", path: path, fallbackReason: nil, synchronous: sync,
                                           version: VaultVersion.current, startedAt: startedAt), lock)
                } catch {
                    switch error {
                    case .cannotOpen, .readOnly, .diskFull:
                        if existing {
                            throw fail(log, Exit.noPermission, "refusing to start: the vault database \(path) exists but cannot be "
                                       + "written (\(error)); fix that and restart: an existing vault is never replaced by an empty memory vault")
                        }
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
            log.error("FALLING BACK TO MEMORY STORAGE: nothing will survive a restart", metadata: ["reason": "\(why)"])
            return try memory(why)
        }
    }

    /// Opens a PostgreSQL vault: no file lock, no memory fallback (an unreachable database is
    /// an error at start), the password from its file (one trailing newline ignored) or libpq's own.
    static func openPostgres(_ address: String, config: ServiceConfiguration, options: StoreFactory.Options, log: Logger,
                             startedAt: Int64) throws -> (any SessionStore, ServiceInfo, VaultFileLock?) {
        var options = options
        options.databasePoolSize = config.databasePoolSize
        if let path = config.databasePasswordFile {
            guard var bytes = try? CLI.readFile(path) else {
                throw fail(log, Exit.config, "configuration error: cannot read SESSION_VAULT_DATABASE_PASSWORD_FILE \(path)")
            }
            defer { SecretBytes.wipe(&bytes) }
            if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
            if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
            options.databasePassword = StoreFactory.DatabasePassword(String(decoding: bytes, as: UTF8.self))
        }
        do {
            let store = try StoreFactory.open(.server(engine: "postgres", address: address), options: options)
            return (store, ServiceInfo(engine: "postgres", path: address, fallbackReason: nil, synchronous: "full",
                                       version: VaultVersion.current, startedAt: startedAt), nil)
        } catch {
            switch error {
            case .notAVaultDatabase, .newerSchema, .corrupt:
                throw fail(log, Exit.dataError, "refusing to start: postgres://\(address): \(error)")
            default:
                throw fail(log, Exit.unavailable, "cannot open the PostgreSQL database postgres://\(address): \(error)")
            }
        }
    }

    /// The checks before a file vault is opened, so that data which exists is never silently
    /// replaced: an empty database file (0 bytes is no vault: SQLite would start a new one in it),
    /// a master key beside a database that is gone, and an existing database this process cannot
    /// write (the memory fallback is only for a vault that has nothing yet). `--initialize`
    /// allows the first two.
    static func checkExistingData(_ path: String, existing: Bool, config: ServiceConfiguration, log: Logger) throws {
        let dir = FileSystem.parentDirectory(of: path)
        let initialize = "restore it from a backup, or start a new, empty vault with --initialize (SESSION_VAULT_INITIALIZE=true)"
        if existing {
            if FileSystem.size(path) == 0 && !config.initialize {
                throw fail(log, Exit.dataError, "refusing to start: the vault database \(path) is empty (0 bytes), so it holds no vault; \(initialize)")
            }
            if !FileSystem.isWritable(path) || !FileSystem.isWritable(dir) {
                throw fail(log, Exit.noPermission, "refusing to start: the vault database \(path) exists but is read-only "
                           + "(the file or its folder \(dir.isEmpty ? "." : dir) cannot be written); make both writable and restart: "
                           + "an existing vault is never replaced by an empty memory vault")
            }
        } else {
            let key = ServiceConfiguration.siblingPath(of: path, named: "master.key")
            if FileSystem.exists(key) && !config.initialize {
                throw fail(log, Exit.dataError, "refusing to start: \(key) is a master key but its vault database \(path) is missing; "
                           + "if the database was moved or deleted, \(initialize)")
            }
        }
    }

    // MARK: Keys

    static func loadMasterKey(_ config: ServiceConfiguration, store: any SessionStore, log: Logger,
                              memoryFallback: Bool = false) throws -> MasterKey? {
        switch config.masterKey {
        case .environment(let text):
            do { return try MasterKey(base64: text, source: "SESSION_VAULT_MASTER_KEY") } catch {
                store.close()
                throw fail(log, Exit.config, "configuration error: \(error)")
            }
        case .file(let path):
            return try readKeyFile(path, store: store, log: log, source: "SESSION_VAULT_MASTER_KEY_FILE")
        case .ephemeral:
            if config.dev {
                log.warning("""
                    DEVELOPMENT MODE (--dev): memory storage and a throwaway master key; every session, token \
                    and key is gone when the process stops. Never use it for real accounts
                    """)
            } else {
                log.warning("using a throwaway master key: memory storage keeps nothing anyway")
            }
            do { return try MasterKey.generate() } catch { throw fail(log, Exit.unavailable, "cannot generate a key: \(error)") }
        case .generatedFile(let path):
            if memoryFallback {
                // The data folder cannot be written, so neither can a key file beside it; the
                // memory vault keeps nothing a key would have to open later.
                log.warning("using a throwaway master key for the memory fallback: no key file is written, nothing is kept")
                do { return try MasterKey.generate() } catch { throw fail(log, Exit.unavailable, "cannot generate a key: \(error)") }
            }
            if FileSystem.exists(path) {
                return try readKeyFile(path, store: store, log: log, source: path)
            }
            let hasKeyring = ((try? store.loadKeyTerms()) ?? []).isEmpty == false
            if hasKeyring {
                log.error("the master key file is missing but the database has a keyring; not generating a new key", metadata: ["path": "\(path)"])
                return nil
            }
            do {
                let key = try MasterKey.generate()
                try writeSecretFile(path, contents: key.base64() + "\n")
                log.warning("""
                    GENERATED A NEW MASTER KEY next to the data. Anyone who can read both can open every session: \
                    move it to a secret store and pass SESSION_VAULT_MASTER_KEY_FILE in production
                    """, metadata: ["path": "\(path)"])
                return key
            } catch {
                throw fail(log, Exit.cannotCreate, "cannot write the master key file \(path): \(error)")
            }
        }
    }

    static func readKeyFile(_ path: String, store: any SessionStore, log: Logger, source: String) throws -> MasterKey {
        guard var bytes = try? CLI.readFile(path) else {
            store.close()
            throw fail(log, Exit.config, "configuration error: cannot read the master key file \(path)")
        }
        defer { SecretBytes.wipe(&bytes) }
        if let mode = FileSystem.permissions(path), mode & 0o077 != 0 {
            log.warning("the master key file is readable by other users; chmod 600 it", metadata: ["path": "\(path)"])
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

    static func installRootToken(_ config: ServiceConfiguration, vault: VaultService, log: Logger) throws {
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
}

/// The service version.
enum VaultVersion {
    static let current = "0.1.0"
}
