// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Dispatch
import Glibc
import HTTPServer
import Primitives
import VaultAPI

/// `session-vault serve`: runs the HTTP server until SIGTERM/SIGINT, then drains and exits 0.
///
/// Listen address, in order of precedence:
/// 1. `--listen HOST:PORT`;
/// 2. `SESSION_VAULT_LISTEN=HOST:PORT` (IPv6 as `[::1]:8080`);
/// 3. `PORT=N` (platform convention) → `0.0.0.0:N`, only when `SESSION_VAULT_LISTEN` is unset;
/// 4. `127.0.0.1:8080`.
///
/// Limits and timeouts default to ``HTTPServerConfiguration``'s values and can be tuned through
/// the environment variables listed in `discussion` (integers; durations in milliseconds).
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the vault's HTTP API (the default subcommand).",
        discussion: """
            Configuration comes from the environment; flags override it. Secrets are \
            never taken from the command line: give the master key and the root token \
            through the environment or through files.

            Environment:
            - SESSION_VAULT_LISTEN: HOST:PORT, or [::1]:PORT (default 127.0.0.1:8080).
            - PORT: when SESSION_VAULT_LISTEN is unset, listen on 0.0.0.0:PORT.
            - SESSION_VAULT_STORAGE: file:PATH, memory or postgres://USER@HOST:PORT/DB (default file:DATA_DIR/vault.db).
            - SESSION_VAULT_DATA_DIR: folder of the embedded default (default ./data).
            - SESSION_VAULT_MASTER_KEY / _MASTER_KEY_FILE: base64 of 32 bytes.
            - SESSION_VAULT_ROOT_TOKEN / _ROOT_TOKEN_FILE: the root token; without one, \
            a token is generated on first start and printed once on stdout.
            - SESSION_VAULT_REQUIRE_PERSISTENCE=true: no memory fallback.
            - SESSION_VAULT_INITIALIZE=true: start a new vault where a master key file waits \
            for a database that is missing, or where the database file is empty.
            - SESSION_VAULT_IMPORT_FILE: sessions and scoped tokens to load at start: \
            "NAME SESSION_STRING" (space or tab) or JSON lines (a create body, or \
            {"token": {…, "secret_env"|"secret_file": …}}); see the README.
            - SESSION_VAULT_SYNCHRONOUS: full (default, loses nothing acknowledged) \
            or normal.
            - SESSION_VAULT_LOG_FORMAT (text, json), SESSION_VAULT_LOG_LEVEL.
            - SESSION_VAULT_AUDIT_RETENTION_DAYS: days of audit log kept, pruned at \
            start and hourly (default 90; 0 keeps everything).
            - HTTP limits: SESSION_VAULT_HEADER_TIMEOUT_MS, _IDLE_TIMEOUT_MS, \
            _BODY_TIMEOUT_MS, _WRITE_TIMEOUT_MS, _HANDLER_TIMEOUT_MS, _DRAIN_TIMEOUT_MS, \
            _MAX_CONNECTIONS, _MAX_INFLIGHT, _HANDLER_THREADS, _MAX_BODY_BYTES, _MAX_REQUESTS_PER_CONNECTION.
            - SESSION_VAULT_MAX_CONNECTIONS_PER_ADDRESS: connections one client address may \
            hold (default 128; 0 = no bound, e.g. behind a reverse proxy).
            - SESSION_VAULT_BODY_MEMORY_BUDGET_BYTES: request-body bytes in memory at once \
            across all connections (default 268435456; at least the body limit); beyond it, \
            503 before the body is read.
            - SESSION_VAULT_EVENT_LOOPS: event-loop threads, 1…64 (default one per CPU, at most 64).
            - SESSION_VAULT_TLS_CERT_FILE and SESSION_VAULT_TLS_KEY_FILE: serve HTTPS with this \
            PEM certificate chain (leaf first) and its unencrypted PEM key; TLS 1.2 and 1.3 only.
            - SESSION_VAULT_TLS_CLIENT_CA_FILE: mutual TLS, client certificates signed by this CA required.
            - SESSION_VAULT_TLS_HANDSHAKE_TIMEOUT_MS: time for a TLS handshake (default the header timeout).
            - SESSION_VAULT_TRUSTED_PROXIES: addresses or CIDR ranges of reverse proxies whose \
            X-Forwarded-For names the client in the audit log and the failed-authentication throttle.

            One process at a time serves a vault file: it holds an exclusive lock on \
            PATH.lock beside the database. SIGHUP reloads the TLS certificate and key (a bad \
            new pair is refused and the old one kept); without TLS it is ignored.

            Exit codes: 0 clean shutdown after SIGTERM/SIGINT, 64 usage, 65 unusable \
            data (not a vault database, an empty database file, a master key without its \
            database, bad import file), 69 cannot listen, 73 persistence required but \
            impossible, 75 the vault file is in use by another process (named), 77 an \
            existing vault database cannot be written, 78 configuration error.
            """
    )

    @Option(name: .long, help: "Listen address HOST:PORT (overrides SESSION_VAULT_LISTEN).")
    var listen: String?

    @Option(name: .long, help: "Storage: file:PATH, memory or postgres://USER@HOST:PORT/DB (overrides SESSION_VAULT_STORAGE).")
    var storage: String?

    @Option(name: .long, help: "Data folder of the embedded default (overrides SESSION_VAULT_DATA_DIR).")
    var dataDir: String?

    @Option(name: .long, help: "File holding the base64 master key (overrides SESSION_VAULT_MASTER_KEY_FILE).")
    var masterKeyFile: String?

    @Option(name: .long, help: "File holding the root token (overrides SESSION_VAULT_ROOT_TOKEN_FILE).")
    var rootTokenFile: String?

    @Option(name: .long, help: "Import file: NAME SESSION_STRING or JSON lines (sessions, scoped tokens) loaded at start.")
    var importFile: String?

    @Option(name: .long, help: "Days of audit log kept; 0 keeps everything (overrides SESSION_VAULT_AUDIT_RETENTION_DAYS).")
    var auditRetentionDays: String?

    @Option(name: .long, help: "Log format: text or json.")
    var logFormat: String?

    @Option(name: .long, help: "Log level: debug, info, warning or error.")
    var logLevel: String?

    @Option(name: .long, help: "PEM certificate chain: serve HTTPS (overrides SESSION_VAULT_TLS_CERT_FILE).")
    var tlsCertFile: String?

    @Option(name: .long, help: "PEM private key of the certificate (overrides SESSION_VAULT_TLS_KEY_FILE).")
    var tlsKeyFile: String?

    @Option(name: .long, help: "PEM CA of the client certificates required (mutual TLS; overrides SESSION_VAULT_TLS_CLIENT_CA_FILE).")
    var tlsClientCaFile: String?

    @Option(name: .long, help: "Trusted reverse proxies, addresses or CIDR ranges (overrides SESSION_VAULT_TRUSTED_PROXIES).")
    var trustedProxies: String?

    @Flag(name: .long, help: "Development mode: memory storage, throwaway keys, root token printed.")
    var dev = false

    @Flag(name: .long, help: "Refuse to start when the data folder cannot be written (no memory fallback).")
    var requirePersistence = false

    @Flag(name: .long, help: "Start a new vault even though a master key file waits for a missing or empty database.")
    var initialize = false

    func run() throws {
        // Before any thread exists, so that every thread shares the one malloc arena.
        MallocTuning.apply()
        // docs/http.md §14: a write to a closed socket must not kill the process.
        signal(SIGPIPE, SIG_IGN)
        // Every file the vault creates (database, WAL, key file) is private to its user.
        umask(0o077)
        var flags = ServiceConfiguration.Flags()
        flags.listen = listen
        flags.storage = storage
        flags.dataDirectory = dataDir
        flags.masterKeyFile = masterKeyFile
        flags.rootTokenFile = rootTokenFile
        flags.importFile = importFile
        flags.logFormat = logFormat
        flags.logLevel = logLevel
        flags.auditRetentionDays = auditRetentionDays
        flags.tlsCertFile = tlsCertFile
        flags.tlsKeyFile = tlsKeyFile
        flags.tlsClientCAFile = tlsClientCaFile
        flags.trustedProxies = trustedProxies
        flags.dev = dev
        flags.requirePersistence = requirePersistence
        flags.initialize = initialize
        let service = try ServiceRunner.start(flags: flags, testRoutes: ServeCommand.environment("SESSION_VAULT_TEST_ROUTES") == "1")
        withExtendedLifetime(service) { dispatchMain() }
    }

    // MARK: - Configuration

    static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }

    static func applyEnvironment(to configuration: inout HTTPServerConfiguration) throws {
        func integer(_ name: String) throws -> Int? {
            guard let text = environment(name), !text.isEmpty else { return nil }
            guard text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(text) else {
                throw ValidationError("\(name) must be a non-negative integer")
            }
            return value
        }
        func milliseconds(_ name: String) throws -> Duration? {
            try integer(name).map { Duration.milliseconds($0) }
        }
        if let v = try milliseconds("SESSION_VAULT_HEADER_TIMEOUT_MS") { configuration.headerTimeout = v }
        if let v = try milliseconds("SESSION_VAULT_IDLE_TIMEOUT_MS") { configuration.idleTimeout = v }
        if let v = try milliseconds("SESSION_VAULT_BODY_TIMEOUT_MS") { configuration.bodyInactivityTimeout = v }
        if let v = try milliseconds("SESSION_VAULT_WRITE_TIMEOUT_MS") { configuration.writeStallTimeout = v }
        if let v = try milliseconds("SESSION_VAULT_HANDLER_TIMEOUT_MS") { configuration.handlerTimeout = v }
        if let v = try milliseconds("SESSION_VAULT_DRAIN_TIMEOUT_MS") { configuration.drainTimeout = v }
        if let v = try milliseconds("SESSION_VAULT_TLS_HANDSHAKE_TIMEOUT_MS") { configuration.handshakeTimeout = v }
        if let v = try integer("SESSION_VAULT_MAX_CONNECTIONS") { configuration.maxConnections = max(1, v) }
        if let v = try integer("SESSION_VAULT_MAX_CONNECTIONS_PER_ADDRESS") { configuration.maxConnectionsPerAddress = v }
        if let v = try integer("SESSION_VAULT_BODY_MEMORY_BUDGET_BYTES") { configuration.bodyMemoryBudgetBytes = v }
        // Set after SESSION_VAULT_MAX_BODY_BYTES (ServiceConfiguration): a budget below the body
        // limit would refuse the largest bodies forever.
        guard configuration.bodyMemoryBudgetBytes >= configuration.maxBodyBytes else {
            throw ValidationError(
                "SESSION_VAULT_BODY_MEMORY_BUDGET_BYTES must be at least the body limit (\(configuration.maxBodyBytes) bytes)")
        }
        if let v = try integer("SESSION_VAULT_MAX_INFLIGHT") { configuration.maxInFlightHandlers = max(1, v) }
        if let v = try integer("SESSION_VAULT_HANDLER_THREADS") { configuration.handlerThreads = max(1, v) }
        if let v = try integer("SESSION_VAULT_MAX_REQUESTS_PER_CONNECTION") {
            configuration.maxRequestsPerConnection = max(1, v)
        }
        if let v = try integer("SESSION_VAULT_EVENT_LOOPS") {
            guard (1...64).contains(v) else { throw ValidationError("SESSION_VAULT_EVENT_LOOPS must be 1…64") }
            HTTPServer.configureEventLoops(v)
        }
        // SESSION_VAULT_MAX_BODY_BYTES and SESSION_VAULT_LOG_LEVEL belong to ServiceConfiguration
        // (validated there; the HTTP logger writes through the service's Log).
    }

    static func printError(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var written = 0
            while written < raw.count {
                let n = write(2, base + written, raw.count - written)
                if n > 0 { written += n } else if n < 0 && errno == EINTR { continue } else { return }
            }
        }
    }
}

