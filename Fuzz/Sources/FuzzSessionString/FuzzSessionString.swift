// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: session-string decoding and encoding (`SessionStringCodec`,
// `PyrogramSessionString`, `TelethonSessionString`).
//
// Invariants (a violation aborts, so libFuzzer saves the input):
//  1. Any text decodes to an `ImportedSession` or throws a `CodecError`; never a crash.
//  2. `detect(text)` agrees with the format `decode` reports, and the format-specific decoder
//     returns the same session as the generic one.
//  3. Canonical input is reproduced: a current-layout Pyrogram string in the URL-safe alphabet,
//     unpadded, with 0/1 flag bytes, re-encodes to exactly the input; so does a Telethon string
//     in the URL-safe alphabet with a non-zero key.
//  4. decode(encode(x)) == x for every decoded x (legacy layouts re-encode as current with
//     api_id 0), and encode is a fixed point after one round.
//  5. The export policy (`SessionStringCodec.encode`) either refuses with `.missingFields` /
//     `.fieldOutOfRange` or produces a string that decodes to the same key, DC and account.
// Seeds: Fuzz/Corpus/FuzzSessionString (the vector strings, valid and invalid).
import VaultCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

private func fail(_ message: String) -> Never {
    var text = "FuzzSessionString invariant violated: \(message)\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    abort()
}

/// Value of a base64 digit in either alphabet (the decoder accepts both), nil otherwise.
private func digitValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "A")...UInt8(ascii: "Z"): return c - UInt8(ascii: "A")
    case UInt8(ascii: "a")...UInt8(ascii: "z"): return c - UInt8(ascii: "a") + 26
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0") + 52
    case UInt8(ascii: "-"), UInt8(ascii: "+"): return 62
    case UInt8(ascii: "_"), UInt8(ascii: "/"): return 63
    default: return nil
    }
}

/// Independent base64 decoding of unpadded digits (the harness's own, to judge canonicality).
private func decodeDigits(_ digits: ArraySlice<UInt8>) -> [UInt8]? {
    var out: [UInt8] = []
    var acc: UInt32 = 0
    var bits = 0
    for c in digits {
        guard let v = digitValue(c) else { return nil }
        acc = acc << 6 | UInt32(v)
        bits += 6
        if bits >= 8 {
            bits -= 8
            out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
        }
    }
    return out
}

private let urlSafe = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8))

/// True when `text` is exactly what the libraries' exporters write for its payload.
private func isCanonical(_ utf8: [UInt8], _ imported: ImportedSession) -> Bool {
    switch imported.format {
    case .pyrogramString:
        guard utf8.count == 362, utf8.allSatisfy(urlSafe.contains), let raw = decodeDigits(utf8[...]),
            raw.count == 271
        else { return false }
        return raw[5] <= 1 && raw[270] <= 1  // test_mode and is_bot written as 0/1
    case .telethonString:
        guard imported.session.authKey != nil, utf8.last == UInt8(ascii: "="),
            utf8.dropFirst().dropLast().allSatisfy(urlSafe.contains)
        else { return false }
        return true
    default:
        return false  // legacy layouts: the encoder only writes the current one
    }
}

/// Faithful re-encoding in the same family (`nil` when the session cannot be encoded at all:
/// a Telethon string without a key).
private func reencode(_ imported: ImportedSession) -> String? {
    let s = imported.session
    do {
        switch imported.format {
        case .pyrogramString, .pyrogramLegacy32, .pyrogramLegacy64:
            guard let key = s.authKey, let testMode = s.testMode, let userID = s.userID, let isBot = s.isBot else {
                fail("a decoded Pyrogram string lacks a field: \(imported.format.rawValue)")
            }
            return try PyrogramSessionString.encode(
                dcID: s.dcID, apiID: s.apiID ?? 0, testMode: testMode, authKey: key, userID: userID, isBot: isBot)
        case .telethonString:
            guard let key = s.authKey else { return nil }
            guard let address = s.serverAddress, let port = s.port else {
                fail("a decoded Telethon string lacks its address")
            }
            return try TelethonSessionString.encode(dcID: s.dcID, serverAddress: address, port: port, authKey: key)
        default:
            fail("decode reported a file format \(imported.format.rawValue)")
        }
    } catch {
        fail("re-encoding a decoded \(imported.format.rawValue) string threw \(error)")
    }
}

