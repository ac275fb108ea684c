// SPDX-License-Identifier: Apache-2.0
import Testing
import VaultCore

@Suite("Crypto: master key parsing and generation")
struct CryptoMasterKeyTests {
    /// base64 of the bytes 0x00…0x1f.
    static let sample = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

    @Test("canonical base64 parses; base64() gives the same text back")
    func parseRoundTrip() throws {
        let key = try MasterKey(base64: Self.sample)
        #expect(key.base64() == Self.sample)
        #expect(key.matches(try MasterKey(secret: SecretBytes(Array(0..<32)))))
    }

    @Test("one trailing newline from a key file is accepted", arguments: ["\n", "\r\n"])
    func trailingNewline(_ ending: String) throws {
        let key = try MasterKey(base64: Self.sample + ending, source: "SESSION_VAULT_MASTER_KEY_FILE")
        #expect(key.base64() == Self.sample)
        let fromBytes = try MasterKey(base64UTF8: Array((Self.sample + ending).utf8), source: "key file")
        #expect(fromBytes.matches(key))
    }

    @Test(
        "malformed keys are refused with the source named",
        arguments: [
            ("", "empty"),
            ("\n", "only a newline"),
            (sample + "\n\n", "two newlines"),
            (" " + sample, "leading space"),
            (sample + " ", "trailing space"),
            (String(sample.dropLast()), "padding missing"),
            ("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=", "non-zero pad bits"),
            ("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd-h8=", "base64url character"),
            ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", "31 bytes"),
            (sample + "AAAA", "35 bytes"),
            ("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".replacingFirstEquals(), "padding in the middle"),
        ])
    func malformed(_ text: String, _ label: String) throws {
        do {
            _ = try MasterKey(base64: text, source: "SESSION_VAULT_MASTER_KEY")
            Issue.record("\(label): accepted")
        } catch {
            guard case .invalidKey(let source, _) = error else {
                Issue.record("\(label): unexpected \(error)")
                return
            }
            #expect(source == "SESSION_VAULT_MASTER_KEY")
            let message = error.description
            #expect(message.hasPrefix("SESSION_VAULT_MASTER_KEY: "))
            // Never the value, not even a recognisable piece of it.
            let trimmed = text.filter { !$0.isWhitespace }
            if trimmed.count >= 8 {
                #expect(!message.contains(trimmed.prefix(8)), "\(label): message echoes the key")
                #expect(!message.contains(trimmed.suffix(8)), "\(label): message echoes the key")
            }
        }
    }

    @Test("wrong length says how many bytes it decoded to")
    func lengthReason() {
        #expect(throws: CryptoError.invalidKey(source: "SESSION_VAULT_MASTER_KEY", reason: "must decode to 32 bytes, decodes to 31")) {
            try MasterKey(base64: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==")
        }
        #expect(throws: CryptoError.self) { try MasterKey(secret: SecretBytes([1, 2, 3])) }
    }

    @Test("generate() gives distinct 32-byte keys whose base64 parses back")
    func generate() throws {
        let a = try MasterKey.generate()
        let b = try MasterKey.generate()
        #expect(!a.matches(b))
        #expect(a.base64().utf8.count == 44)
        #expect(try MasterKey(base64: a.base64()).matches(a))
    }
}

extension String {
    /// Moves the final `=` to the middle, keeping the length (a malformed-padding case).
    fileprivate func replacingFirstEquals() -> String {
        var chars = Array(self)
        chars[chars.count - 1] = "A"
        chars[20] = "="
        return String(chars)
    }
}
