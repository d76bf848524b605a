/* verify: the central directory reader (zipcd) over a store, with ranged
 * GETs counted by a spy store (request count and size bounded by
 * configuration, not by entry count; ZIP64 records required when needed;
 * sealed archives), and the restore's part size (grown with the entry's
 * size, from the real restore path through a store that records the part
 * size each streamed write asks for). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"
#include "jobs/job.h"
#include "jobs/job_unarchive.h"
#include "jobs/manifest.h"
#include "zip/zipcd.h"
#include "zip/zipw.h"
#include "storage/seal.h"
#include "storage/store.h"
#include "storage/store_hash.h"
#include "tests/unit/suites.h"

#define KIB       1024u
#define MIB       (1024u * 1024u)
#define ZKEY      "archived/s/workspace-20261126T140000Z.zip"
#define MANY      70000u
#define SPACE     "feedfeedfeedfeedfeedfeedfeedfeed"
#define ACTIVE    "active/" SPACE "/"
#define BIG_NAME  "space-v1/big.bin"
#define BIG_BYTES (9u * MIB)
#define KEY_A     "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

/* ---- a store forwarding to store_mem, counting reads and recording the
 * part size of every streamed write ---- */

struct spy {
    struct store base;
    struct store *inner; /* owned */
    unsigned reads;      /* ranged reads (get_many requests) */
    uint64_t max_get;    /* longest one */
    uint64_t parts[8];   /* part_bytes asked by streamed writes to active/ */
    unsigned nparts;
};

static struct spy *spy_of(struct store *st)
{
    return (struct spy *)st;
}

static enum wk_code spy_list(struct store *st, const char *prefix,
                             const char *delimiter, store_list_cb cb, void *ud,
                             struct wk_err *err)
{
    return store_list(spy_of(st)->inner, prefix, delimiter, cb, ud, err);
}

static enum wk_code spy_head(struct store *st, const char *key,
                             struct store_stat *out, struct wk_err *err)
{
    return store_head(spy_of(st)->inner, key, out, err);
}

static enum wk_code spy_get(struct store *st, const char *key, uint64_t offset,
                            uint64_t len, store_sink_cb sink, void *ud,
                            struct wk_err *err)
{
    return store_get(spy_of(st)->inner, key, offset, len, sink, ud, err);
}

static enum wk_code spy_get_many(struct store *st, struct store_get *reqs,
                                 size_t n, struct wk_err *err)
{
    struct spy *s = spy_of(st);
    for (size_t i = 0; i < n; i++) {
        s->reads++;
        if (reqs[i].len > s->max_get)
            s->max_get = reqs[i].len;
    }
    return store_get_many(s->inner, reqs, n, err);
}

static enum wk_code spy_put(struct store *st, const char *key, const void *p,
                            size_t n, struct wk_err *err)
{
    return store_put(spy_of(st)->inner, key, p, n, err);
}

static enum wk_code spy_put_if(struct store *st, const char *key, const void *p,
                               size_t n, const char *if_match, char *etag_out,
                               size_t etag_len, struct wk_err *err)
{
    return store_put_if(spy_of(st)->inner, key, p, n, if_match, etag_out,
                        etag_len, err);
}

static enum wk_code spy_put_many(struct store *st, struct store_put *reqs,
                                 size_t n, struct wk_err *err)
{
    return store_put_many(spy_of(st)->inner, reqs, n, err);
}

static enum wk_code spy_open_write(struct store *st, const char *key,
                                   const struct store_writer_opts *opts,
                                   struct store_writer **out,
                                   struct wk_err *err)
{
    struct spy *s = spy_of(st);
    if (strncmp(key, "active/", 7) == 0 && s->nparts < 8)
        s->parts[s->nparts++] = opts ? opts->part_bytes : 0;
    return store_open_write(s->inner, key, opts, out, err);
}

static enum wk_code spy_delete_many(struct store *st, const char *const *keys,
                                    size_t n, size_t *ndeleted,
                                    struct wk_err *err)
{
    return store_delete_many(spy_of(st)->inner, keys, n, ndeleted, err);
}

