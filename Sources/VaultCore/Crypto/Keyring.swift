// SPDX-License-Identifier: Apache-2.0
import Primitives
internal import Synchronization
#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// One data key of the keyring as it is persisted: sealed by the master key.
///
/// `sealedKey` is an ``Envelope`` (term = `term`) of the 32-byte data key under the master
/// key, with context `keyring / <term> / data_key` (see ``CipherContext``), so a sealed key
/// moved to another term number fails to open. The storage layer stores these three values
/// verbatim; nothing in them is secret without the master key.
public struct SealedTerm: Sendable, Equatable, CustomStringConvertible {
    /// Term number, 1, 2, 3, …
    public let term: UInt32
    /// Creation time, Unix seconds.
    public let createdAt: Int64
    /// The data key, sealed by the master key (65 bytes).
    public let sealedKey: [UInt8]

    /// Reassembles a persisted term.
    public init(term: UInt32, createdAt: Int64, sealedKey: [UInt8]) {
        self.term = term
        self.createdAt = createdAt
        self.sealedKey = sealedKey
    }

    public var description: String {
        "SealedTerm(term: \(term), createdAt: \(createdAt), \(sealedKey.count) sealed bytes)"
    }
}

/// Non-secret metadata about one key term, for `/v1/sys/status` and metrics.
public struct KeyTerm: Sendable, Hashable, CustomStringConvertible {
    /// Term number.
    public let term: UInt32
    /// Creation time, Unix seconds.
    public let createdAt: Int64

    /// Metadata for term `term`.
    public init(term: UInt32, createdAt: Int64) {
        self.term = term
        self.createdAt = createdAt
    }

    public var description: String { "KeyTerm(term: \(term), createdAt: \(createdAt))" }
}

/// The vault's data keys ("terms") and the master key that seals them: the two-level barrier
/// of docs/architecture.md, "Keys".
///
/// Every secret value is sealed as an ``Envelope`` under the *current* (highest) term; older
/// terms stay to open what they sealed until ``rewrap(_:context:to:)`` moves it forward.
/// ``rotate(createdAt:)`` adds a term, ``rekey(newMaster:)`` re-seals all terms under a new
/// master key without changing any data key, so no stored value needs rewriting.
///
/// Persistence belongs to the storage layer: the methods that change the keyring return the
/// ``SealedTerm`` values to store. Write them before sealing anything that depends on them
/// (see ``prepareRotation(createdAt:)``), and if writing fails, reload the keyring from storage
/// with ``unseal(_:master:)``.
///
/// Thread safety: all state sits in one `Locked`; sealing and opening hold it only long enough
/// to pick a key (a reference to immutable ``SecretBytes``), then run AES-GCM outside it.
public final class Keyring: Sendable, CustomStringConvertible {
    private struct State {
        var master: MasterKey
        var keys: [UInt32: SecretBytes]
        var createdAt: [UInt32: Int64]
        var current: UInt32
        /// Always `keys[current]`; kept alongside so the hot path needs no lookup.
        var currentKey: SecretBytes
    }

    private let state: Locked<State>

    /// Hashes API tokens; keyed from the keyring (see ``TokenHasher``).
    public let tokenHasher: TokenHasher

    private init(master: MasterKey, keys: [UInt32: SecretBytes], createdAt: [UInt32: Int64]) throws(CryptoError) {
        guard let current = keys.keys.max(), let currentKey = keys[current],
            let root = keys.keys.min(), let rootKey = keys[root]
        else {
            throw .invalidKeyring(reason: "no key terms")
        }
        // The token-hash key must survive rotation (old terms stay) and rekey (data keys do
        // not change), so it is derived from the oldest data key; HKDF's info label keeps it
        // independent of that key's use for AES-GCM (RFC 5869 §3.2).
        let tokenKey = try HKDF.sha256(
            key: rootKey, salt: Array("session-vault".utf8), info: Array("api-token-hash/v1".utf8),
            count: 32)
        tokenHasher = try TokenHasher(key: tokenKey)
        state = Locked(
            State(master: master, keys: keys, createdAt: createdAt, current: current, currentKey: currentKey))
    }

