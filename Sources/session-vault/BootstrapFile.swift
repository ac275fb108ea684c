// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import HTTPServer
import VaultAPI
import VaultCore
import Logging

/// The import (bootstrap) file of `serve` (`SESSION_VAULT_IMPORT_FILE`, `--import-file`): what a
/// vault loads at every start, so that a memory vault on an ephemeral platform comes back with
/// its sessions and its scoped tokens. One entry a line; blank lines and `#` comments are
/// ignored; each line's format is its own:
///
/// - `NAME STRING` or `NAME<TAB>STRING`: a session from a session string;
/// - a JSON object (the line starts with `{`): a create request's body (`name`,
///   `session_string`, `api_id`, `user_id`, `is_bot`, … exactly as `POST /v1/sessions` takes
///   them, checked by that route's own code);
/// - `{"token": {…}}`: a scoped token with the fields of `POST /v1/tokens` (`operations`,
///   `sessions`, `prefixes`, `display_name`, `ttl_seconds`) and its secret from the platform's
///   secret store: `secret_env` (an environment variable's name) or `secret_file` (a file's
///   path), never written in the file itself.
///
/// The whole file is read and every entry tried on a throwaway memory vault before storage is
/// opened or a root token printed: a bad line stops the start (exit 65, or 66 for a missing
/// file) naming its number and what is wrong, never a secret. Entries that exist already (a
/// restart of a file vault: the name is taken, a token with that secret exists) are left as
/// they are and counted.
struct BootstrapFile {
    enum Entry {
        case session(line: Int, body: JSONValue)
        case token(line: Int, spec: JSONValue, secret: String)

        var line: Int {
            switch self {
            case .session(let line, _), .token(let line, _, _): return line
            }
        }
    }

    let path: String
    let entries: [Entry]

    /// What the token member of a line may hold besides the `POST /v1/tokens` fields.
    static let secretFields = ["secret_env", "secret_file"]

