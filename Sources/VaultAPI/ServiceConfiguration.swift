// SPDX-License-Identifier: Apache-2.0
public import Logging
import VaultCore

/// Everything `session-vault serve` needs, resolved from the environment (12-factor) with
/// command-line flags taking precedence. Pure: the executable passes in `environment` and the
/// parsed flags, so every rule here is unit-tested.
public struct ServiceConfiguration: Equatable, Sendable {
    /// Where the vault keeps its data.
    public enum Storage: Equatable, Sendable {
        /// An SQLite file at this path.
        case file(String)
        /// SQLite in memory: nothing survives a restart.
        case memory
        /// PostgreSQL (`postgres://USER@HOST:PORT/DB`): `address` is the URL without its scheme,
        /// and never holds a password.
        case postgres(address: String)
    }

    /// Where the master key comes from. The key itself is never taken from argv.
    public enum MasterKeySource: Equatable, Sendable {
        /// `SESSION_VAULT_MASTER_KEY` (base64 of 32 bytes).
        case environment(String)
        /// A file holding the base64 key (`SESSION_VAULT_MASTER_KEY_FILE`, `--master-key-file`).
        case file(String)
        /// The zero-configuration default: this file, generated (mode 0600) when absent.
        case generatedFile(String)
        /// A random key that lives only in this process (`--dev`, or memory storage without a key).
        case ephemeral
    }

    /// Where the root token comes from.
    public enum RootTokenSource: Equatable, Sendable {
        case environment(String)
        case file(String)
        /// Use the hash already stored in the vault; generate and print one on first start.
        case storedOrGenerated
    }

    public var host: String
    public var port: Int
    public var storage: Storage
    public var masterKey: MasterKeySource
    public var rootToken: RootTokenSource
    public var dev: Bool
    /// Refuse to start instead of falling back to memory when the data folder cannot be written.
    public var requirePersistence: Bool
    /// Start a new vault even where a master key waits for a database that is missing or empty
    /// (`--initialize`, `SESSION_VAULT_INITIALIZE`); without it such a start is refused.
    public var initialize: Bool
    /// A file of `name session_string` lines loaded into the vault at start.
    public var importFile: String?
    public var logFormat: LogFormat
    public var logLevel: Logger.Level
    /// `FULL` (default: nothing acknowledged is lost) or `NORMAL` (faster; may lose the last
    /// commits on power loss, never corrupts).
    public var synchronousFull: Bool
    /// Largest request body (file uploads); JSON bodies are additionally capped at 256 KiB.
    public var maxBodyBytes: Int
    /// The data folder for the embedded default.
    public var dataDirectory: String
    /// Days of audit log kept (older events are pruned at start and hourly); 0 keeps everything.
    public var auditRetentionDays: Int = ServiceConfiguration.defaultAuditRetentionDays
    /// Seconds new lease acquisitions wait after a lease expired unreleased or was broken
    /// (`SESSION_VAULT_LEASE_LOCK_DELAY_SECONDS`, 0-3600, default 15; `docs/leases.md`).
    public var leaseLockDelaySeconds: Int = 15
    /// TLS on the listener: the PEM certificate chain and its key (`SESSION_VAULT_TLS_CERT_FILE`,
    /// `SESSION_VAULT_TLS_KEY_FILE`, `--tls-cert-file`, `--tls-key-file`); nil: plain HTTP.
    public var tls: TLS? = nil
    /// Whose `X-Forwarded-For` names the client (`SESSION_VAULT_TRUSTED_PROXIES`, `--trusted-proxies`).
    public var trustedProxies: TrustedProxies = .none

    /// The TLS files.
    public struct TLS: Equatable, Sendable {
        public var certificateFile: String
        public var keyFile: String
        /// Mutual TLS: client certificates must chain to this CA (`SESSION_VAULT_TLS_CLIENT_CA_FILE`).
        public var clientCAFile: String?
    }
    /// The file holding the PostgreSQL password (`SESSION_VAULT_DATABASE_PASSWORD_FILE`).
    public var databasePasswordFile: String? = nil
    /// Connections to PostgreSQL at most (`SESSION_VAULT_DATABASE_POOL_SIZE`, default 4).
    public var databasePoolSize: Int = 4