static enum wk_code spy_delete_if(struct store *st, const char *const *keys,
                                  const char *const *etags, size_t n,
                                  size_t *ndeleted, bool *kept,
                                  struct wk_err *err)
{
    return store_delete_if(spy_of(st)->inner, keys, etags, n, ndeleted, kept,
                           err);
}

static enum wk_code spy_abort_pending(struct store *st, const char *prefix,
                                      size_t *naborted, struct wk_err *err)
{
    return store_abort_pending(spy_of(st)->inner, prefix, naborted, err);
}

static enum wk_code spy_count_pending(struct store *st, const char *prefix,
                                      size_t *npending, struct wk_err *err)
{
    return store_count_pending(spy_of(st)->inner, prefix, npending, err);
}

static void spy_free(struct store *st)
{
    struct spy *s = spy_of(st);
    store_free(s->inner);
    free(s);
}

static const struct store_ops spy_ops = {
    .name = "spy",
    .list = spy_list,
    .head = spy_head,
    .get = spy_get,
    .get_many = spy_get_many,
    .put = spy_put,
    .put_if = spy_put_if,
    .put_many = spy_put_many,
    .open_write = spy_open_write,
    .delete_many = spy_delete_many,
    .delete_if = spy_delete_if,
    .abort_pending = spy_abort_pending,
    .count_pending = spy_count_pending,
    .free = spy_free,
};

static struct spy *spy_new(void)
{
    struct spy *s = calloc(1, sizeof(*s));
    struct wk_err err;

    ck_assert_ptr_nonnull(s);
    wk_err_clear(&err);
    ck_assert_int_eq(store_mem_new(&s->inner, &err), WK_OK);
    s->base.ops = &spy_ops;
    return s;
}

/* ---- archives written by zipw into the store ---- */

struct written {
    struct zipw_rec *recs; /* owned: what zipw wrote */
    size_t n;
    uint64_t stored; /* bytes of the object */
};

static void entry_name(char *buf, size_t len, unsigned i)
{
    snprintf(buf, len, "space-v1/d%02u/n\xc3\xa4me-%06u", i % 37, i);
}

/* n entries, entry i of i % 5 bytes of 'a' + i; sealed with dk if set. */
static void write_archive(struct store *st, unsigned n,
                          const struct seal_dk *dk, struct written *out)
{
    struct store_writer *w = NULL;
    struct seal_writer *sw = NULL;
    struct zipw *zw = NULL;
    struct zipw_opts zo = { .level = 6 };
    struct wk_err err;
    const struct zipw_rec *recs;
    struct store_stat sb;

    wk_err_clear(&err);
    ck_assert_int_eq(store_open_write(st, ZKEY, NULL, &w, &err), WK_OK);
    if (dk) {
        ck_assert_int_eq(seal_writer_new(w, dk, &sw, &err), WK_OK);
        w = seal_writer_sink(sw);
    }
    ck_assert_int_eq(zipw_new(w, &zo, &zw, &err), WK_OK);
    for (unsigned i = 0; i < n; i++) {
        char name[64];
        unsigned char data[4];
        size_t len = i % 5;
        memset(data, (int)('a' + i % 26), sizeof(data));
        entry_name(name, sizeof(name), i);
        ck_assert_int_eq(zipw_entry_begin(zw, name, len, 1700000000, 0, &err),
                         WK_OK);
        ck_assert_int_eq(zipw_entry_write(zw, data, len, &err), WK_OK);
        ck_assert_int_eq(zipw_entry_end(zw, &err), WK_OK);
    }
    ck_assert_int_eq(zipw_finish(zw, &err), WK_OK);
    ck_assert_int_eq(store_writer_commit(w, &err), WK_OK);
    recs = zipw_entries(zw, &out->n);
    ck_assert_uint_eq(out->n, n);
    out->recs = malloc((n ? n : 1) * sizeof(*out->recs));
    ck_assert_ptr_nonnull(out->recs);
    memcpy(out->recs, recs, n * sizeof(*recs));
    zipw_free(zw);
    store_writer_free(w);
    ck_assert_int_eq(store_head(st, ZKEY, &sb, &err), WK_OK);
    out->stored = sb.size;
}

