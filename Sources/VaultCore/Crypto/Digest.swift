// SPDX-License-Identifier: Apache-2.0
internal import COpenSSL

/// Message digests and HMAC through OpenSSL's EVP interface.
///
/// These cannot fail on any input: libcrypto reports failure only when it cannot allocate or
/// its provider is broken, which is treated like Swift's own out-of-memory (a trap), not as a
/// silently wrong hash. (A wrong token hash would be a security bug.)
public enum Digest {
    /// Size of a SHA-256 digest.
    public static let sha256ByteCount = 32
    /// Size of a SHA-1 digest.
    public static let sha1ByteCount = 20

    /// SHA-256 (FIPS 180-4) of `bytes`.
    public static func sha256(_ bytes: some Collection<UInt8>) -> [UInt8] {
        withContiguous(bytes) { digest($0, md: sha256MD, count: sha256ByteCount) }
    }

    /// SHA-256 of secret bytes, without copying them out.
    public static func sha256(_ secret: SecretBytes) -> [UInt8] {
        secret.withUnsafeBytes { digest($0, md: sha256MD, count: sha256ByteCount) }
    }

    /// SHA-1 of `bytes`. Only for fingerprints other systems define with it (MTProto's
    /// `auth_key_id`), never for security decisions.
    public static func sha1(_ bytes: some Collection<UInt8>) -> [UInt8] {
        withContiguous(bytes) { digest($0, md: sha1MD, count: sha1ByteCount) }
    }

    /// SHA-1 of secret bytes, without copying them out.
    public static func sha1(_ secret: SecretBytes) -> [UInt8] {
        secret.withUnsafeBytes { digest($0, md: sha1MD, count: sha1ByteCount) }
    }

    /// HMAC-SHA-256 (RFC 2104) of `message` under `key`. For many messages under one key, keep
    /// an ``HMACSHA256Key`` instead: it hashes the key once.
    public static func hmacSHA256(key: SecretBytes, message: some Collection<UInt8>) -> [UInt8] {
        guard let keyed = HMACSHA256Key(key) else { preconditionFailure("libcrypto HMAC setup failed") }
        return keyed.mac(message)
    }

    /// The digests, fetched from the provider once per process. `EVP_sha256()` and friends
    /// return legacy handles that OpenSSL 3 looks up by name again on every `EVP_Digest` (a
    /// third of a SHA-1 fingerprint's cost); a fetched `EVP_MD` skips that. The legacy handle is
    /// the fallback if the fetch fails. `nonisolated(unsafe)`: a fetched `EVP_MD` is immutable
    /// and documented as shareable between threads.
    nonisolated(unsafe) private static let sha256MD: OpaquePointer? = EVP_MD_fetch(nil, "SHA256", nil) ?? EVP_sha256()
    nonisolated(unsafe) private static let sha1MD: OpaquePointer? = EVP_MD_fetch(nil, "SHA1", nil) ?? EVP_sha1()

    /// One-shot `EVP_Digest` of `input` with `md`, whose output size is `count`.
    private static func digest(_ input: UnsafeRawBufferPointer, md: OpaquePointer?, count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var written: UInt32 = 0
        // EVP_Digest reads nothing when the length is 0, but wants a non-null pointer.
        let empty: UInt8 = 0
        let rc = withUnsafePointer(to: empty) { fallback in
            EVP_Digest(input.baseAddress ?? UnsafeRawPointer(fallback), input.count, &out, &written, md, nil)
        }
        precondition(rc == 1 && Int(written) == count, "libcrypto EVP_Digest failed")
        return out
    }

    /// Runs `body` over contiguous bytes, copying only when the collection has none.
    static func withContiguous<R>(_ bytes: some Collection<UInt8>, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        if let result = bytes.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) {
            return result
        }
        return Array(bytes).withUnsafeBytes(body)
    }
}

/// HMAC-SHA-256 (RFC 2104) under one fixed key, through OpenSSL's `EVP_MAC` ("HMAC", digest
/// SHA256). `init` keys a template context once (the key is hashed if longer than a block and
/// absorbed into the inner and outer digest states); each ``mac(_:)`` duplicates the template
/// (`EVP_MAC_CTX_dup`), feeds the message, finishes and frees the copy. Under callgrind a
/// 40-byte token costs 10.4k instructions this way, against 5.2k for the hand-written
/// construction over the deprecated `SHA256_*` calls it replaced: the duplicate and free of
/// three digest contexts (bench/raw/history.md, "Issue 15 crypto pruning").
///
/// `@unchecked Sendable`: after `init` the template is only read (`EVP_MAC_CTX_dup` takes a const
/// context and copies it); every call works on its own duplicate. The template holds key-derived
/// state, so `deinit` frees it with `EVP_MAC_CTX_free`, which cleanses the key and the digest
/// states; each duplicate is freed, and cleansed, the same way when its call ends.
final class HMACSHA256Key: @unchecked Sendable {
    /// The keyed template (`EVP_MAC_CTX *`), never updated itself.
    private let template: OpaquePointer

