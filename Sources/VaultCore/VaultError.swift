// SPDX-License-Identifier: Apache-2.0

/// A domain failure of ``VaultService``. Knows nothing about HTTP; VaultAPI maps each case to a
/// status in one switch. Never carries a secret value.
public enum VaultError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No session (or token) with that name / accessor.
    case notFound
    /// The session was revoked: its key no longer exists.
    case revoked
    /// A session with this name already exists.
    case conflict
    /// The caller's expected version is stale.
    case versionMismatch(current: Int64)
    /// The vault has no usable master key and serves no secrets. The reason is not secret.
    case sealed(reason: String)
    /// A field is invalid.
    case invalid(field: String, reason: String)
    /// A conversion needs these fields, which the session lacks.
    case missingFields([String])
    /// The storage engine failed (disk full, I/O). A server-side problem.
    case storage(StorageError)
    /// A cryptographic operation failed on data the vault itself wrote (tampering or a bug).
    case integrity
    /// Another process changed the keyring since this one read it (a rekey or rotation of its
    /// own); nothing was written. Retry after reloading, or restart with the right key.
    case keyringChanged

    public var description: String {
        switch self {
        case .notFound: return "not found"
        case .revoked: return "the session was revoked"
        case .conflict: return "a session with this name already exists"
        case .versionMismatch(let current): return "version mismatch (current version \(current))"
        case .sealed(let reason): return "the vault is sealed: \(reason)"
        case .invalid(let field, let reason): return "\(field): \(reason)"
        case .missingFields(let fields): return "missing fields: \(fields.joined(separator: ", "))"
        case .storage(let error): return "storage failure: \(error)"
        case .integrity: return "stored data failed its integrity check"
        case .keyringChanged: return "the keyring was changed by another process meanwhile; nothing was changed"
        }
    }

    /// Maps a codec error (bad session string, or a conversion lacking data).
    public init(_ error: CodecError) {
        if case .missingFields(let fields) = error {
            self = .missingFields(fields)
        } else {
            self = .invalid(field: error.field, reason: error.description)
        }
    }

    /// Maps a `.session` file error.
    public init(_ error: SessionFileError) {
        switch error {
        case .missingField(let field): self = .missingFields([field])
        default: self = .invalid(field: error.field ?? "file", reason: error.description)
        }
    }

    /// Maps a model validation error.
    public init(_ error: ModelError) {
        self = .invalid(field: error.field, reason: error.description)
    }

    /// Maps a storage error: conflicts, missing rows and stale versions are the caller's; the
    /// rest is the vault's own failure.
    public init(_ error: StorageError) {
        switch error {
        case .conflict: self = .conflict
        case .notFound: self = .notFound
        case .versionMismatch(let current): self = .versionMismatch(current: current)
        case .revoked: self = .revoked
        case .invalidArgument(let field, let reason): self = .invalid(field: field, reason: reason)
        default: self = .storage(error)
        }
    }
}
