// SPDX-License-Identifier: Apache-2.0
import HTTPServer
import VaultCore

// `/v1/sessions/{name}/state`: the update state rows a client library keeps (what it needs to
// catch up on missed updates after a restart). Reading needs `read`, writing `write`; writes are
// fenced by the session's lease like every other write (``fence(_:_:)``).

extension VaultRouter {
    func getState(_ request: HTTPRequest, _ name: SessionName, _ principal: Principal) throws(Problem) -> HTTPResponse {
        try authorize(principal, .read, session: name.rawValue, request)
        do {
            let states = try vault.updateStates(in: name)
            return json(.object([("states", .array(states.map(Self.stateJSON)))]))
        } catch {
            throw problem(for: error, name: name)
        }
    }

    func putState(_ request: HTTPRequest, _ name: SessionName, _ principal: Principal) throws(Problem) -> HTTPResponse {
        try authorize(principal, .write, session: name.rawValue, request)
        try fence(request, name)
        let reader = try JSONObjectReader(try jsonBody(request), allowed: ["states"])
        guard let list = reader.value("states") else { throw Problem.missing("states") }
        guard case .array(let items) = list else { throw Problem.invalid("states", "must be an array") }
        let most = VaultService.maxUpdateStatesPerWrite
        guard (1...most).contains(items.count) else { throw Problem.invalid("states", "give 1 to \(most) rows per request") }
        var states: [UpdateState] = []
        var seen = Set<Int64>()
        for (i, item) in items.enumerated() {
            let state = try Self.state(from: item, index: i)
            guard seen.insert(state.id).inserted else { throw Problem.invalid("states[\(i)].id", "duplicate id in this request") }
            states.append(state)
        }
        do {
            let count = try vault.upsertUpdateStates(states, in: name, context: context(principal, request))
            return json(.object([("upserted", .int(Int64(states.count))), ("state_count", .int(Int64(count)))]))
        } catch {
            throw problem(for: error, name: name)
        }
    }

    func deleteState(_ request: HTTPRequest, _ name: SessionName, _ principal: Principal) throws(Problem) -> HTTPResponse {
        try authorize(principal, .write, session: name.rawValue, request)
        guard let id = try intQuery(request, "id", in: Int64.min...Int64.max) else {
            throw Problem.badRequest("id: give the id of the row to delete (?id=N)", field: "id")
        }
        try fence(request, name)
        do {
            _ = try vault.deleteUpdateState(id: id, in: name, context: context(principal, request))
            return noContent()
        } catch {
            throw problem(for: error, name: name)
        }
    }

    /// One row of a `states` array; errors name `states[i].field`.
    static func state(from value: JSONValue, index: Int) throws(Problem) -> UpdateState {
        let prefix = "states[\(index)]"
        let fields: Set<String> = ["id", "pts", "qts", "date", "seq"]
        guard case .object(let members) = value else { throw Problem.invalid(prefix, "must be an object") }
        if let unknown = members.first(where: { !fields.contains($0.0) }) {
            throw Problem.invalid("\(prefix).\(unknown.0)", "unknown field; the fields are id, pts, qts, date and seq")
        }
        func int(_ key: String, required: Bool) throws(Problem) -> Int64? {
            let field = "\(prefix).\(key)"
            guard let v = members.first(where: { $0.0 == key })?.1 else {
                if required { throw Problem.missing(field) }
                return nil
            }
            switch v {
            case .int(let n): return n
            case .null:
                if required { throw Problem.invalid(field, "must be an integer, got null") }
                return nil
            default: throw Problem.invalid(field, "must be an integer or null, got \(v.typeName)")
            }
        }
        guard let id = try int("id", required: true) else { throw Problem.missing("\(prefix).id") }
        return UpdateState(id: id, pts: try int("pts", required: false), qts: try int("qts", required: false),
                           date: try int("date", required: false), seq: try int("seq", required: false))
    }

    static func stateJSON(_ s: UpdateState) -> JSONValue {
        func opt(_ v: Int64?) -> JSONValue { v.map { .int($0) } ?? .null }
        return .object([("id", .int(s.id)), ("pts", opt(s.pts)), ("qts", opt(s.qts)), ("date", opt(s.date)), ("seq", opt(s.seq))])
    }
}
