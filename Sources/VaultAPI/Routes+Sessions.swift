// SPDX-License-Identifier: Apache-2.0
import HTTPServer
import Logging
import VaultCore

extension VaultRouter {
    /// Fields a create body may carry.
    static let createFields: Set<String> = [
        "name", "session_string", "dc_id", "auth_key", "api_id", "test_mode", "user_id", "is_bot", "server_address", "port",
        "exclusive",
    ]
    /// Fields a PATCH body may carry.
    static let patchFields: Set<String> = ["dc_id", "api_id", "test_mode", "user_id", "is_bot", "server_address", "port", "auth_key",
                                                  "exclusive"]

    /// Fields a peer of a PUT body may carry.
    static let peerFields: Set<String> = ["id", "access_hash", "type", "usernames", "phone_number", "name", "last_update_on"]

    /// Media types accepted for a `.session` upload.
    static let sqliteMediaTypes: Set<String> = ["application/vnd.sqlite3", "application/x-sqlite3"]

    // MARK: Create

    func createSession(_ request: HTTPRequest, _ principal: Principal) throws(Problem) -> HTTPResponse {
        let (name, imported, exclusive) = try createInput(request, principal)
        let stored: StoredSession
        do {
            stored = try vault.create(name: name, imported: imported, context: context(principal, request))
            if exclusive { try vault.setExclusive(true, for: name, context: context(principal, request)) }
        } catch {
            throw problem(for: error, name: name)
        }
        return created(stored, name: name, format: imported.format, principal)
    }

    /// The create without waiting for the commit: the request is checked and the key sealed now
    /// (errors thrown), `completion` gets the response maker or the problem after the commit, on
    /// the store's writer thread.
    func createSession(
        _ request: HTTPRequest, _ principal: Principal,
        completion: @escaping @Sendable (Result<@Sendable () -> HTTPResponse, Problem>) -> Void
    ) throws(Problem) {
        let (name, imported, exclusive) = try createInput(request, principal)
        let format = imported.format
        let context = context(principal, request)
        do {
            try vault.create(name: name, imported: imported, context: context) { [self] result in
                switch result {
                case .success(let stored) where exclusive:
                    // Exclusive from its first answer: the flag is set before the 201 goes out.
                    vault.setExclusive(true, for: name, context: context) { [self] marked in
                        switch marked {
                        case .success: completion(.success({ [self] in created(stored, name: name, format: format, principal) }))
                        case .failure(let error): completion(.failure(problem(for: error, name: name)))
                        }
                    }
                case .success(let stored):
                    completion(.success({ [self] in created(stored, name: name, format: format, principal) }))
                case .failure(let error):
                    completion(.failure(problem(for: error, name: name)))
                }
            }
        } catch {
            throw problem(for: error, name: name)
        }
    }

    /// The name and session of a create request, from a `.session` upload or a JSON body, after
    /// checking that `principal` may write it.
    private func createInput(_ request: HTTPRequest, _ principal: Principal) throws(Problem) -> (SessionName, ImportedSession, Bool) {
        let type = Self.mediaType(request)
        if let type, Self.sqliteMediaTypes.contains(type) {
            guard let raw = try query(request, "name") else { throw Problem.missing("name") }
            let name = try validName(raw)
            try authorize(principal, .write, session: name.rawValue, request)
            guard !request.body.isEmpty else { throw Problem.invalid("file", "the body is empty; send the .session file") }
            do {
                return (name, try SessionFileReader.read(bytes: request.body), false)
            } catch {
                throw problem(for: VaultError(error), name: nil)
            }
        }
        let body: JSONValue
        do { body = try jsonBody(request, mediaType: type) } catch { throw Self.createBodyProblem(error, request) }
        let reader = try JSONObjectReader(body, allowed: Self.createFields)
        let name = try validName(try reader.required("name", reader.string))
        try authorize(principal, .write, session: name.rawValue, request)
        return (name, try Self.importedSession(from: reader), try reader.bool("exclusive") ?? false)
    }

