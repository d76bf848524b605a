/*
 * mig_int: what the migrate job's files share (job_migrate.c the state
 * machine, mig_copy.c the copy to active/, mig_source.c the source);
 * nobody else needs it.
 */
#ifndef WK_JOBS_MIG_INT_H
#define WK_JOBS_MIG_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"
#include "jobs/job.h"
#include "jobs/job_int.h"
#include "jobs/progress.h"

struct store;
struct store_get;
struct store_opts;
struct store_put;
struct store_sha256;

#define MIG_SPACE_JSON_MAX (64u * 1024u) /* a bigger space.json is refused */
#define MIG_KEY_MAX        1200u         /* "active/<id>/" + a 1024-byte name */
#define MIG_SPACE_JSON     "space-v1/space.json"

enum mig_act {
    MIG_SKIP,    /* present with the same size, and a CAS blob */
    MIG_COPY,    /* missing, or another size */
    MIG_COMPARE, /* same size: the bytes decide */
};

/* One file of a batch. */
struct mig_slot {
    size_t obj; /* index into the source listing */
    enum mig_act act;
    struct wk_buf sbuf, dbuf; /* source bytes, destination bytes */
    char dkey[MIG_KEY_MAX];   /* "active/<id>/<name>" */
};

struct mig_run {
    struct job job; /* with the spaceId resolved */
    const struct job_ctx *ctx;
    struct store *src;                  /* borrowed */
    const char *label;                  /* the source, for messages */
    char prefix[JOB_SPACE_ID_MAX + 16]; /* "active/<id>/" */
    char mf_key[JOB_SPACE_ID_MAX + 32];
    char marker_key[JOB_SPACE_ID_MAX + 48];
    struct job_list slist;    /* the source */
    struct job_list dlist;    /* active/<id>/ before the run */
    bool write;               /* false: compare only (a finished migration) */
    struct store_sha256 *cas; /* owned */
    struct mig_slot *slots;   /* owned, nslots */
    size_t nslots;
    struct store_get *sget, *dget; /* owned, nslots each */
    struct store_put *puts;        /* owned, nslots */
    size_t copied, skipped;
    uint64_t copied_bytes;
    char differs[MIG_KEY_MAX]; /* compare only: the first file that
                                  differs, "" = none */
    struct prog prog;
    time_t started;
};

/* ---- mig_source.c ---- */

/* Is source inside store_url's active/, archived/ or metadata/? */
bool mig_source_in_store(const char *source, const char *store_url);
/* The id in <base>space-v1/space.json of st ({"id":"<spaceId>"}); label
 * names the source in messages. A folder without it is refused. */
enum wk_code mig_read_space_id(struct store *st, const char *base,
                               const char *label, char id[JOB_SPACE_ID_MAX + 1],
                               struct wk_err *err);
/* Open url with opts (NULL: from the environment) and the source's own
 * endpoint and credentials (SILA_SOURCE_*). */
enum wk_code mig_open_source(const char *url, const struct store_opts *opts,
                             struct store **out, struct wk_err *err);

/* ---- mig_copy.c ---- */

/* The batch slots and requests, window_objects of each. */
enum wk_code mig_alloc_slots(struct mig_run *r, struct wk_err *err);
void mig_free_slots(struct mig_run *r);
/* Every source file to active/<id>/, space-v1/space.json last; when
 * !r->write, only compare and stop at the first difference (r->differs). */
enum wk_code mig_copy_all(struct mig_run *r, struct wk_err *err);

#endif
