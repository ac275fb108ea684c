// SPDX-License-Identifier: Apache-2.0

/// A session's update state rows (see ``UpdateState``), part of the session aggregate: they are
/// deleted with its peers when the session is revoked.
public protocol UpdateStateRepository: Sendable {
    /// Every update state row of a session, ordered by id.
    /// - Throws: ``StorageError/notFound`` when the session does not exist.
    func updateStates(in session: SessionName) throws(StorageError) -> [UpdateState]

    /// Inserts or replaces rows (by id) of a live session, in one transaction.
    /// - Returns: the number of rows the session holds afterwards.
    /// - Throws: ``StorageError/notFound``; ``StorageError/revoked``.
    func upsertUpdateStates(_ states: [UpdateState], in session: SessionName) throws(StorageError) -> Int

    /// Deletes the row `id` of a live session.
    /// - Returns: whether a row was deleted.
    /// - Throws: ``StorageError/notFound``; ``StorageError/revoked``.
    func deleteUpdateState(id: Int64, in session: SessionName) throws(StorageError) -> Bool
}
