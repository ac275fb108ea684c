// SPDX-License-Identifier: Apache-2.0

/// Telethon `StringSession` strings (docs/formats.md, "Telethon session strings").
///
/// Text = version character `1` + URL-safe base64 **with** padding of `>B{4|16}sH256s`:
/// `dc_id` (u8) · packed IP address (4 or 16 bytes) · `port` (u16 BE) · `auth_key` (256 bytes).
///
/// | address | bytes | characters |
/// |---|---|---|
/// | IPv4 | 263 | 353 (one `=`) |
/// | IPv6 | 275 | 369 (one `=`) |
///
/// Decoding accepts exactly those two lengths, with the one `=` the encoder writes (Telethon
/// itself fails on a string whose `=` was stripped), and — like Telethon's
/// `urlsafe_b64decode` — the standard alphabet (`+` `/`) as well as the URL-safe one. Whitespace,
/// non-ASCII and other characters are refused with their position, exactly as for Pyrogram
/// strings. An all-zero key means "no key" in Telethon and decodes to `authKey: nil`. `dc_id`
/// 0 and port 0 are refused (not connectable); other values are kept as read. The address is
/// rendered like Python's `ipaddress(...).compressed` (``IPAddressText``).
///
/// Not in the string, so `nil` after import: api_id, user id, bot flag, test mode, date.
public enum TelethonSessionString {
    /// The version character every Telethon 1.x string starts with.
    public static let version = UInt8(ascii: "1")
    /// Length of a string carrying an IPv4 address.
    public static let ipv4Length = 353
    /// Length of a string carrying an IPv6 address.
    public static let ipv6Length = 369

    /// Decoded payload length for a 4- or 16-byte address.
    static func byteCount(addressSize: Int) -> Int { 1 + addressSize + 2 + AuthKey.byteCount }

    /// Decodes a Telethon string.
    /// - Throws: ``CodecError/tooLong(max:)``, ``CodecError/nonASCII(position:)``,
    ///   ``CodecError/whitespace(position:)``, ``CodecError/invalidCharacter(position:)``,
    ///   ``CodecError/unsupportedVersion``, ``CodecError/invalidLength(_:expected:)``,
    ///   ``CodecError/invalidPadding``, ``CodecError/nonCanonicalEncoding``, or
    ///   ``CodecError/fieldOutOfRange(field:reason:)`` for `dc_id`/`port` 0.
    public static func decode(_ text: String) throws(CodecError) -> ImportedSession {
        try Base64.withUTF8(of: text, maxLength: SessionStringCodec.maxInputLength) {
            (utf8) throws(CodecError) -> ImportedSession in
            let shape = try Base64.scan(utf8)
            guard let first = utf8.first else {
                throw .invalidLength(0, expected: "353 or 369 characters")
            }
            guard first == version else { throw .unsupportedVersion }
            let addressSize: Int
            switch utf8.count {
            case ipv4Length: addressSize = 4
            case ipv6Length: addressSize = 16
            default: throw .invalidLength(utf8.count, expected: "353 or 369 characters")
            }
            // 263 and 275 bytes are both 2 mod 3, so the encoder always writes exactly one `=`.
            guard shape.paddingCount == 1 else { throw .invalidPadding }
            let digits = UnsafeBufferPointer(rebasing: utf8[1..<shape.digitCount])
            let payload = try Base64.decodeSecret(digits, byteCount: byteCount(addressSize: addressSize))
            return try payload.withUnsafeBytes { (raw) throws(CodecError) -> ImportedSession in
                try parse(raw, addressSize: addressSize)
            }
        }
    }

    private static func parse(_ raw: UnsafeRawBufferPointer, addressSize: Int) throws(CodecError) -> ImportedSession {
        var reader = ByteReader(raw)
        let dcID = try reader.readUInt8()
        let addressBytes = try reader.readBytes(addressSize)
        let port = try reader.readUInt16()
        let keyBytes = try reader.readBytes(AuthKey.byteCount)
        guard reader.isAtEnd else {
            throw .invalidLength(raw.count, expected: "\(byteCount(addressSize: addressSize)) bytes")
        }
        guard dcID != 0 else { throw .fieldOutOfRange(field: "dc_id", reason: "0 is not a data center") }
        guard port != 0 else { throw .fieldOutOfRange(field: "port", reason: "0 is not a valid port") }
        let address =
            addressSize == 4 ? IPAddressText.formatIPv4(addressBytes) : IPAddressText.formatIPv6(addressBytes)
        guard let address else {
            throw .fieldOutOfRange(field: "server_address", reason: "not a 4- or 16-byte address")
        }
        // Telethon: a 256-byte all-zero key is "no key" (docs/formats.md, "Telethon session strings").
        let authKey: AuthKey? =
            if keyBytes.contains(where: { $0 != 0 }) { try AuthKey.copying(keyBytes) } else { nil }
        let session = TelegramSession(
            dcID: Int(dcID), authKey: authKey, serverAddress: address, port: Int(port))
        return ImportedSession(session: session, format: .telethonString)
    }

    /// Encodes exactly as Telethon's `StringSession.save()`: `1` + URL-safe base64 with padding.
    /// IPv4 or IPv6 is chosen by the address text, which must be a strict dotted quad or IPv6
    /// text (``IPAddressText``).
    ///
    /// Faithful: checks only that each value fits its `struct` field. The export policy is
    /// ``SessionStringCodec/encode(_:as:overrides:)``.
    /// - Throws: ``CodecError/fieldOutOfRange(field:reason:)`` naming `dc_id` (0…255),
    ///   `server_address` (not an IP address) or `port` (0…65535).
    public static func encode(
        dcID: Int, serverAddress: String, port: Int, authKey: AuthKey
    ) throws(CodecError) -> String {
        guard let dc = UInt8(exactly: dcID) else {
            throw .fieldOutOfRange(field: "dc_id", reason: "must fit one byte (0…255)")
        }
        guard let address = IPAddressText.parseIPv4(serverAddress) ?? IPAddressText.parseIPv6(serverAddress) else {
            throw .fieldOutOfRange(field: "server_address", reason: "not an IPv4 or IPv6 address")
        }
        guard let port16 = UInt16(exactly: port) else {
            throw .fieldOutOfRange(field: "port", reason: "must be 0…65535")
        }
        var writer = ByteWriter(capacity: byteCount(addressSize: address.count))
        defer { writer.wipe() }
        writer.write(dc)
        writer.write(contentsOf: address)
        writer.writeBigEndian(port16)
        authKey.bytes.withUnsafeBytes { writer.write(contentsOf: $0) }
        return "1" + writer.bytes.withUnsafeBytes { Base64.encode($0, alphabet: .urlSafe, padded: true) }
    }
}
