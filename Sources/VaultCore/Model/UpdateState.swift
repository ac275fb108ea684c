// SPDX-License-Identifier: Apache-2.0

/// One row of a client library's update state: where the account (`id` 0) or a channel (any
/// other `id`) stopped receiving updates, so that a restarted client can ask Telegram for what
/// it missed (`updates.getDifference`, `updates.getChannelDifference`).
///
/// Kurigram, Pyrofork and Telethon keep these rows in an `update_state` table, each with its own
/// id convention for channels (Telethon: the bare channel id; Kurigram: the marked id). The vault
/// stores what the library gave and converts nothing; every counter may be unknown (`nil`), as
/// the libraries' own columns allow.
public struct UpdateState: Sendable, Equatable {
    /// 0 for the account's own state, otherwise the channel, in the writing library's convention.
    public var id: Int64
    /// Persistent timestamp of the event sequence.
    public var pts: Int64?
    /// Secret-chat event sequence.
    public var qts: Int64?
    /// Date (Unix seconds) of the last received update.
    public var date: Int64?
    /// Sequence number of the last received update group.
    public var seq: Int64?

    public init(id: Int64, pts: Int64?, qts: Int64?, date: Int64?, seq: Int64?) {
        self.id = id
        self.pts = pts
        self.qts = qts
        self.date = date
        self.seq = seq
    }
}

/// The two ways the libraries write a channel's id in `update_state` (docs/formats.md, "Update
/// state"): Kurigram and Pyrofork use the *marked* id (−1000000000000 − channel id, as the
/// Bot API does), Telethon the *bare* channel id (positive). The sign tells them apart, so a row
/// written by one library can be exported into the other's file.
public enum UpdateStateIDs {
    /// Offset of marked channel ids.
    static let channelOffset: Int64 = 1_000_000_000_000

    /// The marked id of a channel given in either convention; nil when `id` is neither.
    public static func marked(_ id: Int64) -> Int64? {
        if id > 0, id <= Int64.max - channelOffset { return -(channelOffset + id) }
        if id < -channelOffset { return id }
        return nil
    }

    /// The bare (positive) id of a channel given in either convention; nil when `id` is neither.
    public static func bare(_ id: Int64) -> Int64? {
        if id > 0 { return id }
        if id < -channelOffset, id > Int64.min + channelOffset { return -id - channelOffset }
        return nil
    }
}
