// SPDX-License-Identifier: Apache-2.0
import ArgumentParser

@main
struct SessionVault: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session-vault",
        abstract: "Vault for Telegram client sessions.",
        subcommands: [ServeCommand.self, InspectCommand.self, ConvertCommand.self, RekeyCommand.self],
        defaultSubcommand: ServeCommand.self
    )
}
