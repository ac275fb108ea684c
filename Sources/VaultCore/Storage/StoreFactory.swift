// SPDX-License-Identifier: Apache-2.0

/// The one place that turns a storage URL into an engine. `ServiceRunner` and the offline
/// commands open their store here; a new engine is one more case in ``location(fromURL:)`` and
/// ``open(_:options:)``.
public enum StoreFactory {
    /// What every engine is told, whatever it is.
    public struct Options: Sendable, Equatable {
        /// Each commit is durable before it is acknowledged (SQLite `synchronous=FULL`); false
        /// trades the last commits before a power loss for speed (`NORMAL`), never consistency.
        public var durableCommits: Bool
        /// The database password of a server engine (`SESSION_VAULT_DATABASE_PASSWORD_FILE`);
        /// nil lets the engine's own client find one (libpq: `PGPASSWORD`, `PGPASSFILE`).
        public var databasePassword: DatabasePassword?
        /// Connections a server engine opens at most (`SESSION_VAULT_DATABASE_POOL_SIZE`).
        public var databasePoolSize: Int

        public init(durableCommits: Bool = true, databasePassword: DatabasePassword? = nil, databasePoolSize: Int = 4) {
            self.durableCommits = durableCommits
            self.databasePassword = databasePassword
            self.databasePoolSize = databasePoolSize
        }
    }

    /// A database password: its description never shows it.
    public struct DatabasePassword: Sendable, Equatable, CustomStringConvertible {
        let value: String
        public init(_ value: String) { self.value = value }
        public var description: String { "<redacted>" }
    }

    /// Why a server URL is refused (it names no value of the URL), or nil when it is usable.
    public static func problem(withServerURL text: String) -> String? {
        guard let range = text.firstRange(of: "://") else { return "must be postgres://USER@HOST:PORT/DB" }
        let rest = text[range.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        if let at = authority.lastIndex(of: "@"), authority[..<at].contains(":") {
            return "must not contain a password; put it in SESSION_VAULT_DATABASE_PASSWORD_FILE (or PGPASSFILE)"
        }
        if let query = rest.firstIndex(of: "?") {
            let options = rest[rest.index(after: query)...].split(separator: "&")
            if options.contains(where: { $0.lowercased().hasPrefix("password=") }) {
                return "must not contain a password; put it in SESSION_VAULT_DATABASE_PASSWORD_FILE (or PGPASSFILE)"
            }
        }
        return nil
    }

    /// The location a storage URL names: `file:PATH`, `memory`, or `postgres://…` /
    /// `postgresql://…` (without a password: see ``problem(withServerURL:)``); nil for anything else.
    public static func location(fromURL text: String) -> StoreLocation? {
        if text == "memory" { return .memory }
        for scheme in ["postgres://", "postgresql://"] where text.hasPrefix(scheme) && text.count > scheme.count {
            guard problem(withServerURL: text) == nil else { return nil }
            return .server(engine: "postgres", address: String(text.dropFirst(scheme.count)))
        }
        if text.hasPrefix("file:"), text.count > 5 { return .file(String(text.dropFirst(5))) }
        return nil
    }

    /// Opens (creating or migrating as needed) the store at `location`.
    /// - Throws: the engine's ``StorageError`` (see ``SQLiteSessionStore/init(_:configuration:)``);
    ///   ``StorageError/invalidArgument(field:reason:)`` naming `storage` for an engine this build
    ///   does not have.
    public static func open(_ location: StoreLocation, options: Options = .init()) throws(StorageError) -> any SessionStore {
        switch location {
        case .file, .memory:
            return try SQLiteSessionStore(location, configuration: SQLiteStoreConfiguration(synchronous: options.durableCommits ? .full : .normal))
        case .server("postgres", let address):
            let settings = PostgresConnectionSettings(
                url: "postgresql://" + address, password: options.databasePassword?.value, poolSize: options.databasePoolSize)
            return try PostgresSessionStore(settings)
        case .server(let engine, _):
            throw .invalidArgument(field: "storage", reason: "this build has no \(engine) engine")
        }
    }
}