    // MARK: Creating and loading

    /// A new keyring with term 1, for a vault with an empty database.
    /// - Parameter createdAt: Unix seconds; `nil` means now.
    /// - Returns: the keyring and the term to persist.
    /// - Throws: ``CryptoError/randomFailure`` (or a backend failure).
    public static func create(
        master: MasterKey, createdAt: Int64? = nil
    ) throws(CryptoError) -> (Keyring, [SealedTerm]) {
        let time = createdAt ?? unixNow()
        let key = try SecureRandom.secret(count: AESGCM.keyByteCount)
        let sealed = try seal(dataKey: key, term: 1, createdAt: time, master: master)
        let keyring = try Keyring(master: master, keys: [1: key], createdAt: [1: time])
        return (keyring, [sealed])
    }

    /// Opens the persisted keyring with `master`. All or nothing: if any term fails to open,
    /// no keyring is returned.
    /// - Throws: ``CryptoError/sealed`` when the master key is wrong (or a sealed key was
    ///   altered; the two are indistinguishable by design); ``CryptoError/invalidKeyring(reason:)``
    ///   when `sealed` is empty or has zero or duplicate term numbers.
    public static func unseal(_ sealed: [SealedTerm], master: MasterKey) throws(CryptoError) -> Keyring {
        guard !sealed.isEmpty else { throw .invalidKeyring(reason: "no key terms stored") }
        var keys: [UInt32: SecretBytes] = [:]
        var created: [UInt32: Int64] = [:]
        for entry in sealed {
            guard entry.term > 0 else { throw .invalidKeyring(reason: "term number 0 is not valid") }
            guard keys[entry.term] == nil else {
                throw .invalidKeyring(reason: "term \(entry.term) is stored twice")
            }
            let key: SecretBytes
            do {
                key = try Envelope.open(entry.sealedKey, key: master.secret, context: .keyring(term: entry.term))
            } catch {
                throw .sealed
            }
            guard key.count == AESGCM.keyByteCount else {
                throw .invalidKeyring(reason: "term \(entry.term) holds a key of the wrong size")
            }
            keys[entry.term] = key
            created[entry.term] = entry.createdAt
        }
        return try Keyring(master: master, keys: keys, createdAt: created)
    }

    /// The persisted keyring `sealed` opened with this keyring's master key (after another
    /// process changed the stored keyring).
    /// - Throws: as ``unseal(_:master:)``: ``CryptoError/sealed`` when it was re-sealed under
    ///   another master key.
    public func reopened(_ sealed: [SealedTerm]) throws(CryptoError) -> Keyring {
        try Self.unseal(sealed, master: state.withLock { $0.master })
    }

    // MARK: Metadata

    /// The term new values are sealed under (the highest).
    public var currentTerm: UInt32 { state.withLock { $0.current } }

    /// Every term, oldest first. No key material.
    public var terms: [KeyTerm] {
        state.withLock { s in
            s.createdAt.map { KeyTerm(term: $0.key, createdAt: $0.value) }.sorted { $0.term < $1.term }
        }
    }

    /// True when `master` is the key this keyring is sealed under (constant-time).
    public func isSealed(by master: MasterKey) -> Bool {
        state.withLock { $0.master }.matches(master)
    }

    // MARK: Sealing and opening values

    /// Seals a secret under the current term, bound to `context`.
    /// - Returns: the ``Envelope`` bytes to store.
    /// - Throws: ``CryptoError/randomFailure`` (or a backend failure).
    public func seal(_ plaintext: SecretBytes, context: CipherContext) throws(CryptoError) -> [UInt8] {
        let (term, key) = currentKey()
        return try Envelope.seal(plaintext, key: key, term: term, context: context)
    }

