// SPDX-License-Identifier: Apache-2.0
// libssl for HTTPServerTLS: the headers, plus small inline helpers for what OpenSSL exposes only
// as macros or as C callbacks.
#pragma once
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>

/// ALPN: the one protocol the server speaks, in wire format.
static const unsigned char sv_tls_alpn_http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

/// ALPN selection: `http/1.1` when the client offers it; a client that offers only other
/// protocols gets the `no_application_protocol` alert (RFC 7301 §3.2).
static inline int sv_tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                                     const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl;
    (void)arg;
    unsigned char *selected = NULL;
    if (SSL_select_next_proto(&selected, outlen, sv_tls_alpn_http11, sizeof sv_tls_alpn_http11, in, inlen)
        == OPENSSL_NPN_NEGOTIATED) {
        *out = selected;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/// Passphrase callback: none. An encrypted key fails to load instead of prompting on a terminal.
static inline int sv_tls_no_passphrase(char *buf, int size, int rwflag, void *userdata) {
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)userdata;
    return 0;
}

/// The server policy on a fresh context: TLS 1.2 and 1.3 only, the server's cipher order, no
/// compression, no renegotiation, no session tickets or session cache (every connection makes a
/// full handshake; nothing to rotate), partial writes with a moving buffer (the caller retries
/// with the same bytes from wherever they are now), buffers released while idle, an unexpected
/// EOF read as an end of stream (HTTP framing detects truncation), ALPN `http/1.1`, and no
/// passphrase prompt. Returns 1 on success.
static inline int sv_tls_configure(SSL_CTX *ctx) {
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) return 0;
    if (SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) return 0;
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION
                                 | SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_SSLv3
                                 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1);
    if (SSL_CTX_set_num_tickets(ctx, 0) != 1) return 0;
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    // Read ahead: one read(2) takes every record the socket holds (up to the buffer), instead of
    // one for each record's 5-byte header and one for its body. What OpenSSL buffers this way is
    // reported by SSL_has_pending, which the transport drains.
    SSL_CTX_set_read_ahead(ctx, 1);
    if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!SHA1") != 1) return 0;
    SSL_CTX_set_alpn_select_cb(ctx, sv_tls_alpn_select, NULL);
    SSL_CTX_set_default_passwd_cb(ctx, sv_tls_no_passphrase);
    return 1;
}

/// Mutual TLS: a client certificate is required and must chain to the CA list loaded before.
static inline void sv_tls_require_client_certificate(SSL_CTX *ctx, STACK_OF(X509_NAME) *names) {
    SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
}

/// The reason code of an OpenSSL error (`ERR_GET_REASON`, a macro).
static inline int sv_tls_error_reason(unsigned long code) { return ERR_GET_REASON(code); }

// MARK: - Client side (session-vault-run with SESSION_VAULT_CACERT)

/// The client policy on a fresh context: TLS 1.2 and 1.3 only, no compression, no renegotiation,
/// the server's certificate verified (chain and, per connection, name) against the trust anchors
/// loaded afterwards and nothing else, ALPN `http/1.1`. Returns 1 on success.
static inline int sv_tls_configure_client(SSL_CTX *ctx) {
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) return 0;
    if (SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) return 0;
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1
                                 | SSL_OP_NO_TLSv1_1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_default_passwd_cb(ctx, sv_tls_no_passphrase);
    // 0 is success for this one.
    if (SSL_CTX_set_alpn_protos(ctx, sv_tls_alpn_http11, sizeof sv_tls_alpn_http11) != 0) return 0;
    return 1;
}

/// The name the server's certificate must carry: an IP address literal is matched against the
/// certificate's IP addresses (and sent no SNI, RFC 6066 §3), anything else as a DNS name
/// (no partial wildcards) and sent as SNI. Returns 1 on success.
static inline int sv_tls_client_expect_peer(SSL *ssl, const char *host) {
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1) return 1;
    ERR_clear_error();
    if (SSL_set1_host(ssl, host) != 1) return 0;
    return SSL_set_tlsext_host_name(ssl, host) == 1 ? 1 : 0;
}