    /// A create body refused for its media type or as JSON, saying how each kind of create is sent:
    /// a `.session` file sent as JSON (or anything under another media type) is the usual slip.
    static func createBodyProblem(_ problem: Problem, _ request: HTTPRequest) -> Problem {
        let how = "send JSON as application/json, or a .session file as application/vnd.sqlite3 with ?name=NAME"
        switch problem.status {
        case 415:
            return Problem(status: 415, title: problem.title, detail: "Content-Type: \(how)", field: "Content-Type")
        case 400:
            let isSQLite = request.body.starts(with: Array("SQLite format 3\u{0}".utf8))
            let detail = isSQLite
                ? "body: this is an SQLite file (a .session file), not JSON; \(how)"
                : "\(problem.detail); \(how)"
            return Problem(status: 400, title: problem.title, detail: detail, field: problem.field)
        default:
            return problem
        }
    }

    /// The 201 answer to a create (and its log line).
    private func created(_ stored: StoredSession, name: SessionName, format: SourceFormat, _ principal: Principal) -> HTTPResponse {
        log.info("session created", metadata: ["name": "\(name.rawValue)", "format": "\(format.rawValue)", "accessor": "\(principal.accessor)"])
        return json(sessionJSON(stored), status: 201, headers: [
            ("Location", "/v1/sessions/\(name.rawValue)"), ("ETag", Self.etag(stored)),
        ])
    }

    func validName(_ text: String) throws(Problem) -> SessionName {
        do { return try SessionName(text) } catch { throw Problem.invalid("name", String(error.description.dropFirst("name: ".count))) }
    }

    /// Builds the session from a JSON create body: a session string (any format) completed by
    /// the optional fields, or the fields alone.
    static func importedSession(from reader: JSONObjectReader) throws(Problem) -> ImportedSession {
        let apiID = try reader.int("api_id", in: 1...Int64(UInt32.max))
        let testMode = try reader.bool("test_mode")
        let userID = try reader.int("user_id", in: 0...Int64.max)
        let isBot = try reader.bool("is_bot")
        let serverAddress = try reader.string("server_address")
        let port = try reader.int("port", in: 1...65535)
        if let serverAddress, IPAddressText.canonical(serverAddress) == nil {
            throw Problem.invalid("server_address", "must be an IPv4 or IPv6 address")
        }

        if let text = try reader.string("session_string") {
            for f in ["dc_id", "auth_key"] where reader.has(f) {
                throw Problem.invalid(f, "cannot be combined with session_string")
            }
            var imported: ImportedSession
            do {
                imported = try SessionStringCodec.decode(text)
            } catch {
                throw Problem.invalid("session_string", error.description)
            }
            // Optional fields fill what the format lacks and must agree with what it carries.
            func merge<T: Equatable>(_ field: String, _ given: T?, _ slot: inout T?) throws(Problem) {
                guard let given else { return }
                if let carried = slot, carried != given {
                    throw Problem.invalid(field, "conflicts with the value in session_string")
                }
                slot = given
            }
            try merge("api_id", apiID, &imported.session.apiID)
            try merge("test_mode", testMode, &imported.session.testMode)
            try merge("user_id", userID, &imported.session.userID)
            try merge("is_bot", isBot, &imported.session.isBot)
            try merge("server_address", serverAddress.flatMap { IPAddressText.canonical($0) }, &imported.session.serverAddress)
            var importedPort = imported.session.port.map { Int64($0) }
            try merge("port", port, &importedPort)
            imported.session.port = importedPort.map { Int($0) }
            if imported.session.apiID == 0 { imported.session.apiID = nil }
            return imported
        }

        let dcID = try reader.required("dc_id") { (k) throws(Problem) in try reader.int(k, in: 1...255) }
        let keyText = try reader.required("auth_key", reader.string)
        var keyBytes: [UInt8]
        do {
            keyBytes = try Base64.decode(keyText, maxLength: 1024)
        } catch {
            throw Problem.invalid("auth_key", "must be base64 of exactly 256 bytes (\(error.description))")
        }
        // The decoded array itself is wiped (a `var` copy of it would be a second buffer once
        // written to, leaving this one intact).
        defer { SecretBytes.wipe(&keyBytes) }
        guard keyBytes.count == AuthKey.byteCount else {
            throw Problem.invalid("auth_key", "must be base64 of exactly 256 bytes, got \(keyBytes.count) bytes")
        }
        let key: AuthKey
        do { key = try AuthKey(keyBytes) } catch { throw Problem.invalid("auth_key", "must be exactly 256 bytes") }
        let session = TelegramSession(
            dcID: Int(dcID), apiID: apiID, testMode: testMode, authKey: key, userID: userID, isBot: isBot,
            serverAddress: serverAddress.flatMap { IPAddressText.canonical($0) }, port: port.map { Int($0) })
        return ImportedSession(session: session, peers: [], format: .pyrogramString)
    }

