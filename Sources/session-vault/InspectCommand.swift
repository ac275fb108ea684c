// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import VaultAPI
import VaultCore

/// `session-vault inspect PATH|-`: describes a session string or `.session` file as JSON,
/// offline, without ever printing the key.
///
/// The session is read from a file or standard input, never from an argument (a secret in argv
/// ends up in shell history and `ps`). The output names the account and the key only by its
/// public fingerprint, `auth_key_id`.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a session string or .session file as JSON (never prints the key).",
        discussion: """
            PATH is a file holding a session string (Pyrogram, Hydrogram, Kurigram, Pyrofork or \
            Telethon) or a .session file of any of those libraries; '-' reads standard input. \
            A .session file is recognised by its SQLite header and read from a private in-memory \
            copy: the file, its -wal/-journal and its directory are never modified. One trailing \
            newline after a string is ignored (what echo adds); any other whitespace is an error, \
            as in the Python libraries.

            Output: one JSON object with the keys format, kind (string or file), dc_id, api_id, \
            test_mode, user_id, is_bot, server_address, port, date, auth_key_id (last 8 bytes of \
            SHA-1 of the key, hex), peer_count and peers_by_type, in that order. A value the \
            input does not carry is null (e.g. api_id of a Telethon session). Integers are exact.

            Examples:
              session-vault inspect my_account.session
              session-vault inspect session.txt
              pbpaste | session-vault inspect -

            \(exitStatusHelp)
            """
    )

    @Argument(help: ArgumentHelp(
        "A session-string file or .session file; '-' for standard input.", valueName: "PATH|-"))
    var input: String

    func run() throws {
        try CLI.run("inspect") { () throws(CLIFailure) in
            let input = try CLI.readSession(argument: input)
            var output = Array((InspectCommand.describe(input).rendered() + "\n").utf8)
            try CLI.writeAll(1, &output, wipe: false)
        }
    }

    /// The JSON description of a decoded input. Holds no secret: the key appears only as
    /// ``AuthKey/id``.
    static func describe(_ input: CLI.Input) -> JSONValue {
        let session = input.imported.session
        var byType: [(String, JSONValue)] = PeerType.allCases.map { type in
            (type.rawValue, .int(Int64(input.imported.peers.count { $0.type == type })))
        }
        // Telethon records no peer kind.
        byType.append(("unknown", .int(Int64(input.imported.peers.count { $0.type == nil }))))
        return .object([
            ("format", .string(input.imported.format.rawValue)),
            ("kind", .string(input.kind.rawValue)),
            ("dc_id", .int(Int64(session.dcID))),
            ("api_id", .optional(session.apiID, JSONValue.int)),
            ("test_mode", .optional(session.testMode, JSONValue.bool)),
            ("user_id", .optional(session.userID, JSONValue.int)),
            ("is_bot", .optional(session.isBot, JSONValue.bool)),
            ("server_address", .optional(session.serverAddress, JSONValue.string)),
            ("port", .optional(session.port) { .int(Int64($0)) }),
            ("date", .optional(session.date, JSONValue.int)),
            ("auth_key_id", .optional(session.authKey) { .string($0.id) }),
            ("peer_count", .int(Int64(input.imported.peers.count))),
            ("peers_by_type", .object(byType)),
        ])
    }
}