/* The callback's view: every entry as zipw wrote it, in order. */
struct seen {
    const struct written *w;
    uint64_t n;
};

static enum wk_code seen_cb(const struct zipcd_entry *e, void *ud,
                            struct wk_err *err)
{
    struct seen *s = ud;
    char name[64];

    (void)err;
    ck_assert_uint_eq(e->index, s->n);
    ck_assert_uint_lt(e->index, s->w->n);
    entry_name(name, sizeof(name), (unsigned)e->index);
    ck_assert_str_eq(e->name, name);
    ck_assert_uint_eq(e->name_len, strlen(name));
    ck_assert_uint_eq(e->usize, s->w->recs[e->index].size);
    ck_assert_uint_eq(e->crc, s->w->recs[e->index].crc32);
    s->n++;
    return WK_OK;
}

static void rewrite(struct store *st, void (*edit)(struct wk_buf *b))
{
    struct wk_buf b;
    struct wk_err err;

    wk_buf_init(&b, 64 * MIB);
    wk_err_clear(&err);
    ck_assert_int_eq(store_get_all(st, ZKEY, &b, &err), WK_OK);
    edit(&b);
    ck_assert_int_eq(store_put(st, ZKEY, b.data, b.len, &err), WK_OK);
    wk_buf_release(&b);
}

static uint64_t size_of(struct store *st)
{
    struct store_stat sb;
    struct wk_err err;
    wk_err_clear(&err);
    ck_assert_int_eq(store_head(st, ZKEY, &sb, &err), WK_OK);
    return sb.size;
}

static void expect_corrupt(struct store *st, const char *want)
{
    struct wk_err err;
    wk_err_clear(&err);
    ck_assert_int_eq(
        zipcd_read(st, ZKEY, size_of(st), NULL, 0, NULL, NULL, NULL, &err),
        WK_E_CORRUPT);
    ck_assert_msg(strstr(err.msg, want), "'%s' lacks '%s'", err.msg, want);
}

