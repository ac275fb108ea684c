// SPDX-License-Identifier: Apache-2.0

/// The `.session` code's view of the shared DC table (``DataCenters``): the address a file should
/// carry for a DC, and the test mode an address implies.
enum SessionFileDataCenters {
    /// A server address and port.
    struct Address: Equatable {
        var host: String
        var port: Int
    }

    /// The IPv4 address and port the libraries write for `dcID` in the given environment.
    static func address(dcID: Int, testMode: Bool) -> Address? {
        DataCenters.lookup(id: dcID, testMode: testMode).map { Address(host: $0.ipv4, port: $0.port) }
    }

    /// Whether `host` is `dcID`'s test or production address; nil when it is neither.
    static func testMode(dcID: Int, host: String) -> Bool? {
        guard let dc = DataCenters.lookup(address: host), dc.id == dcID else { return nil }
        return dc.testMode
    }
}
