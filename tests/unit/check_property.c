/* property: "archived => restorable". Random spaces are archived and
 * restored through the real jobs (job_run: archive, then unarchive) against
 * store_mem, and every restored object must equal the original byte for
 * byte, with the same count. Random: safe names (unicode, spaces, '+', '%',
 * '~', dotfiles, deep or flat placement, root-level names such as a
 * user's notes.txt or .DS_Store), sizes from 0 to several MiB, content of
 * zeros, a repeating block or noise, deflate level 1 or 9, the job's window and
 * chunk sizes, and a plain or a sealed archive (client-side encryption).
 * The first space holds a file of zeros at level 9 (more than
 * 1000:1, which the ratio limit alone refuses).
 *
 * The seed is printed; PROPERTY_SEED=<n> replays one, PROPERTY_ITERS=<n>
 * changes the count (PROP_ITERS). A failure names the iteration, the seed and
 * the key. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"
#include "jobs/job.h"
#include "storage/seal.h"
#include "storage/store.h"
#include "tests/unit/suites.h"

#define PROP_SPACE  "5eed5eed5eed5eed5eed5eed5eed5eed"
#define PROP_ACTIVE "active/" PROP_SPACE "/"
#define PROP_ITERS  300u
#define PROP_SEED   20261206u
#define PROP_FILES  12u
#define PROP_KEY \
    "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
#define KIB 1024u
#define MIB (1024u * 1024u)

struct prop_rng {
    uint64_t s;
};

static uint64_t rnd(struct prop_rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}

static unsigned rnd_below(struct prop_rng *r, unsigned n)
{
    return (unsigned)(rnd(r) % n);
}

struct prop_file {
    char key[600];
    unsigned char *data; /* owned */
    size_t len;
};

struct prop_space {
    struct prop_file f[PROP_FILES + 1];
    size_t n;
};

static void space_release(struct prop_space *sp)
{
    for (size_t i = 0; i < sp->n; i++)
        free(sp->f[i].data);
    sp->n = 0;
}

/* Pieces a name component is made of: safe, and some of them awkward. */
static const char *const pieces[] = {
    "a",    "b",   "z",
    "0",    "9",   "-",
    "_",    " ",   "+",
    "%",    "~",   "=",
    ",",    "@",   "(",
    ")",    "'",   "!",
    "#",    "$",   "&",
    ";",    "[",   "]",
    "{",    "}",   "^",
    "`",    "doc", "IMG",
    "tmp",  "x.y", "ä",
    "日本", "é",   "😀",
    "ß",    "Ω",   "\xe2\x80\x8b" /* ZWSP */,
};

static void add_component(struct prop_rng *r, char *out, size_t cap, bool dot)
{
    size_t len = strlen(out);
    unsigned n = 1 + rnd_below(r, 6);

    if (dot && len + 1 < cap) {
        out[len++] = '.';
        out[len] = '\0';
    }
    for (unsigned i = 0; i < n; i++) {
        const char *p = pieces[rnd_below(r, sizeof(pieces) / sizeof(*pieces))];
        size_t pl = strlen(p);
        if (len + pl + 1 >= cap)
            break;
        memcpy(out + len, p, pl + 1);
        len += pl;
    }
    /* never "." or "..": a dot component has a letter after it */
    if (strcmp(out + strlen(out) - 1, ".") == 0 && len + 1 < cap) {
        out[len++] = 'q';
        out[len] = '\0';
    }
}

/* A random safe key under PROP_ACTIVE. */
static void random_key(struct prop_rng *r, bool root_names, char *key,
                       size_t cap)
{
    unsigned depth = rnd_below(r, 5); /* directories below the top */
    unsigned top = rnd_below(r, root_names ? 10 : 8);

    snprintf(key, cap, "%s", PROP_ACTIVE);
    if (top == 0) {
        snprintf(key + strlen(key), cap - strlen(key), "sila.md");
        return;
    }
    if (top < 8)
        snprintf(key + strlen(key), cap - strlen(key), "space-v1/");
    for (unsigned d = 0; d < depth; d++) {
        add_component(r, key, cap, rnd_below(r, 5) == 0);
        snprintf(key + strlen(key), cap - strlen(key), "/");
    }
    add_component(r, key, cap, rnd_below(r, 4) == 0); /* dotfiles */
}

static size_t random_size(struct prop_rng *r)
{
    unsigned b = rnd_below(r, 100);
    if (b < 10)
        return 0;
    if (b < 45)
        return rnd_below(r, 1024);
    if (b < 75)
        return rnd_below(r, 64 * KIB);
    if (b < 93)
        return rnd_below(r, 512 * KIB);
    return MIB + rnd_below(r, 5 * MIB);
}

