// SPDX-License-Identifier: Apache-2.0

/// Everything that can go wrong in `VaultCore/Crypto`. No case ever carries key material,
/// plaintext, or the text a key was parsed from.
///
/// Opening a ciphertext fails in exactly one way, ``authenticationFailed``, whatever the cause
/// (wrong key, unknown term, flipped bit, truncation, wrong context, unknown format version).
/// Distinguishing them would hand an attacker who can submit ciphertexts an oracle; the only
/// public question is "did it open".
public enum CryptoError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A ciphertext or envelope did not open. Deliberately says nothing about why.
    case authenticationFailed

    /// The keyring could not be unsealed: the master key is missing or wrong (or the sealed
    /// keyring was altered, which is indistinguishable). The vault must refuse to serve secrets.
    case sealed

    /// The system random generator (`RAND_bytes`) failed; nothing was encrypted.
    case randomFailure

    /// A key supplied from outside is unusable. `source` names where it came from (for example
    /// `SESSION_VAULT_MASTER_KEY`), `reason` says what is wrong; neither contains the key.
    case invalidKey(source: String, reason: String)

    /// A caller passed an argument of the wrong shape to a primitive (e.g. an 11-byte nonce to
    /// ``AESGCM/seal(key:nonce:plaintext:aad:)``). A programming error, never caused by stored data.
    case invalidParameter(name: String, reason: String)

    /// The persisted keyring is structurally unusable (no terms, duplicate or zero term numbers)
    /// or a new term cannot be added. Says nothing about key material.
    case invalidKeyring(reason: String)

    /// libcrypto reported an internal failure (allocation, provider) in `operation`.
    case backendFailure(operation: String)

    public var description: String {
        switch self {
        case .authenticationFailed:
            return "decryption failed: the ciphertext is corrupt, was moved, or the key is wrong"
        case .sealed:
            return "vault is sealed: the master key is missing or does not open the keyring"
        case .randomFailure:
            return "the system random number generator failed"
        case .invalidKey(let source, let reason):
            return "\(source): invalid key: \(reason)"
        case .invalidParameter(let name, let reason):
            return "\(name): \(reason)"
        case .invalidKeyring(let reason):
            return "keyring: \(reason)"
        case .backendFailure(let operation):
            return "OpenSSL failure in \(operation)"
        }
    }
}