    /// Reads, parses and checks the file (see the type's documentation).
    /// - Throws: an `ExitCode` after logging why.
    static func load(_ path: String, environment: [String: String], log: Logger) throws -> BootstrapFile {
        var bytes: [UInt8]
        do { bytes = try CLI.readFile(path) } catch {
            throw ServiceRunner.fail(log, error.status.rawValue, "cannot read the import file: \(error.message)")
        }
        defer { SecretBytes.wipe(&bytes) }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ServiceRunner.fail(log, Exit.dataError, "the import file \(path) is not UTF-8 text")
        }
        var entries: [Entry] = []
        for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let number = index + 1
            func failure(_ code: Int32, _ reason: String) -> ExitCode {
                ServiceRunner.fail(log, code, "import file \(path) line \(number): \(reason)")
            }
            func failure(_ reason: String) -> ExitCode { failure(Exit.dataError, reason) }
            let line = Substring(rawLine).trimmingBlanks()
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("{") {
                let value: JSONValue
                do { value = try JSONParser.parse(Array(line.utf8)) } catch {
                    throw failure("not a valid JSON object (\(error.description))")
                }
                guard case .object(let members) = value else { throw failure("not a valid JSON object") }
                guard let token = members.first(where: { $0.0 == "token" })?.1 else {
                    entries.append(.session(line: number, body: value))
                    continue
                }
                guard members.count == 1 else {
                    throw failure("a token line holds only the \"token\" member; put its fields inside it")
                }
                let (spec, secret) = try tokenEntry(token, environment: environment, failure: failure)
                entries.append(.token(line: number, spec: spec, secret: secret))
                continue
            }
            // NAME, one or more spaces or tabs, STRING.
            guard let gap = line.firstIndex(where: { $0 == " " || $0 == "\t" }) else {
                throw failure("expected NAME SESSION_STRING (a space or a tab between them), or a JSON object")
            }
            let name = String(line[..<gap])
            let string = String(line[gap...].trimmingBlanks())
            guard !string.isEmpty else {
                throw failure("expected NAME SESSION_STRING (a space or a tab between them), or a JSON object")
            }
            entries.append(.session(line: number, body: .object([("name", .string(name)), ("session_string", .string(string))])))
        }
        let file = BootstrapFile(path: path, entries: entries)
        try file.rehearse(log: log)
        return file
    }

    /// The token member of a line: its `POST /v1/tokens` fields and the secret they name.
    private static func tokenEntry(_ token: JSONValue, environment: [String: String], failure: (Int32, String) -> ExitCode)
        throws -> (JSONValue, String)
    {
        guard case .object(let members) = token else { throw failure(Exit.dataError, "token: must be a JSON object") }
        for inline in ["secret", "token", "value"] where members.contains(where: { $0.0 == inline }) {
            throw failure(Exit.dataError, "token.\(inline): a secret is never written in the import file; name an environment "
                          + "variable (secret_env) or a file (secret_file) that holds it")
        }
        let sources = members.filter { secretFields.contains($0.0) }
        guard sources.count == 1, case .string(let source) = sources[0].1, !source.isEmpty else {
            throw failure(Exit.dataError, "token: give exactly one of secret_env (an environment variable's name) "
                          + "or secret_file (a file's path), as a non-empty string")
        }
        let field = "token.\(sources[0].0)"
        var secret: String
        if sources[0].0 == "secret_env" {
            guard let value = environment[source], !value.isEmpty else {
                throw failure(Exit.dataError, "\(field): the environment variable \(source) is not set or empty")
            }
            secret = value
        } else {
            var bytes: [UInt8]
            do { bytes = try CLI.readFile(source) } catch {
                throw failure(error.status.rawValue, "\(field): cannot read the secret file: \(error.message)")
            }
            defer { SecretBytes.wipe(&bytes) }
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw failure(Exit.dataError, "\(field): the secret file \(source) is not UTF-8 text")
            }
            secret = text
            // One final line ending (`\r\n` is one Character).
            if let last = secret.last, last == "\n" || last == "\r\n" || last == "\r" { secret.removeLast() }
        }
        if let weakness = ChosenTokenSecret.weakness(secret) {
            throw failure(Exit.dataError, "\(field): the secret \(weakness)")
        }
        return (.object(members.filter { !secretFields.contains($0.0) }), secret)
    }

    /// Tries every entry on a throwaway memory vault, so that whatever the API would refuse
    /// stops the start now, before the real storage is opened or a root token printed.
    private func rehearse(log: Logger) throws {
        let router: VaultRouter
        let store: any SessionStore
        do {
            store = try StoreFactory.open(.memory)
            let vault = try VaultService(store: store, master: try MasterKey.generate())
            router = VaultRouter(
                vault: vault,
                info: ServiceInfo(engine: "memory", path: nil, fallbackReason: nil, synchronous: "full",
                                  version: VaultVersion.current, startedAt: 0),
                serverState: HTTPServerState(), log: Logger.vault(level: .error, sink: { _ in }))
        } catch {
            throw ServiceRunner.fail(log, Exit.unavailable, "cannot check the import file: \(error)")
        }
        defer { store.close() }
        _ = try run(on: router, log: log)
    }

    /// Loads the entries into the vault behind `router` and logs one line saying what it did.
    /// - Throws: an `ExitCode` after logging why.
    func apply(to router: VaultRouter, log: Logger) throws {
        let counts = try run(on: router, log: log)
        log.info(
            "import file loaded: \(counts.sessions) sessions and \(counts.tokens) tokens created, \(counts.existingSessions) sessions and \(counts.existingTokens) tokens already there",
            metadata: ["sessions": "\(counts.sessions)", "tokens": "\(counts.tokens)",
                       "sessions_existing": "\(counts.existingSessions)", "tokens_existing": "\(counts.existingTokens)",
                       "entries": "\(entries.count)"])
    }

    struct Counts {
        var sessions = 0
        var tokens = 0
        var existingSessions = 0
        var existingTokens = 0
    }

    private func run(on router: VaultRouter, log: Logger) throws -> Counts {
        var counts = Counts()
        for entry in entries {
            do throws(Problem) {
                switch entry {
                case .session(_, let body):
                    switch try router.bootstrapSession(body) {
                    case .created: counts.sessions += 1
                    case .existing: counts.existingSessions += 1
                    }
                case .token(_, let spec, let secret):
                    switch try router.bootstrapToken(spec, secret: secret) {
                    case .created: counts.tokens += 1
                    case .existing: counts.existingTokens += 1
                    }
                }
            } catch {
                let code = error.status >= 500 ? Exit.unavailable : Exit.dataError
                let subject: String
                if case .token = entry, !error.detail.hasPrefix("token") { subject = "token." } else { subject = "" }
                throw ServiceRunner.fail(log, code, "import file \(path) line \(entry.line): \(subject)\(error.detail)")
            }
        }
        return counts
    }
}

extension Substring {
    /// Without leading and trailing spaces, tabs and a final `\r` (a file written on Windows).
    fileprivate func trimmingBlanks() -> Substring {
        var s = self
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\r" { s = s.dropLast() }
        return s
    }
}
