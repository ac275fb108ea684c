// SPDX-License-Identifier: Apache-2.0
import HTTPServer
public import VaultCore
import Logging

// The end of a session's life (purging its tombstone), the root token's rotation, and the
// bootstrap file's entries, which go through the same handlers as the API's requests.
extension VaultRouter {
    // MARK: Purge

    /// `DELETE /v1/sessions/{name}`: a revoke, or with `purge=true` the removal of a revoked
    /// session's tombstone (root or admin).
    func deleteSession(_ request: HTTPRequest, _ name: SessionName, _ principal: Principal) throws(Problem) -> HTTPResponse {
        switch try query(request, "purge") {
        case nil, "false": return try revokeSession(request, name, principal)
        case "true": return try purgeSession(request, name, principal)
        default: throw Problem.badRequest("purge: must be true or false", field: "purge")
        }
    }

    func purgeSession(_ request: HTTPRequest, _ name: SessionName, _ principal: Principal) throws(Problem) -> HTTPResponse {
        try authorize(principal, .admin, session: nil, request)
        do {
            try vault.purge(name, context: context(principal, request))
        } catch {
            if error == .conflict {
                throw Problem(status: 409, title: "Conflict",
                              detail: "name: session '\(name.rawValue)' is not revoked; revoke it first (DELETE without purge), then purge it",
                              field: "name")
            }
            throw problem(for: error, name: name)
        }
        log.info("session purged", metadata: ["name": "\(name.rawValue)", "accessor": "\(principal.accessor)"])
        return noContent()
    }

    /// The 409 of a create whose name is taken, saying when it is taken by a revoked session's
    /// tombstone (and how to free it).
    func nameTakenProblem(_ name: SessionName) -> Problem {
        if let existing = try? vault.store.session(named: name), existing.isRevoked {
            return Problem(
                status: 409, title: "Conflict",
                detail: "name: session '\(name.rawValue)' was revoked and its tombstone keeps the name; purge it first "
                    + "(DELETE /v1/sessions/\(name.rawValue)?purge=true, root or admin token) or choose another name",
                field: "name")
        }
        return Problem(status: 409, title: "Conflict", detail: "name: session '\(name.rawValue)' already exists", field: "name")
    }

    // MARK: Root token

    /// `POST /v1/tokens/root/rotate` (root only): a new root token, shown once; the old one stops
    /// working at once.
    func rotateRootToken(_ request: HTTPRequest, _ principal: Principal) throws(Problem) -> HTTPResponse {
        try requireRoot(principal, request)
        guard !vault.rootTokenIsConfigured else {
            throw Problem(status: 409, title: "Conflict",
                          detail: "the root token comes from configuration (SESSION_VAULT_ROOT_TOKEN or SESSION_VAULT_ROOT_TOKEN_FILE); "
                              + "change it there and restart, or remove it to manage the root token through the API")
        }
        let token: String
        do { token = try vault.rotateRootToken(context: context(principal, request)) } catch { throw problem(for: error, name: nil) }
        log.warning("the root token was rotated; the old one no longer works")
        return json(.object([("accessor", .string("root")), ("token", .string(token))]))
    }

    // MARK: Bootstrap

    /// The principal of the bootstrap file's entries (audited as `import`).
    static let importPrincipal = Principal(accessor: "import", policy: .root)

    /// Creates a session from a bootstrap entry: `body` is a create request's JSON body, handled
    /// by the create route's own code (the same fields, checks and errors). A name that exists
    /// already (a restart of a file vault) is `.existing`, not an error.
    /// - Throws: the create's problem.
    public func bootstrapSession(_ body: JSONValue) throws(Problem) -> BootstrapOutcome {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        let request = HTTPRequest(method: .post, target: "/v1/sessions", headers: headers, body: JSONWriter.encode(body))
        do {
            _ = try createSession(request, Self.importPrincipal)
            return .created
        } catch {
            if error.status == 409 && error.field == "name" { return .existing }
            throw error
        }
    }

    /// Creates a scoped token from a bootstrap entry: `spec` holds the fields of a
    /// `POST /v1/tokens` body (checked by that route's code), `secret` the value read from the
    /// platform's secret store.
    /// - Throws: the token request's problem, or one naming `secret`.
    public func bootstrapToken(_ spec: JSONValue, secret: String) throws(Problem) -> BootstrapOutcome {
        let request = try Self.tokenRequest(spec)
        do {
            return try vault.createToken(secret: secret, policy: request.policy, displayName: request.displayName,
                                         ttlSeconds: request.ttlSeconds, context: RequestContext(accessor: "import", remoteAddress: nil)).outcome
        } catch {
            throw problem(for: error, name: nil)
        }
    }
}
