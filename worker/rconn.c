/* rconn: the Redis stream (TCP, or TLS with OpenSSL) under hiredis's
 * protocol encoder and reply reader (see rconn.h). */
#include "worker/rconn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define RCONN_RBUF 16384

struct rconn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    redisReader *rd;
    char errstr[512];
};

static enum wk_code fail(struct rconn *c, struct wk_err *err, int sys,
                         const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum wk_code fail(struct rconn *c, struct wk_err *err, int sys,
                         const char *fmt, ...)
{
    enum wk_code rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errstr, sizeof(c->errstr), fmt, ap);
    va_end(ap);
    rc = wk_err_set(err, WK_E_NET, "%s", c->errstr);
    if (err && sys && !err->sys_errno)
        err->sys_errno = sys;
    return rc;
}

/* errno's text (POSIX strerror_r) */
static const char *errtext(int e, char *buf, size_t len)
{
    if (strerror_r(e, buf, len) != 0)
        snprintf(buf, len, "errno %d", e);
    return buf;
}

/* The first OpenSSL error queued, "" if none; clears the queue. */
static const char *ssl_err(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    buf[0] = '\0';
    if (e)
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

static void set_timeouts(int fd, int ms)
{
    struct timeval tv = { 0, 0 };
    if (ms > 0) {
        tv.tv_sec = ms / 1000;
        tv.tv_usec = (ms % 1000) * 1000;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int tcp_connect(const char *host, int port, int timeout_ms, int *sys)
{
    struct addrinfo hints, *res = NULL, *ai;
    char portstr[8];
    int fd = -1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof(portstr), "%d", port);
    *sys = 0;
    if (getaddrinfo(host, portstr, &hints, &res) != 0) {
        *sys = EHOSTUNREACH;
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        int flags, soerr = 0, one = 1;
        socklen_t sl = sizeof(soerr);
        struct pollfd pfd;

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            *sys = errno;
            continue;
        }
        flags = fcntl(fd, F_GETFL, 0);
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            if (errno != EINPROGRESS) {
                *sys = errno;
                goto next;
            }
            pfd.fd = fd;
            pfd.events = POLLOUT;
            pfd.revents = 0;
            if (poll(&pfd, 1, timeout_ms) != 1) {
                *sys = ETIMEDOUT;
                goto next;
            }
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 ||
                soerr) {
                *sys = soerr ? soerr : errno;
                goto next;
            }
        }
        fcntl(fd, F_SETFL, flags);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        break;
    next:
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static bool is_ip(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static enum wk_code tls_start(struct rconn *c, const struct rconn_opts *o,
                              struct wk_err *err)
{
    const char *name = o->sni && o->sni[0] ? o->sni : o->host;
    X509_VERIFY_PARAM *vp;
    char eb[200];
    int r;

    c->ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ctx)
        return fail(c, err, 0, "redis TLS: %s", ssl_err(eb, sizeof(eb)));
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    if (o->ca_file && o->ca_file[0]) {
        if (SSL_CTX_load_verify_locations(c->ctx, o->ca_file, NULL) != 1)
            return fail(c, err, 0, "redis TLS: cannot load CA file '%s': %s",
                        o->ca_file, ssl_err(eb, sizeof(eb)));
    } else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
        return fail(c, err, 0, "redis TLS: no system CAs: %s",
                    ssl_err(eb, sizeof(eb)));
    }
    if (o->cert_file && o->cert_file[0]) {
        const char *key =
            o->key_file && o->key_file[0] ? o->key_file : o->cert_file;
        if (SSL_CTX_use_certificate_chain_file(c->ctx, o->cert_file) != 1)
            return fail(c, err, 0,
                        "redis TLS: cannot load client cert '%s': %s",
                        o->cert_file, ssl_err(eb, sizeof(eb)));
        if (SSL_CTX_use_PrivateKey_file(c->ctx, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(c->ctx) != 1)
            return fail(c, err, 0, "redis TLS: cannot load client key '%s': %s",
                        key, ssl_err(eb, sizeof(eb)));
    }
    c->ssl = SSL_new(c->ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
        return fail(c, err, 0, "redis TLS: %s", ssl_err(eb, sizeof(eb)));
    vp = SSL_get0_param(c->ssl);
    X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (is_ip(name)) {
        if (X509_VERIFY_PARAM_set1_ip_asc(vp, name) != 1)
            return fail(c, err, 0, "redis TLS: bad address '%s'", name);
    } else {
        if (X509_VERIFY_PARAM_set1_host(vp, name, 0) != 1 ||
            SSL_set_tlsext_host_name(c->ssl, name) != 1)
            return fail(c, err, 0, "redis TLS: bad name '%s'", name);
    }
    r = SSL_connect(c->ssl);
    if (r != 1) {
        long v = SSL_get_verify_result(c->ssl);
        if (v != X509_V_OK)
            return fail(c, err, 0,
                        "redis TLS handshake: certificate verify failed: %s "
                        "(name '%s')",
                        X509_verify_cert_error_string(v), name);
        ssl_err(eb, sizeof(eb));
        return fail(c, err, eb[0] ? 0 : errno, "redis TLS handshake: %s",
                    eb[0] ? eb : "connection closed or timed out");
    }
    return WK_OK;
}

enum wk_code rconn_connect(const struct rconn_opts *o, struct rconn **out,
                           struct wk_err *err)
{
    struct rconn *c = calloc(1, sizeof(*c));
    int cto = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 5000;
    int sys = 0;
    char where[300];
    char eb[128];
    enum wk_code rc;

    *out = NULL;
    if (!c)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    c->fd = -1;
    c->rd = redisReaderCreate();
    if (!c->rd) {
        free(c);
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    }
    snprintf(where, sizeof(where), "%s:%d", o->host, o->port);
    c->fd = tcp_connect(o->host, o->port, cto, &sys);
    if (c->fd < 0) {
        rc = fail(c, err, sys, "redis connect to %s: %s", where,
                  errtext(sys ? sys : ECONNREFUSED, eb, sizeof(eb)));
        goto fail;
    }
    if (o->tls) {
        set_timeouts(c->fd, cto); /* the handshake */
        rc = tls_start(c, o, err);
        if (rc != WK_OK)
            goto fail;
    }
    set_timeouts(c->fd, o->rw_timeout_ms);
    *out = c;
    return WK_OK;
fail:
    rconn_free(c);
    return rc;
}

static enum wk_code io_fail(struct rconn *c, struct wk_err *err, int sys,
                            const char *what)
{
    if (sys == EAGAIN || sys == EWOULDBLOCK)
        return fail(c, err, 0, "%s: timeout", what);
    if (sys) {
        char eb[128];
        return fail(c, err, sys, "%s: %s", what, errtext(sys, eb, sizeof(eb)));
    }
    return fail(c, err, 0, "%s: connection closed", what);
}

static enum wk_code write_all(struct rconn *c, const char *p, size_t n,
                              struct wk_err *err)
{
    while (n > 0) {
        ssize_t w;
        if (c->ssl) {
            int r = SSL_write(c->ssl, p, n > 1u << 30 ? 1 << 30 : (int)n);
            if (r <= 0) {
                int sys = errno;
                char eb[200];
                ssl_err(eb, sizeof(eb));
                return eb[0] ? fail(c, err, 0, "redis TLS write: %s", eb)
                             : io_fail(c, err, sys, "redis write");
            }
            w = r;
        } else {
            w = send(c->fd, p, n, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return io_fail(c, err, w < 0 ? errno : 0, "redis write");
        }
        p += w;
        n -= (size_t)w;
    }
    return WK_OK;
}

/* One read into the reader. */
static enum wk_code read_some(struct rconn *c, struct wk_err *err)
{
    char buf[RCONN_RBUF];
    ssize_t n;

    for (;;) {
        if (c->ssl) {
            int r = SSL_read(c->ssl, buf, sizeof(buf));
            if (r <= 0) {
                int sys = errno, se = SSL_get_error(c->ssl, r);
                char eb[200];
                ssl_err(eb, sizeof(eb));
                if (se == SSL_ERROR_ZERO_RETURN)
                    return io_fail(c, err, 0, "redis read");
                if (eb[0])
                    return fail(c, err, 0, "redis TLS read: %s", eb);
                if (se == SSL_ERROR_SYSCALL && sys == EINTR)
                    continue;
                return io_fail(c, err, se == SSL_ERROR_SYSCALL ? sys : 0,
                               "redis read");
            }
            n = r;
        } else {
            n = recv(c->fd, buf, sizeof(buf), 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return io_fail(c, err, n < 0 ? errno : 0, "redis read");
        }
        break;
    }
    if (redisReaderFeed(c->rd, buf, (size_t)n) != REDIS_OK)
        return fail(c, err, 0, "redis read: out of memory");
    return WK_OK;
}

static enum wk_code from_reader(struct rconn *c, redisReply **rep,
                                struct wk_err *err)
{
    void *r = NULL;
    *rep = NULL;
    if (redisReaderGetReply(c->rd, &r) != REDIS_OK)
        return fail(c, err, 0, "redis protocol error: %s", c->rd->errstr);
    *rep = r;
    return WK_OK;
}

enum wk_code rconn_append_argv(struct rconn *c, int argc, const char **argv,
                               const size_t *lens, struct wk_err *err)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    enum wk_code rc;

    if (len < 0)
        return wk_err_set(err, WK_E_NOMEM, "redis: out of memory");
    rc = write_all(c, cmd, (size_t)len, err);
    free(cmd);
    return rc;
}

enum wk_code rconn_reply(struct rconn *c, redisReply **rep, struct wk_err *err)
{
    for (;;) {
        enum wk_code rc = from_reader(c, rep, err);
        if (rc != WK_OK || *rep)
            return rc;
        rc = read_some(c, err);
        if (rc != WK_OK)
            return rc;
    }
}

enum wk_code rconn_reply_nowait(struct rconn *c, redisReply **rep,
                                struct wk_err *err)
{
    struct pollfd pfd;
    enum wk_code rc = from_reader(c, rep, err);

    if (rc != WK_OK || *rep)
        return rc;
    for (;;) {
        bool ready = c->ssl && SSL_pending(c->ssl) > 0;
        if (!ready) {
            pfd.fd = c->fd;
            pfd.events = POLLIN;
            pfd.revents = 0;
            ready = poll(&pfd, 1, 0) == 1;
        }
        if (!ready)
            return WK_OK;
        rc = read_some(c, err);
        if (rc == WK_OK)
            rc = from_reader(c, rep, err);
        if (rc != WK_OK || *rep)
            return rc;
    }
}

redisReply *rconn_command_argv(struct rconn *c, int argc, const char **argv,
                               const size_t *lens, struct wk_err *err)
{
    redisReply *rep = NULL;
    if (rconn_append_argv(c, argc, argv, lens, err) != WK_OK ||
        rconn_reply(c, &rep, err) != WK_OK)
        return NULL;
    return rep;
}

int rconn_fd(const struct rconn *c)
{
    return c ? c->fd : -1;
}

bool rconn_is_tls(const struct rconn *c)
{
    return c && c->ssl;
}

const char *rconn_errstr(const struct rconn *c)
{
    return c ? c->errstr : "";
}

void rconn_free(struct rconn *c)
{
    if (!c)
        return;
    if (c->ssl) {
        SSL_shutdown(c->ssl); /* best effort close_notify */
        SSL_free(c->ssl);
    }
    if (c->ctx)
        SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    if (c->rd)
        redisReaderFree(c->rd);
    free(c);
}
