// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Glibc
import RunOptions

/// `session-vault-run`: the process wrapper behind `session-vault run`.
///
/// Why a second executable: the wrapper speaks HTTP (and TLS) through URLSession, which lives in
/// FoundationNetworking; linking it into `session-vault` would map Foundation, its ICU data,
/// libcurl and their dependencies into every `serve` process too (measured: see docs/leases.md,
/// "session-vault run"). `session-vault run` checks its flags and execs this binary, found beside
/// its own, so the server's footprint stays what it uses and the wrapper keeps the same pid
/// (PID 1 in a container stays PID 1).
@main
struct SessionVaultRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session-vault run",
        abstract: "Run a command under the session's exclusive lease, with the session string in its environment.",
        discussion: RunOptions.discussion
    )

    @OptionGroup var options: RunOptions

    func run() throws {
        let status = Wrapper.main(options)
        throw ExitCode(status)
    }
}
