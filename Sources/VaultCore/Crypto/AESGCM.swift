// SPDX-License-Identifier: Apache-2.0
internal import COpenSSL
import Glibc

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
        let ctx = try GCMCipherContext.forThisThread()
        try ctx.start(key: key, nonce: nonce, encrypt: true)
        var scratch = [UInt8](repeating: 0, count: 16)  // GCM writes no final block
        var written: Int32 = 0
        let ok =
            ctx.update(encrypt: true, output: nil, input: aad)
            && ctx.update(encrypt: true, output: ciphertext, input: plaintext)
            && EVP_EncryptFinal_ex(ctx.pointer, &scratch, &written) == 1
            && EVP_CIPHER_CTX_ctrl(ctx.pointer, EVP_CTRL_GCM_GET_TAG, Int32(tagByteCount), tag.baseAddress) == 1
        guard ok else {
            ctx.forgetKey()
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
            let ctx = try GCMCipherContext.forThisThread()
            try ctx.start(key: key, nonce: nonce, encrypt: false)
            var scratch = [UInt8](repeating: 0, count: 16)
            var written: Int32 = 0
            // SET_TAG must come first on a kept context: the tag length and buffer of the
            // previous message are still there, and a decrypt without its own tag would be
            // compared against them.
            ok =
                EVP_CIPHER_CTX_ctrl(
                    ctx.pointer, EVP_CTRL_GCM_SET_TAG, Int32(tagByteCount),
                    UnsafeMutableRawPointer(mutating: tag.baseAddress)) == 1
                && ctx.update(encrypt: false, output: nil, input: aad)
                && ctx.update(encrypt: false, output: plaintext, input: ciphertext)
                && EVP_DecryptFinal_ex(ctx.pointer, &scratch, &written) == 1
            // A failed open (a forged or damaged envelope) re-keys the context next time, so no
            // state of a failed message can carry into the next one.
            if !ok { ctx.forgetKey() }
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

/// One `EVP_CIPHER_CTX`, owned and freed here, kept by its thread between operations.
///
/// **Why kept.** A context made per operation allocated the provider's GCM state, expanded the
/// key, built the GHASH table, then cleansed and freed it all: half of the 7k instructions that
/// opening a 256-byte auth key took under callgrind. A kept context that already holds the key
/// is started with the new nonce only (`EVP_CipherInit_ex` with a NULL key, the re-use OpenSSL
/// documents for GCM); a different key re-keys it. Each thread has its own (a pthread key), so
/// no context is ever shared between threads, and none is re-entered: an operation starts and
/// finishes inside one call of ``AESGCM``.
///
/// **Key material.** The context holds the expanded key, and `keyCopy` the 32 key bytes that
/// recognise it (compared with `memcmp`: both sides are the vault's own keys, never attacker
/// input). When the thread exits, the destructor wipes `keyCopy` and `EVP_CIPHER_CTX_free`
/// cleanses the schedule. If the thread slot cannot be made, the context is used once and
/// freed as before.
final class GCMCipherContext {
    let pointer: OpaquePointer
    /// The key the context holds (32 bytes, meaningful only while `keyed`).
    private let keyCopy: UnsafeMutableRawPointer
    /// Whether `pointer` holds the key in `keyCopy` and can be started with a nonce alone.
    private var keyed = false

    private init() throws(CryptoError) {
        guard let ctx = EVP_CIPHER_CTX_new() else {
            throw .backendFailure(operation: "EVP_CIPHER_CTX_new")
        }
        pointer = ctx
        keyCopy = UnsafeMutableRawPointer.allocate(byteCount: AESGCM.keyByteCount, alignment: 16)
        keyCopy.initializeMemory(as: UInt8.self, repeating: 0, count: AESGCM.keyByteCount)
    }

    deinit {
        OPENSSL_cleanse(keyCopy, AESGCM.keyByteCount)
        keyCopy.deallocate()
        EVP_CIPHER_CTX_free(pointer)
    }

    /// The per-thread slot: its destructor releases the thread's context when the thread exits.
    private static let threadSlot: pthread_key_t? = {
        var key = pthread_key_t()
        let created = pthread_key_create(&key) { raw in
            if let raw { Unmanaged<GCMCipherContext>.fromOpaque(raw).release() }
        }
        return created == 0 ? key : nil
    }()

    /// The calling thread's context, made on first use; a one-use context if the thread slot
    /// is unavailable.
    static func forThisThread() throws(CryptoError) -> GCMCipherContext {
        guard let slot = threadSlot else { return try GCMCipherContext() }
        if let raw = pthread_getspecific(slot) {
            return Unmanaged<GCMCipherContext>.fromOpaque(raw).takeUnretainedValue()
        }
        let fresh = try GCMCipherContext()
        let retained = Unmanaged.passRetained(fresh)
        if pthread_setspecific(slot, retained.toOpaque()) != 0 { retained.release() }
        return fresh
    }

    /// Starts one message: sets `key` (unless the context holds it already) and `nonce`.
    /// The default GCM IV length in OpenSSL is 12 bytes, exactly our nonce, so no
    /// EVP_CTRL_GCM_SET_IVLEN is needed.
    func start(key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer, encrypt: Bool) throws(CryptoError) {
        let direction: Int32 = encrypt ? 1 : 0
        if keyed, let k = key.baseAddress, memcmp(keyCopy, k, AESGCM.keyByteCount) == 0 {
            guard EVP_CipherInit_ex(pointer, nil, nil, nil, nonce.opensslBytes, direction) == 1 else {
                forgetKey()
                throw .backendFailure(operation: "EVP_CipherInit_ex")
            }
            return
        }
        forgetKey()
        let cipher = try Self.cipher()
        guard let k = key.baseAddress, key.count == AESGCM.keyByteCount,
            EVP_CipherInit_ex(pointer, cipher, nil, key.opensslBytes, nonce.opensslBytes, direction) == 1
        else { throw .backendFailure(operation: "EVP_CipherInit_ex") }
        keyCopy.copyMemory(from: k, byteCount: AESGCM.keyByteCount)
        keyed = true
    }

    /// Makes the next ``start(key:nonce:encrypt:)`` set the key from scratch, and wipes the key
    /// copy and the context's expanded key and GCM state now (`EVP_CIPHER_CTX_reset`).
    func forgetKey() {
        if keyed {
            OPENSSL_cleanse(keyCopy, AESGCM.keyByteCount)
            _ = EVP_CIPHER_CTX_reset(pointer)
        }
        keyed = false
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
    func update(encrypt: Bool, output: UnsafeMutableRawBufferPointer?, input: UnsafeRawBufferPointer) -> Bool {
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
                ? EVP_EncryptUpdate(pointer, outPtr, &written, inPtr, Int32(n))
                : EVP_DecryptUpdate(pointer, outPtr, &written, inPtr, Int32(n))
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
