// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: `SessionFileReader.read(bytes:limits:)` on hostile SQLite images.
//
// Invariants (a violation aborts, so libFuzzer saves the input):
//  1. Any bytes give an `ImportedSession` or a `SessionFileError`; never a crash, a trap or an
//     ASan report (typed throws make "some other error" impossible to express).
//  2. When reading succeeds, writing the result with `SessionFileWriter.write(_:peers:as:)` to
//     each file format either fails with `.missingField`/`.invalidField` (the format cannot hold
//     it; docs/formats.md, "Conversions and exports") or produces a file that reads back with the same session fields and peers,
//     as far as that format keeps them (the lossy mappings documented on SessionFileWriter).
//     A writer `.io` failure or an unreadable written file is a bug.
// Seeds: Fuzz/Corpus/FuzzSessionFile (the vector files re-packed with 512-byte pages).
import VaultCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Fixed "now" for the writer so that defaults are predictable.
private let now: Int64 = 1_700_000_000
/// Tight bounds so a single input cannot take seconds (real files are tens of KiB).
private let limits = SessionFileReader.Limits(maxBytes: 1 << 20, maxRows: 2_000)

private func fail(_ message: String) -> Never {
    var text = "FuzzSessionFile invariant violated: \(message)\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    abort()
}

/// `PeerType.inferred`, with the fork-only kinds folded as pyrogram v3 stores them.
private func pyrogramV3Type(_ peer: Peer) -> PeerType {
    switch peer.type ?? .inferred(fromMarkedID: peer.id) {
    case .forum, .direct, .community: return .supergroup
    case let type: return type
    }
}

/// What reading back a file written as `format` from `original` must give.
private func expectedRoundTrip(_ original: ImportedSession, as format: ExportFormat) -> (
    session: TelegramSession, peers: [Peer], format: SourceFormat, checkAddress: Bool, checkTestMode: Bool
) {
    let s = original.session
    var out = TelegramSession(dcID: s.dcID)
    out.authKey = s.authKey
    var peers: [Peer] = []
    switch format {
    case .pyrogramFile, .kurigramFile:
        out.apiID = s.apiID
        out.testMode = s.testMode
        out.userID = s.userID
        out.isBot = s.isBot
        out.date = s.date ?? now
        let kurigram = format == .kurigramFile
        if kurigram {
            out.serverAddress = s.serverAddress
            out.port = s.port
        }
        for p in original.peers {
            peers.append(
                Peer(
                    id: p.id, accessHash: p.accessHash,
                    type: kurigram ? (p.type ?? .inferred(fromMarkedID: p.id)) : pyrogramV3Type(p),
                    usernames: kurigram ? p.usernames : Array(p.usernames.prefix(1)),
                    phoneNumber: p.phoneNumber, name: nil, lastUpdateOn: p.lastUpdateOn ?? now))
        }
        // kurigram derives the address from the DC table when the session has none.
        return (out, peers, kurigram ? .kurigramFileV7 : .pyrogramFileV3, kurigram && s.serverAddress != nil, true)
    default:  // .telethonFile
        out.userID = s.userID
        out.serverAddress = s.serverAddress
        out.port = s.port
        for p in original.peers {
            peers.append(
                Peer(
                    id: p.id, accessHash: p.accessHash, type: nil, usernames: Array(p.usernames.prefix(1)),
                    phoneNumber: p.phoneNumber, name: p.name, lastUpdateOn: p.lastUpdateOn ?? now))
        }
        // Telethon stores no test flag: it is re-derived from the address, which matches the
        // original flag only when the writer derived the address from that flag.
        out.testMode = s.testMode
        return (out, peers, .telethonFileV7, s.serverAddress != nil, s.serverAddress == nil)
    }
}

private func describe(_ p: Peer) -> String {
    "Peer(id: \(p.id), hash: \(p.accessHash), type: \(p.type?.rawValue ?? "nil"), usernames: \(p.usernames), "
        + "phone: \(p.phoneNumber.map { "\(Array($0.utf8))" } ?? "nil"), "
        + "name: \(p.name.map { "\(Array($0.utf8))" } ?? "nil"), lastUpdateOn: \(p.lastUpdateOn.map(String.init) ?? "nil"))"
}

