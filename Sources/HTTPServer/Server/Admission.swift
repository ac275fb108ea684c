// SPDX-License-Identifier: Apache-2.0
import Glibc
import Primitives
import Synchronization

/// A client's IP address without its port, as a hashable key: IPv4 addresses in their
/// IPv4-mapped IPv6 form (`::ffff:a.b.c.d`), so one client is one key whichever family the
/// listening socket uses.
struct PeerKey: Hashable, Sendable {
    /// The first 64 bits of the (mapped) IPv6 address.
    var high: UInt64
    /// The last 64 bits.
    var low: UInt64
}

extension SocketAddress {
    /// The address part as a ``PeerKey`` (all zeroes for an unknown family).
    var peerKey: PeerKey {
        var s = storage
        return withUnsafeBytes(of: &s) { raw -> PeerKey in
            if family == AF_INET {
                // sin_addr: 4 bytes at offset 4, network order.
                let v4 = UInt64(UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
                return PeerKey(high: 0, low: 0x0000_FFFF_0000_0000 | v4)
            }
            if family == AF_INET6 {
                // sin6_addr: 16 bytes at offset 8, network order.
                return PeerKey(
                    high: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
                    low: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self)))
            }
            return PeerKey(high: 0, low: 0)
        }
    }
}

/// Open connections per client address, bounded by
/// ``HTTPServerConfiguration/maxConnectionsPerAddress`` (issue 14 item 3). Thread-safe.
final class AddressSlots: Sendable {
    /// Most connections per address; 0 or less means no bound (nothing is counted).
    let limit: Int
    /// Open connections by address; an address leaves the table when its count reaches 0.
    private let counts = Locked<[PeerKey: Int]>([:])

    /// A table admitting `limit` connections per address.
    init(limit: Int) { self.limit = limit }

    /// Takes a slot for `key`; false (and nothing taken) when the address is at its bound.
    func claim(_ key: PeerKey) -> Bool {
        guard limit > 0 else { return true }
        return counts.withLock { table in
            let current = table[key, default: 0]
            guard current < limit else { return false }
            table[key] = current + 1
            return true
        }
    }

    /// Gives back a slot taken by ``claim(_:)``.
    func release(_ key: PeerKey) {
        guard limit > 0 else { return }
        counts.withLock { table in
            let current = table[key, default: 0]
            table[key] = current > 1 ? current - 1 : nil
        }
    }

    /// Open connections counted for `key` (tests).
    func count(_ key: PeerKey) -> Int { counts.withLock { $0[key, default: 0] } }
}

/// Request-body bytes held in memory across all connections, bounded by
/// ``HTTPServerConfiguration/bodyMemoryBudgetBytes`` (issue 14 item 4). Lock-free.
final class BodyMemoryBudget: Sendable {
    /// Most bytes reserved at once.
    let limit: Int
    /// Bytes reserved now.
    private let reserved = Atomic<Int>(0)

    /// A budget of `limit` bytes.
    init(limit: Int) { self.limit = max(0, limit) }

    /// Reserves `bytes` if they fit in what is left; false (nothing reserved) otherwise.
    /// `force` reserves even beyond the limit: for bytes already in memory, so that their
    /// release balances.
    func reserve(_ bytes: Int, force: Bool = false) -> Bool {
        guard bytes > 0 else { return true }
        var current = reserved.load(ordering: .relaxed)
        while true {
            if !force && (bytes > limit || current > limit - bytes) { return false }
            let (exchanged, original) = reserved.compareExchange(
                expected: current, desired: current + bytes, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
    }

    /// Gives back `bytes` reserved by ``reserve(_:force:)``.
    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        reserved.wrappingSubtract(bytes, ordering: .relaxed)
    }

    /// Bytes reserved now.
    var inUse: Int { reserved.load(ordering: .relaxed) }
}