/// Routes for the black-box HTTP tests, served only with `SESSION_VAULT_TEST_ROUTES=1`: entries
/// of the API's own route table (``VaultRouter/init(vault:info:serverState:log:metrics:throttle:routes:)``),
/// so they are matched, placed, preflighted and counted as production routes are.
///   - `GET /_test/slow?ms=N` sleeps N ms (0...10000) on a handler thread, then 200 `ok`;
///   - `GET /_test/slow-count` answers how many `/_test/slow` handlers have started so far: a test
///     waits for that instead of sleeping before it signals or resets;
///   - `GET /_test/big?bytes=N` answers N bytes (0...8 MiB) of `abc…z` repeated, `application/octet-stream`;
///   - `POST /_test/echo-length` answers the received body length as decimal text.
/// - Any other `/_test/` path → 404 problem+json (bad test-route parameters → 400).
enum TestRoutes {
    static let maxSleepMilliseconds = 10_000
    static let maxBigBytes = 8 * 1024 * 1024

    static let all: [Route] = [
        Route(.get, "/_test/slow", placement: .handlerThread, access: .open) { _, c in slow(c.request) },
        Route(.get, "/_test/slow-count", placement: .loop, access: .open) { _, _ in
            HTTPResponse(status: .ok, text: String(slowStarted.withLock { $0 }))
        },
        Route(.get, "/_test/big", placement: .loop, access: .open) { _, c in big(c.request) },
        Route(.post, "/_test/echo-length", placement: .loop, access: .open, body: .any) { _, c in
            HTTPResponse(status: .ok, text: String(c.request.body.count))
        },
    ]

    /// `/_test/slow` handlers started.
    private static let slowStarted = Locked(0)

    private static func slow(_ request: HTTPRequest) -> HTTPResponse {
        guard let ms = request.queryValue("ms").flatMap({ Int($0) }), (0...maxSleepMilliseconds).contains(ms)
        else { return .problem(.badRequest, detail: "ms must be an integer in 0...10000") }
        slowStarted.withLock { $0 += 1 }
        var remaining = timespec(tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000)
        var left = timespec()
        while nanosleep(&remaining, &left) != 0 && errno == EINTR { remaining = left }
        return HTTPResponse(status: .ok, text: "ok")
    }

    private static func big(_ request: HTTPRequest) -> HTTPResponse {
        guard let count = request.queryValue("bytes").flatMap({ Int($0) }), (0...maxBigBytes).contains(count)
        else { return .problem(.badRequest, detail: "bytes must be an integer in 0...8388608") }
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz".utf8)
        let body = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            for i in 0..<count { buffer[i] = alphabet[i % 26] }
            initialized = count
        }
        return HTTPResponse(status: .ok, headers: ["Content-Type": "application/octet-stream"], body: body)
    }
}
