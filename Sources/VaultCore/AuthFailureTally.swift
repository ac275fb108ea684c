// SPDX-License-Identifier: Apache-2.0

/// Unauthenticated requests counted between two writes of the audit log, so that a flood of
/// bad tokens writes a bounded number of `auth.denied` rows instead of one per request.
///
/// Each period (see ``VaultService/auditAuthFailure(remoteAddress:throttled:)``) writes one row
/// per address for the first ``maxAddresses`` addresses that failed in it, and one more row,
/// without an address, for the failures of every other address: at most `maxAddresses + 1`
/// rows a period, and as much memory, however many addresses a flood comes from.
struct AuthFailureTally: Sendable {
    /// Addresses that get a row of their own in one period.
    static let maxAddresses = 100

    struct Count: Sendable, Equatable {
        var failures = 0
        var throttled = 0

        mutating func add(throttled wasThrottled: Bool) {
            failures += 1
            if wasThrottled { throttled += 1 }
        }

        /// The row's detail: counts only (never the token, never anything the client sent).
        var detail: String { "failures=\(failures) throttled=\(throttled)" }
    }

    /// Counts by address, in the order the addresses first failed.
    private(set) var addresses: [String] = []
    private(set) var byAddress: [String: Count] = [:]
    /// The failures of addresses beyond ``maxAddresses``.
    private(set) var others = Count()
    /// Wall time (ms) of the period's first failure: the rows' time.
    private(set) var firstAt: Int64?

    var isEmpty: Bool { firstAt == nil }

    mutating func note(_ address: String, throttled: Bool, at time: Int64) {
        if firstAt == nil { firstAt = time }
        if byAddress[address] != nil {
            byAddress[address]?.add(throttled: throttled)
        } else if addresses.count < Self.maxAddresses {
            addresses.append(address)
            var count = Count()
            count.add(throttled: throttled)
            byAddress[address] = count
        } else {
            others.add(throttled: throttled)
        }
    }

    /// The audit rows of the period: (address or nil for the others, detail).
    var rows: [(address: String?, detail: String)] {
        var rows: [(address: String?, detail: String)] = addresses.compactMap { a in byAddress[a].map { (a, $0.detail) } }
        if others.failures > 0 { rows.append((nil, others.detail + " addresses=others")) }
        return rows
    }
}
