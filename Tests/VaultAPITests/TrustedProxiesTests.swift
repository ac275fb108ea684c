// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import VaultAPI

/// Issue 20 item 5: X-Forwarded-For is believed only from trusted proxies, and names the
/// rightmost address that is not itself a trusted proxy.
@Suite("TrustedProxies")
struct TrustedProxiesTests {
    @Test func parsesAddressesAndRanges() throws {
        let proxies = try TrustedProxies.parse("10.0.0.0/8, 127.0.0.1 ::1\tfd00::/8")
        #expect(proxies.trusts("10.1.2.3"))
        #expect(proxies.trusts("127.0.0.1"))
        #expect(!proxies.trusts("127.0.0.2"))
        #expect(proxies.trusts("::1"))
        #expect(proxies.trusts("fd12:3456::1"))
        #expect(proxies.trusts("::ffff:10.9.9.9"))
        #expect(!proxies.trusts("11.0.0.1"))
        #expect(!proxies.trusts("not-an-address"))
        for bad in ["10.0.0.0/33", "300.1.1.1", "1.2.3", "::1/129", "1::2::3", "abc"] {
            #expect(throws: ServiceConfiguration.Error.self) { try TrustedProxies.parse(bad) }
        }
    }

    @Test func picksTheRightmostUntrustedAddressOnlyFromATrustedPeer() throws {
        let proxies = try TrustedProxies.parse("10.0.0.0/8")
        let header = ["198.51.100.1, 203.0.113.7", "10.0.0.9"]
        #expect(proxies.clientHost(peerHost: "10.0.0.1", forwardedFor: header) == "203.0.113.7")
        #expect(proxies.clientHost(peerHost: "192.0.2.5", forwardedFor: header) == "192.0.2.5")
        #expect(proxies.clientHost(peerHost: "10.0.0.1", forwardedFor: []) == "10.0.0.1")
        #expect(proxies.clientHost(peerHost: "10.0.0.1", forwardedFor: ["junk, 10.0.0.4"]) == "10.0.0.4")
        #expect(proxies.clientHost(peerHost: "10.0.0.1", forwardedFor: ["[2001:db8::1]:443"]) == "2001:db8::1")
        #expect(TrustedProxies.none.clientHost(peerHost: "10.0.0.1", forwardedFor: header) == "10.0.0.1")
    }
}