static void le16put(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void le32put(unsigned char *p, uint32_t v)
{
    le16put(p, v & 0xffff);
    le16put(p + 2, v >> 16);
}

/* ---- zipcd ---- */

/* A small archive: its central directory comes with the tail, one GET. */
START_TEST(test_verify_zipcd_small_archive_one_request)
{
    struct spy *sp = spy_new();
    struct written w;
    struct seen s = { &w, 0 };
    struct zipcd_info info;
    struct wk_err err;

    write_archive(&sp->base, 40, NULL, &w);
    sp->reads = 0;
    wk_err_clear(&err);
    ck_assert_msg(zipcd_read(&sp->base, ZKEY, w.stored, NULL, 0, seen_cb, &s,
                             &info, &err) == WK_OK,
                  "%s", err.msg);
    ck_assert_uint_eq(s.n, 40);
    ck_assert_uint_eq(info.entries, 40);
    ck_assert(!info.zip64);
    ck_assert_uint_eq(info.cd_offset + info.cd_size, info.eocd_offset);
    ck_assert_uint_eq(info.eocd_offset + 22, w.stored);
    ck_assert_uint_eq(sp->reads, 1);
    ck_assert_uint_eq(info.requests, 1);
    free(w.recs);
    store_free(&sp->base);
}
END_TEST

/* Drop the ZIP64 end record and locator before the end record. */
static void strip_zip64(struct wk_buf *b)
{
    size_t eocd = b->len - 22;
    ck_assert_int_eq(memcmp(b->data + eocd - 20, "PK\006\007", 4), 0);
    ck_assert_int_eq(memcmp(b->data + eocd - 76, "PK\006\006", 4), 0);
    memmove(b->data + eocd - 76, b->data + eocd, 22);
    b->len -= 76;
}

/* 70,000 entries: ZIP64 end records, a central directory of megabytes
 * streamed in blocks of 64 KiB (requests and their size bounded by the
 * block, not by the entry count). Without its ZIP64 end record and
 * locator, the same archive cannot say how many entries it holds: refused
 * (one test, as writing 70,000 entries takes seconds). */
START_TEST(test_verify_zipcd_many_entries_streamed)
{
    struct spy *sp = spy_new();
    struct written w;
    struct seen s = { &w, 0 };
    struct zipcd_info info;
    struct wk_err err;
    uint64_t blocks;

    write_archive(&sp->base, MANY, NULL, &w);
    sp->reads = 0;
    sp->max_get = 0;
    wk_err_clear(&err);
    ck_assert_msg(zipcd_read(&sp->base, ZKEY, w.stored, NULL, 64 * KIB, seen_cb,
                             &s, &info, &err) == WK_OK,
                  "%s", err.msg);
    ck_assert_uint_eq(s.n, MANY);
    ck_assert_uint_eq(info.entries, MANY);
    ck_assert(info.zip64);
    ck_assert_uint_gt(info.cd_size, 4 * MIB);
    blocks = (info.cd_size + 64 * KIB - 1) / (64 * KIB);
    /* the tail, then the directory block by block */
    ck_assert_uint_le(sp->reads, 1 + blocks);
    ck_assert_uint_ge(sp->reads, blocks);
    ck_assert_uint_le(sp->max_get, ZIPCD_TAIL_BYTES);
    ck_assert_uint_eq(info.requests, sp->reads);
    rewrite(&sp->base, strip_zip64);
    expect_corrupt(&sp->base, "more records than the end record says");
    free(w.recs);
    store_free(&sp->base);
}
END_TEST

/* Bytes between the central directory and the end record. */
static void insert_gap(struct wk_buf *b)
{
    struct wk_err err;
    unsigned char eocd[22];
    wk_err_clear(&err);
    memcpy(eocd, b->data + b->len - 22, 22);
    b->len -= 22;
    ck_assert_int_eq(wk_buf_append(b, "GAP!", 4, &err), WK_OK);
    ck_assert_int_eq(wk_buf_append(b, eocd, 22, &err), WK_OK);
}

START_TEST(test_verify_zipcd_cd_must_end_at_eocd)
{
    struct spy *sp = spy_new();
    struct written w;

    write_archive(&sp->base, 10, NULL, &w);
    rewrite(&sp->base, insert_gap);
    expect_corrupt(&sp->base, "does not end where the end records start");
    free(w.recs);
    store_free(&sp->base);
}
END_TEST

static void append_junk(struct wk_buf *b)
{
    struct wk_err err;
    wk_err_clear(&err);
    ck_assert_int_eq(wk_buf_append(b, "junk", 4, &err), WK_OK);
}

START_TEST(test_verify_zipcd_nothing_after_eocd)
{
    struct spy *sp = spy_new();
    struct written w;

    write_archive(&sp->base, 10, NULL, &w);
    rewrite(&sp->base, append_junk);
    expect_corrupt(&sp->base, "no end of central directory record at its end");
    free(w.recs);
    store_free(&sp->base);
}
END_TEST

/* The second record's signature is broken. */
static void break_record(struct wk_buf *b)
{
    unsigned char *e = (unsigned char *)b->data + b->len - 22;
    unsigned char *p = (unsigned char *)b->data +
                       ((uint32_t)e[16] | ((uint32_t)e[17] << 8) |
                        ((uint32_t)e[18] << 16) | ((uint32_t)e[19] << 24));
    p += 46 + (p[28] | (p[29] << 8)) + (p[30] | (p[31] << 8)) +
         (p[32] | (p[33] << 8));
    ck_assert_int_eq(memcmp(p, "PK\001\002", 4), 0);
    p[3] = 9;
}

START_TEST(test_verify_zipcd_bad_record)
{
    struct spy *sp = spy_new();
    struct written w;

    write_archive(&sp->base, 10, NULL, &w);
    rewrite(&sp->base, break_record);
    expect_corrupt(&sp->base, "no central directory record at offset");
    free(w.recs);
    store_free(&sp->base);
}
END_TEST

/* Entry 2's local header offset moved inside entry 1. */
static void overlap_entries(struct wk_buf *b)
{
    unsigned char *e = (unsigned char *)b->data + b->len - 22;
    unsigned char *p = (unsigned char *)b->data +
                       ((uint32_t)e[16] | ((uint32_t)e[17] << 8) |
                        ((uint32_t)e[18] << 16) | ((uint32_t)e[19] << 24));
    unsigned char *q;
    uint32_t off;

    p += 46 + (p[28] | (p[29] << 8)) + (p[30] | (p[31] << 8)) +
         (p[32] | (p[33] << 8)); /* entry 1 */
    q = p + 46 + (p[28] | (p[29] << 8)) + (p[30] | (p[31] << 8)) +
        (p[32] | (p[33] << 8)); /* entry 2 */
    off = ((uint32_t)p[42] | ((uint32_t)p[43] << 8) | ((uint32_t)p[44] << 16) |
           ((uint32_t)p[45] << 24)) +
          1;
    le32put(q + 42, off);
}

START_TEST(test_verify_zipcd_overlap)
{
    struct spy *sp = spy_new();
    struct written w;

    write_archive(&sp->base, 10, NULL, &w);
    rewrite(&sp->base, overlap_entries);
    expect_corrupt(&sp->base, "central directory entry 2 at offset ");
    expect_corrupt(&sp->base, "overlapping entries: zip bomb?");
    free(w.recs);
    store_free(&sp->base);
}
END_TEST

static struct seal_keyring *ring(void)
{
    struct seal_keyring *kr = NULL;
    struct wk_err err;
    wk_err_clear(&err);
    ck_assert_int_eq(
        seal_keyring_parse(KEY_A "\n", strlen(KEY_A) + 1, "test", &kr, &err),
        WK_OK);
    return kr;
}

static void flip_last_chunk(struct wk_buf *b)
{
    b->data[b->len - 30] ^= 0x20;
}

/* Sealed: read through the data key, every chunk authenticated; a
 * tampered chunk is refused. */
START_TEST(test_verify_zipcd_sealed)
{
    struct spy *sp = spy_new();
    struct seal_keyring *kr = ring();
    struct seal_info info;
    struct seal_dk dk;
    struct written w;
    struct seen s = { &w, 0 };
    struct zipcd_info zi;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(seal_dk_new(kr, "space-1", &info, &dk, &err), WK_OK);
    write_archive(&sp->base, 3000, &dk, &w);
    ck_assert_msg(zipcd_read(&sp->base, ZKEY, w.stored, &dk, 64 * KIB, seen_cb,
                             &s, &zi, &err) == WK_OK,
                  "%s", err.msg);
    ck_assert_uint_eq(s.n, 3000);
    ck_assert_uint_lt(zi.zip_size, w.stored);
    /* a plain read of the sealed bytes finds no ZIP */
    wk_err_clear(&err);
    ck_assert_int_eq(
        zipcd_read(&sp->base, ZKEY, w.stored, NULL, 0, NULL, NULL, NULL, &err),
        WK_E_CORRUPT);
    rewrite(&sp->base, flip_last_chunk);
    wk_err_clear(&err);
    ck_assert_int_eq(
        zipcd_read(&sp->base, ZKEY, w.stored, &dk, 0, NULL, NULL, NULL, &err),
        WK_E_CORRUPT);
    seal_dk_wipe(&dk);
    seal_keyring_free(kr);
    free(w.recs);
    store_free(&sp->base);
}
END_TEST

/* ---- the restore's part size ---- */

START_TEST(test_verify_restore_part_bytes_grow)
{
    const uint64_t five = 5 * (uint64_t)MIB;
    const uint64_t limit = 10000 * five; /* 48.8 GiB */

    ck_assert_uint_eq(job_unarchive_part_bytes(0, five), five);
    ck_assert_uint_eq(job_unarchive_part_bytes(UINT64_MAX, five), five);
    ck_assert_uint_eq(job_unarchive_part_bytes(limit, five), five);
    ck_assert_uint_eq(job_unarchive_part_bytes(limit + 1, five), 6 * MIB);
    /* 60 GiB: 6.4 MB a part, rounded up to 7 MiB; 10,000 parts hold it */
    ck_assert_uint_eq(job_unarchive_part_bytes(60ull << 30, five), 7 * MIB);
    ck_assert_uint_ge(10000 * job_unarchive_part_bytes(60ull << 30, five),
                      60ull << 30);
    ck_assert_uint_ge(10000 * job_unarchive_part_bytes(5ull << 40, five),
                      5ull << 40);
}
END_TEST

static time_t fixed_now(void)
{
    return (time_t)1795701600;
}

static enum wk_code run(struct spy *sp, enum job_type type,
                        const struct job_config *cfg, struct wk_err *err)
{
    struct job job;
    struct job_ctx ctx;
    struct wk_buf result;
    enum wk_code rc;

    memset(&job, 0, sizeof(job));
    snprintf(job.id, sizeof(job.id), "j-parts");
    job.type = type;
    snprintf(job.space_id, sizeof(job.space_id), "%s", SPACE);
    memset(&ctx, 0, sizeof(ctx));
    ctx.store = &sp->base;
    ctx.cfg = cfg;
    ctx.now = fixed_now;
    wk_buf_init(&result, 1u << 16);
    wk_err_clear(err);
    rc = job_run(&job, &ctx, &result, err);
    wk_buf_release(&result);
    return rc;
}

static void le64put(unsigned char *p, uint64_t v)
{
    le32put(p, (uint32_t)v);
    le32put(p + 4, (uint32_t)(v >> 32));
}

/* One stored entry of BIG_BYTES zeros (sizes in a data descriptor) whose
 * central directory declares declared bytes (a ZIP64 value). */
static void craft_zip(struct wk_buf *b, uint64_t declared)
{
    size_t n = strlen(BIG_NAME);
    unsigned char lh[30], dd[16], cd[46 + 12], eocd[22];
    unsigned char *zeros = calloc(1, BIG_BYTES);
    uint32_t crc;
    uint64_t cd_off = 30 + n + BIG_BYTES + 16;
    struct wk_err err;

    ck_assert_ptr_nonnull(zeros);
    crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), zeros, BIG_BYTES);
    memset(lh, 0, sizeof(lh));
    memcpy(lh, "PK\003\004", 4);
    le16put(lh + 4, 45);
    le16put(lh + 6, 0x0008);
    le16put(lh + 26, (unsigned)n);
    memset(dd, 0, sizeof(dd));
    memcpy(dd, "PK\007\010", 4);
    le32put(dd + 4, crc);
    le32put(dd + 8, BIG_BYTES);
    le32put(dd + 12, BIG_BYTES);
    memset(cd, 0, sizeof(cd));
    memcpy(cd, "PK\001\002", 4);
    le16put(cd + 4, 0x031e);
    le16put(cd + 6, 45);
    le16put(cd + 8, 0x0008);
    le32put(cd + 16, crc);
    le32put(cd + 20, BIG_BYTES);
    le32put(cd + 24, 0xffffffff);
    le16put(cd + 28, (unsigned)n);
    le16put(cd + 30, 12);
    le32put(cd + 38, (uint32_t)0100644 << 16);
    wk_buf_init(b, 2 * BIG_BYTES);
    wk_err_clear(&err);
    ck_assert_int_eq(wk_buf_append(b, lh, 30, &err), WK_OK);
    ck_assert_int_eq(wk_buf_append(b, BIG_NAME, n, &err), WK_OK);
    ck_assert_int_eq(wk_buf_append(b, zeros, BIG_BYTES, &err), WK_OK);
    ck_assert_int_eq(wk_buf_append(b, dd, 16, &err), WK_OK);
    ck_assert_uint_eq(b->len, cd_off);
    ck_assert_int_eq(wk_buf_append(b, cd, 46, &err), WK_OK);
    ck_assert_int_eq(wk_buf_append(b, BIG_NAME, n, &err), WK_OK);
    {
        unsigned char x[12];
        le16put(x, 0x0001);
        le16put(x + 2, 8);
        le64put(x + 4, declared);
        ck_assert_int_eq(wk_buf_append(b, x, 12, &err), WK_OK);
    }
    memset(eocd, 0, sizeof(eocd));
    memcpy(eocd, "PK\005\006", 4);
    le16put(eocd + 8, 1);
    le16put(eocd + 10, 1);
    le32put(eocd + 12, (uint32_t)(b->len - cd_off));
    le32put(eocd + 16, (uint32_t)cd_off);
    ck_assert_int_eq(wk_buf_append(b, eocd, 22, &err), WK_OK);
    free(zeros);
}

