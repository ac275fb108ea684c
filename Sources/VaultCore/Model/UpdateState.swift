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
