// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Dispatch
import Glibc
import HTTPServer

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
        abstract: "Run the HTTP/1.1 server (default subcommand).",
        discussion: """
            Listen address: --listen, else SESSION_VAULT_LISTEN (HOST:PORT, [::1]:PORT for IPv6), \
            else PORT (binds 0.0.0.0:PORT) when SESSION_VAULT_LISTEN is unset, else 127.0.0.1:8080.

            Tuning (environment, integers): SESSION_VAULT_HEADER_TIMEOUT_MS, SESSION_VAULT_IDLE_TIMEOUT_MS, \
            SESSION_VAULT_BODY_TIMEOUT_MS, SESSION_VAULT_WRITE_TIMEOUT_MS, SESSION_VAULT_HANDLER_TIMEOUT_MS, \
            SESSION_VAULT_DRAIN_TIMEOUT_MS, SESSION_VAULT_MAX_CONNECTIONS, SESSION_VAULT_MAX_INFLIGHT, \
            SESSION_VAULT_MAX_BODY_BYTES, SESSION_VAULT_MAX_REQUESTS_PER_CONNECTION; \
            SESSION_VAULT_LOG_LEVEL=debug|info|warning|error.

            SIGTERM or SIGINT drains gracefully (GET /healthz answers 503 meanwhile) and exits 0.
            """
    )

    @Option(name: .long, help: "Address to listen on as HOST:PORT (overrides SESSION_VAULT_LISTEN).")
    var listen: String?

    func run() throws {
        // HTTP.md item 14: a write to a closed socket must not kill the process.
        signal(SIGPIPE, SIG_IGN)

        let listenText = listen ?? ServeCommand.environmentListenAddress()
        guard let (host, port) = ServeCommand.parseListenAddress(listenText) else {
            throw ValidationError("invalid listen address '\(listenText)'; expected HOST:PORT or [IPv6]:PORT")
        }
        var configuration = HTTPServerConfiguration(host: host, port: port)
        try ServeCommand.applyEnvironment(to: &configuration)

        let state = HTTPServerState()
        let testRoutes = ServeCommand.environment("SESSION_VAULT_TEST_ROUTES") == "1"
        let server = HTTPServer(
            configuration: configuration, state: state,
            handler: ServeHandler(state: state, testRoutes: testRoutes))
        do {
            try server.start()
        } catch {
            ServeCommand.printError("session-vault: cannot listen on \(listenText): \(error)")
            throw ExitCode(1)
        }
        ServeCommand.printError("listening on \(server.localAddress ?? listenText)")

        // HTTP.md item 16: signals arrive through Dispatch, not async-signal-unsafe handlers.
        let drain = configuration.drainTimeout
        var sources: [any DispatchSourceSignal] = []
        for signo in [SIGTERM, SIGINT] {
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: .main)
            source.setEventHandler {
                let nanos = drain.components.seconds * 1_000_000_000 + drain.components.attoseconds / 1_000_000_000
                server.shutdown(deadline: .now() + .nanoseconds(Int(max(0, nanos)))) { Glibc.exit(0) }
            }
            source.activate()
            sources.append(source)
        }
        withExtendedLifetime(sources) { dispatchMain() }
    }

    // MARK: - Configuration

    static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }

    /// `SESSION_VAULT_LISTEN`, else `0.0.0.0:$PORT`, else the default.
    static func environmentListenAddress() -> String {
        if let listen = environment("SESSION_VAULT_LISTEN"), !listen.isEmpty { return listen }
        if let port = environment("PORT"), !port.isEmpty { return "0.0.0.0:\(port)" }
        return "127.0.0.1:8080"
    }

    /// Splits `HOST:PORT` or `[IPv6]:PORT`; the port must be 0...65535.
    static func parseListenAddress(_ text: String) -> (host: String, port: Int)? {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            guard !host.contains(":") else { return nil }  // Bare IPv6 needs brackets.
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, !portText.isEmpty, portText.allSatisfy(\.isASCII), portText.count <= 5,
            portText.allSatisfy({ $0.isNumber }), let port = Int(portText), (0...65535).contains(port)
        else { return nil }
        return (String(host), port)
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
        if let v = try integer("SESSION_VAULT_MAX_CONNECTIONS") { configuration.maxConnections = max(1, v) }
        if let v = try integer("SESSION_VAULT_MAX_INFLIGHT") { configuration.maxInFlightHandlers = max(1, v) }
        if let v = try integer("SESSION_VAULT_MAX_BODY_BYTES") { configuration.maxBodyBytes = v }
        if let v = try integer("SESSION_VAULT_MAX_REQUESTS_PER_CONNECTION") {
            configuration.maxRequestsPerConnection = max(1, v)
        }
        if let level = environment("SESSION_VAULT_LOG_LEVEL") {
            let levels: [String: HTTPLogLevel] = ["debug": .debug, "info": .info, "warning": .warning, "error": .error]
            guard let parsed = levels[level] else {
                throw ValidationError("SESSION_VAULT_LOG_LEVEL must be debug, info, warning or error")
            }
            configuration.logger = .standardError(minimumLevel: parsed)
        }
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

/// The placeholder routes served until the VaultAPI module takes over:
///
/// - `GET|HEAD /healthz` → 200 `ok` (`text/plain`), or 503 problem+json while draining.
/// - With `SESSION_VAULT_TEST_ROUTES=1` only (black-box tests):
///   - `GET /_test/slow?ms=N` sleeps N ms (0...10000) on the connection's thread, then 200 `ok`;
///   - `GET /_test/big?bytes=N` answers N bytes (0...8 MiB) of `abc…z` repeated, `application/octet-stream`;
///   - `POST /_test/echo-length` answers the received body length as decimal text.
/// - Anything else → 404 problem+json (bad test-route parameters → 400).
struct ServeHandler: HTTPHandler {
    let state: HTTPServerState
    let testRoutes: Bool

    static let maxSleepMilliseconds = 10_000
    static let maxBigBytes = 8 * 1024 * 1024

    func handle(_ request: HTTPRequest) -> HTTPResponse {
        let path = request.path
        if path == "/healthz" && (request.method == .get || request.method == .head) {
            if state.isDraining { return .problem(.serviceUnavailable, detail: "draining") }
            return HTTPResponse(status: .ok, text: "ok")
        }
        if testRoutes && path.hasPrefix("/_test/") {
            if let response = testRoute(request, path: path) { return response }
        }
        return .problem(.notFound)
    }

    private func testRoute(_ request: HTTPRequest, path: Substring) -> HTTPResponse? {
        switch (request.method, path) {
        case (.get, "/_test/slow"):
            guard let ms = request.queryValue("ms").flatMap({ Int($0) }), (0...ServeHandler.maxSleepMilliseconds).contains(ms)
            else { return .problem(.badRequest, detail: "ms must be an integer in 0...10000") }
            var remaining = timespec(tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000)
            var left = timespec()
            while nanosleep(&remaining, &left) != 0 && errno == EINTR { remaining = left }
            return HTTPResponse(status: .ok, text: "ok")
        case (.get, "/_test/big"), (.head, "/_test/big"):
            guard let count = request.queryValue("bytes").flatMap({ Int($0) }),
                (0...ServeHandler.maxBigBytes).contains(count)
            else { return .problem(.badRequest, detail: "bytes must be an integer in 0...8388608") }
            let alphabet = Array("abcdefghijklmnopqrstuvwxyz".utf8)
            let body = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
                for i in 0..<count { buffer[i] = alphabet[i % 26] }
                initialized = count
            }
            return HTTPResponse(status: .ok, headers: ["Content-Type": "application/octet-stream"], body: body)
        case (.post, "/_test/echo-length"):
            return HTTPResponse(status: .ok, text: String(request.body.count))
        default:
            return nil
        }
    }
}