/* Archive a space of one BIG_BYTES file; the manifest then names zip (its
 * size, checksum; NULL: the archive made) as the current archive,
 * declaring uncompressed bytes (0 and no zip: the manifest as written). */
static void archived_space(struct spy *sp, const struct wk_buf *zip,
                           uint64_t uncompressed, struct job_config *cfg)
{
    unsigned char *zeros = calloc(1, BIG_BYTES);
    struct wk_buf mb;
    struct mf m;
    struct wk_err err;
    char mk[128];

    ck_assert_ptr_nonnull(zeros);
    job_config_defaults(cfg);
    cfg->chunk_bytes = 1 * MIB; /* the entry is streamed, multipart */
    wk_err_clear(&err);
    ck_assert_int_eq(
        store_put(sp->inner, ACTIVE BIG_NAME, zeros, BIG_BYTES, &err), WK_OK);
    free(zeros);
    ck_assert_msg(run(sp, JOB_ARCHIVE, cfg, &err) == WK_OK, "%s", err.msg);
    if (!zip && !uncompressed)
        return;
    mf_key(SPACE, mk, sizeof(mk));
    wk_buf_init(&mb, 1u << 20);
    ck_assert_int_eq(store_get_all(sp->inner, mk, &mb, &err), WK_OK);
    ck_assert_int_eq(mf_parse(mb.data, mb.len, &m, &err), WK_OK);
    ck_assert_int_eq(m.state, MF_ARCHIVED);
    if (zip) {
        ck_assert_int_eq(
            store_put(sp->inner, m.archive_key, zip->data, zip->len, &err),
            WK_OK);
        m.size = zip->len;
        store_sha256_hex(zip->data, zip->len, m.checksum);
    }
    m.uncompressed_size = uncompressed;
    wk_buf_reset(&mb);
    ck_assert_int_eq(mf_to_json(&m, &mb, &err), WK_OK);
    ck_assert_int_eq(store_put(sp->inner, mk, mb.data, mb.len, &err), WK_OK);
    wk_buf_release(&mb);
}

