// SPDX-License-Identifier: Apache-2.0

/// Why a session string could not be decoded, or a session could not be encoded or exported.
///
/// Every case is matchable and free of secrets: positions and lengths are reported, the content
/// of the input never is (a session string *is* a credential). ``field`` names the offending
/// field — `session_string` for syntax problems of the text itself.
public enum CodecError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input exceeds the decoder's length cap; nothing was decoded.
    case tooLong(max: Int)
    /// The input (or a field) has a length no known format uses. `expected` is plain prose.
    case invalidLength(Int, expected: String)
    /// A character outside the base64 alphabets (or a misplaced `=`) at a 0-based position.
    case invalidCharacter(position: Int)
    /// Whitespace (space, tab, CR, LF, …) at a 0-based position. The Python readers reject it too.
    case whitespace(position: Int)
    /// A non-ASCII character at a 0-based position (counted in Unicode scalars, which equals the
    /// UTF-8 byte offset because everything before it is ASCII).
    case nonASCII(position: Int)
    /// Wrong `=` padding: too much, or where the format has none.
    case invalidPadding
    /// The last base64 character carries non-zero unused bits: no encoder produces that, so the
    /// string was damaged (RFC 4648 §3.5 lets decoders reject it).
    case nonCanonicalEncoding
    /// A Telethon string whose version character is not `1`.
    case unsupportedVersion
    /// The text is not any known session-string format.
    case unknownFormat
    /// A decoded or supplied value is outside what the format (or the export policy) allows.
    case fieldOutOfRange(field: String, reason: String)
    /// An export or conversion needs values the session does not have. Names every one of them.
    case missingFields([String])

    /// The field the error is about: `session_string` for syntax problems, the offending field
    /// otherwise (the first one for ``missingFields(_:)``).
    public var field: String {
        switch self {
        case .fieldOutOfRange(let field, _): return field
        case .missingFields(let fields): return fields.first ?? "session"
        case .tooLong, .invalidLength, .invalidCharacter, .whitespace, .nonASCII, .invalidPadding,
            .nonCanonicalEncoding, .unsupportedVersion, .unknownFormat:
            return "session_string"
        }
    }

    /// Every field the error is about (several only for ``missingFields(_:)``).
    public var fields: [String] {
        if case .missingFields(let fields) = self { return fields }
        return [field]
    }

    public var description: String {
        switch self {
        case .tooLong(let max):
            return "session_string: longer than \(max) characters"
        case .invalidLength(let length, let expected):
            return "session_string: length \(length) is not valid (expected \(expected))"
        case .invalidCharacter(let position):
            return "session_string: invalid character at position \(position)"
        case .whitespace(let position):
            return "session_string: whitespace at position \(position) (remove spaces and line breaks)"
        case .nonASCII(let position):
            return "session_string: non-ASCII character at position \(position)"
        case .invalidPadding:
            return "session_string: invalid base64 padding"
        case .nonCanonicalEncoding:
            return "session_string: last character has non-zero unused bits (string damaged)"
        case .unsupportedVersion:
            return "session_string: unsupported Telethon string version (expected '1')"
        case .unknownFormat:
            return "session_string: not a Pyrogram or Telethon session string"
        case .fieldOutOfRange(let field, let reason):
            return "\(field): \(reason)"
        case .missingFields(let fields):
            return "missing fields: \(fields.joined(separator: ", "))"
        }
    }
}
