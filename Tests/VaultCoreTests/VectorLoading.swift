// SPDX-License-Identifier: Apache-2.0
import Foundation

/// A JSON value from the test vectors, parsed exactly: numbers keep their text, so integers
/// above 2^53 (user ids, access hashes) are never rounded through `Double`.
enum VectorJSON: Equatable, Sendable {
    case null
    case bool(Bool)
    /// The number exactly as written in the file.
    case number(String)
    case string(String)
    case array([VectorJSON])
    case object([String: VectorJSON])

    /// Member `key` of an object; nil when absent or not an object.
    subscript(key: String) -> VectorJSON? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    var bool: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    /// The exact integer, parsed from the digits (nil for fractions, exponents or overflow).
    var int64: Int64? {
        if case .number(let text) = self { return Int64(text) }
        return nil
    }

    var array: [VectorJSON]? {
        if case .array(let values) = self { return values }
        return nil
    }

    var isNull: Bool { self == .null }
}

/// Why a vector file could not be read.
struct VectorLoadingError: Error, CustomStringConvertible {
    let description: String
}

/// Loads the files of `Tests/VaultCoreTests/Vectors` (declared `.copy("Vectors")`).
enum VectorFiles {
    /// Raw bytes of `Vectors/<name>`.
    static func data(_ name: String) throws -> Data {
        guard let directory = Bundle.module.url(forResource: "Vectors", withExtension: nil) else {
            throw VectorLoadingError(description: "Vectors directory missing from the test bundle")
        }
        return try Data(contentsOf: directory.appendingPathComponent(name))
    }

    /// `Vectors/<name>` parsed with the exact parser.
    static func json(_ name: String) throws -> VectorJSON {
        try VectorJSONParser.parse(Array(try data(name)))
    }

    /// The top-level array of `Vectors/<name>`.
    static func cases(_ name: String) throws -> [VectorJSON] {
        guard let cases = try json(name).array else {
            throw VectorLoadingError(description: "\(name): top level is not an array")
        }
        return cases
    }
}

/// A small strict RFC 8259 parser, enough for the vector files.
struct VectorJSONParser {
    private let bytes: [UInt8]
    private var index = 0

    static func parse(_ bytes: [UInt8]) throws -> VectorJSON {
        var parser = VectorJSONParser(bytes: bytes)
        let value = try parser.value()
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.failure("trailing data") }
        return value
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private func failure(_ what: String) -> VectorLoadingError {
        VectorLoadingError(description: "JSON: \(what) at byte \(index)")
    }

    private mutating func skipWhitespace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    private mutating func expect(_ literal: String) throws {
        for byte in literal.utf8 {
            guard index < bytes.count, bytes[index] == byte else { throw failure("expected \(literal)") }
            index += 1
        }
    }

    private mutating func value() throws -> VectorJSON {
        skipWhitespace()
        guard index < bytes.count else { throw failure("unexpected end") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"):
            try expect("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expect("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expect("null")
            return .null
        default: return try number()
        }
    }

    private mutating func object() throws -> VectorJSON {
        index += 1
        var members: [String: VectorJSON] = [:]
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw failure("expected key") }
            let key = try string()
            skipWhitespace()
            try expect(":")
            members[key] = try value()
            skipWhitespace()
            guard index < bytes.count else { throw failure("unterminated object") }
            if bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            }
            try expect(",")
        }
    }

    private mutating func array() throws -> VectorJSON {
        index += 1
        var values: [VectorJSON] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(values)
        }
        while true {
            values.append(try value())
            skipWhitespace()
            guard index < bytes.count else { throw failure("unterminated array") }
            if bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(values)
            }
            try expect(",")
        }
    }

    private mutating func number() throws -> VectorJSON {
        let start = index
        while index < bytes.count, "-+.eE0123456789".utf8.contains(bytes[index]) { index += 1 }
        guard index > start else { throw failure("unexpected character") }
        return .number(String(decoding: bytes[start..<index], as: UTF8.self))
    }

    private mutating func hex4() throws -> UInt32 {
        guard index + 4 <= bytes.count,
            let value = UInt32(String(decoding: bytes[index..<(index + 4)], as: UTF8.self), radix: 16)
        else { throw failure("bad \\u escape") }
        index += 4
        return value
    }

    private mutating func string() throws -> String {
        index += 1
        var scalars = String.UnicodeScalarView()
        var raw: [UInt8] = []
        func flush() {
            scalars.append(contentsOf: String(decoding: raw, as: UTF8.self).unicodeScalars)
            raw.removeAll()
        }
        while true {
            guard index < bytes.count else { throw failure("unterminated string") }
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                flush()
                return String(scalars)
            case UInt8(ascii: "\\"):
                flush()
                guard index < bytes.count else { throw failure("unterminated escape") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""): scalars.append("\"")
                case UInt8(ascii: "\\"): scalars.append("\\")
                case UInt8(ascii: "/"): scalars.append("/")
                case UInt8(ascii: "b"): scalars.append("\u{08}")
                case UInt8(ascii: "f"): scalars.append("\u{0C}")
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code) {
                        try expect("\\u")
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw failure("bad surrogate pair") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw failure("bad code point") }
                    scalars.append(scalar)
                default: throw failure("bad escape")
                }
            default:
                raw.append(byte)
            }
        }
    }
}
