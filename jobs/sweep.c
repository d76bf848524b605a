/* sweep: the policy (which spaces to archive) and the scan of active/
 * that feeds it, from listings alone, from a cursor to a budget (see
 * sweep.h). */
#include "jobs/sweep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_buf.h"
#include "jobs/manifest.h"
#include "storage/store.h"

#define ACTIVE "active/"

void sweep_policy_default(struct sweep_policy *p)
{
    p->idle_s = 7 * 86400;
    p->early_idle_s = 86400;
    p->large_bytes = 100ULL << 20;
    p->many_files = 1000;
    p->recent_s = 3600;
}

const char *sweep_reason_name(enum sweep_reason r)
{
    static const char *const names[SWEEP_R_COUNT] = {
        [SWEEP_R_IDLE] = "idle",
        [SWEEP_R_LARGE] = "large",
        [SWEEP_R_MANY_FILES] = "many-files",
        [SWEEP_R_RECENT_WRITE] = "recent-write",
        [SWEEP_R_NOT_IDLE] = "not-idle",
        [SWEEP_R_SMALL] = "small",
        [SWEEP_R_EMPTY] = "empty",
        [SWEEP_R_LOCKED] = "locked",
        [SWEEP_R_JOB_PENDING] = "job-pending",
        [SWEEP_R_ARCHIVED] = "archived",
        [SWEEP_R_INVALID_ID] = "invalid-id",
        [SWEEP_R_ERROR] = "error",
    };
    if ((unsigned)r >= SWEEP_R_COUNT)
        return "unknown";
    return names[r];
}

bool sweep_decide(const struct sweep_policy *p, const struct sweep_signals *s,
                  enum sweep_reason *reason)
{
    int64_t idle = s->idle_s < 0 ? 0 : s->idle_s;
    enum sweep_reason r;

    if (s->listed && s->files == 0) {
        *reason = SWEEP_R_EMPTY;
        return false;
    }
    if (idle < p->recent_s) {
        *reason = SWEEP_R_RECENT_WRITE;
        return false;
    }
    if (idle >= p->idle_s) {
        r = SWEEP_R_IDLE;
    } else if (idle >= p->early_idle_s && s->listed &&
               s->bytes >= p->large_bytes) {
        r = SWEEP_R_LARGE;
    } else if (idle >= p->early_idle_s && s->listed &&
               s->files >= p->many_files) {
        r = SWEEP_R_MANY_FILES;
    } else {
        *reason = idle < p->early_idle_s ? SWEEP_R_NOT_IDLE : SWEEP_R_SMALL;
        return false;
    }
    /* the gates: never take a space from under a job */
    if (s->locked)
        r = SWEEP_R_LOCKED;
    else if (s->job_pending)
        r = SWEEP_R_JOB_PENDING;
    else if (s->archived)
        r = SWEEP_R_ARCHIVED;
    *reason = r;
    return r == SWEEP_R_IDLE || r == SWEEP_R_LARGE || r == SWEEP_R_MANY_FILES;
}

bool sweep_needs_listing(const struct sweep_policy *p, int64_t idle_s)
{
    int64_t idle = idle_s < 0 ? 0 : idle_s;

    if (idle < p->recent_s)
        return false;
    /* below both idle thresholds nothing about its size can choose it */
    return !(idle < p->early_idle_s && idle < p->idle_s);
}

/* ---- the store scan ---- */

struct scan {
    struct store *st;
    const struct sweep_policy *p;
    int64_t now;
    const struct sweep_hooks *h;
    const struct sweep_range *r;
    struct sweep_totals *tot;
    char (*ids)[JOB_SPACE_ID_MAX + 1]; /* the pending batch */
    size_t n;
    /* the listing of active/ stops (WK_E_LIMIT from its callback, err
     * untouched) at a budget or past upto; these say which */
    bool budget_hit;
    bool upto_hit;
    const char *upto; /* borrowed: "active/<cursor>" in the second part,
                         else NULL */
    /* the space being listed */
    uint64_t bytes, files;
    int64_t newest;
    bool tick_failed;
    struct wk_buf mbuf; /* manifest text */
    struct mf *mf;
};

static enum wk_code tick(struct scan *s, struct wk_err *err)
{
    return s->h->tick ? s->h->tick(s->h->ud, err) : WK_OK;
}

