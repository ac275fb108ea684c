// SPDX-License-Identifier: Apache-2.0
#pragma once
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>

/// OPENSSL_free is a macro; Swift cannot import it.
static inline void copenssl_free(void *p) { OPENSSL_free(p); }

/// SHA-256 over a caller-owned `SHA256_CTX`, for HMAC with precomputed inner and outer states
/// (RFC 2104 §4): a context is a plain struct, so starting a MAC is a copy, where the EVP_MAC
/// interface allocates, duplicates and cleanses three digest contexts per call. OpenSSL 3
/// marks these functions deprecated in favour of EVP (they remain part of its API); the
/// wrappers keep that warning inside this header.
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
static inline int copenssl_sha256_init(SHA256_CTX *c) { return SHA256_Init(c); }
static inline int copenssl_sha256_update(SHA256_CTX *c, const void *data, size_t len) { return SHA256_Update(c, data, len); }
static inline int copenssl_sha256_final(unsigned char *md, SHA256_CTX *c) { return SHA256_Final(md, c); }
#pragma clang diagnostic pop
