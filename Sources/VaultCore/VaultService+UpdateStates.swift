// SPDX-License-Identifier: Apache-2.0
import Primitives

// The update state of a session (what a client library needs to catch up on missed updates),
// and a new auth key handed to a client: the storage-engine use cases of VaultService.

extension VaultService {
    /// Most rows one write may carry.
    public static let maxUpdateStatesPerWrite = 1000

    /// Every update state row of a session (also of a tombstone: none remain after a revoke).
    /// - Throws: ``VaultError/notFound``.
    public func updateStates(in name: SessionName) throws(VaultError) -> [UpdateState] {
        do { return try store.updateStates(in: name) } catch { throw VaultError(error) }
    }

    /// Upserts update state rows (by id) of a live session.
    /// - Returns: the number of rows the session holds afterwards.
    /// - Throws: ``VaultError/revoked``, ``VaultError/notFound``, ``VaultError/invalid(field:reason:)``.
    public func upsertUpdateStates(_ states: [UpdateState], in name: SessionName, context: RequestContext) throws(VaultError) -> Int {
        guard !states.isEmpty, states.count <= Self.maxUpdateStatesPerWrite else {
            throw .invalid(field: "states", reason: "give 1 to \(Self.maxUpdateStatesPerWrite) rows")
        }
        do {
            let count = try store.upsertUpdateStates(states, in: name)
            audit("state.upsert", name.rawValue, context, outcome: "ok", detail: String(states.count))
            return count
        } catch {
            throw VaultError(error)
        }
    }

    /// Deletes one update state row of a live session.
    /// - Returns: whether it existed.
    /// - Throws: ``VaultError/revoked``, ``VaultError/notFound``.
    public func deleteUpdateState(id: Int64, in name: SessionName, context: RequestContext) throws(VaultError) -> Bool {
        do {
            let deleted = try store.deleteUpdateState(id: id, in: name)
            audit("state.delete", name.rawValue, context, outcome: deleted ? "ok" : "absent", detail: String(id))
            return deleted
        } catch {
            throw VaultError(error)
        }
    }

    /// Seals `key` for the session's row and stores it with the other changes in `session`, as one
    /// compare-and-set on `expectedVersion`. The old envelope's bytes are destroyed (secure delete,
    /// then the WAL is checkpointed, as for a revoke).
    func replaceKey(_ session: StoredSession, with key: AuthKey, expectedVersion: Int64,
                    context: RequestContext) throws(VaultError) -> StoredSession {
        guard !key.isAllZero else { throw .invalid(field: "auth_key", reason: "an all-zero key is not a usable auth key") }
        let keyring = try keyring()
        var session = session
        do {
            session.sealedAuthKey = try keyring.seal(key.bytes, context: Self.authKeyContext(session.id))
        } catch {
            throw .integrity
        }
        session.sealedKeyTerm = keyring.currentTerm
        session.authKeyID = key.id
        do {
            var updated = try store.updateReplacingKey(session, expectedVersion: expectedVersion)
            audit("session.update", session.name.rawValue, context, outcome: "ok", detail: "auth_key")
            withNotedExportTime(&updated)
            return updated
        } catch {
            throw VaultError(error)
        }
    }
}
