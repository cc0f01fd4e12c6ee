#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>

// Several OpenSSL calls are macros over SSL_CTX_ctrl / BIO_ctrl, which Swift cannot import:
// these wrap the ones agentd uses.

static inline int agentd_ssl_ctx_set_min_tls12(SSL_CTX *ctx) {
    return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}

static inline long agentd_ssl_ctx_set_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_mode(ctx, mode);
}

static inline long agentd_ssl_mode_release_buffers(void) { return SSL_MODE_RELEASE_BUFFERS; }
static inline long agentd_ssl_mode_partial_write(void) { return SSL_MODE_ENABLE_PARTIAL_WRITE; }
static inline long agentd_ssl_mode_moving_buffer(void) { return SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER; }

static inline size_t agentd_bio_pending(BIO *bio) { return BIO_ctrl_pending(bio); }

static inline int agentd_bio_set_eof_return(BIO *bio, int value) {
    return (int)BIO_set_mem_eof_return(bio, value);
}

static inline int agentd_ssl_set_tlsext_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

static inline long agentd_ssl_op_no_renegotiation(void) { return SSL_OP_NO_RENEGOTIATION; }

static inline int agentd_ssl_ctx_set_min_tls12_client(SSL_CTX *ctx) {
    return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}
