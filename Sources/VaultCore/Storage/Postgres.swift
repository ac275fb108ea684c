// SPDX-License-Identifier: Apache-2.0
import Dispatch
internal import CLibPQ
#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

// The libpq layer of the PostgreSQL engine: one connection (``PGConnection``, confined to one
// thread at a time by the pool), its parameterised, prepared statements, the pool
// (``PGPool``) with its bounded wait and reconnect backoff, and the mapping of PostgreSQL's
// errors to ``StorageError``. Values always travel as parameters, never inside SQL text.

/// One statement parameter: text format, except bytes (binary `bytea`).
enum PGValue: Sendable {
    case text(String)
    case int(Int64)
    case bytes([UInt8])
    case null

    init(_ value: Int64?) { self = value.map(PGValue.int) ?? .null }
    init(_ value: String?) { self = value.map(PGValue.text) ?? .null }
    init(_ value: Bool?) { self = value.map { .int($0 ? 1 : 0) } ?? .null }
}

/// A failure of one statement, with PostgreSQL's SQLSTATE (empty for a client-side failure).
struct PGError: Error {
    let sqlState: String
    let message: String
    /// The connection is gone (server restarted, network lost): the pool discards it.
    let connectionLost: Bool

    var isUniqueViolation: Bool { sqlState == "23505" }

    /// The neutral error. The message is PostgreSQL's primary message only (never its DETAIL,
    /// which can quote a row's values).
    var storageError: StorageError {
        if connectionLost || sqlState.hasPrefix("08") || sqlState.hasPrefix("57P") {
            return .unavailable(reason: "the database connection was lost (\(message))")
        }
        switch sqlState {
        case "40001", "40P01", "55P03", "57014": return .busy
        case "53100": return .diskFull
        case "25006": return .readOnly
        default:
            if sqlState.hasPrefix("53") { return .unavailable(reason: "the database is out of resources (\(message))") }
            return .engine(detail: "postgres error \(sqlState): \(message)")
        }
    }
}

/// A result set in text format, freed on deinit.
final class PGRows {
    private let result: OpaquePointer
    private let pq: LibPQ
    let count: Int

    init(_ result: OpaquePointer, _ pq: LibPQ) {
        self.result = result
        self.pq = pq
        count = Int(pq.ntuples(result))
    }

    deinit { pq.clear(result) }

    func isNull(_ row: Int, _ column: Int) -> Bool { pq.getisnull(result, Int32(row), Int32(column)) != 0 }

    func text(_ row: Int, _ column: Int) -> String? {
        guard !isNull(row, column), let value = pq.getvalue(result, Int32(row), Int32(column)) else { return nil }
        return String(cString: value)
    }

    func int64OrNil(_ row: Int, _ column: Int) -> Int64? {
        guard let text = text(row, column) else { return nil }
        if text == "t" { return 1 }
        if text == "f" { return 0 }
        return Int64(text)
    }

    func int64(_ row: Int, _ column: Int) -> Int64 { int64OrNil(row, column) ?? 0 }

    func bool(_ row: Int, _ column: Int) -> Bool { text(row, column) == "t" }