    /// Seals bytes held in an array (the caller should wipe its copy) under the current term.
    /// - Throws: as the ``SecretBytes`` variant.
    public func seal(_ plaintext: [UInt8], context: CipherContext) throws(CryptoError) -> [UInt8] {
        let (term, key) = currentKey()
        return try Envelope.seal(plaintext, key: key, term: term, context: context)
    }

    /// Opens an envelope with the term named in its header.
    /// - Throws: ``CryptoError/authenticationFailed`` for every failure, including an unknown
    ///   term, a wrong context, truncation or any altered byte.
    public func open(_ envelope: [UInt8], context: CipherContext) throws(CryptoError) -> SecretBytes {
        guard let term = Envelope.term(of: envelope), let key = state.withLock({ $0.keys[term] }) else {
            throw .authenticationFailed
        }
        return try Envelope.open(envelope, key: key, context: context)
    }

    /// True when the term named in `envelope`'s header is one of this keyring's (false for an
    /// unknown term, or bytes that are no envelope).
    public func hasTerm(of envelope: [UInt8]) -> Bool {
        guard let term = Envelope.term(of: envelope) else { return false }
        return state.withLock { $0.keys[term] != nil }
    }

    /// True when `envelope` was not sealed under the current term and should be rewrapped.
    /// Also true for bytes that are not a version-1 envelope at all, so that a rewrap sweep
    /// surfaces them (its ``rewrap(_:context:to:)`` then fails) instead of skipping them.
    public func needsRewrap(_ envelope: [UInt8]) -> Bool {
        Envelope.term(of: envelope) != currentTerm
    }

    /// Opens `envelope` and seals it again under the current term, with a fresh nonce;
    /// optionally bound to a new context (a value that moves to another row).
    /// - Throws: ``CryptoError/authenticationFailed`` if it does not open.
    public func rewrap(
        _ envelope: [UInt8], context: CipherContext, to newContext: CipherContext? = nil
    ) throws(CryptoError) -> [UInt8] {
        let plaintext = try open(envelope, context: context)
        return try seal(plaintext, context: newContext ?? context)
    }

    // MARK: Rotation and rekey

    /// Adds a new random term, makes it current at once and returns it for persisting.
    ///
    /// Values sealed from now on need this term. If there are concurrent writers and storing
    /// the term may fail, use ``prepareRotation(createdAt:)`` + ``activate(_:)`` instead.
    /// - Throws: ``CryptoError/randomFailure``; ``CryptoError/invalidKeyring(reason:)`` when
    ///   the term numbers are exhausted.
    public func rotate(createdAt: Int64? = nil) throws(CryptoError) -> SealedTerm {
        let time = createdAt ?? Self.unixNow()
        return try state.withLock { (s) throws(CryptoError) in
            let term = try Self.nextTerm(after: s.current)
            let key = try SecureRandom.secret(count: AESGCM.keyByteCount)
            let sealed = try Self.seal(dataKey: key, term: term, createdAt: time, master: s.master)
            s.keys[term] = key
            s.createdAt[term] = time
            s.current = term
            s.currentKey = key
            return sealed
        }
    }

    /// First half of a crash-safe rotation: makes the next term, sealed under the master key,
    /// without changing the keyring. Persist it, then ``activate(_:)`` it.
    /// - Throws: as ``rotate(createdAt:)``.
    public func prepareRotation(createdAt: Int64? = nil) throws(CryptoError) -> SealedTerm {
        let time = createdAt ?? Self.unixNow()
        let (current, master) = state.withLock { ($0.current, $0.master) }
        let term = try Self.nextTerm(after: current)
        let key = try SecureRandom.secret(count: AESGCM.keyByteCount)
        return try Self.seal(dataKey: key, term: term, createdAt: time, master: master)
    }