/* Before a space: is there budget left for it? */
static bool budget_left(struct scan *s)
{
    if (s->r->max_spaces && s->tot->scanned >= s->r->max_spaces)
        s->budget_hit = true;
    else if (s->h->more && !s->h->more(s->h->ud))
        s->budget_hit = true;
    return !s->budget_hit;
}

/* A listing counted in LIST requests (SWEEP_LIST_PAGE entries each). */
struct counted {
    store_list_cb cb;
    void *ud;
    uint64_t entries;
};

static enum wk_code counted_cb(const struct store_entry *e, void *ud,
                               struct wk_err *err)
{
    struct counted *c = ud;
    c->entries++;
    return c->cb(e, c->ud, err);
}

static enum wk_code list_counted(struct scan *s, const char *prefix,
                                 const char *delim, const char *after,
                                 store_list_cb cb, void *ud, struct wk_err *err)
{
    struct counted c = { cb, ud, 0 };
    enum wk_code rc =
        store_list_after(s->st, prefix, delim, after, counted_cb, &c, err);

    s->tot->list_calls++;
    s->tot->list_requests +=
        c.entries ? (c.entries + SWEEP_LIST_PAGE - 1) / SWEEP_LIST_PAGE : 1;
    return rc;
}

static enum wk_code report(struct scan *s, const struct sweep_item *it,
                           struct wk_err *err)
{
    /* the cursor moves past a space once it is decided */
    snprintf(s->tot->cursor, sizeof(s->tot->cursor), "%s/", it->space_id);
    s->tot->scanned++;
    s->tot->by_reason[it->reason]++;
    if (it->indexed)
        s->tot->indexed++;
    if (it->listed)
        s->tot->listed++;
    if (it->archive)
        s->tot->chosen++;
    return s->h->report ? s->h->report(s->h->ud, it, err) : WK_OK;
}

static enum wk_code on_object(const struct store_entry *e, void *ud,
                              struct wk_err *err)
{
    struct scan *s = ud;
    enum wk_code rc;

    if (e->is_prefix)
        return WK_OK;
    s->bytes += e->size;
    s->files++;
    if (s->files == 1 || e->mtime > s->newest)
        s->newest = e->mtime;
    rc = tick(s, err);
    if (rc != WK_OK)
        s->tick_failed = true;
    return rc;
}

/* Bytes, files and newest LastModified under active/<id>/. */
static enum wk_code list_space(struct scan *s, const char *id,
                               struct wk_err *err)
{
    char prefix[JOB_SPACE_ID_MAX + sizeof(ACTIVE) + 2];

    snprintf(prefix, sizeof(prefix), ACTIVE "%s/", id);
    s->bytes = 0;
    s->files = 0;
    s->newest = 0;
    s->tick_failed = false;
    return list_counted(s, prefix, NULL, NULL, on_object, s, err);
}

/* Does the manifest say "archived"? A missing manifest: no. */
static enum wk_code manifest_archived(struct scan *s, const char *id,
                                      bool *archived, int64_t *restored,
                                      struct wk_err *err)
{
    char key[JOB_SPACE_ID_MAX + 32];
    struct wk_err e2;
    enum wk_code rc;

    *archived = false;
    *restored = 0;
    mf_key(id, key, sizeof(key));
    wk_buf_reset(&s->mbuf);
    wk_err_clear(&e2);
    rc = store_get_all(s->st, key, &s->mbuf, &e2);
    if (rc == WK_E_NOTFOUND)
        return WK_OK;
    if (rc == WK_OK)
        rc = mf_parse(s->mbuf.data, s->mbuf.len, s->mf, &e2);
    if (rc != WK_OK) {
        wk_err_prefix(&e2, "manifest '%s'", key);
        return wk_err_copy(err, &e2);
    }
    *archived = mf_in_archive(s->mf); /* restoring: not to be archived */
    if (!*archived)
        *restored = (int64_t)s->mf->restored_at;
    return WK_OK;
}

static void item_error(struct sweep_item *it, const struct wk_err *e)
{
    it->archive = false;
    it->reason = SWEEP_R_ERROR;
    snprintf(it->error, sizeof(it->error), "%s", e->msg);
}

/* Decide one space and report it. Failures of the space alone are
 * reported as reason "error"; hook failures and cancellation return. */
