// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Foundation
import Testing
import VaultCore

/// The SQLite engines, for the tests of what only they promise (group commit, WAL, files).
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case file, memory
    var testDescription: String { rawValue }
}

/// What the contract tests check that the production protocols need not offer: looking a
/// session up by its row id, single export times, deleting peers, a synchronous audit append,
/// and the count of deferred writes that failed. Each engine under test conforms here.
protocol StoreTestAccess: SessionStore {
    func session(id: SessionID) throws(StorageError) -> StoredSession?
    func markExported(_ name: SessionName, at time: Int64) throws(StorageError)
    func deletePeers(in session: SessionName) throws(StorageError) -> Int
    @discardableResult
    func appendAudit(_ event: AuditEvent) throws(StorageError) -> Int64
    var deferredFailures: Int { get }
}

extension SQLiteSessionStore: StoreTestAccess {
    var deferredFailures: Int { statistics().deferredFailures }
}

extension PostgresSessionStore: StoreTestAccess {}

/// One engine the contract tests run against; `all` is the list. A new engine (PostgreSQL, …)
/// runs every contract test by adding one line to it.
struct StoreEngine: Sendable, CustomTestStringConvertible {
    let name: String
    let open: @Sendable (TempDir) throws -> any StoreTestAccess
    var testDescription: String { name }

    static let all: [StoreEngine] = [
        StoreEngine(name: "sqlite-file") { dir in try SQLiteSessionStore(.file(dir.file("vault.db"))) },
        StoreEngine(name: "sqlite-memory") { _ in try SQLiteSessionStore(.memory) },
    ] + (TestPostgres.url == nil ? [] : [StoreEngine(name: "postgres") { _ in try TestPostgres.freshStore() }])
}

/// The throwaway PostgreSQL cluster of `scripts/pg.sh`, when `SESSION_VAULT_TEST_POSTGRES_URL`
/// names it (and `SESSION_VAULT_TEST_POSTGRES_PASSWORD_FILE` its password): each store gets a
/// schema of its own, made with `psql`, so every test starts from an empty vault.
enum TestPostgres {
    static let url = ProcessInfo.processInfo.environment["SESSION_VAULT_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
    static let password: String? = ProcessInfo.processInfo.environment["SESSION_VAULT_TEST_POSTGRES_PASSWORD_FILE"]
        .flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }
        .map { $0.hasSuffix("\n") ? String($0.dropLast()) : $0 }

    /// A new, empty schema; the URL that selects it.
    static func freshURL() throws -> String {
        guard let url else { throw StorageError.unavailable(reason: "no test database") }
        let schema = "sv_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
        process.arguments = [url, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", "CREATE SCHEMA \(schema)"]
        var environment = ProcessInfo.processInfo.environment
        if let password { environment["PGPASSWORD"] = password }
        process.environment = environment
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw StorageError.unavailable(reason: "psql failed") }
        return url + (url.contains("?") ? "&" : "?") + "options=-csearch_path%3D" + schema
    }

    static func freshStore(poolSize: Int = 4) throws -> PostgresSessionStore {
        try PostgresSessionStore(PostgresConnectionSettings(url: try freshURL(), password: password, poolSize: poolSize))
    }
}

/// Opens a store of `engine` in a fresh directory, runs `body`, and always closes it.
func withStore<T>(_ engine: StoreEngine, _ body: (any StoreTestAccess, TempDir) throws -> T) throws -> T {
    let dir = try TempDir()
    let store = try engine.open(dir)
    defer { store.close() }
    return try body(store, dir)
}

/// A fresh directory under the system temporary directory, removed on `deinit`.
final class TempDir: Sendable {
    let path: String

    init() throws {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("sv-store-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        path = url.path
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// A path inside the directory.
    func file(_ name: String) -> String { path + "/" + name }

    /// The bytes of `name`, or empty when it does not exist.
    func bytes(_ name: String) -> [UInt8] {
        (try? Data(contentsOf: URL(fileURLWithPath: file(name)))).map { [UInt8]($0) } ?? []
    }
}

/// Opens a store of `kind` (in a fresh directory for files), runs `body`, and always closes it.
func withStore<T>(
    _ kind: StoreKind, configuration: SQLiteStoreConfiguration = .init(),
    _ body: (SQLiteSessionStore, TempDir) throws -> T
) throws -> T {
    let dir = try TempDir()
    let store = try SQLiteSessionStore(kind.location(in: dir), configuration: configuration)
    defer { store.close() }
    return try body(store, dir)
}

extension StoreKind {
    func location(in dir: TempDir) -> StoreLocation {
        switch self {
        case .file: return .file(dir.file("vault.db"))
        case .memory: return .memory
        }
    }
}

/// `count` cryptographically random bytes (distinct blobs for scans and CAS tests).
func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in generator.next() }
}

func name(_ text: String) throws -> SessionName { try SessionName(text) }

extension StoredSession {
    /// A live session with a random 300-byte "sealed" blob under `term`.
    static func make(
        _ text: String, sealed: [UInt8]? = randomBytes(300), term: UInt32 = 1, at time: Int64 = 1_700_000_000_000
    ) throws -> StoredSession {
        StoredSession(
            id: .random(), name: try SessionName(text), dcID: 2, apiID: 12345, testMode: false,
            userID: Int64.max - 7, isBot: false, serverAddress: "149.154.167.51", port: 443, date: 0,
            authKeyID: "0123456789abcdef", sealedAuthKey: sealed, sealedKeyTerm: sealed == nil ? nil : term,
            sourceFormat: "pyrogram", createdAt: time)
    }
}

/// Runs `body(index)` on `count` dedicated threads (not the cooperative pool, which has as many
/// threads as cores) and returns when all have finished.
func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let group = DispatchGroup()
        for index in 0..<count {
            group.enter()
            let thread = Thread {
                body(index)
                group.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        group.notify(queue: .global()) { continuation.resume() }
    }
}

/// True when `needle` occurs in `haystack` (Foundation's optimised search: debug-build Swift
/// loops are too slow for megabyte scans).
func contains(_ haystack: [UInt8], _ needle: ArraySlice<UInt8>) -> Bool {
    guard !needle.isEmpty, needle.count <= haystack.count else { return false }
    return Data(haystack).range(of: Data(needle)) != nil
}