    // MARK: Read

    func listSessions(_ request: HTTPRequest, _ principal: Principal) throws(Problem) -> HTTPResponse {
        guard principal.policy.allows(.read) else { try authorize(principal, .read, session: nil, request); return noContent() }
        let limit = Int(try intQuery(request, "limit", in: 1...1000) ?? 100)
        let after: SessionName? = try query(request, "after").map { (t) throws(Problem) in try validQueryName(t, "after") }
        let prefix = try query(request, "prefix")
        if let prefix, prefix.isEmpty || prefix.utf8.count > 64 || !prefix.utf8.allSatisfy(SessionName.isAllowed) {
            throw Problem.badRequest("prefix: must be 1-64 characters of letters, digits, '.', '_' and '-'", field: "prefix")
        }
        // A scoped token lists only the sessions its policy covers: the store walks the scope's
        // names and prefixes, so neither the items nor `next_after` name a session outside it.
        let policy = principal.policy
        let scope = policy.coversEverything ? nil : NameScope(names: policy.sessions, prefixes: policy.prefixes)
        let page: SessionPage
        do { page = try vault.list(after: after, limit: limit, prefix: prefix, scope: scope) } catch { throw problem(for: error, name: nil) }
        return json(.object([
            ("items", .array(page.sessions.map(sessionJSON))),
            ("next_after", page.nextCursor.map { .string($0.rawValue) } ?? .null),
        ]))
    }

    /// A paging cursor: a name as stored (``SessionName/init(stored:)``), so that a session
    /// named before names made only of dots were refused can still be paged past.
    func validQueryName(_ text: String, _ field: String) throws(Problem) -> SessionName {
        do { return try SessionName(stored: text) } catch {
            throw Problem.badRequest("\(field): \(error.description.dropFirst("name: ".count))", field: field)
        }
    }

    func getSession(_ request: HTTPRequest, _ name: SessionName, _ principal: Principal) throws(Problem) -> HTTPResponse {
        try authorize(principal, .read, session: name.rawValue, request)
        let s: StoredSession
        do { s = try vault.session(name) } catch { throw problem(for: error, name: name) }
        return json(sessionJSON(s), headers: [("ETag", Self.etag(s))])
    }

    // MARK: Change

    func patchSession(_ request: HTTPRequest, _ name: SessionName, _ principal: Principal) throws(Problem) -> HTTPResponse {
        try authorize(principal, .write, session: name.rawValue, request)
        let body = try jsonBody(request)
        let reader = try JSONObjectReader(body, allowed: Self.patchFields)
        for f in Self.patchFields where reader.has(f) && reader.value(f) == nil {
            throw Problem.invalid(f, "cannot be null")
        }
        var changes = SessionChanges()
        changes.dcID = try reader.int("dc_id", in: 1...255).map { Int($0) }
        changes.apiID = try reader.int("api_id", in: 1...Int64(UInt32.max))
        changes.testMode = try reader.bool("test_mode")
        changes.userID = try reader.int("user_id", in: 0...Int64.max)
        changes.isBot = try reader.bool("is_bot")
        if let address = try reader.string("server_address") {
            guard let canonical = IPAddressText.canonical(address) else {
                throw Problem.invalid("server_address", "must be an IPv4 or IPv6 address")
            }
            changes.serverAddress = canonical
        }
        changes.port = try reader.int("port", in: 1...65535).map { Int($0) }
        if let text = try reader.string("auth_key") {
            guard changes.dcID != nil else {
                throw Problem.invalid("dc_id", "a new auth_key is only valid on the data center that made it: give dc_id with it")
            }
            do { changes.authKey = try AuthKey(base64: text) } catch {
                guard case .invalidField(_, let reason) = error else { throw Problem.invalid("auth_key", "invalid") }
                throw Problem.invalid("auth_key", reason)
            }
        }
        let exclusive = try reader.bool("exclusive")
        guard !changes.isEmpty || exclusive != nil else {
            throw Problem(status: 422, title: "Unprocessable Content", detail: "body: give at least one field to change", field: "body")
        }
        try fence(request, name)
        let expected = try ifMatchVersion(request)
        let updated: StoredSession
        do throws(VaultError) {
            if changes.isEmpty {
                updated = try vault.session(name)
                if updated.isRevoked { throw VaultError.revoked }
                if let expected, expected != updated.version { throw VaultError.versionMismatch(current: updated.version) }
            } else {
                updated = try vault.patch(name, changes: changes, expectedVersion: expected, context: context(principal, request))
            }
            if let exclusive { try vault.setExclusive(exclusive, for: name, context: context(principal, request)) }
        } catch {
            throw problem(for: error, name: name)
        }
        return json(sessionJSON(updated), headers: [("ETag", Self.etag(updated))])
    }