    /// A `bytea` column in the hex output format (`\x0a1b…`).
    func bytes(_ row: Int, _ column: Int) -> [UInt8]? {
        guard !isNull(row, column), let value = pq.getvalue(result, Int32(row), Int32(column)) else { return nil }
        let length = Int(pq.getlength(result, Int32(row), Int32(column)))
        let raw = UnsafeBufferPointer(start: UnsafeRawPointer(value).assumingMemoryBound(to: UInt8.self), count: length)
        guard length >= 2, raw[0] == UInt8(ascii: "\\"), raw[1] == UInt8(ascii: "x"), length % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity((length - 2) / 2)
        var index = 2
        while index < length {
            guard let high = Self.nibble(raw[index]), let low = Self.nibble(raw[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// How to reach the server: the URL (libpq's conninfo) and the password, kept apart so the
/// URL can be shown and the password never is.
public struct PostgresConnectionSettings: Sendable, Equatable, CustomStringConvertible {
    /// `postgresql://USER@HOST:PORT/DB?options` without a password.
    public var url: String
    /// From `SESSION_VAULT_DATABASE_PASSWORD_FILE`; nil lets libpq use `PGPASSWORD`/`PGPASSFILE`.
    public var password: String?
    /// Connections opened at most. Default 4.
    public var poolSize: Int
    /// Seconds libpq waits for a connection to be established (unless the URL sets
    /// `connect_timeout`). Default 5.
    public var connectTimeoutSeconds: Int
    /// How long a request waits for a free connection before ``StorageError/busy``. Default 10 s.
    public var acquireTimeoutMilliseconds: Int

    public init(url: String, password: String? = nil, poolSize: Int = 4, connectTimeoutSeconds: Int = 5,
                acquireTimeoutMilliseconds: Int = 10_000) {
        self.url = url
        self.password = password
        self.poolSize = max(1, poolSize)
        self.connectTimeoutSeconds = max(1, connectTimeoutSeconds)
        self.acquireTimeoutMilliseconds = max(1, acquireTimeoutMilliseconds)
    }

    /// No password, ever.
    public var description: String { "PostgresConnectionSettings(\(url), pool \(poolSize))" }
}

/// One libpq connection. Not thread-safe: the pool hands it to one thread at a time.
final class PGConnection {
    private let handle: OpaquePointer
    private let pq: LibPQ
    /// Statement text → prepared statement name, per connection.
    private var prepared: [String: String] = [:]
    /// Set once a COMMIT was sent: a failure after it is ambiguous, never retried.
    var commitSent = false

    /// - Throws: ``StorageError/unavailable(reason:)`` with libpq's message (which names the
    ///   host and user, never the password).
    init(_ settings: PostgresConnectionSettings) throws(StorageError) {
        let pq = try LibPQ.shared.get()
        self.pq = pq
        var keys = ["dbname", "fallback_application_name"]
        var values = [settings.url, "session-vault"]
        if !settings.url.contains("connect_timeout=") {
            keys.append("connect_timeout")
            values.append(String(settings.connectTimeoutSeconds))
        }
        if let password = settings.password {
            keys.append("password")
            values.append(password)
        }
        let connection: OpaquePointer? = Self.withCStrings(keys) { k in
            Self.withCStrings(values) { v in pq.connectdbParams(k, v, 1) }
        }
        guard let connection else { throw .unavailable(reason: "cannot connect to the database: out of memory") }
        guard pq.status(connection) == CONNECTION_OK else {
            let message = Self.firstLine(pq.errorMessage(connection))
            pq.finish(connection)
            throw .unavailable(reason: "cannot connect to the database: \(message)")
        }
        handle = connection
        // Server notices (e.g. "already exists, skipping") are not the vault's log lines.
        do {
            try execute("SET client_min_messages TO warning")
        } catch {
            throw error.storageError
        }
    }

    deinit { pq.finish(handle) }

    /// False once the connection is broken.
    var isHealthy: Bool { pq.status(handle) == CONNECTION_OK }

    /// Runs SQL without parameters (transaction control, migrations).
    func execute(_ sql: String) throws(PGError) {
        guard let result = pq.exec(handle, sql) else { throw failure(nil) }
        let rows = PGRows(result, pq)
        _ = rows
        try check(result)
    }

    /// Runs a parameterised statement, prepared on first use on this connection.
    @discardableResult
    func query(_ sql: String, _ parameters: [PGValue] = []) throws(PGError) -> PGRows {
        let name: String
        if let known = prepared[sql] {
            name = known
        } else {
            name = "sv\(prepared.count + 1)"
            guard let result = pq.prepare(handle, name, sql, Int32(parameters.count), nil) else { throw failure(nil) }
            let rows = PGRows(result, pq)
            _ = rows
            try check(result)
            prepared[sql] = name
        }
        // Text parameters as NUL-terminated strings; bytes as binary bytea.
        var buffers: [UnsafeMutablePointer<CChar>?] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        defer { for buffer in buffers { free(buffer) } }
        for parameter in parameters {
            switch parameter {
            case .null:
                buffers.append(nil); lengths.append(0); formats.append(0)
            case .text(let text):
                buffers.append(strdup(text)); lengths.append(0); formats.append(0)
            case .int(let value):
                buffers.append(strdup(String(value))); lengths.append(0); formats.append(0)
            case .bytes(let bytes):
                let buffer = malloc(max(1, bytes.count))?.assumingMemoryBound(to: CChar.self)
                if let buffer {
                    bytes.withUnsafeBytes { raw in
                        if let base = raw.baseAddress { memcpy(buffer, base, bytes.count) }
                    }
                }
                buffers.append(buffer); lengths.append(Int32(bytes.count)); formats.append(1)
            }
        }
        let result: OpaquePointer?
        if buffers.isEmpty {
            result = pq.execPrepared(handle, name, 0, nil, nil, nil, 0)
        } else {
            result = buffers.withUnsafeBufferPointer { values in
                values.withMemoryRebound(to: UnsafePointer<CChar>?.self) { v in
                    pq.execPrepared(handle, name, Int32(parameters.count), v.baseAddress, lengths, formats, 0)
                }
            }
        }
        guard let result else { throw failure(nil) }
        let rows = PGRows(result, pq)
        try check(result)
        return rows
    }

    private func check(_ result: OpaquePointer) throws(PGError) {
        switch pq.resultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY: return
        default: throw failure(result)
        }
    }

    private func failure(_ result: OpaquePointer?) -> PGError {
        let lost = pq.status(handle) != CONNECTION_OK
        guard let result else {
            return PGError(sqlState: "", message: Self.firstLine(pq.errorMessage(handle)), connectionLost: lost)
        }
        let state = pq.resultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? ""
        let primary = pq.resultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) }
        return PGError(sqlState: state, message: primary ?? Self.firstLine(pq.errorMessage(handle)), connectionLost: lost)
    }

    static func firstLine(_ text: UnsafePointer<CChar>?) -> String {
        guard let text else { return "unknown error" }
        let line = String(cString: text).split(separator: "\n").first.map(String.init) ?? ""
        return line.isEmpty ? "unknown error" : line
    }

    private static func withCStrings<T>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> T) -> T {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer {
            for pointer in pointers { if let pointer { memset(pointer, 0, strlen(pointer)); free(pointer) } }
        }
        return pointers.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: UnsafePointer<CChar>?.self) { body($0.baseAddress) }
        }
    }
}

