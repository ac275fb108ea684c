// SPDX-License-Identifier: Apache-2.0

/// The Telegram data-center addresses the Python clients hard-code (FORMATS.md §1.4, §3.4,
/// `conversion_pairs.json`): production port 443, test port 80.
///
/// A private copy for the `.session` file code until a shared `DataCenters` type exists in
/// `Codec/`; the lead should replace this table with that one.
enum SessionFileDataCenters {
    /// One data center's address.
    struct Address: Equatable {
        var host: String
        var port: Int
    }

    private static let production: [Int: String] = [
        1: "149.154.175.53", 2: "149.154.167.51", 3: "149.154.175.100",
        4: "149.154.167.91", 5: "91.108.56.130", 203: "91.105.192.100",
    ]
    private static let test: [Int: String] = [
        1: "149.154.175.10", 2: "149.154.167.40", 3: "149.154.175.117",
    ]

    /// The address of `dcID` on the production or test network, if the table knows it.
    static func address(dcID: Int, testMode: Bool) -> Address? {
        if testMode {
            return test[dcID].map { Address(host: $0, port: 80) }
        }
        return production[dcID].map { Address(host: $0, port: 443) }
    }

    /// Whether `host` is the table's address of `dcID` on the test (true) or production (false)
    /// network; nil when it is neither. The two address sets are disjoint, so a match is certain.
    static func testMode(dcID: Int, host: String) -> Bool? {
        if production[dcID] == host { return false }
        if test[dcID] == host { return true }
        return nil
    }
}
