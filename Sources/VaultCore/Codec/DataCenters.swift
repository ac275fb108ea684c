// SPDX-License-Identifier: Apache-2.0

/// One Telegram data center as the Pyrogram family addresses it.
public struct DataCenter: Sendable, Hashable {
    /// The DC number (1–5 and 203 in production, 1–3 in the test environment).
    public let id: Int
    /// True for the test environment.
    public let testMode: Bool
    /// IPv4 address, what conversions to Telethon emit.
    public let ipv4: String
    /// IPv6 address when the Pyrogram table has one (used only to recognise addresses).
    public let ipv6: String?
    /// Port: 443 in production, 80 in the test environment.
    public let port: Int
}

/// The DC table (docs/formats.md, "Data centers"; pyrogram 2.0.106's `DataCenter`), looked up
/// both ways.
///
/// Pyrogram → Telethon conversion takes the address and port from here; Telethon → Pyrogram
/// uses the reverse look-up to infer the test-mode flag from the address (a test-DC address can
/// only belong to a test-mode session, a production address only to a production one).
public enum DataCenters {
    /// Production port.
    public static let productionPort = 443
    /// Test-environment port (pyrogram uses 80 for the test DCs).
    public static let testPort = 80

    /// Every known DC. IPv6 entries are pyrogram's `PROD_IPV6` / `TEST_IPV6` tables (it has none
    /// for DC 203).
    public static let all: [DataCenter] = [
        DataCenter(id: 1, testMode: false, ipv4: "149.154.175.53", ipv6: "2001:b28:f23d:f001::a", port: 443),
        DataCenter(id: 2, testMode: false, ipv4: "149.154.167.51", ipv6: "2001:67c:4e8:f002::a", port: 443),
        DataCenter(id: 3, testMode: false, ipv4: "149.154.175.100", ipv6: "2001:b28:f23d:f003::a", port: 443),
        DataCenter(id: 4, testMode: false, ipv4: "149.154.167.91", ipv6: "2001:67c:4e8:f004::a", port: 443),
        DataCenter(id: 5, testMode: false, ipv4: "91.108.56.130", ipv6: "2001:b28:f23f:f005::a", port: 443),
        DataCenter(id: 203, testMode: false, ipv4: "91.105.192.100", ipv6: nil, port: 443),
        DataCenter(id: 1, testMode: true, ipv4: "149.154.175.10", ipv6: "2001:b28:f23d:f001::e", port: 80),
        DataCenter(id: 2, testMode: true, ipv4: "149.154.167.40", ipv6: "2001:67c:4e8:f002::e", port: 80),
        DataCenter(id: 3, testMode: true, ipv4: "149.154.175.117", ipv6: "2001:b28:f23d:f003::e", port: 80),
    ]

    /// The DC with this number in this environment, or nil (e.g. test DC 4, DC 0, DC 6).
    public static func lookup(id: Int, testMode: Bool) -> DataCenter? {
        all.first { $0.id == id && $0.testMode == testMode }
    }

    /// The DC that owns `address` (IPv4, or IPv6 in any valid spelling), or nil.
    public static func lookup(address: String) -> DataCenter? {
        guard let canonical = IPAddressText.canonical(address) else { return nil }
        return all.first { $0.ipv4 == canonical || $0.ipv6 == canonical }
    }

    /// The port the Pyrogram family uses for an environment.
    public static func defaultPort(testMode: Bool) -> Int { testMode ? testPort : productionPort }
}
