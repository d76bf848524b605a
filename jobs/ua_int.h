/*
 * ua_int: what the unarchive job's files share (job_unarchive.c the state
 * machine, ua_source.c the directory and the archive's reader, ua_put.c
 * the writes under active/); nobody else needs it.
 */
#ifndef WK_JOBS_UA_INT_H
#define WK_JOBS_UA_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"
#include "jobs/job.h"
#include "jobs/progress.h"
#include "jobs/rrec.h"
#include "storage/store.h"

struct mf_archive;
struct seal_dec;
struct seal_dk;
struct store_sha256;
struct zipr;
struct zipr_entry;

#define UA_KEEP_BUF_BYTES (256u * 1024u)

/* Keys already under active/ (listed in key order, so sorted). */
struct ua_keys {
    char **v; /* owned */
    size_t n, cap;
};

/* One ranged GET of the archive's read window: its buffer, and the
 * request while in flight. */
struct ua_read {
    struct wk_buf buf;
    struct store_get g;
    struct store_pending *p; /* owned; NULL: idle, or done when started
                                (a store without asynchronous reads) */
    enum wk_code rc;         /* that outcome (p NULL, busy) */
    struct wk_err err;
    bool busy;     /* started, its bytes not handed out yet */
    char etag[80]; /* of the version this GET read */
};

/* The archive, read through a window of n_reads ranged GETs of read_bytes
 * each in flight (they progress while entries are written: the store's
 * engine runs them), handed out and hashed in order (the stored bytes); a
 * sealed one is opened on the way, a chunk at a time. The caller sets st,
 * key, size, read_bytes, n_reads (and hash, dec); ua_src_close releases. */
struct ua_src {
    struct store *st; /* borrowed */
    const char *key;  /* borrowed */
    uint64_t size;
    uint64_t off;              /* bytes handed out (hashed) so far */
    uint64_t next;             /* first byte not yet asked for */
    uint64_t read_bytes;       /* bytes per GET */
    unsigned n_reads;          /* GETs (and buffers) of the window */
    struct ua_read *reads;     /* owned ring, n_reads */
    unsigned head;             /* the read holding the next bytes */
    unsigned n_busy;           /* reads started, from head on */
    struct ua_read *cur;       /* the read handed out last (held) */
    uint64_t n_started;        /* GETs started (tests) */
    struct store_sha256 *hash; /* owned */
    struct seal_dec *dec;      /* owned; NULL: a plain ZIP */
    size_t used;               /* bytes of cur already opened */
    struct wk_buf plain;       /* the plaintext of one chunk */
    /* the ETag every GET so far read (the version whose bytes are
     * hashed), or "" (unknown); etag_mixed: two GETs saw two versions */
    char etag[80];
    bool etag_mixed;
};

/* The central directory of the archive, read before the restore (zipcd):
 * per entry, in archive order, its uncompressed size and CRC-32, the
 * authority zipr holds each entry to (zipr_set_declared) instead of the
 * ratio limit. 28 bytes per entry (below); never more entries than the
 * manifest's fileCount, nor more declared bytes than its uncompressedSize (a
 * directory that says more is refused before anything is written). */
struct ua_cd {
    uint64_t *usize; /* owned */
    uint32_t *crc;   /* owned */
    /* (R) for reading one entry ahead of order (ua_want.c): its local
     * header's offset and ua_name_hash() of its name; 16 more bytes per
     * entry, 28 in all (plus 1 bit: ua_want.served) */
    uint64_t *off;      /* owned */
    uint64_t *hash;     /* owned */
    uint64_t cd_offset; /* where the central directory starts: the end of
                           the last entry */
    uint64_t zip_size;  /* plain ZIP bytes (sealed: after opening) */
    size_t n, cap;
    uint64_t max;       /* entries allowed */
    uint64_t max_bytes; /* declared bytes allowed (uncompressedSize) */
    uint64_t bytes;     /* declared so far */
    uint64_t next_at;   /* local header offsets must grow */
    bool ordered;       /* entries in offset order: index i is entry i */
};

/* (R) Ready early, and paths served ahead of the archive's order
 * (job_unarchive.c, ua_want.c). */
struct ua_want {
    bool ready;              /* PROG_READY reported: from here on a failure
                                cleans nothing up and never reverts */
    int64_t last_poll_ms;    /* monotonic ms of the last prog_wants() */
    uint64_t next_index;     /* entries the in-order pass has handed on */
    unsigned char *served;   /* owned: 1 bit per directory entry */
    size_t n_served_put;     /* served by our own PUT (counted restored) */
    struct ua_keys *keys;    /* borrowed, the run's existing keys: a served
                                key joins them, so the in-order pass reads
                                and verifies it but writes nothing */
    const struct ua_cd *cd;  /* borrowed */
    const char *archive_key; /* borrowed */
    uint64_t archive_size;   /* stored bytes */
    bool sealed;
    struct seal_dk *dk; /* owned (wiped) when sealed */
};

