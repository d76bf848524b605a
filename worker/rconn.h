/*
 * rconn: one Redis connection, plain TCP or TLS (rediss://).
 *
 * hiredis 0.14 has no TLS, so the stream is ours (a socket, plus an OpenSSL
 * SSL when tls is set) and hiredis only does the protocol: requests are
 * encoded with redisFormatCommandArgv, replies decoded by a redisReader.
 * TLS always verifies the server: the system CAs, or only ca_file when set;
 * the name checked (DNS name or IP address) is sni, else host; SNI is sent
 * for DNS names. cert_file + key_file present a client certificate.
 *
 * After any I/O error (NULL reply / non-OK code with WK_E_NET) the
 * connection is unusable: free it and connect again.
 */
#ifndef WK_WORKER_RCONN_H
#define WK_WORKER_RCONN_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis.h>

#include "common/wk_err.h"

struct rconn;

struct rconn_opts {
    const char *host;
    int port;
    bool tls;
    const char *ca_file;    /* NULL/"": the system CAs */
    const char *cert_file;  /* client certificate (PEM chain), optional */
    const char *key_file;   /* its key (PEM), required with cert_file */
    const char *sni;        /* name to send and check; NULL/"": host */
    int connect_timeout_ms; /* TCP connect + TLS handshake; <= 0: 5000 */
    int rw_timeout_ms;      /* each read/write; <= 0: none */
};

enum wk_code rconn_connect(const struct rconn_opts *o, struct rconn **out,
                           struct wk_err *err);
/* One command, its reply (caller frees with freeReplyObject); error replies
 * are returned as replies. NULL + err on I/O error. */
redisReply *rconn_command_argv(struct rconn *c, int argc, const char **argv,
                               const size_t *lens, struct wk_err *err);
/* Send one command of a pipeline; read its reply later with rconn_reply. */
enum wk_code rconn_append_argv(struct rconn *c, int argc, const char **argv,
                               const size_t *lens, struct wk_err *err);
/* The next reply, blocking (up to rw_timeout_ms per read). */
enum wk_code rconn_reply(struct rconn *c, redisReply **rep, struct wk_err *err);
/* The next reply if one is already here or readable without waiting;
 * *rep = NULL when none is complete yet. */
enum wk_code rconn_reply_nowait(struct rconn *c, redisReply **rep,
                                struct wk_err *err);
/* The socket, to poll for POLLIN (call rconn_reply_nowait first: TLS may
 * hold decrypted bytes the socket does not show). */
int rconn_fd(const struct rconn *c);
bool rconn_is_tls(const struct rconn *c);
void rconn_free(struct rconn *c);
/* The last I/O error, "" if none. */
const char *rconn_errstr(const struct rconn *c);

#endif
