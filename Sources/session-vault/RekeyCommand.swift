// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Glibc
import Logging
import VaultAPI
import VaultCore

/// `session-vault rekey`: re-seal the keyring under a new master key. The data keys (and so every
/// stored ciphertext and token hash) stay as they are; only the keyring rows are rewritten, in one
/// transaction.
struct RekeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rekey",
        abstract: "Move the vault to a new master key.",
        discussion: """
            The current key comes from SESSION_VAULT_MASTER_KEY / SESSION_VAULT_MASTER_KEY_FILE (or \
            --master-key-file), the new one from SESSION_VAULT_NEW_MASTER_KEY / --new-master-key-file; \
            neither is ever taken from the command line. The storage is SESSION_VAULT_STORAGE / --storage \
            (a file). Restart the service with the new key afterwards.

            The service must be stopped: rekey takes the same lock as serve and refuses, \
            naming the holder, while a vault process has the file open.

            Exit codes: 0 rekeyed, 65 the database is not usable, 75 the vault is in use \
            (stop the service first), 78 a key is missing or wrong.
            """
    )

    @Option(name: .long, help: "Storage: file:PATH (overrides SESSION_VAULT_STORAGE).")
    var storage: String?

    @Option(name: .long, help: "Data folder of the embedded default (overrides SESSION_VAULT_DATA_DIR).")
    var dataDir: String?

    @Option(name: .long, help: "File holding the current base64 master key.")
    var masterKeyFile: String?

    @Option(name: .long, help: "File holding the new base64 master key.")
    var newMasterKeyFile: String?

    func run() throws {
        let env = FileSystem.environment()
        let log = Logger.vault()
        var flags = ServiceConfiguration.Flags()
        flags.storage = storage
        flags.dataDirectory = dataDir
        flags.masterKeyFile = masterKeyFile
        let config: ServiceConfiguration
        do { config = try ServiceConfiguration.resolve(environment: env, flags: flags) } catch {
            throw ServiceRunner.fail(log, Exit.config, "configuration error: \(error.message)")
        }
        guard case .file(let path) = config.storage else {
            throw ServiceRunner.fail(log, Exit.usage, "rekey needs file storage (SESSION_VAULT_STORAGE=file:PATH)")
        }
        guard FileSystem.exists(path) else {
            throw ServiceRunner.fail(log, Exit.dataError, "no vault database at \(path)")
        }
        // Held until the end of run(): a serve started meanwhile is refused too.
        let lock = try ServiceRunner.lockVault(path, command: "rekey", log: log)
        defer { withExtendedLifetime(lock) {} }
        let store: any SessionStore
        do { store = try StoreFactory.open(.file(path)) } catch {
            throw ServiceRunner.fail(log, Exit.dataError, "cannot open \(path): \(error)")
        }
        defer { store.close() }
        guard let current = try ServiceRunner.loadMasterKey(config, store: store, log: log) else {
            throw ServiceRunner.fail(log, Exit.config, "the current master key is missing")
        }
        let newKey: MasterKey
        if let file = newMasterKeyFile ?? env["SESSION_VAULT_NEW_MASTER_KEY_FILE"] {
            newKey = try ServiceRunner.readKeyFile(file, store: store, log: log, source: "SESSION_VAULT_NEW_MASTER_KEY_FILE")
        } else if let text = env["SESSION_VAULT_NEW_MASTER_KEY"], !text.isEmpty {
            do { newKey = try MasterKey(base64: text, source: "SESSION_VAULT_NEW_MASTER_KEY") } catch {
                throw ServiceRunner.fail(log, Exit.config, "configuration error: \(error)")
            }
        } else {
            throw ServiceRunner.fail(log, Exit.config, "give the new key in SESSION_VAULT_NEW_MASTER_KEY or --new-master-key-file")
        }
        let vault: VaultService
        do { vault = try VaultService(store: store, master: current) } catch {
            throw ServiceRunner.fail(log, Exit.dataError, "cannot open the vault: \(error)")
        }
        if let reason = vault.sealedReason {
            throw ServiceRunner.fail(log, Exit.config, "the current master key does not open the vault (\(reason)); nothing changed")
        }
        do { try vault.rekey(to: newKey) } catch {
            throw ServiceRunner.fail(log, Exit.dataError, "rekey failed, nothing changed: \(error)")
        }
        log.info("rekeyed: restart the service with the new master key")
    }
}
