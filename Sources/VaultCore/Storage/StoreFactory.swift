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

        public init(durableCommits: Bool = true) {
            self.durableCommits = durableCommits
        }
    }

    /// The location a storage URL names: `file:PATH` or `memory`; nil for anything else.
    public static func location(fromURL text: String) -> StoreLocation? {
        if text == "memory" { return .memory }
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
        case .server(let engine, _):
            throw .invalidArgument(field: "storage", reason: "this build has no \(engine) engine")
        }
    }
}
