// SPDX-License-Identifier: Apache-2.0
internal import COpenSSL

/// AES-256-GCM (NIST SP 800-38D) through OpenSSL's EVP interface: 256-bit key, 96-bit nonce,
/// 128-bit tag, optional associated data.
///
/// This is the raw primitive; values stored by the vault go through ``Keyring`` (or
/// ``Envelope``), which choose random nonces and bind the associated data. Call it directly
/// only with a fresh nonce per key: reusing a (key, nonce) pair under GCM reveals the XOR of
/// the plaintexts and lets an attacker forge tags.
///
/// Opening never reports *why* it failed: a bad tag, a tag or nonce of the wrong length, and a
/// wrong-size key all throw ``CryptoError/authenticationFailed``. Unverified plaintext is never
/// returned; it is written only into ``SecretBytes`` storage that is wiped on failure.
public enum AESGCM {
    /// Key size: AES-256.
    public static let keyByteCount = 32
    /// Nonce size: 96 bits, the size GCM processes without an extra GHASH pass (SP 800-38D §5.2.1.1).
    public static let nonceByteCount = 12
    /// Tag size: the full 128 bits; shorter tags are rejected rather than accepted.
    public static let tagByteCount = 16

    /// Encrypts and authenticates `plaintext`, authenticating (not encrypting) `aad`.
    /// - Returns: the ciphertext (same length as the plaintext) and the 16-byte tag.
    /// - Throws: ``CryptoError/invalidKey(source:reason:)`` unless `key` is 32 bytes,
    ///   ``CryptoError/invalidParameter(name:reason:)`` unless `nonce` is 12 bytes,
    ///   ``CryptoError/backendFailure(operation:)`` if libcrypto fails.
    public static func seal(
        key: SecretBytes, nonce: [UInt8], plaintext: [UInt8], aad: [UInt8] = []
    ) throws(CryptoError) -> (ciphertext: [UInt8], tag: [UInt8]) {
        try plaintext.withUnsafeBytes { pt in
            Result { () throws(CryptoError) in
                try seal(key: key, nonce: nonce, plaintextBuffer: pt, aad: aad)
            }
        }.get()
    }

    /// Encrypts and authenticates a secret `plaintext` (see `seal(key:nonce:plaintext:aad:)`).
    /// - Throws: as the `[UInt8]` variant.
    public static func seal(
        key: SecretBytes, nonce: [UInt8], plaintext: SecretBytes, aad: [UInt8] = []
    ) throws(CryptoError) -> (ciphertext: [UInt8], tag: [UInt8]) {
        try plaintext.withUnsafeBytes { (pt) throws(CryptoError) in
            try seal(key: key, nonce: nonce, plaintextBuffer: pt, aad: aad)
        }
    }

    /// Verifies the tag and decrypts straight into secret storage.
    /// - Returns: the plaintext, only if the tag verified.
    /// - Throws: ``CryptoError/authenticationFailed`` for every failure (wrong key, nonce,
    ///   tag, AAD, altered ciphertext, wrong sizes).
    public static func open(
        key: SecretBytes, nonce: [UInt8], ciphertext: [UInt8], tag: [UInt8], aad: [UInt8] = []
    ) throws(CryptoError) -> SecretBytes {
        try key.withUnsafeBytes { (k) throws(CryptoError) in
            try nonce.withUnsafeBytes { n in
                ciphertext.withUnsafeBytes { c in
                    tag.withUnsafeBytes { t in
                        aad.withUnsafeBytes { a in
                            Result { () throws(CryptoError) in
                                try SecretBytes(count: c.count) { (out) throws(CryptoError) in
                                    try open(key: k, nonce: n, ciphertext: c, tag: t, aad: a, into: out)
                                }
                            }
                        }
                    }
                }
            }.get()
        }
    }