    /// Keys the template with `key` (any length, empty included). `nil` when libcrypto fails.
    init?(_ key: SecretBytes) {
        guard let mac = Self.hmac, let ctx = EVP_MAC_CTX_new(mac) else { return nil }
        let keyed = key.withUnsafeBytes { k -> Bool in
            // HMAC treats a NULL key as "keep the previous key"; an empty key is a valid one, so
            // pass a real pointer with length 0.
            let zero: UInt8 = 0
            return withUnsafePointer(to: zero) { fallback in
                Self.digestName.withCString { name in
                    OSSL_MAC_PARAM_DIGEST.withCString { paramKey in
                        var params = [
                            OSSL_PARAM_construct_utf8_string(paramKey, UnsafeMutablePointer(mutating: name), 0),
                            OSSL_PARAM_construct_end(),
                        ]
                        return EVP_MAC_init(ctx, k.opensslBytes ?? fallback, k.count, &params) == 1
                    }
                }
            }
        }
        guard keyed else {
            EVP_MAC_CTX_free(ctx)
            return nil
        }
        template = ctx
    }

    deinit {
        EVP_MAC_CTX_free(template)  // cleanses the key and the keyed digest states
    }

    /// HMAC-SHA-256 of `message` (32 bytes). Safe to call from any number of threads at once.
    func mac(_ message: some Collection<UInt8>) -> [UInt8] {
        Digest.withContiguous(message) { m in
            guard let ctx = EVP_MAC_CTX_dup(template) else { preconditionFailure("libcrypto EVP_MAC_CTX_dup failed") }
            defer { EVP_MAC_CTX_free(ctx) }
            var out = [UInt8](repeating: 0, count: Digest.sha256ByteCount)
            var written = 0
            let ok =
                (m.isEmpty || EVP_MAC_update(ctx, m.opensslBytes, m.count) == 1)
                && EVP_MAC_final(ctx, &out, &written, out.count) == 1
            precondition(ok && written == Digest.sha256ByteCount, "libcrypto HMAC-SHA-256 failed")
            return out
        }
    }

    /// The digest HMAC runs over, by its provider name.
    private static let digestName = "SHA256"

    /// The HMAC implementation, fetched from the provider once per process (a fetch per key
    /// would repeat the provider lookup). `nonisolated(unsafe)`: a fetched `EVP_MAC` is
    /// immutable and documented as shareable between threads (openssl-threads(7)).
    nonisolated(unsafe) private static let hmac: OpaquePointer? = EVP_MAC_fetch(nil, "HMAC", nil)
}

/// HKDF (RFC 5869) with SHA-256, through OpenSSL's `EVP_PKEY_HKDF`.
public enum HKDF {
    /// Derives `count` bytes (at most 255 × 32) from input keying material `key`.
    /// - Throws: ``CryptoError/invalidParameter(name:reason:)`` for a bad `count`,
    ///   ``CryptoError/backendFailure(operation:)`` if libcrypto fails.
    public static func sha256(
        key: SecretBytes, salt: [UInt8], info: [UInt8], count: Int
    ) throws(CryptoError) -> SecretBytes {
        guard count > 0, count <= 255 * Digest.sha256ByteCount else {
            throw .invalidParameter(name: "count", reason: "HKDF-SHA-256 output must be 1…8160 bytes")
        }
        let limit = Int(Int32.max)  // the EVP_PKEY_CTX_set1_hkdf_* lengths are C ints
        guard key.count <= limit, salt.count <= limit, info.count <= limit else {
            throw .invalidParameter(name: "HKDF input", reason: "longer than 2 GiB")
        }
        guard let ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nil) else {
            throw .backendFailure(operation: "EVP_PKEY_CTX_new_id(HKDF)")
        }
        defer { EVP_PKEY_CTX_free(ctx) }
        return try key.withUnsafeBytes { (k) throws(CryptoError) in
            try salt.withUnsafeBytes { s in
                info.withUnsafeBytes { i in
                    Result { () throws(CryptoError) in
                        // OpenSSL refuses a NULL salt pointer; an empty salt is a valid one
                        // (RFC 5869 §2.2 treats it as HashLen zero bytes).
                        let zero: [UInt8] = [0]
                        let ok = zero.withUnsafeBufferPointer { z in
                            let salt = s.opensslBytes ?? z.baseAddress
                            let ikm = k.opensslBytes ?? z.baseAddress
                            let label = i.opensslBytes ?? z.baseAddress
                            return EVP_PKEY_derive_init(ctx) == 1
                                && EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) == 1
                                && EVP_PKEY_CTX_set1_hkdf_salt(ctx, salt, Int32(s.count)) == 1
                                && EVP_PKEY_CTX_set1_hkdf_key(ctx, ikm, Int32(k.count)) == 1
                                && EVP_PKEY_CTX_add1_hkdf_info(ctx, label, Int32(i.count)) == 1
                        }
                        guard ok else { throw .backendFailure(operation: "HKDF setup") }
                        return try SecretBytes(count: count) { (out) throws(CryptoError) in
                            var length = count
                            guard
                                EVP_PKEY_derive(ctx, out.baseAddress?.assumingMemoryBound(to: UInt8.self), &length)
                                    == 1,
                                length == count
                            else { throw .backendFailure(operation: "EVP_PKEY_derive(HKDF)") }
                        }
                    }
                }
            }.get()
        }
    }
}

/// Comparison whose running time does not depend on where two byte strings differ
/// (`CRYPTO_memcmp`), for hashes, tags and tokens. Lengths are compared first and are not secret.
public enum ConstantTime {
    /// True when `a` and `b` hold the same bytes.
    public static func equals(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return Digest.withContiguous(a) { x in
            Digest.withContiguous(b) { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, x.count) == 0 }
        }
    }
}