    /// Second half of a crash-safe rotation: adds a persisted term and makes it current.
    /// - Throws: ``CryptoError/sealed`` if it does not open with this keyring's master key;
    ///   ``CryptoError/invalidKeyring(reason:)`` unless its number is above every existing term
    ///   (for example when another rotation won the race).
    public func activate(_ sealed: SealedTerm) throws(CryptoError) {
        try state.withLock { (s) throws(CryptoError) in
            guard sealed.term > s.current else {
                throw .invalidKeyring(reason: "term \(sealed.term) is not newer than current term \(s.current)")
            }
            let key: SecretBytes
            do {
                key = try Envelope.open(sealed.sealedKey, key: s.master.secret, context: .keyring(term: sealed.term))
            } catch {
                throw .sealed
            }
            guard key.count == AESGCM.keyByteCount else {
                throw .invalidKeyring(reason: "term \(sealed.term) holds a key of the wrong size")
            }
            s.keys[sealed.term] = key
            s.createdAt[sealed.term] = sealed.createdAt
            s.current = sealed.term
            s.currentKey = key
        }
    }

    /// Re-seals every term under `newMaster` and adopts it for future rotations. Data keys,
    /// term numbers and creation times are unchanged, so no stored value needs rewriting.
    /// - Returns: every term, to replace the stored keyring in one transaction. If that
    ///   transaction fails, call `rekey(newMaster: oldMaster)` or reload from storage.
    /// - Throws: ``CryptoError/randomFailure`` (or a backend failure); nothing changes then.
    public func rekey(newMaster: MasterKey) throws(CryptoError) -> [SealedTerm] {
        try state.withLock { (s) throws(CryptoError) in
            let resealed = try Self.sealAll(s, under: newMaster)
            s.master = newMaster
            return resealed
        }
    }

    /// Every term sealed under `master`, without changing the keyring (for a rekey that must
    /// be persisted before it takes effect; follow with ``rekey(newMaster:)``).
    /// - Throws: ``CryptoError/randomFailure`` (or a backend failure).
    public func sealedTerms(under master: MasterKey) throws(CryptoError) -> [SealedTerm] {
        try state.withLock { (s) throws(CryptoError) in try Self.sealAll(s, under: master) }
    }

    public var description: String {
        let (current, count) = state.withLock { ($0.current, $0.keys.count) }
        return "Keyring(currentTerm: \(current), terms: \(count), keys redacted)"
    }

    // MARK: Helpers

    /// The current term and its key, read under the lock as one consistent pair.
    private func currentKey() -> (UInt32, SecretBytes) {
        state.withLock { ($0.current, $0.currentKey) }
    }

    /// Every term of `s`, oldest first, sealed under `master` (fresh nonces; same data keys).
    private static func sealAll(_ s: borrowing State, under master: MasterKey) throws(CryptoError) -> [SealedTerm] {
        var out: [SealedTerm] = []
        for term in s.keys.keys.sorted() {
            guard let key = s.keys[term] else { continue }
            out.append(try seal(dataKey: key, term: term, createdAt: s.createdAt[term] ?? 0, master: master))
        }
        return out
    }

    /// Seals one data key under the master key, bound to its term number
    /// (context `keyring / <term> / data_key`, header term = `term`).
    private static func seal(
        dataKey: SecretBytes, term: UInt32, createdAt: Int64, master: MasterKey
    ) throws(CryptoError) -> SealedTerm {
        let sealedKey = try Envelope.seal(dataKey, key: master.secret, term: term, context: .keyring(term: term))
        return SealedTerm(term: term, createdAt: createdAt, sealedKey: sealedKey)
    }

    /// `term + 1`, refusing to wrap around to 0 (which would reuse term numbers).
    private static func nextTerm(after term: UInt32) throws(CryptoError) -> UInt32 {
        guard term < UInt32.max else { throw .invalidKeyring(reason: "term numbers are exhausted") }
        return term + 1
    }

    /// Wall-clock Unix seconds.
    static func unixNow() -> Int64 { WallClock.nowSeconds() }
}