    /// Array-returning wrapper around the buffer-level seal, shared by both public variants.
    private static func seal(
        key: SecretBytes, nonce: [UInt8], plaintextBuffer pt: UnsafeRawBufferPointer, aad: [UInt8]
    ) throws(CryptoError) -> (ciphertext: [UInt8], tag: [UInt8]) {
        var ciphertext = [UInt8](repeating: 0, count: pt.count)
        var tag = [UInt8](repeating: 0, count: tagByteCount)
        try key.withUnsafeBytes { (k) throws(CryptoError) in
            try nonce.withUnsafeBytes { n in
                aad.withUnsafeBytes { a in
                    ciphertext.withUnsafeMutableBytes { c in
                        tag.withUnsafeMutableBytes { t in
                            Result { () throws(CryptoError) in
                                try seal(key: k, nonce: n, plaintext: pt, aad: a, ciphertext: c, tag: t)
                            }
                        }
                    }
                }
            }.get()
        }
        return (ciphertext, tag)
    }

    // MARK: - Buffer-level core (shared with Envelope, which writes in place)

    /// Seals `plaintext` into `ciphertext` (same length) and `tag` (16 bytes).
    static func seal(
        key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
        plaintext: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer,
        ciphertext: UnsafeMutableRawBufferPointer, tag: UnsafeMutableRawBufferPointer
    ) throws(CryptoError) {
        guard key.count == keyByteCount else {
            throw .invalidKey(source: "AES-256-GCM key", reason: "must be \(keyByteCount) bytes, got \(key.count)")
        }
        guard nonce.count == nonceByteCount else {
            throw .invalidParameter(name: "nonce", reason: "must be \(nonceByteCount) bytes, got \(nonce.count)")
        }
        guard ciphertext.count == plaintext.count, tag.count == tagByteCount else {
            throw .invalidParameter(name: "output", reason: "buffer sizes do not match the plaintext")
        }
        let ok = try GCMOperation.run(key: key, nonce: nonce, encrypt: true) { ctx in
            var scratch = [UInt8](repeating: 0, count: 16)  // GCM writes no final block
            var written: Int32 = 0
            return GCMOperation.update(ctx, encrypt: true, output: nil, input: aad)
                && GCMOperation.update(ctx, encrypt: true, output: ciphertext, input: plaintext)
                && EVP_EncryptFinal_ex(ctx, &scratch, &written) == 1
                && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, Int32(tagByteCount), tag.baseAddress) == 1
        }
        guard ok else {
            SecretBytes.cleanse(ciphertext)
            throw .backendFailure(operation: "EVP_Encrypt (AES-256-GCM)")
        }
    }

    /// Opens `ciphertext` into `plaintext` (same length). On any failure `plaintext` is wiped
    /// and ``CryptoError/authenticationFailed`` thrown.
    static func open(
        key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
        ciphertext: UnsafeRawBufferPointer, tag: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer,
        into plaintext: UnsafeMutableRawBufferPointer
    ) throws(CryptoError) {
        // Requiring the full 16-byte tag matters: EVP_CTRL_GCM_SET_TAG would accept a shorter
        // one and verify only that many bytes (truncated-tag forgery, SP 800-38D §5.2.1.2).
        guard key.count == keyByteCount, nonce.count == nonceByteCount, tag.count == tagByteCount,
            plaintext.count == ciphertext.count
        else { throw .authenticationFailed }
        let ok: Bool
        do {
            ok = try GCMOperation.run(key: key, nonce: nonce, encrypt: false) { ctx in
                var scratch = [UInt8](repeating: 0, count: 16)
                var written: Int32 = 0
                return EVP_CIPHER_CTX_ctrl(
                    ctx, EVP_CTRL_GCM_SET_TAG, Int32(tagByteCount), UnsafeMutableRawPointer(mutating: tag.baseAddress)) == 1
                    && GCMOperation.update(ctx, encrypt: false, output: nil, input: aad)
                    && GCMOperation.update(ctx, encrypt: false, output: plaintext, input: ciphertext)
                    && EVP_DecryptFinal_ex(ctx, &scratch, &written) == 1
            }
        } catch {
            ok = false
        }
        guard ok else {
            // Never leave unverified plaintext behind.
            SecretBytes.cleanse(plaintext)
            throw .authenticationFailed
        }
    }
}

