// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import VaultCore

/// A JSON value that keeps every integer exact (the vectors hold 64-bit ids above 2^53, so
/// nothing may pass through `Double`).
enum SessionFileJSON: Decodable, Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([SessionFileJSON])
    case object([String: SessionFileJSON])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([SessionFileJSON].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: SessionFileJSON].self))
        }
    }

    subscript(key: String) -> SessionFileJSON? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    var int64: Int64? { if case .int(let v) = self { return v } else { return nil } }
    var string: String? { if case .string(let v) = self { return v } else { return nil } }
    var bool: Bool? { if case .bool(let v) = self { return v } else { return nil } }
    var array: [SessionFileJSON] { if case .array(let v) = self { return v } else { return [] } }
    var isNull: Bool { self == .null }
}

/// One `Vectors/sessions/<name>.session` with its `<name>.json`.
struct SessionFileVector: Sendable {
    /// Every session-file vector (README.md, `sessions/`).
    static let names = [
        "pyrogram_user", "pyrogram_bot", "hydrogram_user", "kurigram_user", "pyrofork_user",
        "telethon_user", "pyrogram-1.4_user", "kurigram-2.2.9_user", "telethon-1.42_user",
    ]

    let name: String
    let bytes: [UInt8]
    let json: SessionFileJSON

    static func directory() throws -> URL {
        try #require(Bundle.module.url(forResource: "sessions", withExtension: nil, subdirectory: "Vectors"))
    }

    static func load(_ name: String) throws -> SessionFileVector {
        let dir = try directory()
        let bytes = try [UInt8](Data(contentsOf: dir.appendingPathComponent("\(name).session")))
        let data = try Data(contentsOf: dir.appendingPathComponent("\(name).json"))
        return SessionFileVector(name: name, bytes: bytes, json: try JSONDecoder().decode(SessionFileJSON.self, from: data))
    }

    var isTelethon: Bool { name.hasPrefix("telethon") }
    var expected: SessionFileJSON { json["expected"] ?? .null }
    var sqlite: SessionFileJSON { json["sqlite"] ?? .null }

    /// Rows of one table in `expected.tables`.
    func expectedRows(_ table: String) -> [SessionFileJSON] { expected["tables"]?[table]?.array ?? [] }

    /// Rows of one table in the raw `sqlite` dump (with timestamps and `_sqlite_types`).
    func dumpRows(_ table: String) -> [SessionFileJSON] { sqlite["tables"]?[table]?["rows"]?.array ?? [] }
}

/// A private temporary directory, removed (with everything in it) when `body` returns.
func withSessionFileTempDir<T>(_ body: (URL) throws -> T) throws -> T {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("sessionfile-tests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
    defer { try? FileManager.default.removeItem(at: dir) }
    return try body(dir)
}

/// Writes `bytes` to `dir/name` and opens it with SQLite (read-only unless `writable`).
func sessionFileOpen(_ bytes: [UInt8], in dir: URL, name: String = "inspect.session", writable: Bool = false) throws
    -> SQLiteConnection
{
    let url = dir.appendingPathComponent(name)
    try Data(bytes).write(to: url)
    var options = SQLiteConnection.OpenOptions()
    options.readOnly = !writable
    options.create = false
    return try SQLiteConnection(path: url.path, options: options)
}

/// Applies `sql` to a copy of `bytes` through real SQLite and returns the new file's bytes.
func sessionFileModified(_ bytes: [UInt8], _ sql: String) throws -> [UInt8] {
    try withSessionFileTempDir { dir in
        let db = try sessionFileOpen(bytes, in: dir, name: "modify.session", writable: true)
        try db.execute(sql)
        db.close()
        return try [UInt8](Data(contentsOf: dir.appendingPathComponent("modify.session")))
    }
}

/// Creates a fresh database file from `sql` and returns its bytes.
func sessionFileCreated(_ sql: String) throws -> [UInt8] {
    try withSessionFileTempDir { dir in
        let url = dir.appendingPathComponent("new.session")
        let db = try SQLiteConnection(path: url.path)
        try db.execute(sql)
        db.close()
        return try [UInt8](Data(contentsOf: url))
    }
}

/// Runs `body` and returns the ``SessionFileError`` it throws, or nil when it succeeds.
func sessionFileError<T>(_ body: () throws(SessionFileError) -> T) -> SessionFileError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

/// A fixed 256-byte test key (never a real credential).
func sessionFileTestKey(seed: UInt8 = 7) throws -> AuthKey {
    try AuthKey((0..<256).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) })
}

/// Deterministic pseudo-random bytes (SplitMix64), so failures are reproducible.
struct SessionFileRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