/* zeros, a repeating block, noise, or half noise half zeros */
static void random_data(struct prop_rng *r, unsigned char *p, size_t n,
                        unsigned kind)
{
    switch (kind) {
    case 0:
        memset(p, 0, n);
        break;
    case 1: {
        size_t period = 1 + rnd_below(r, 4096);
        for (size_t i = 0; i < n && i < period; i++)
            p[i] = (unsigned char)rnd(r);
        for (size_t i = period; i < n; i++)
            p[i] = p[i - period];
        break;
    }
    case 2:
        for (size_t i = 0; i < n; i++)
            p[i] = (unsigned char)(rnd(r) >> 24);
        break;
    default:
        for (size_t i = 0; i < n; i++)
            p[i] = i < n / 2 ? (unsigned char)(rnd(r) >> 24) : 0;
        break;
    }
}

static bool has_key(const struct prop_space *sp, const char *key)
{
    for (size_t i = 0; i < sp->n; i++)
        if (strcmp(sp->f[i].key, key) == 0)
            return true;
    return false;
}

static void add_file(struct prop_space *sp, const char *key, size_t len,
                     unsigned kind, struct prop_rng *r)
{
    struct prop_file *f = &sp->f[sp->n++];

    snprintf(f->key, sizeof(f->key), "%s", key);
    f->len = len;
    f->data = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(f->data);
    random_data(r, f->data, len, kind);
}

static void make_space(struct prop_rng *r, unsigned iter, bool root_names,
                       struct prop_space *sp)
{
    unsigned n = 1 + rnd_below(r, PROP_FILES);

    sp->n = 0;
    if (iter == 0)
        /* zeros at level 9: > 1000:1, past ratio_min_bytes */
        add_file(sp, PROP_ACTIVE "space-v1/files/zeros.bin", 6 * MIB, 0, r);
    while (sp->n < n) {
        char key[600];
        random_key(r, root_names, key, sizeof(key));
        if (has_key(sp, key) || !store_key_valid(key))
            continue;
        add_file(sp, key, random_size(r), rnd_below(r, 4), r);
    }
}

static time_t prop_now(void)
{
    return (time_t)1795701600;
}

static enum wk_code run(struct store *st, enum job_type type,
                        const struct job_config *cfg,
                        const struct seal_keyring *keys, struct wk_buf *result,
                        struct wk_err *err)
{
    struct job job;
    struct job_ctx ctx;

    memset(&job, 0, sizeof(job));
    snprintf(job.id, sizeof(job.id), "prop-%d", (int)type);
    job.type = type;
    snprintf(job.space_id, sizeof(job.space_id), "%s", PROP_SPACE);
    memset(&ctx, 0, sizeof(ctx));
    ctx.store = st;
    ctx.cfg = cfg;
    ctx.now = prop_now;
    ctx.keys = keys;
    wk_buf_reset(result);
    wk_err_clear(err);
    return job_run(&job, &ctx, result, err);
}

struct listing {
    size_t n;
    char *keys[PROP_FILES + 2];
};

static enum wk_code list_cb(const struct store_entry *e, void *ud,
                            struct wk_err *err)
{
    struct listing *l = ud;
    (void)err;
    if (e->is_prefix)
        return WK_OK;
    if (l->n < sizeof(l->keys) / sizeof(l->keys[0]))
        l->keys[l->n] = strdup(e->key);
    l->n++;
    return WK_OK;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 10) : dflt;
}

