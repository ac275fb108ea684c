// SPDX-License-Identifier: Apache-2.0

/// The content of one Telegram client session, independent of the format it came in.
///
/// Optional fields are absent when the source format does not carry them (a Telethon string has
/// no api_id, user id, bot flag or test mode; a legacy Pyrogram string has no api_id; only
/// Telethon and Kurigram carry a server address). Every 64-bit value is exact.
public struct TelegramSession: Sendable, Equatable {
    /// Data-center id (1–5 and 203 in production; 1–3 in test mode). Stored as read; the
    /// exporters validate it.
    public var dcID: Int
    /// Telegram application id, 0…2^32−1. `nil` for legacy imports; 0 means "unknown".
    public var apiID: Int64?
    /// Test-server flag. `nil` when the source does not say (Telethon).
    public var testMode: Bool?
    /// The auth key. `nil` when the source had none (an all-zero Telethon key, an empty blob).
    public var authKey: AuthKey?
    /// The account's own user id, 0…2^63−1.
    public var userID: Int64?
    /// Whether the account is a bot.
    public var isBot: Bool?
    /// Server IP address (Telethon, Kurigram v7).
    public var serverAddress: String?
    /// Server port (Telethon, Kurigram v7).
    public var port: Int?
    /// The session's `date` column (Unix time); 0 after a string import.
    public var date: Int64?

    public init(
        dcID: Int, apiID: Int64? = nil, testMode: Bool? = nil, authKey: AuthKey? = nil,
        userID: Int64? = nil, isBot: Bool? = nil, serverAddress: String? = nil, port: Int? = nil,
        date: Int64? = nil
    ) {
        self.dcID = dcID
        self.apiID = apiID
        self.testMode = testMode
        self.authKey = authKey
        self.userID = userID
        self.isBot = isBot
        self.serverAddress = serverAddress
        self.port = port
        self.date = date
    }
}

/// The kind of a cached peer, as the Pyrogram family names it in `peers.type`.
public enum PeerType: String, Sendable, CaseIterable, Codable {
    case user, bot, group, channel, supergroup, forum, direct, community

    /// The kind implied by a marked id alone (what Telethon knows): users are positive, basic
    /// groups are `-id`, channel-like chats are `-1000000000000 - id`.
    public static func inferred(fromMarkedID id: Int64) -> PeerType {
        if id >= 0 { return .user }
        if id > -1_000_000_000_000 { return .group }
        return .channel
    }
}

/// One entry of a session's peers cache.
public struct Peer: Sendable, Equatable {
    /// Marked id: users `+id`, basic groups `-id`, channels `-1000000000000 - id`.
    public var id: Int64
    /// Access hash (0 for basic groups).
    public var accessHash: Int64
    /// The kind; `nil` when the source did not record it (Telethon entities).
    public var type: PeerType?
    /// Lower-cased usernames; the first is the primary one.
    public var usernames: [String]
    /// Phone number as Telegram sends it (digits, no `+`).
    public var phoneNumber: String?
    /// Display name (Telethon `entities.name`).
    public var name: String?
    /// When the entry was last refreshed (Unix time), if known.
    public var lastUpdateOn: Int64?

    public init(
        id: Int64, accessHash: Int64, type: PeerType?, usernames: [String] = [],
        phoneNumber: String? = nil, name: String? = nil, lastUpdateOn: Int64? = nil
    ) {
        self.id = id
        self.accessHash = accessHash
        self.type = type
        self.usernames = usernames
        self.phoneNumber = phoneNumber
        self.name = name
        self.lastUpdateOn = lastUpdateOn
    }
}

/// Every format the vault recognises on import.
public enum SourceFormat: String, Sendable, CaseIterable, Codable {
    /// Pyrogram-family current string (362 chars, `>BI?256sQ?`).
    case pyrogramString = "pyrogram"
    /// Pyrogram 1.x string with a 32-bit user id (351 chars).
    case pyrogramLegacy32 = "pyrogram-legacy-32"
    /// Pyrogram 1.3–1.4 string with a 64-bit user id (356 chars).
    case pyrogramLegacy64 = "pyrogram-legacy-64"
    /// Telethon `StringSession` (353 chars IPv4, 369 IPv6).
    case telethonString = "telethon"
    /// Pyrogram 1.x `.session`, schema v2.
    case pyrogramFileV2 = "pyrogram-file-v2"
    /// Pyrogram 2.x / Hydrogram `.session`, schema v3.
    case pyrogramFileV3 = "pyrogram-file-v3"
    /// Pyrofork `.session`, schema v4.
    case pyroforkFileV4 = "pyrofork-file-v4"
    /// Kurigram ≤ 2.2.9 `.session`, schema v6.
    case kurigramFileV6 = "kurigram-file-v6"
    /// Kurigram ≥ 2.2.10 `.session`, schema v7.
    case kurigramFileV7 = "kurigram-file-v7"
    /// Telethon ≤ 1.42 `.session`, schema v7.
    case telethonFileV7 = "telethon-file-v7"
    /// Telethon ≥ 1.43 `.session`, schema v8.
    case telethonFileV8 = "telethon-file-v8"
}

/// Every format the vault can export.
public enum ExportFormat: String, Sendable, CaseIterable, Codable {
    /// Pyrogram current string (also right for Hydrogram, Kurigram, Pyrofork).
    case pyrogram
    /// Telethon `StringSession`.
    case telethon
    /// Pyrogram schema v3 `.session` (opened by every Pyrogram fork).
    case pyrogramFile = "pyrogram-file"
    /// Kurigram schema v7 `.session`.
    case kurigramFile = "kurigram-file"
    /// Telethon schema v7 `.session` (opened by old and new Telethon).
    case telethonFile = "telethon-file"

    /// What an export without a format gives a session imported as `source` (a ``SourceFormat``
    /// raw value): the session string of the library family that wrote it. Telethon strings and
    /// files export as `telethon`; every Pyrogram-family string and file (Pyrogram, Hydrogram,
    /// Pyrofork, Kurigram), and a source this version does not know, as `pyrogram`.
    public static func ownFamily(of source: String) -> ExportFormat {
        switch SourceFormat(rawValue: source) {
        case .telethonString, .telethonFileV7, .telethonFileV8: return .telethon
        case .pyrogramString, .pyrogramLegacy32, .pyrogramLegacy64, .pyrogramFileV2, .pyrogramFileV3, .pyroforkFileV4,
            .kurigramFileV6, .kurigramFileV7, nil:
            return .pyrogram
        }
    }

    /// True for the formats that are SQLite files rather than strings.
    public var isFile: Bool {
        switch self {
        case .pyrogram, .telethon: return false
        case .pyrogramFile, .kurigramFile, .telethonFile: return true
        }
    }
}

/// A session read from some format, with its peers cache.
public struct ImportedSession: Sendable, Equatable {
    public var session: TelegramSession
    public var peers: [Peer]
    public var format: SourceFormat
    /// The file's `update_state` rows (Kurigram, Pyrofork and Telethon files), as the file has them.
    public var updateStates: [UpdateState]

    public init(session: TelegramSession, peers: [Peer] = [], format: SourceFormat, updateStates: [UpdateState] = []) {
        self.session = session
        self.peers = peers
        self.format = format
        self.updateStates = updateStates
    }
}