/* Our own archive of a 9 MiB entry: the restore streams it with the part
 * size job_unarchive_part_bytes() gives its size (the configured 5 MiB). */
START_TEST(test_verify_restore_part_size_from_entry)
{
    struct spy *sp = spy_new();
    struct job_config cfg;
    struct wk_err err;

    archived_space(sp, NULL, 0, &cfg);
    ck_assert_msg(run(sp, JOB_UNARCHIVE, &cfg, &err) == WK_OK, "%s", err.msg);
    ck_assert_uint_eq(sp->nparts, 1);
    ck_assert_uint_eq(sp->parts[0],
                      job_unarchive_part_bytes(BIG_BYTES, cfg.part_bytes));
    ck_assert_uint_eq(sp->parts[0], 5 * MIB);
    store_free(&sp->base);
}
END_TEST

/* An entry whose central directory declares 60 GiB: the restore opens its
 * multipart write with the grown part size (7 MiB, so 10,000 parts hold
 * it), then refuses the entry when its data ends at 9 MiB, short of the
 * declared size; nothing restored is left. */
START_TEST(test_verify_restore_part_size_grown_for_declared_size)
{
    struct spy *sp = spy_new();
    struct job_config cfg;
    struct wk_buf zip;
    struct wk_err err;
    const uint64_t declared = 60ull << 30;
    char want[128];

    craft_zip(&zip, declared);
    archived_space(sp, &zip, declared, &cfg);
    ck_assert_int_eq(run(sp, JOB_UNARCHIVE, &cfg, &err), WK_E_CORRUPT);
    snprintf(want, sizeof(want),
             "entry '" BIG_NAME "': %u bytes, its central directory declares "
             "%llu",
             (unsigned)BIG_BYTES, (unsigned long long)declared);
    ck_assert_msg(strstr(err.msg, want), "'%s' lacks '%s'", err.msg, want);
    ck_assert_uint_eq(sp->nparts, 1);
    ck_assert_uint_eq(sp->parts[0], 7 * MIB);
    {
        struct store_stat sb;
        wk_err_clear(&err);
        ck_assert_int_eq(store_head(sp->inner, ACTIVE BIG_NAME, &sb, &err),
                         WK_E_NOTFOUND);
    }
    wk_buf_release(&zip);
    store_free(&sp->base);
}
END_TEST