START_TEST(test_property_archive_restore_round_trip)
{
    uint64_t seed = env_u64("PROPERTY_SEED", PROP_SEED);
    unsigned iters = (unsigned)env_u64("PROPERTY_ITERS", PROP_ITERS);
    bool root_names = true; /* names anywhere in the space */
    struct prop_rng r = { seed * 2654435761u + 1 };
    struct wk_buf result, got;
    struct wk_err err;
    uint64_t bytes = 0, files = 0, zeros9 = 0, nsealed = 0;
    struct seal_keyring *kr = NULL;
    struct timespec t0, t1;

    fprintf(stderr, "property: seed %llu, %u iterations, root-level names %s\n",
            (unsigned long long)seed, iters, root_names ? "on" : "off");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    wk_err_clear(&err);
    ck_assert_int_eq(seal_keyring_parse(PROP_KEY "\n", strlen(PROP_KEY) + 1,
                                        "property", &kr, &err),
                     WK_OK);
    wk_buf_init(&result, 1u << 16);
    wk_buf_init(&got, 16 * MIB);
    for (unsigned it = 0; it < iters; it++) {
        struct store *st = NULL;
        struct prop_space sp;
        struct job_config cfg;
        struct listing l;
        bool sealed;
        static const uint64_t chunks[] = { 256 * KIB, 1 * MIB, 8 * MIB };
        enum wk_code rc;

        memset(&l, 0, sizeof(l));
        make_space(&r, it, root_names, &sp);
        job_config_defaults(&cfg);
        cfg.deflate_level = it == 0 || rnd_below(&r, 2) ? 9 : 1;
        cfg.window_objects = 1 + rnd_below(&r, 8);
        cfg.window_bytes = (1 + rnd_below(&r, 16)) * MIB;
        cfg.chunk_bytes = chunks[rnd_below(&r, 3)];
        /* the restore's read window: any count, sizes off every boundary */
        cfg.reads = 1 + rnd_below(&r, 6);
        cfg.read_bytes = 64 * KIB + rnd_below(&r, 3 * MIB);
        sealed = rnd_below(&r, 4) == 0; /* client-side encryption */
        nsealed += sealed;
        wk_err_clear(&err);
        ck_assert_int_eq(store_mem_new(&st, &err), WK_OK);
        for (size_t i = 0; i < sp.n; i++) {
            ck_assert_msg(store_put(st, sp.f[i].key, sp.f[i].data, sp.f[i].len,
                                    &err) == WK_OK,
                          "put '%s': %s", sp.f[i].key, err.msg);
            bytes += sp.f[i].len;
            if (cfg.deflate_level == 9 && sp.f[i].len > MIB &&
                sp.f[i].data[0] == 0 && sp.f[i].data[sp.f[i].len - 1] == 0 &&
                sp.f[i].data[sp.f[i].len / 4] == 0)
                zeros9++;
        }
        files += sp.n;

        rc = run(st, JOB_ARCHIVE, &cfg, sealed ? kr : NULL, &result, &err);
        ck_assert_msg(rc == WK_OK,
                      "iteration %u (seed %llu): archive of %zu files, "
                      "level %d: %s",
                      it, (unsigned long long)seed, sp.n, cfg.deflate_level,
                      err.msg);
        ck_assert_msg(strstr(wk_buf_cstr(&result), "\"skipped\"") == NULL,
                      "iteration %u: archive skipped: %s", it,
                      wk_buf_cstr(&result));
        ck_assert_int_eq(store_list(st, PROP_ACTIVE, NULL, list_cb, &l, &err),
                         WK_OK);
        ck_assert_msg(l.n == 0,
                      "iteration %u: %zu objects left after the "
                      "archive",
                      it, l.n);

        rc = run(st, JOB_UNARCHIVE, &cfg, sealed ? kr : NULL, &result, &err);
        ck_assert_msg(rc == WK_OK,
                      "iteration %u (seed %llu): restore of %zu files, "
                      "level %d: %s",
                      it, (unsigned long long)seed, sp.n, cfg.deflate_level,
                      err.msg);
        ck_assert_int_eq(store_list(st, PROP_ACTIVE, NULL, list_cb, &l, &err),
                         WK_OK);
        ck_assert_msg(l.n == sp.n,
                      "iteration %u (seed %llu): %zu objects restored of %zu",
                      it, (unsigned long long)seed, l.n, sp.n);
        for (size_t i = 0; i < sp.n; i++) {
            wk_buf_reset(&got);
            ck_assert_msg(store_get_all(st, sp.f[i].key, &got, &err) == WK_OK,
                          "iteration %u (seed %llu): '%s' not restored: %s", it,
                          (unsigned long long)seed, sp.f[i].key, err.msg);
            ck_assert_msg(got.len == sp.f[i].len &&
                              (got.len == 0 ||
                               memcmp(got.data, sp.f[i].data, got.len) == 0),
                          "iteration %u (seed %llu): '%s' restored with "
                          "other bytes (%zu, not %zu)",
                          it, (unsigned long long)seed, sp.f[i].key, got.len,
                          sp.f[i].len);
        }
        for (size_t i = 0; i < l.n && i < sizeof(l.keys) / sizeof(*l.keys);
             i++) {
            ck_assert_msg(has_key(&sp, l.keys[i]),
                          "iteration %u: '%s' restored, never archived", it,
                          l.keys[i]);
            free(l.keys[i]);
        }
        space_release(&sp);
        store_free(st);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr,
            "property: %u spaces (%llu sealed), %llu files, %llu bytes, "
            "%llu zero files at level 9, %.1f s\n",
            iters, (unsigned long long)nsealed, (unsigned long long)files,
            (unsigned long long)bytes, (unsigned long long)zeros9,
            (double)(t1.tv_sec - t0.tv_sec) +
                (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    ck_assert_uint_ge(zeros9, 1);
    seal_keyring_free(kr);
    wk_buf_release(&got);
    wk_buf_release(&result);
}
END_TEST

Suite *property_suite(void)
{
    Suite *s = suite_create("property");
    TCase *tc = tcase_create("round_trip");
    tcase_add_test(tc, test_property_archive_restore_round_trip);
    tcase_set_timeout(tc, 240);
    suite_add_tcase(s, tc);
    return s;
}
