// SPDX-License-Identifier: Apache-2.0
import ArgumentParser

@main
struct SessionVault: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session-vault",
        abstract: "Vault for Telegram client sessions.",
        version: VaultVersion.current,
        subcommands: [ServeCommand.self, InspectCommand.self, ConvertCommand.self, RekeyCommand.self, RunCommand.self, VersionCommand.self],
        defaultSubcommand: ServeCommand.self
    )
}

/// `session-vault version`: the same line as `session-vault --version`.
struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the version.")

    func run() {
        print(VaultVersion.current)
    }
}