/* A restored object waiting for its PUT. */
struct ua_put {
    char *key; /* owned */
    struct wk_buf data;
};

/* A batch of restored objects whose PUTs run together (If-None-Match).
 * Two take turns (ua_run.batch): one is filled while the other's PUTs
 * run, each with window_objects slots and half of window_bytes. */
struct ua_batch {
    struct ua_put *slots;      /* [0]: ua_run.pending (borrowed); [1]: owned */
    size_t cap;                /* slots (window_objects); 0: not set up */
    size_t n;                  /* slots sent */
    struct store_put *reqs;    /* owned while sent */
    struct store_put_batch *p; /* owned; NULL: not sent, or done when sent
                                  (a store without asynchronous writes) */
    enum wk_code rc;           /* that outcome */
    struct wk_err err;
    bool sent;       /* sent, outcome not taken yet */
    uint64_t n_sent; /* batches sent from these slots */
};

struct ua_run {
    const struct job *job;
    const struct job_ctx *ctx;
    char prefix[JOB_SPACE_ID_MAX + 16]; /* "active/<id>/" */
    char mf_key[JOB_SPACE_ID_MAX + 32];
    struct ua_src src;
    struct ua_put *pending; /* owned, window_objects slots */
    size_t n_pending;       /* of the batch being filled */
    uint64_t pending_bytes; /* of the batch being filled */
    struct ua_batch batch[2];
    unsigned fill;  /* the batch being filled */
    char **written; /* owned: keys restored so far (cleanup on failure) */
    size_t n_written, cap_written;
    const struct ua_keys *existing; /* borrowed: keys present before */
    size_t n_kept;                  /* entries skipped: key present */
    size_t n_user_kept;             /* of which written by a user while
                                       this restore ran (If-None-Match) */
    struct prog prog;
    struct ua_want want; /* (R) */
    /* the restore record (jobs/rrec.h): each object written by a single
     * PUT of ours, with the ETag of that PUT */
    struct rrec rec;
    /* the store has conditional PUT; without it, if_absent is a HEAD and
     * a PUT (storage), and content-addressed blobs go as plain PUTs */
    bool cond_put;
};

/* ---- ua_source.c ---- */

/* Read the central directory of want (dk: sealed, else NULL) into cd. */
enum wk_code ua_cd_preread(const struct job *job, const struct job_ctx *ctx,
                           const struct mf_archive *want,
                           const struct seal_dk *dk, struct ua_cd *cd,
                           struct wk_err *err);
/* zipr's authority (zipr_set_declared): entry i is directory record i. */
bool ua_cd_declared(void *ud, uint64_t index, uint64_t *usize, uint32_t *crc);
void ua_cd_release(struct ua_cd *cd);
/* zipr's read callback over a struct ua_src: the next plain bytes. */
enum wk_code ua_src_read(void *ud, const void **p, size_t *n,
                         struct wk_err *err);
/* Start the window's GETs now (st, key, size, read_bytes, n_reads set):
 * they run while the restore's first steps (listing, central directory,
 * manifest flip) take their round trips. */
enum wk_code ua_src_start(struct ua_src *s, struct wk_err *err);
/* Stop the GETs still in flight, free the window (not hash, dec, plain). */
void ua_src_close(struct ua_src *s);

/* ---- ua_want.c (R) ---- */

/* The 64-bit hash of an entry name that ua_cd keeps (FNV-1a). */
uint64_t ua_name_hash(const char *name, size_t len);
/* Between entries, once ready: take the paths clients want (at most every
 * UA_WANT_POLL_MS unless force) and serve each ahead of order. */
#define UA_WANT_POLL_MS 20
enum wk_code ua_want_poll(struct ua_run *r, bool force, struct wk_err *err);
void ua_want_release(struct ua_want *w);

/* ---- ua_put.c ---- */

/* key (active/<id>/...) names a content-addressed blob (files/static/). */
bool ua_content_addressed(const char *key);

/* The keys under prefix into k, sorted; release with ua_keys_release. */
enum wk_code ua_keys_load(struct store *st, const char *prefix,
                          struct ua_keys *k, struct wk_err *err);
void ua_keys_release(struct ua_keys *k);
/* Restore one entry: buffered for a batched PUT when it is small, else
 * streamed through a writer. */
enum wk_code ua_restore_entry(struct ua_run *r, struct zipr *zr,
                              const struct zipr_entry *e,
                              struct store_sha256 *cas, struct wk_err *err);
/* PUT the buffered entries (If-None-Match), fenced, and wait for every
 * batch sent: afterwards everything restored so far is in place. */
enum wk_code ua_flush_pending(struct ua_run *r, struct wk_err *err);
/* Stop the PUTs still in flight (their outcome unknown, not noted) and
 * free the pending slots. */
void ua_put_release(struct ua_run *r);
/* Delete what was restored (failure path); the space stays archived. */
void ua_cleanup_written(struct ua_run *r);

#endif