static enum wk_code one_space(struct scan *s, const char *id, bool indexed,
                              int64_t last, struct wk_err *err)
{
    struct sweep_item it;
    struct sweep_signals sig;
    struct wk_err e2;
    enum wk_code rc;
    bool archived = false;
    int64_t restored = 0;

    memset(&it, 0, sizeof(it));
    memset(&sig, 0, sizeof(sig));
    snprintf(it.space_id, sizeof(it.space_id), "%s", id);
    it.idle_s = -1;
    if (!budget_left(s))
        return WK_E_LIMIT;
    rc = tick(s, err);
    if (rc != WK_OK)
        return rc;
    if (indexed) {
        it.indexed = true;
        it.last_activity = last;
        it.idle_s = s->now - last < 0 ? 0 : s->now - last;
    }
    if (!indexed || sweep_needs_listing(s->p, it.idle_s)) {
        wk_err_clear(&e2);
        rc = list_space(s, id, &e2);
        if (rc != WK_OK && (s->tick_failed || rc == WK_E_NOMEM))
            return wk_err_copy(err, &e2);
        if (rc != WK_OK) {
            item_error(&it, &e2);
            return report(s, &it, err);
        }
        it.listed = true;
        it.bytes = s->bytes;
        it.files = s->files;
        if (!indexed && s->files > 0) {
            it.last_activity = s->newest;
            it.idle_s = s->now - s->newest < 0 ? 0 : s->now - s->newest;
        }
    }
    sig.idle_s = it.idle_s;
    sig.listed = it.listed;
    sig.bytes = it.bytes;
    sig.files = it.files;
    it.archive = sweep_decide(s->p, &sig, &it.reason);
    if (it.archive) {
        if (s->h->busy) {
            rc = s->h->busy(s->h->ud, id, &sig.locked, &sig.job_pending, err);
            if (rc != WK_OK)
                return rc;
        }
        if (!sig.locked && !sig.job_pending) {
            wk_err_clear(&e2);
            rc = manifest_archived(s, id, &archived, &restored, &e2);
            if (rc == WK_E_NOMEM)
                return wk_err_copy(err, &e2);
            if (rc != WK_OK) {
                item_error(&it, &e2);
                return report(s, &it, err);
            }
            sig.archived = archived;
            /* A restore is activity: restored objects may carry old
             * times, and the index may not have heard of it. */
            if (restored > 0 &&
                (it.idle_s < 0 || s->now - restored < it.idle_s)) {
                it.last_activity = restored;
                it.idle_s = s->now - restored < 0 ? 0 : s->now - restored;
                sig.idle_s = it.idle_s;
            }
        }
        it.archive = sweep_decide(s->p, &sig, &it.reason);
    }
    if (sig.listed && sig.files == 0)
        it.idle_s = -1; /* an empty space has no last activity */
    return report(s, &it, err);
}

/* Look the batch up in the activity index, then decide each space. */
static enum wk_code flush(struct scan *s, struct wk_err *err)
{
    const char *ids[SWEEP_BATCH];
    int64_t last[SWEEP_BATCH];
    bool present[SWEEP_BATCH];
    enum wk_code rc = WK_OK;
    size_t n = s->n;

    s->n = 0;
    if (n == 0)
        return WK_OK;
    for (size_t i = 0; i < n; i++) {
        ids[i] = s->ids[i];
        last[i] = 0;
        present[i] = false;
    }
    if (s->h->activity) {
        rc = s->h->activity(s->h->ud, ids, n, last, present, err);
        if (rc != WK_OK)
            return rc;
    }
    for (size_t i = 0; i < n && rc == WK_OK; i++)
        rc = one_space(s, ids[i], present[i], last[i], err);
    return rc;
}

/* A folder under active/ whose name cannot be a spaceId. */
static enum wk_code report_invalid(struct scan *s, const char *name, size_t len,
                                   struct wk_err *err)
{
    struct sweep_item it;
    /* keep key order: the batch before it goes first */
    enum wk_code rc = flush(s, err);

    if (rc != WK_OK)
        return rc;
    if (!budget_left(s))
        return WK_E_LIMIT;
    memset(&it, 0, sizeof(it));
    snprintf(it.space_id, sizeof(it.space_id), "%.*s",
             (int)(len > JOB_SPACE_ID_MAX ? JOB_SPACE_ID_MAX : len), name);
    it.reason = SWEEP_R_INVALID_ID;
    it.idle_s = -1;
    rc = report(s, &it, err);
    /* the whole name (space_id is cut): the cursor must pass this folder */
    snprintf(s->tot->cursor, sizeof(s->tot->cursor), "%.*s/",
             (int)(len >= SWEEP_CURSOR_MAX ? SWEEP_CURSOR_MAX - 1 : len), name);
    return rc;
}