/// What decoding the re-encoded string must give.
private func expectedAfterReencode(_ imported: ImportedSession) -> ImportedSession {
    var want = imported
    if imported.format == .pyrogramLegacy32 || imported.format == .pyrogramLegacy64 {
        want.format = .pyrogramString
        want.session.apiID = 0
    }
    return want
}

private func decodeOrFail(_ text: String, what: String) -> ImportedSession {
    do {
        return try SessionStringCodec.decode(text)
    } catch {
        fail("\(what) does not decode: \(error)")
    }
}

private func checkPolicyExport(_ imported: ImportedSession, as format: ExportFormat) {
    let s = imported.session
    let text: String
    do {
        text = try SessionStringCodec.encode(s, as: format)
    } catch .missingFields, .fieldOutOfRange {
        return
    } catch {
        fail("policy export of \(imported.format.rawValue) as \(format.rawValue) threw \(error)")
    }
    let back = decodeOrFail(text, what: "policy export of \(imported.format.rawValue) as \(format.rawValue)")
    let b = back.session
    let what = "\(imported.format.rawValue) → \(format.rawValue) → decode"
    guard b.dcID == s.dcID, b.authKey == s.authKey else { fail("\(what): dc_id or auth_key differs") }
    switch format {
    case .pyrogram:
        guard back.format == .pyrogramString else { fail("\(what): format \(back.format.rawValue)") }
        if let apiID = s.apiID { guard b.apiID == apiID else { fail("\(what): api_id differs") } }
        if let userID = s.userID { guard b.userID == userID else { fail("\(what): user_id differs") } }
        if let isBot = s.isBot { guard b.isBot == isBot else { fail("\(what): is_bot differs") } }
        if let testMode = s.testMode { guard b.testMode == testMode else { fail("\(what): test_mode differs") } }
    default:
        guard back.format == .telethonString else { fail("\(what): format \(back.format.rawValue)") }
        if let address = s.serverAddress {
            guard b.serverAddress == address else {
                fail("\(what): server_address \(String(describing: b.serverAddress)) != \(address)")
            }
        }
        if let port = s.port { guard b.port == port else { fail("\(what): port differs") } }
    }
}

/// libFuzzer entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafeRawPointer, _ size: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: data, count: size))
    let text = String(decoding: bytes, as: UTF8.self)
    let utf8 = Array(text.utf8)
    let imported: ImportedSession
    do {
        imported = try SessionStringCodec.decode(text)
    } catch {
        _ = error.description
        _ = error.field
        return 0
    }
    // Invariant 2: shape detection and the specific decoders agree with the generic decoder.
    guard SessionStringCodec.detect(text) == imported.format else {
        fail("detect says \(String(describing: SessionStringCodec.detect(text))), decode says \(imported.format.rawValue)")
    }
    let specific: ImportedSession?
    if imported.format == .telethonString {
        specific = try? TelethonSessionString.decode(text)
    } else {
        specific = try? PyrogramSessionString.decode(text)
    }
    guard specific == imported else { fail("the format-specific decoder disagrees") }

    // Invariants 3 and 4.
    if let encoded = reencode(imported) {
        if isCanonical(utf8, imported), encoded != text {
            fail("canonical \(imported.format.rawValue) string (\(utf8.count) chars) re-encodes differently")
        }
        let again = decodeOrFail(encoded, what: "re-encoded \(imported.format.rawValue) string")
        guard again == expectedAfterReencode(imported) else {
            fail("decode(encode(x)) != x for \(imported.format.rawValue)")
        }
        guard reencode(again) == encoded else { fail("encode is not a fixed point") }
    }
    // Invariant 5.
    checkPolicyExport(imported, as: .pyrogram)
    checkPolicyExport(imported, as: .telethon)
    return 0
}
