// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import VaultCore

/// `session-vault convert --to FORMAT [--out PATH] [overrides] PATH|-`: converts between session
/// strings and `.session` files offline.
///
/// Strings go to standard output (or `--out`); files only to `--out`, written atomically with
/// mode 0600 and never over an existing file unless `--force`. Values a target format needs but
/// the input lacks come from `--api-id`, `--user-id`, `--is-bot`, `--test-mode`; when any are
/// missing the error names every one of them, so one retry suffices.
struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a session string or .session file to another format.",
        discussion: """
            PATH is read like 'session-vault inspect' reads it ('-' for standard input; one \
            trailing newline after a string is ignored). No flag takes a session string or key.

            Formats: pyrogram (string for Pyrogram, Hydrogram, Kurigram and Pyrofork), telethon \
            (Telethon StringSession), pyrogram-file (schema v3 .session, opened by every \
            Pyrogram fork), kurigram-file (Kurigram schema v7 .session), telethon-file \
            (Telethon schema v7 .session, opened by old and new Telethon). Strings are printed \
            with a trailing newline, or written to --out; files need --out. Output files get \
            mode 0600, appear atomically and never replace an existing file without --force. \
            Cached peers are carried over into .session outputs.

            Values a format needs but the input lacks (a Telethon session has no api_id, user \
            id, bot flag or test mode) come from --api-id, --user-id, --is-bot and --test-mode; \
            if any is missing the error lists all of them. --api-id replaces a stored api_id \
            (it identifies the app, not the account); the other three must agree with values \
            the session already has. test_mode is also inferred from a known data-center address. \
            Flags a target format has no place for are ignored.

            Examples:
              session-vault convert --to telethon pyrogram.txt
              session-vault convert --to pyrogram --api-id 12345 \\
                  --user-id 777000 --is-bot false telethon.txt
              session-vault convert --to pyrogram-file --out new.session string.txt
              session-vault convert --to telethon-file --out t.session --force a.session
              pbpaste | session-vault convert --to kurigram-file --out k.session -

            \(exitStatusHelp)
            """
    )

    /// The target format, as spelled on the command line.
    enum Target: String, CaseIterable, ExpressibleByArgument {
        case pyrogram, telethon
        case pyrogramFile = "pyrogram-file"
        case kurigramFile = "kurigram-file"
        case telethonFile = "telethon-file"

        var format: ExportFormat {
            switch self {
            case .pyrogram: return .pyrogram
            case .telethon: return .telethon
            case .pyrogramFile: return .pyrogramFile
            case .kurigramFile: return .kurigramFile
            case .telethonFile: return .telethonFile
            }
        }
    }

    @Option(name: .long, help: ArgumentHelp("Target format.", valueName: "format"))
    var to: Target

    @Option(name: .long, help: ArgumentHelp(
        "Write here instead of standard output (required for file formats).", valueName: "path"))
    var out: String?

    @Flag(name: .long, help: "Replace an existing --out file.")
    var force = false

    @Option(name: .customLong("api-id"), help: ArgumentHelp(
        "Telegram application id, 1…4294967295 (replaces a stored one).", valueName: "n"))
    var apiID: Int64?

    @Option(name: .customLong("user-id"), help: ArgumentHelp("The account's user id, 1…2^63−1.", valueName: "n"))
    var userID: Int64?

    @Option(name: .customLong("is-bot"), help: ArgumentHelp("Whether the account is a bot.", valueName: "true|false"))
    var isBot: Bool?

    @Option(name: .customLong("test-mode"), help: ArgumentHelp(
        "Whether the session is on Telegram's test servers.", valueName: "true|false"))
    var testMode: Bool?

    @Argument(help: ArgumentHelp(
        "A session-string file or .session file; '-' for standard input.", valueName: "PATH|-"))
    var input: String

    func validate() throws {
        if let apiID, !(1...Int64(UInt32.max)).contains(apiID) {
            throw ValidationError("--api-id must be 1…4294967295")
        }
        if let userID, userID < 1 {
            throw ValidationError("--user-id must be 1…9223372036854775807")
        }
        if to.format.isFile && out == nil {
            throw ValidationError(
                "\(to.rawValue) is a file format: pass --out PATH (files are never written to standard output)")
        }
        if out == "-" {
            throw ValidationError("--out names a file; omit it to print a string on standard output")
        }
    }

    var overrides: ConversionOverrides {
        ConversionOverrides(apiID: apiID, userID: userID, isBot: isBot, testMode: testMode)
    }

    func run() throws {
        try CLI.run("convert") { () throws(CLIFailure) in
            // Fail before reading anything when the output cannot be written.
            if let out {
                _ = try CLI.splitOutputPath(out)
                try CLI.checkOutputTarget(out, replace: force)
            }
            let input = try CLI.readSession(argument: input)
            var bytes = try ConvertCommand.convert(input.imported, to: to.format, overrides: overrides)
            if let out {
                try CLI.writeFileAtomically(&bytes, to: out, replace: force)
            } else {
                try CLI.writeAll(1, &bytes, wipe: true)
            }
        }
    }

    // MARK: - Conversion

    /// The output bytes: a string plus `\n`, or a `.session` file.
    /// - Throws: `.dataError` naming every missing field and its flag, or the conflicting or
    ///   unusable value; `.ioError` if SQLite fails while building a file.
    static func convert(
        _ imported: ImportedSession, to format: ExportFormat, overrides: ConversionOverrides
    ) throws(CLIFailure) -> [UInt8] {
        let session = try merged(imported.session, overrides)
        if !format.isFile {
            do {
                let text = try SessionStringCodec.encode(session, as: format, overrides: overrides)
                return Array((text + "\n").utf8)
            } catch .missingFields(let fields) {
                throw missing(fields, format: format)
            } catch {
                throw CLIFailure(.dataError, "cannot produce \(format.rawValue): \(error)")
            }
        }
        var complete = session
        let fields = missingFileFields(&complete, format: format)
        guard fields.isEmpty else { throw missing(fields, format: format) }
        do {
            return try SessionFileWriter.write(complete, peers: imported.peers, as: format, updateStates: imported.updateStates,
                                              now: nil)
        } catch .missingField(let field) {
            throw missing([field], format: format)
        } catch .io(let what) {
            throw CLIFailure(.ioError, "cannot produce \(format.rawValue): \(what)")
        } catch {
            throw CLIFailure(.dataError, "cannot produce \(format.rawValue): \(error)")
        }
    }

    /// The session with the overrides applied: `api_id` replaces, the others fill a gap and
    /// must agree with a value the session has (same rules as ``ConversionOverrides``). The
    /// test mode is also inferred from a known DC address, as the string codec does.
    static func merged(_ own: TelegramSession, _ overrides: ConversionOverrides) throws(CLIFailure) -> TelegramSession {
        var session = own
        // 0 means "unknown" (api_id) or "not authorised" (user_id): a gap, not a value.
        if session.apiID == 0 { session.apiID = nil }
        if session.userID == 0 { session.userID = nil }
        if session.testMode == nil {
            session.testMode = session.serverAddress.flatMap { DataCenters.lookup(address: $0)?.testMode }
        }
        if let apiID = overrides.apiID { session.apiID = apiID }
        session.userID = try agree(session.userID, overrides.userID, flag: "--user-id", field: "user_id")
        session.isBot = try agree(session.isBot, overrides.isBot, flag: "--is-bot", field: "is_bot")
        session.testMode = try agree(session.testMode, overrides.testMode, flag: "--test-mode", field: "test_mode")
        return session
    }

    private static func agree<T: Equatable>(
        _ own: T?, _ override: T?, flag: String, field: String
    ) throws(CLIFailure) -> T? {
        guard let override else { return own }
        if let own, own != override {
            throw CLIFailure(.dataError, "\(flag) \(override) conflicts with the session's \(field) \(own)")
        }
        return override
    }

    /// Every field a file format needs that `session` lacks, in ``TelegramSession`` order like
    /// ``CodecError/missingFields(_:)``. Fills the port from the DC table's default when an
    /// address has none (as the string codec does).
    ///
    /// pyrogram-file and kurigram-file need api_id, test_mode, the key, user_id and is_bot
    /// (docs/formats.md, "Field values" and "Conversions and exports"); telethon-file needs the key, and test_mode only when there is no
    /// server address to store (the address then comes from the DC table).
    static func missingFileFields(_ session: inout TelegramSession, format: ExportFormat) -> [String] {
        var missing: [String] = []
        if session.dcID == 0 { missing.append("dc_id") }
        if session.serverAddress != nil, session.port == nil, let testMode = session.testMode {
            session.port = DataCenters.defaultPort(testMode: testMode)
        }
        switch format {
        case .telethonFile:
            if session.serverAddress == nil && session.testMode == nil { missing.append("test_mode") }
            if session.authKey == nil { missing.append("auth_key") }
            if session.serverAddress != nil && session.port == nil { missing.append("port") }
        default:
            if session.apiID == nil { missing.append("api_id") }
            if session.testMode == nil { missing.append("test_mode") }
            if session.authKey == nil { missing.append("auth_key") }
            if session.userID == nil { missing.append("user_id") }
            if session.isBot == nil { missing.append("is_bot") }
            if format == .kurigramFile, session.serverAddress != nil, session.port == nil { missing.append("port") }
        }
        return missing
    }

    /// "cannot produce pyrogram: missing api_id, user_id, is_bot; pass --api-id, --user-id, --is-bot"
    static func missing(_ fields: [String], format: ExportFormat) -> CLIFailure {
        let flags: [String: String] = [
            "api_id": "--api-id", "user_id": "--user-id", "is_bot": "--is-bot", "test_mode": "--test-mode",
        ]
        var message = "cannot produce \(format.rawValue): missing \(fields.joined(separator: ", "))"
        let settable = fields.compactMap { flags[$0] }
        if !settable.isEmpty { message += "; pass \(settable.joined(separator: ", "))" }
        let fixed = fields.filter { flags[$0] == nil }
        if !fixed.isEmpty {
            message += "; no flag can supply \(fixed.joined(separator: ", "))"
        }
        return CLIFailure(.dataError, message)
    }
}