static enum wk_code on_space(const struct store_entry *e, void *ud,
                             struct wk_err *err)
{
    struct scan *s = ud;
    const char *name;
    size_t len;

    if (!e->is_prefix || strncmp(e->key, ACTIVE, strlen(ACTIVE)) != 0)
        return WK_OK; /* an object directly under active/: not a space */
    if (s->upto && strcmp(e->key, s->upto) > 0) {
        s->upto_hit = true; /* the first part of the circle began here */
        return WK_E_LIMIT;
    }
    name = e->key + strlen(ACTIVE);
    len = strlen(name);
    if (len > 0 && name[len - 1] == '/')
        len--;
    if (len == 0 || len > JOB_SPACE_ID_MAX)
        return report_invalid(s, name, len, err);
    memcpy(s->ids[s->n], name, len);
    s->ids[s->n][len] = '\0';
    if (!job_space_id_valid(s->ids[s->n]))
        return report_invalid(s, name, len, err);
    if (++s->n == SWEEP_BATCH)
        return flush(s, err);
    return WK_OK;
}

/* The folders of active/ after after (NULL: all), up to s->upto; true in
 * *end when the listing reached the end of active/ and every folder it
 * gave was examined. */
static enum wk_code scan_part(struct scan *s, const char *after, bool *end,
                              struct wk_err *err)
{
    char start[SWEEP_CURSOR_MAX + sizeof(ACTIVE) + 2];
    enum wk_code rc;

    *end = false;
    s->n = 0;
    if (after && *after)
        snprintf(start, sizeof(start), ACTIVE "%s", after);
    rc = list_counted(s, ACTIVE, "/", after && *after ? start : NULL, on_space,
                      s, err);
    if (rc == WK_E_LIMIT && (s->budget_hit || s->upto_hit))
        rc = WK_OK; /* our own stop: err untouched */
    if (rc == WK_OK && !s->budget_hit)
        rc = flush(s, err); /* the last batch (or the one before upto) */
    if (rc == WK_E_LIMIT && s->budget_hit)
        rc = WK_OK;
    *end = rc == WK_OK && !s->budget_hit && !s->upto_hit;
    return rc;
}

enum wk_code sweep_scan_range(struct store *st, const struct sweep_policy *p,
                              int64_t now, const struct sweep_range *r,
                              const struct sweep_hooks *h,
                              struct sweep_totals *totals, struct wk_err *err)
{
    static const struct sweep_range whole = { NULL, false, 0 };
    char upto[SWEEP_CURSOR_MAX + sizeof(ACTIVE) + 2];
    const char *after;
    struct scan s;
    bool end = false;
    enum wk_code rc;

    if (!r)
        r = &whole;
    after = r->after && *r->after ? r->after : NULL;
    memset(totals, 0, sizeof(*totals));
    snprintf(totals->cursor, sizeof(totals->cursor), "%s", after ? after : "");
    memset(&s, 0, sizeof(s));
    s.st = st;
    s.p = p;
    s.now = now;
    s.h = h;
    s.r = r;
    s.tot = totals;
    s.ids = malloc(SWEEP_BATCH * sizeof(*s.ids));
    s.mf = malloc(sizeof(*s.mf));
    wk_buf_init(&s.mbuf, 1u << 20);
    if (!s.ids || !s.mf) {
        rc = wk_err_set(err, WK_E_NOMEM, "sweep: out of memory");
        goto out;
    }
    rc = scan_part(&s, after, &end, err);
    if (rc != WK_OK || !end)
        goto out;
    totals->pass_completed = true;
    totals->scanned_at_end = totals->scanned;
    totals->cursor[0] = '\0';
    if (!after || !r->wrap || !budget_left(&s))
        goto out;
    /* the rest of the circle: the first folder up to the cursor (which the
     * run that saved it examined). Its end is no second pass: the cursor
     * stays at its last folder, and the next run finds the end at once. */
    snprintf(upto, sizeof(upto), ACTIVE "%s", after);
    s.upto = upto;
    rc = scan_part(&s, NULL, &end, err);
out:
    wk_buf_release(&s.mbuf);
    free(s.mf);
    free(s.ids);
    totals->budget_stop = s.budget_hit;
    return rc;
}

enum wk_code sweep_scan(struct store *st, const struct sweep_policy *p,
                        int64_t now, const struct sweep_hooks *h,
                        struct sweep_totals *totals, struct wk_err *err)
{
    return sweep_scan_range(st, p, now, NULL, h, totals, err);
}
