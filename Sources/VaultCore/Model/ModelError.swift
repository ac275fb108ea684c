// SPDX-License-Identifier: Apache-2.0

/// A value that breaks the domain's rules. Always names the field; never carries a secret.
public enum ModelError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `field` is invalid; `reason` says why in plain words (never echoing secret input).
    case invalidField(_ field: String, _ reason: String)

    /// The field the error is about.
    public var field: String {
        switch self {
        case .invalidField(let field, _): return field
        }
    }

    public var description: String {
        switch self {
        case .invalidField(let field, let reason): return "\(field): \(reason)"
        }
    }
}