    /// The version an `If-Match` header names; nil when absent or `*`. A value that cannot match
    /// any version (malformed, weak) fails the precondition (RFC 9110 §13.1.1 uses strong comparison).
    func ifMatchVersion(_ request: HTTPRequest) throws(Problem) -> Int64? {
        guard let value = request.headers["If-Match"] else { return nil }
        let v = Substring(value).trimmingSpaces()
        if v == "*" { return nil }
        let utf8 = Array(v.utf8)
        guard utf8.count >= 3, utf8.first == UInt8(ascii: "\""), utf8.last == UInt8(ascii: "\""),
            let n = Self.parseInt64(String(decoding: utf8[1..<(utf8.count - 1)], as: UTF8.self)), n >= 1
        else {
            throw Problem(status: 412, title: "Precondition Failed", detail: Self.ifMatchAdvice(v), field: "If-Match")
        }
        return n
    }

    /// Why an `If-Match` value can match no session, and what one looks like (never echoes more
    /// than a validated version number).
    static func ifMatchAdvice(_ value: String) -> String {
        if let n = parseInt64(value), n >= 1 {
            return "If-Match: ETags are quoted strings; send If-Match: \"\(n)\" (the ETag header as given)"
        }
        if value.hasPrefix("W/") {
            return "If-Match: a weak ETag never matches; send the strong, quoted ETag the session's ETag header gives, like \"1\""
        }
        return "If-Match: does not match the session's ETag; ETags are quoted version numbers, like \"1\""
    }

    func revokeSession(_ request: HTTPRequest, _ name: SessionName, _ principal: Principal) throws(Problem) -> HTTPResponse {
        try authorize(principal, .write, session: name.rawValue, request)
        // A lease id, when given, must be current; without one even an exclusive session can be
        // revoked (the operator's way out), and its lease ends.
        if request.headers[Self.leaseHeader] != nil { try fence(request, name) }
        do {
            _ = try vault.revoke(name, context: context(principal, request))
        } catch {
            throw problem(for: error, name: name)
        }
        log.info("session revoked", metadata: ["name": "\(name.rawValue)", "accessor": "\(principal.accessor)"])
        return noContent()
    }

    // MARK: Export