private func checkRoundTrip(_ original: ImportedSession, as format: ExportFormat) {
    let written: [UInt8]
    do {
        written = try SessionFileWriter.write(original.session, peers: original.peers, as: format, now: now)
    } catch .missingField, .invalidField {
        return  // the format cannot hold this session: documented refusal
    } catch {
        fail("writing \(original.format.rawValue) as \(format.rawValue) threw \(error)")
    }
    let back: ImportedSession
    do {
        back = try SessionFileReader.read(bytes: written, limits: SessionFileReader.Limits())
    } catch {
        fail("the \(format.rawValue) file written from a \(original.format.rawValue) file does not read back: \(error)")
    }
    let want = expectedRoundTrip(original, as: format)
    let got = back.session
    let w = want.session
    let what = "\(original.format.rawValue) → \(format.rawValue) → read"
    guard back.format == want.format else { fail("\(what): format \(back.format.rawValue)") }
    guard got.dcID == w.dcID else { fail("\(what): dc_id \(got.dcID) != \(w.dcID)") }
    guard got.authKey == w.authKey else { fail("\(what): auth_key differs") }
    guard got.apiID == w.apiID else { fail("\(what): api_id \(String(describing: got.apiID)) != \(String(describing: w.apiID))") }
    guard got.userID == w.userID else { fail("\(what): user_id \(String(describing: got.userID)) != \(String(describing: w.userID))") }
    guard got.isBot == w.isBot else { fail("\(what): is_bot differs") }
    guard got.date == w.date else { fail("\(what): date \(String(describing: got.date)) != \(String(describing: w.date))") }
    if want.checkTestMode {
        guard got.testMode == w.testMode else {
            fail("\(what): test_mode \(String(describing: got.testMode)) != \(String(describing: w.testMode))")
        }
    }
    if want.checkAddress {
        guard got.serverAddress == w.serverAddress, got.port == w.port else {
            fail("\(what): address \(String(describing: got.serverAddress.map { Array($0.utf8) })):\(String(describing: got.port)) "
                + "!= \(String(describing: w.serverAddress.map { Array($0.utf8) })):\(String(describing: w.port))")
        }
    } else if format == .pyrogramFile {
        guard got.serverAddress == nil, got.port == nil else { fail("\(what): pyrogram v3 file has an address") }
    }
    guard back.peers.count == want.peers.count else {
        fail("\(what): \(back.peers.count) peers != \(want.peers.count)")
    }
    for (g, e) in zip(back.peers, want.peers) where g != e {
        // Documented lossy mapping: Telethon's INTEGER `phone` column may drop a phone that SQLite
        // would rewrite ("07…", "1e3"), but must never carry a different one.
        if format == .telethonFile, g.phoneNumber == nil {
            var relaxed = e
            relaxed.phoneNumber = nil
            if g == relaxed { continue }
        }
        fail("\(what): peer differs:\n  got      \(describe(g))\n  expected \(describe(e))")
    }
}

/// libFuzzer entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafeRawPointer, _ size: Int) -> CInt {
    let input = Array(UnsafeRawBufferPointer(start: data, count: size))
    let imported: ImportedSession
    do {
        imported = try SessionFileReader.read(bytes: input, limits: limits)
    } catch {
        // Every SessionFileError is an acceptable answer to hostile bytes; `description` must
        // still be computable (it is what the API returns to clients).
        _ = error.description
        return 0
    }
    // A second read of the same bytes must agree (the reader works on a private copy).
    guard (try? SessionFileReader.read(bytes: input, limits: limits)) == imported else {
        fail("reading the same bytes twice gave different results")
    }
    for format in [ExportFormat.pyrogramFile, .kurigramFile, .telethonFile] {
        checkRoundTrip(imported, as: format)
    }
    return 0
}
