// SPDX-License-Identifier: Apache-2.0
import Testing

import VaultCore

/// Small factories shared by the codec tests.
enum CodecFixtures {
    /// An `AuthKey` from lower-case hex (fails the test on bad hex or length).
    static func key(hex: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> AuthKey {
        let bytes = try #require(Hex.decode(hex), "bad hex", sourceLocation: sourceLocation)
        return try AuthKey(bytes)
    }

    /// A present, non-null integer field, or nil when the member is absent or `null`. A value
    /// of another type fails the test instead of silently reading as nil.
    static func optionalInt(
        _ value: VectorJSON?, _ name: String, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> Int64? {
        guard let value, !value.isNull else { return nil }
        let typed: Int64 = try #require(value.int64, "\(name) is not an exact integer", sourceLocation: sourceLocation)
        return typed
    }

    static func optionalBool(
        _ value: VectorJSON?, _ name: String, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> Bool? {
        guard let value, !value.isNull else { return nil }
        let typed: Bool = try #require(value.bool as Bool?, "\(name) is not a boolean", sourceLocation: sourceLocation)
        return typed
    }

    static func optionalString(
        _ value: VectorJSON?, _ name: String, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> String? {
        guard let value, !value.isNull else { return nil }
        let typed: String = try #require(value.string, "\(name) is not a string", sourceLocation: sourceLocation)
        return typed
    }

    /// The `TelegramSession` an object of vector fields describes (absent or null → nil).
    static func session(_ fields: VectorJSON) throws -> TelegramSession {
        let dcID = try #require(try optionalInt(fields["dc_id"], "dc_id"))
        let keyHex = try optionalString(fields["auth_key_hex"], "auth_key_hex")
        return TelegramSession(
            dcID: Int(dcID),
            apiID: try optionalInt(fields["api_id"], "api_id"),
            testMode: try optionalBool(fields["test_mode"], "test_mode"),
            authKey: try keyHex.map { try key(hex: $0) },
            userID: try optionalInt(fields["user_id"], "user_id"),
            isBot: try optionalBool(fields["is_bot"], "is_bot"),
            serverAddress: try optionalString(fields["server_address"], "server_address"),
            port: try optionalInt(fields["port"], "port").map { Int($0) },
            date: try optionalInt(fields["date"], "date"))
    }

    /// The faithful current-layout encoding of a session that has every Pyrogram field.
    static func pyrogramString(_ s: TelegramSession) throws -> String {
        try PyrogramSessionString.encode(
            dcID: s.dcID, apiID: try #require(s.apiID), testMode: try #require(s.testMode as Bool?),
            authKey: try #require(s.authKey), userID: try #require(s.userID), isBot: try #require(s.isBot as Bool?))
    }

    /// Lower-case hex of a session's key, for readable comparisons.
    static func keyHex(_ session: TelegramSession) -> String? {
        session.authKey.map { Hex.encode($0.bytes.copyBytes()) }
    }

    /// 256 random bytes that are not all zero.
    static func randomKey(using rng: inout some RandomNumberGenerator) throws -> AuthKey {
        var bytes = (0..<AuthKey.byteCount).map { _ in UInt8.random(in: 0...255, using: &rng) }
        bytes[0] |= 1
        return try AuthKey(bytes)
    }
}

/// SplitMix64: a tiny seeded generator, so every "random" test is reproducible.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