/// One AES-256-GCM operation's `EVP_CIPHER_CTX`: made and keyed when the operation starts,
/// freed when it ends, whatever the outcome.
///
/// **Key material.** The context holds the expanded key and the GHASH table only while
/// ``run(key:nonce:encrypt:_:)`` runs: `EVP_CIPHER_CTX_free` cleanses the provider's GCM state
/// (`OPENSSL_clear_free`) before releasing it, so no key outlives the operation in a cache, a
/// per-thread slot or a key copy. (The speed work kept one keyed context per thread, with a
/// copy of the key to recognise it, between requests; issue 15 removed it. Under callgrind the
/// fresh context costs 2.5k more instructions an open or seal, 2.6 % of an export:
/// bench/raw/history.md, "Issue 15 crypto pruning".)
enum GCMOperation {
    /// Runs `body` on a context keyed with `key` and started with `nonce`, then frees the context.
    /// The default GCM IV length in OpenSSL is 12 bytes, exactly our nonce, so no
    /// EVP_CTRL_GCM_SET_IVLEN is needed.
    /// - Throws: ``CryptoError/backendFailure(operation:)`` if the context cannot be made or keyed.
    static func run(
        key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer, encrypt: Bool, _ body: (OpaquePointer) -> Bool
    ) throws(CryptoError) -> Bool {
        let cipher = try Self.cipher()
        guard let ctx = EVP_CIPHER_CTX_new() else {
            throw .backendFailure(operation: "EVP_CIPHER_CTX_new")
        }
        defer { EVP_CIPHER_CTX_free(ctx) }  // cleanses the expanded key and the GCM state
        guard key.count == AESGCM.keyByteCount,
            EVP_CipherInit_ex(ctx, cipher, nil, key.opensslBytes, nonce.opensslBytes, encrypt ? 1 : 0) == 1
        else { throw .backendFailure(operation: "EVP_CipherInit_ex") }
        return body(ctx)
    }

    /// The AES-256-GCM implementation, fetched once. Passing `EVP_aes_256_gcm()` instead
    /// would make OpenSSL 3 repeat the provider lookup (a lock and a hash probe) on every init.
    static func cipher() throws(CryptoError) -> OpaquePointer {
        guard let cipher = FetchedCipher.aes256GCM.pointer else {
            throw .backendFailure(operation: "EVP_CIPHER_fetch(AES-256-GCM)")
        }
        return cipher
    }

    /// Feeds `input` through `EVP_{En,De}cryptUpdate`, in chunks that fit the C `int` length.
    /// `output == nil` feeds associated data. Returns false when libcrypto fails.
    static func update(
        _ ctx: OpaquePointer, encrypt: Bool, output: UnsafeMutableRawBufferPointer?, input: UnsafeRawBufferPointer
    ) -> Bool {
        guard let inBase = input.baseAddress, input.count > 0 else { return true }
        let chunkLimit = 1 << 30
        var offset = 0
        while offset < input.count {
            let n = Swift.min(chunkLimit, input.count - offset)
            let inPtr = (inBase + offset).assumingMemoryBound(to: UInt8.self)
            let outPtr = output?.baseAddress.map { ($0 + offset).assumingMemoryBound(to: UInt8.self) }
            var written: Int32 = 0
            let rc =
                encrypt
                ? EVP_EncryptUpdate(ctx, outPtr, &written, inPtr, Int32(n))
                : EVP_DecryptUpdate(ctx, outPtr, &written, inPtr, Int32(n))
            // GCM is a stream mode: every input byte yields one output byte at once.
            guard rc == 1, output == nil || Int(written) == n else { return false }
            offset += n
        }
        return true
    }
}

/// Holds the `EVP_CIPHER` fetched from the default provider for the life of the process.
///
/// `@unchecked Sendable`: a fetched `EVP_CIPHER` is immutable and reference-counted, and
/// OpenSSL documents it as safe to use from many threads at once (openssl-threads(7)).
private final class FetchedCipher: @unchecked Sendable {
    static let aes256GCM = FetchedCipher(name: "AES-256-GCM")

    let pointer: OpaquePointer?

    private init(name: String) {
        pointer = EVP_CIPHER_fetch(nil, name, nil)
    }
}

extension UnsafeRawBufferPointer {
    /// The base address typed as bytes, as the `unsigned char *` OpenSSL APIs expect.
    var opensslBytes: UnsafePointer<UInt8>? { baseAddress?.assumingMemoryBound(to: UInt8.self) }
}