/* A central directory declaring more than the manifest's uncompressedSize
 * is refused before anything is restored: no write, space still archived. */
START_TEST(test_verify_restore_refuses_declared_past_manifest)
{
    struct spy *sp = spy_new();
    struct job_config cfg;
    struct wk_err err;
    struct wk_buf mb;
    struct mf m;
    char mk[128], want[200];

    archived_space(sp, NULL, BIG_BYTES - 1, &cfg);
    ck_assert_int_eq(run(sp, JOB_UNARCHIVE, &cfg, &err), WK_E_CORRUPT);
    snprintf(want, sizeof(want),
             "archive holds more than %u bytes, the manifest's "
             "uncompressedSize: its central directory declares entry '" BIG_NAME
             "' past them",
             (unsigned)BIG_BYTES - 1);
    ck_assert_str_eq(err.msg, want);
    ck_assert_uint_eq(sp->nparts, 0);
    mf_key(SPACE, mk, sizeof(mk));
    wk_buf_init(&mb, 1u << 20);
    wk_err_clear(&err);
    ck_assert_int_eq(store_get_all(sp->inner, mk, &mb, &err), WK_OK);
    ck_assert_int_eq(mf_parse(mb.data, mb.len, &m, &err), WK_OK);
    ck_assert_int_eq(m.state, MF_ARCHIVED);
    {
        struct store_stat sb;
        ck_assert_int_eq(store_head(sp->inner, ACTIVE BIG_NAME, &sb, &err),
                         WK_E_NOTFOUND);
    }
    wk_buf_release(&mb);
    store_free(&sp->base);
}
END_TEST

Suite *verify_suite(void)
{
    Suite *s = suite_create("verify");
    TCase *tc = tcase_create("zipcd");
    tcase_add_test(tc, test_verify_zipcd_small_archive_one_request);
    tcase_add_test(tc, test_verify_zipcd_many_entries_streamed);
    tcase_add_test(tc, test_verify_zipcd_cd_must_end_at_eocd);
    tcase_add_test(tc, test_verify_zipcd_nothing_after_eocd);
    tcase_add_test(tc, test_verify_zipcd_bad_record);
    tcase_add_test(tc, test_verify_zipcd_overlap);
    tcase_add_test(tc, test_verify_zipcd_sealed);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    tc = tcase_create("restore_parts");
    tcase_add_test(tc, test_verify_restore_part_bytes_grow);
    tcase_add_test(tc, test_verify_restore_part_size_from_entry);
    tcase_add_test(tc, test_verify_restore_part_size_grown_for_declared_size);
    tcase_add_test(tc, test_verify_restore_refuses_declared_past_manifest);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}
