// SPDX-License-Identifier: Apache-2.0
public import ArgumentParser

/// The flags of `session-vault run`, shared by the `run` subcommand of `session-vault` (which
/// parses and checks them, then execs `session-vault-run`) and by `session-vault-run` itself.
///
/// Only what is safe in `ps` output is a flag: the vault's address and token come from the
/// environment (`SESSION_VAULT_ADDR`, `SESSION_VAULT_TOKEN` or `SESSION_VAULT_TOKEN_FILE`).
public struct RunOptions: ParsableArguments, Sendable {
    /// The session string formats a bot can receive.
    public enum Format: String, ExpressibleByArgument, CaseIterable, Sendable {
        case pyrogram, telethon
    }

    @Option(help: "The vaulted session to lease and export.")
    public var session: String

    @Option(help: "The session string format the child receives.")
    public var format: Format = .pyrogram

    @Option(name: .customLong("env-var"), help: "The environment variable that carries the session string to the child.")
    public var envVar: String = "TG_SESSION"

    @Option(help: "Lease time to live in seconds (5-300); renewed every third of it.")
    public var ttl: Int = 15

    @Option(help: "Seconds to wait for a lease held by another holder (0-60).")
    public var wait: Int = 60

    @Option(help: "Free text naming this holder in the vault (default: host name and pid; at most 256 bytes).")
    public var holder: String?

    @Option(name: .customLong("kill-after"), help: "Seconds between SIGTERM and SIGKILL when the lease is lost.")
    public var killAfter: Int = 10

    @Argument(parsing: .postTerminator, help: "The command to run under the lease, after `--`.")
    public var command: [String] = []

    public init() {}

    public func validate() throws {
        guard Self.isSessionName(session) else {
            throw ValidationError("--session must be 1-64 characters of A-Z a-z 0-9 . _ - and not only dots")
        }
        guard Self.isEnvironmentName(envVar) else {
            throw ValidationError("--env-var must be a variable name ([A-Za-z_][A-Za-z0-9_]*)")
        }
        guard !envVar.hasPrefix("SESSION_VAULT_") else {
            throw ValidationError("--env-var must not start with SESSION_VAULT_ (those are removed from the child)")
        }
        guard (5...300).contains(ttl) else { throw ValidationError("--ttl must be between 5 and 300 seconds") }
        guard (0...60).contains(wait) else { throw ValidationError("--wait must be between 0 and 60 seconds") }
        guard (0...3600).contains(killAfter) else {
            throw ValidationError("--kill-after must be between 0 and 3600 seconds")
        }
        if let holder {
            guard !holder.isEmpty, holder.utf8.count <= 256 else {
                throw ValidationError("--holder must be 1-256 bytes")
            }
        }
        guard let program = command.first, !program.isEmpty else {
            throw ValidationError("a command to run is required after `--`, e.g. session-vault run --session bot -- python bot.py")
        }
    }

    /// The arguments that reproduce these options (for the `exec` from `session-vault run`).
    public var arguments: [String] {
        var out = ["--session", session, "--format", format.rawValue, "--env-var", envVar,
                   "--ttl", String(ttl), "--wait", String(wait), "--kill-after", String(killAfter)]
        if let holder { out += ["--holder", holder] }
        return out + ["--"] + command
    }

    static func isSessionName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...64).contains(bytes.count), !bytes.allSatisfy({ $0 == UInt8(ascii: ".") }) else { return false }
        return bytes.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                true
            default: false
            }
        }
    }

    static func isEnvironmentName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, first < 0x30 || first > 0x39 else { return false }
        return bytes.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"):
                true
            default: false
            }
        }
    }

    /// Help text shared by both executables.
    public static let discussion = """
        Acquires the session's lease (with its export, in one call), runs CMD with the session string \
        in --env-var (and nowhere else), renews the lease every third of the TTL, forwards SIGTERM, \
        SIGINT and SIGHUP to CMD, and releases the lease when CMD exits. When the lease is lost, CMD \
        gets SIGTERM, then SIGKILL after --kill-after seconds.

        Environment: SESSION_VAULT_ADDR (http://host:port or https://...), and SESSION_VAULT_TOKEN \
        or SESSION_VAULT_TOKEN_FILE (a token with the lease and export operations on the session). \
        SESSION_VAULT_CACERT: a PEM file of the CA that signed the vault's certificate, then the only \
        CA trusted for an https:// address (without it, the system's CAs). Every SESSION_VAULT_* \
        variable is removed from CMD's environment.

        Exit status: CMD's own (128 + the signal if a signal ended it); 64 usage error; 66 unknown \
        session; 69 vault unreachable or failing at start; 75 lease held by another after --wait, \
        or lease lost while running; 77 token refused; 78 no address or token configured, an \
        unusable SESSION_VAULT_CACERT, or a vault certificate that is not trusted; 126 CMD not \
        executable; 127 CMD not found.
        """
}