/// A bounded pool of connections. A connection is used by one thread at a time; callers beyond
/// the pool's size wait their turn (bounded), then get ``StorageError/busy``. After a failed
/// connect, new connects are attempted again after a backoff (100 ms doubling to 2 s); meanwhile
/// requests fail at once with ``StorageError/unavailable(reason:)``.
///
/// `@unchecked Sendable`: every mutable field is only touched with `mutex` held.
final class PGPool: @unchecked Sendable {
    private let settings: PostgresConnectionSettings
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let available: UnsafeMutablePointer<pthread_cond_t>
    private var idle: [PGConnection] = []
    private var open = 0
    private var closed = false
    /// Why the database is not reachable now (nil while it is).
    private var lastFailure: String?
    private var backoffMilliseconds: UInt64 = 0
    private var nextAttempt: UInt64 = 0

    init(_ settings: PostgresConnectionSettings) {
        self.settings = settings
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        available = .allocate(capacity: 1)
        available.initialize(to: pthread_cond_t())
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        #if os(Linux)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        #endif
        pthread_cond_init(available, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(available)
        available.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    private func locked<T>(_ body: () throws(StorageError) -> T) throws(StorageError) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    private static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Why the database cannot be reached now, or nil.
    var failure: String? { (try? locked { lastFailure }) ?? nil }

    /// Runs `body` with a connection of its own. A broken connection is discarded; when it was
    /// an idle one (the server restarted while it waited) and nothing was committed, `body`
    /// runs once more on a fresh connection.
    func withConnection<T>(_ body: (PGConnection) throws -> T) throws(StorageError) -> T {
        var attempt = 0
        while true {
            attempt += 1
            let (connection, reused) = try acquire()
            connection.commitSent = false
            do {
                let value = try body(connection)
                release(connection)
                return value
            } catch let error as PGError {
                let broken = !connection.isHealthy || error.connectionLost
                let retry = broken && reused && !connection.commitSent && attempt == 1
                release(connection, broken: broken, reason: broken ? error.message : nil)
                if retry { continue }
                throw error.storageError
            } catch let error as StorageError {
                let broken = !connection.isHealthy
                release(connection, broken: broken, reason: broken ? "the database connection was lost" : nil)
                throw error
            } catch {
                release(connection)
                throw .engine(detail: "\(error)")
            }
        }
    }

    private func acquire() throws(StorageError) -> (PGConnection, reused: Bool) {
        let deadline = Self.now() + UInt64(settings.acquireTimeoutMilliseconds) * 1_000_000
        pthread_mutex_lock(mutex)
        while true {
            if closed {
                pthread_mutex_unlock(mutex)
                throw .closed
            }
            if let connection = idle.popLast() {
                pthread_mutex_unlock(mutex)
                return (connection, true)
            }
            if open < settings.poolSize {
                if let failure = lastFailure, Self.now() < nextAttempt {
                    pthread_mutex_unlock(mutex)
                    throw .unavailable(reason: failure)
                }
                open += 1
                pthread_mutex_unlock(mutex)
                do {
                    let connection = try PGConnection(settings)
                    pthread_mutex_lock(mutex)
                    lastFailure = nil
                    backoffMilliseconds = 0
                    pthread_mutex_unlock(mutex)
                    return (connection, false)
                } catch {
                    pthread_mutex_lock(mutex)
                    open -= 1
                    backoffMilliseconds = min(2_000, max(100, backoffMilliseconds * 2))
                    nextAttempt = Self.now() + backoffMilliseconds * 1_000_000
                    lastFailure = error.description
                    pthread_cond_signal(available)
                    pthread_mutex_unlock(mutex)
                    throw error
                }
            }
            let now = Self.now()
            if now >= deadline {
                pthread_mutex_unlock(mutex)
                throw .busy
            }
            var wake = timespec()
            clock_gettime(CLOCK_MONOTONIC, &wake)
            let remaining = min(deadline - now, 100_000_000)
            let total = UInt64(wake.tv_nsec) + remaining % 1_000_000_000
            wake.tv_sec += Int(remaining / 1_000_000_000) + Int(total / 1_000_000_000)
            wake.tv_nsec = Int(total % 1_000_000_000)
            pthread_cond_timedwait(available, mutex, &wake)
        }
    }

    private func release(_ connection: PGConnection, broken: Bool = false, reason: String? = nil) {
        var discard: [PGConnection] = []
        pthread_mutex_lock(mutex)
        if broken || closed || !connection.isHealthy {
            open -= 1
            discard.append(connection)
            if broken {
                // The others idle on the same server: likely broken too. Reconnect at once.
                open -= idle.count
                discard += idle
                idle.removeAll()
                lastFailure = "the database connection was lost" + (reason.map { " (\($0))" } ?? "")
                nextAttempt = 0
            }
        } else {
            idle.append(connection)
        }
        pthread_cond_broadcast(available)
        pthread_mutex_unlock(mutex)
        discard.removeAll()  // PQfinish outside the lock
    }

    /// Refuses new work and closes the idle connections (busy ones close when released).
    func close() {
        pthread_mutex_lock(mutex)
        closed = true
        var discard = idle
        open -= idle.count
        idle.removeAll()
        pthread_cond_broadcast(available)
        pthread_mutex_unlock(mutex)
        discard.removeAll()
    }

    var isClosed: Bool { (try? locked { closed }) ?? true }
}