    /// ``auditRetentionDays`` unless configured.
    public static let defaultAuditRetentionDays = 90
    /// Largest ``auditRetentionDays`` (a century).
    public static let maxAuditRetentionDays = 36_500

    /// Flags given on the command line (nil = not given).
    public struct Flags: Sendable {
        public var listen: String?
        public var storage: String?
        public var masterKeyFile: String?
        public var rootTokenFile: String?
        public var dev = false
        public var requirePersistence = false
        public var initialize = false
        public var importFile: String?
        public var logFormat: String?
        public var logLevel: String?
        public var dataDirectory: String?
        public var auditRetentionDays: String?
        public var tlsCertFile: String?
        public var tlsKeyFile: String?
        public var tlsClientCAFile: String?
        public var trustedProxies: String?
        public init() {}
    }

    /// A configuration mistake; the message names the variable or flag (never a secret value).
    public struct Error: Swift.Error, Equatable, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
        init(_ message: String) { self.message = message }
    }

    /// Resolves the configuration.
    /// - Throws: ``Error`` naming the bad variable or flag.
    public static func resolve(environment env: [String: String], flags: Flags) throws(Error) -> ServiceConfiguration {
        func value(_ flag: String?, _ name: String) -> String? {
            if let flag, !flag.isEmpty { return flag }
            if let v = env[name], !v.isEmpty { return v }
            return nil
        }
        func bool(_ name: String) throws(Error) -> Bool {
            guard let v = env[name], !v.isEmpty else { return false }
            switch v.lowercased() {
            case "1", "true", "yes", "on": return true
            case "0", "false", "no", "off": return false
            default: throw Error("\(name) must be true or false")
            }
        }

        let devEnv = try bool("SESSION_VAULT_DEV")
        let dev = flags.dev || devEnv
        let requireEnv = try bool("SESSION_VAULT_REQUIRE_PERSISTENCE")
        let initializeEnv = try bool("SESSION_VAULT_INITIALIZE")
        let initialize = flags.initialize || initializeEnv
        let dataDirectory = value(flags.dataDirectory, "SESSION_VAULT_DATA_DIR") ?? "data"

        // Listen address: flag, SESSION_VAULT_LISTEN, then PORT (the ephemeral platforms'
        // convention, which expects the service on all interfaces), then 127.0.0.1:8080.
        let host: String
        let port: Int
        if let listen = value(flags.listen, "SESSION_VAULT_LISTEN") {
            let source = flags.listen != nil ? "--listen" : "SESSION_VAULT_LISTEN"
            let parsed = try parseListen(listen, source: source)
            (host, port) = parsed
        } else if let p = env["PORT"], !p.isEmpty {
            guard let n = parsePort(p) else { throw Error("PORT must be a port number (1-65535)") }
            (host, port) = ("0.0.0.0", n)
        } else {
            (host, port) = ("127.0.0.1", 8080)
        }

        let storage: Storage
        if dev {
            storage = .memory
        } else if let s = value(flags.storage, "SESSION_VAULT_STORAGE") {
            let source = flags.storage != nil ? "--storage" : "SESSION_VAULT_STORAGE"
            if s == "memory" {
                storage = .memory
            } else if s.hasPrefix("file:"), s.count > 5 {
                storage = .file(String(s.dropFirst(5)))
            } else if s.hasPrefix("postgres://") || s.hasPrefix("postgresql://") {
                if let problem = StoreFactory.problem(withServerURL: s) { throw Error("\(source) \(problem)") }
                guard case .server(_, let address) = StoreFactory.location(fromURL: s) else {
                    throw Error("\(source) must be postgres://USER@HOST:PORT/DB")
                }
                storage = .postgres(address: address)
            } else {
                throw Error("\(source) must be 'memory', 'file:PATH' or 'postgres://USER@HOST:PORT/DB'")
            }
        } else {
            storage = .file(dataDirectory + "/vault.db")
        }

        let masterKey: MasterKeySource
        if let f = value(flags.masterKeyFile, "SESSION_VAULT_MASTER_KEY_FILE") {
            masterKey = .file(f)
        } else if let k = env["SESSION_VAULT_MASTER_KEY"], !k.isEmpty {
            masterKey = .environment(k)
        } else if dev || storage == .memory {
            masterKey = .ephemeral
        } else if case .file(let path) = storage {
            // Beside the database it opens, wherever that is (not in the default data folder).
            masterKey = .generatedFile(siblingPath(of: path, named: "master.key"))
        } else if case .postgres = storage {
            // Several instances share the database: none may invent a key of its own.
            throw Error("a PostgreSQL vault needs its master key from SESSION_VAULT_MASTER_KEY_FILE (or "
                + "SESSION_VAULT_MASTER_KEY), the same for every instance; none is generated")
        } else {
            masterKey = .ephemeral
        }

        let rootToken: RootTokenSource
        if let f = value(flags.rootTokenFile, "SESSION_VAULT_ROOT_TOKEN_FILE") {
            rootToken = .file(f)
        } else if let t = env["SESSION_VAULT_ROOT_TOKEN"], !t.isEmpty {
            rootToken = .environment(t)
        } else {
            rootToken = .storedOrGenerated
        }

        let logFormat: LogFormat
        switch value(flags.logFormat, "SESSION_VAULT_LOG_FORMAT") ?? "text" {
        case "text": logFormat = .text
        case "json": logFormat = .json
        default: throw Error("SESSION_VAULT_LOG_FORMAT / --log-format must be 'text' or 'json'")
        }
        guard let logLevel = Logger.Level(configurationName: value(flags.logLevel, "SESSION_VAULT_LOG_LEVEL") ?? "info") else {
            throw Error("SESSION_VAULT_LOG_LEVEL / --log-level must be debug, info, warning or error")
        }

        let synchronousFull: Bool
        switch (env["SESSION_VAULT_SYNCHRONOUS"] ?? "full").lowercased() {
        case "full", "": synchronousFull = true
        case "normal": synchronousFull = false
        default: throw Error("SESSION_VAULT_SYNCHRONOUS must be 'full' or 'normal'")
        }

        var maxBodyBytes = 16 << 20
        if let m = env["SESSION_VAULT_MAX_BODY_BYTES"], !m.isEmpty {
            guard let n = parseDecimal(m), n >= 1024, n <= 256 << 20 else {
                throw Error("SESSION_VAULT_MAX_BODY_BYTES must be between 1024 and 268435456")
            }
            maxBodyBytes = n
        }

        var auditRetentionDays = defaultAuditRetentionDays
        if let d = value(flags.auditRetentionDays, "SESSION_VAULT_AUDIT_RETENTION_DAYS") {
            guard let n = parseDecimal(d), n <= maxAuditRetentionDays else {
                throw Error("SESSION_VAULT_AUDIT_RETENTION_DAYS / --audit-retention-days must be a number of days "
                    + "between 0 (keep everything) and \(maxAuditRetentionDays)")
            }
            auditRetentionDays = n
        }

        var leaseLockDelay = 15
        if let d = env["SESSION_VAULT_LEASE_LOCK_DELAY_SECONDS"], !d.isEmpty {
            guard let n = parseDecimal(d), n <= 3600 else {
                throw Error("SESSION_VAULT_LEASE_LOCK_DELAY_SECONDS must be a number of seconds between 0 and 3600")
            }
            leaseLockDelay = n
        }

        // TLS: a certificate and its key together, or neither; a client CA only with them.
        let certFile = value(flags.tlsCertFile, "SESSION_VAULT_TLS_CERT_FILE")
        let keyFile = value(flags.tlsKeyFile, "SESSION_VAULT_TLS_KEY_FILE")
        let clientCAFile = value(flags.tlsClientCAFile, "SESSION_VAULT_TLS_CLIENT_CA_FILE")
        var tls: TLS?
        switch (certFile, keyFile) {
        case (let cert?, let key?): tls = TLS(certificateFile: cert, keyFile: key, clientCAFile: clientCAFile)
        case (nil, nil):
            if clientCAFile != nil {
                throw Error("SESSION_VAULT_TLS_CLIENT_CA_FILE / --tls-client-ca-file needs TLS: "
                    + "set SESSION_VAULT_TLS_CERT_FILE and SESSION_VAULT_TLS_KEY_FILE too")
            }
        case (_?, nil):
            throw Error("SESSION_VAULT_TLS_CERT_FILE is set without SESSION_VAULT_TLS_KEY_FILE (--tls-key-file): TLS needs both")
        case (nil, _?):
            throw Error("SESSION_VAULT_TLS_KEY_FILE is set without SESSION_VAULT_TLS_CERT_FILE (--tls-cert-file): TLS needs both")
        }
        let trustedProxies = try value(flags.trustedProxies, "SESSION_VAULT_TRUSTED_PROXIES").map { text throws(Error) in
            try TrustedProxies.parse(text)
        } ?? .none

        var databasePoolSize = 4
        if let v = env["SESSION_VAULT_DATABASE_POOL_SIZE"], !v.isEmpty {
            guard let n = parseDecimal(v), n >= 1, n <= 100 else {
                throw Error("SESSION_VAULT_DATABASE_POOL_SIZE must be between 1 and 100")
            }
            databasePoolSize = n
        }

        var configuration = ServiceConfiguration(
            host: host, port: port, storage: storage, masterKey: masterKey, rootToken: rootToken, dev: dev,
            requirePersistence: flags.requirePersistence || requireEnv,
            initialize: initialize,
            importFile: value(flags.importFile, "SESSION_VAULT_IMPORT_FILE"),
            logFormat: logFormat, logLevel: logLevel, synchronousFull: synchronousFull,
            maxBodyBytes: maxBodyBytes, dataDirectory: dataDirectory, auditRetentionDays: auditRetentionDays)
        configuration.leaseLockDelaySeconds = leaseLockDelay
        configuration.tls = tls
        configuration.trustedProxies = trustedProxies
        configuration.databasePasswordFile = env["SESSION_VAULT_DATABASE_PASSWORD_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        configuration.databasePoolSize = databasePoolSize
        return configuration
    }

    /// `name` in the folder of `path` (`a/b/vault.db` → `a/b/master.key`, `vault.db` → `master.key`).
    public static func siblingPath(of path: String, named name: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return name }
        return String(path[...slash]) + name
    }

    /// Parses `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (all interfaces).
    static func parseListen(_ s: String, source: String) throws(Error) -> (String, Int) {
        let problem = Error("\(source) must be HOST:PORT (e.g. 127.0.0.1:8080 or [::1]:8080)")
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { throw problem }
            let host = String(s[s.index(after: s.startIndex)..<close])
            let rest = s[s.index(after: close)...]
            guard rest.hasPrefix(":"), let port = parsePort(String(rest.dropFirst())), !host.isEmpty else { throw problem }
            return (host, port)
        }
        guard let colon = s.lastIndex(of: ":") else { throw problem }
        let host = String(s[..<colon])
        guard let port = parsePort(String(s[s.index(after: colon)...])), !host.contains(":") else { throw problem }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }

    /// A decimal port 0…65535 (0 = any free port), digits only.
    static func parsePort(_ s: String) -> Int? {
        guard let n = parseDecimal(s), n <= 65535 else { return nil }
        return n
    }

    /// Digits only (no sign, no spaces), at most 9 of them.
    static func parseDecimal(_ s: String) -> Int? {
        guard !s.isEmpty, s.utf8.count <= 9 else { return nil }
        var n = 0
        for b in s.utf8 {
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
            n = n * 10 + Int(b - UInt8(ascii: "0"))
        }
        return n
    }
}