    func exportSession(_ request: HTTPRequest, _ name: SessionName, _ principal: Principal) throws(Problem) -> HTTPResponse {
        try authorize(principal, .export, session: name.rawValue, request)
        try fence(request, name)
        // Without a format, the session's own family (a Telethon-sourced session as Telethon).
        var requested: ExportFormat?
        if let text = try query(request, "format") {
            guard let f = ExportFormat(rawValue: text) else {
                throw Problem.badRequest(
                    "format: must be one of \(ExportFormat.allCases.map(\.rawValue).joined(separator: ", "))", field: "format")
            }
            requested = f
        }
        let exported: ExportedSession
        let format: ExportFormat
        do {
            (exported, format) = try vault.export(name, requested: requested, context: context(principal, request))
        } catch {
            throw problem(for: error, name: name)
        }
        switch exported {
        case .string(let text):
            if Self.wantsJSON(request) {
                return json(.object([("name", .string(name.rawValue)), ("format", .string(format.rawValue)),
                                     ("session_string", .string(text))]))
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
            headers.add(name: "Cache-Control", value: "no-store")
            return HTTPResponse(status: .ok, headers: headers, body: Array(text.utf8))
        case .file(let bytes):
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/vnd.sqlite3")
            headers.add(name: "Cache-Control", value: "no-store")
            headers.add(name: "Content-Disposition", value: "attachment; filename=\"\(name.rawValue).session\"")
            return HTTPResponse(status: .ok, headers: headers, body: bytes)
        }
    }

    /// True when the client prefers JSON over text (`Accept: application/json`).
    static func wantsJSON(_ request: HTTPRequest) -> Bool {
        guard let accept = request.headers["Accept"] else { return false }
        for part in accept.split(separator: ",") {
            let type = part.split(separator: ";", maxSplits: 1).first.map { $0.trimmingSpaces().lowercased() } ?? ""
            if type == "application/json" { return true }
            if type == "text/plain" || type == "text/*" { return false }
        }
        return false
    }

    // MARK: Peers

    func putPeers(_ request: HTTPRequest, _ name: SessionName, _ principal: Principal) throws(Problem) -> HTTPResponse {
        try authorize(principal, .write, session: name.rawValue, request)
        try fence(request, name)
        let body = try jsonBody(request)
        let reader = try JSONObjectReader(body, allowed: ["peers"])
        guard let list = reader.value("peers") else { throw Problem.missing("peers") }
        guard case .array(let items) = list else { throw Problem.invalid("peers", "must be an array") }
        guard items.count <= 1000 else { throw Problem.invalid("peers", "at most 1000 peers per request") }
        var peers: [Peer] = []
        var seen = Set<Int64>()
        for (i, item) in items.enumerated() {
            let peer = try Self.peer(from: item, index: i)
            guard seen.insert(peer.id).inserted else { throw Problem.invalid("peers[\(i)].id", "duplicate id in this request") }
            peers.append(peer)
        }
        let updated: StoredSession
        do {
            updated = try vault.upsertPeers(peers, in: name, context: context(principal, request))
        } catch {
            throw problem(for: error, name: name)
        }
        return json(.object([("upserted", .int(Int64(peers.count))), ("peer_count", .int(Int64(updated.peerCount)))]))
    }

    static func peer(from value: JSONValue, index: Int) throws(Problem) -> Peer {
        let prefix = "peers[\(index)]"
        let r: JSONObjectReader
        do {
            r = try JSONObjectReader(value, allowed: Self.peerFields)
        } catch {
            if error.field == "body" || error.field == nil { throw Problem.invalid(prefix, "must be an object") }
            throw Problem(status: error.status, title: error.title, detail: "\(prefix).\(error.detail)",
                          field: "\(prefix).\(error.field ?? "")")
        }
        func scoped<T>(_ body: () throws(Problem) -> T) throws(Problem) -> T {
            do { return try body() } catch {
                let field = error.field.map { "\(prefix).\($0)" } ?? prefix
                throw Problem(status: error.status, title: error.title, detail: "\(prefix).\(error.detail)", field: field,
                              missingFields: error.missingFields.map { "\(prefix).\($0)" })
            }
        }
        let id = try scoped { () throws(Problem) in try r.required("id") { (k) throws(Problem) in try r.int(k, in: Int64.min...Int64.max) } }
        let hash = try scoped { () throws(Problem) in
            try r.required("access_hash") { (k) throws(Problem) in try r.int(k, in: Int64.min...Int64.max) }
        }
        var type: PeerType?
        if let t = try scoped({ () throws(Problem) in try r.string("type") }) {
            guard let pt = PeerType(rawValue: t) else {
                throw Problem.invalid("\(prefix).type", "must be one of \(PeerType.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            type = pt
        }
        let usernames = try scoped { () throws(Problem) in try r.strings("usernames", maxCount: 64) } ?? []
        for u in usernames {
            guard (1...64).contains(u.utf8.count), u.utf8.allSatisfy({ SessionName.isAllowed($0) && $0 != UInt8(ascii: "-") && $0 != UInt8(ascii: ".") }) else {
                throw Problem.invalid("\(prefix).usernames", "usernames are 1-64 letters, digits and underscores")
            }
        }
        let phone = try scoped { () throws(Problem) in try r.string("phone_number") }
        if let phone, !(1...20).contains(phone.utf8.count) || !phone.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            throw Problem.invalid("\(prefix).phone_number", "must be 1-20 digits")
        }
        let displayName = try scoped { () throws(Problem) in try r.string("name") }
        if let displayName, displayName.utf8.count > 256 { throw Problem.invalid("\(prefix).name", "at most 256 bytes") }
        let lastUpdateOn = try scoped { () throws(Problem) in try r.int("last_update_on", in: 0...Int64.max) }
        return Peer(id: id, accessHash: hash, type: type, usernames: usernames.map { $0.lowercased() }, phoneNumber: phone,
                    name: displayName, lastUpdateOn: lastUpdateOn)
    }

    func getPeers(_ request: HTTPRequest, _ name: SessionName, _ principal: Principal) throws(Problem) -> HTTPResponse {
        try authorize(principal, .read, session: name.rawValue, request)
        let id = try intQuery(request, "id", in: Int64.min...Int64.max)
        let username = try query(request, "username")
        let phone = try query(request, "phone")
        if [id != nil, username != nil, phone != nil].filter({ $0 }).count > 1 {
            throw Problem.badRequest("give at most one of id, username and phone", field: "id")
        }
        if let username, !(1...64).contains(username.utf8.count) {
            throw Problem.badRequest("username: must be 1-64 characters", field: "username")
        }
        if let phone, !(1...20).contains(phone.utf8.count) || !phone.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            throw Problem.badRequest("phone: must be 1-20 digits", field: "phone")
        }
        let limit = Int(try intQuery(request, "limit", in: 1...10_000) ?? 1000)
        let after = try intQuery(request, "after", in: Int64.min...Int64.max)
        do {
            if let phone {
                // Every peer with the number, the most recently updated first.
                let found = try vault.peers(in: name, phone: phone)
                return json(.object([("items", .array(found.map(Self.peerJSON))), ("next_after", .null)]))
            }
            if id != nil || username != nil {
                let found = try vault.peer(in: name, id: id, username: username, phone: phone)
                return json(.object([("items", .array(found.map { [Self.peerJSON($0)] } ?? [])), ("next_after", .null)]))
            }
            let all = try vault.peers(in: name).sorted { $0.id < $1.id }
            let tail = after.map { a in all.filter { $0.id > a } } ?? all
            let page = Array(tail.prefix(limit))
            let next: JSONValue = tail.count > limit ? (page.last.map { .int($0.id) } ?? .null) : .null
            return json(.object([("items", .array(page.map(Self.peerJSON))), ("next_after", next)]))
        } catch {
            throw problem(for: error, name: name)
        }
    }

    static func peerJSON(_ p: Peer) -> JSONValue {
        .object([
            ("id", .int(p.id)), ("access_hash", .int(p.accessHash)), ("type", p.type.map { .string($0.rawValue) } ?? .null),
            ("usernames", .array(p.usernames.map { .string($0) })), ("phone_number", p.phoneNumber.map { .string($0) } ?? .null),
            ("name", p.name.map { .string($0) } ?? .null), ("last_update_on", p.lastUpdateOn.map { .int($0) } ?? .null),
        ])
    }

    // MARK: Encoding

    /// Metadata JSON (never the key).
    static func metadata(_ s: StoredSession) -> JSONValue {
        func opt<T>(_ v: T?, _ f: (T) -> JSONValue) -> JSONValue { v.map(f) ?? .null }
        return .object([
            ("name", .string(s.name.rawValue)),
            ("dc_id", .int(Int64(s.dcID))),
            ("api_id", opt(s.apiID) { .int($0) }),
            ("test_mode", opt(s.testMode) { .bool($0) }),
            ("user_id", opt(s.userID) { .int($0) }),
            ("is_bot", opt(s.isBot) { .bool($0) }),
            ("server_address", opt(s.serverAddress) { .string($0) }),
            ("port", opt(s.port) { .int(Int64($0)) }),
            ("auth_key_id", opt(s.authKeyID) { .string($0) }),
            ("source_format", .string(s.sourceFormat)),
            ("peer_count", .int(Int64(s.peerCount))),
            ("version", .int(s.version)),
            ("created_at", .string(Timestamp.rfc3339(milliseconds: s.createdAt))),
            ("updated_at", .string(Timestamp.rfc3339(milliseconds: s.updatedAt))),
            ("last_exported_at", opt(s.lastExportedAt) { .string(Timestamp.rfc3339(milliseconds: $0)) }),
            ("revoked", .bool(s.isRevoked)),
            ("revoked_at", opt(s.revokedAt) { .string(Timestamp.rfc3339(milliseconds: $0)) }),
        ])
    }

    /// ``metadata(_:)`` and the session's `exclusive` flag.
    func sessionJSON(_ s: StoredSession) -> JSONValue {
        guard case .object(var members) = Self.metadata(s) else { return Self.metadata(s) }
        members.append(("exclusive", .bool(vault.isExclusive(s.name))))
        return .object(members)
    }

    /// A strong entity tag of the session's version.
    static func etag(_ s: StoredSession) -> String { "\"\(s.version)\"" }
}
