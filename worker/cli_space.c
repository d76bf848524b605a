/*
 * cli_space: the commands that read one space from the store: cat (one
 * file, archived or not, without a restore), export (the archive as a
 * plain ZIP, decrypted and checked) and presign (a download URL of the
 * archive). They read the manifest and never write.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/wk_buf.h"
#include "common/wk_parse.h"
#include "jobs/job.h"
#include "jobs/manifest.h"
#include "storage/seal.h"
#include "storage/store.h"
#include "storage/store_hash.h"
#include "worker/cfg.h"
#include "worker/cli.h"
#include "worker/cli_int.h"
#include "zip/zcat.h"
#include "zip/zipr.h"

static const char usage_cat[] =
    "usage: sila-archiver cat <spaceId> <path> [--archive-key <key>]\n"
    "\n"
    "Writes one file of a space to stdout, e.g. 'space-v1/space.json'. An\n"
    "archived space is read without restoring it: range requests fetch the\n"
    "archive's central directory and the one entry (an encrypted archive\n"
    "is decrypted and authenticated on the way, with the key from\n"
    "SILA_ENCRYPTION_KEY_FILE). Reads SILA_STORE.\n";

static const char usage_export[] =
    "usage: sila-archiver export <spaceId> [--archive-key <key>] > space.zip\n"
    "\n"
    "Writes the space's current archive (or the one named, from its\n"
    "history) to stdout as a plain ZIP: an encrypted archive is decrypted\n"
    "and authenticated chunk by chunk (SILA_ENCRYPTION_KEY_FILE), and the\n"
    "stored object's SHA-256 is checked against the manifest at the end.\n"
    "Exits 1, after a message on stderr, when any check fails: the output\n"
    "is then incomplete and must be discarded. Refuses a terminal.\n";

static const char usage_presign[] =
    "usage: sila-archiver presign <spaceId> [--expires SECONDS]\n"
    "\n"
    "Prints a URL that downloads the space's current archive (a ZIP) with a\n"
    "plain GET, valid for --expires seconds (3600; at most 604800, 7 days):\n"
    "S3 query-string signing (SigV4) with the worker's credentials, no\n"
    "request to the store but reading the manifest. Treat it as a secret.\n";

static enum wk_code write_out(FILE *f, const void *p, size_t n,
                              struct wk_err *err)
{
    if (fwrite(p, 1, n, f) != n)
        return wk_err_set(err, WK_E_IO, "write to stdout failed");
    return WK_OK;
}

/* The manifest of space (metadata/<space>.json) into m, through mb; a
 * space never archived has none: WK_E_NOTFOUND. */
static enum wk_code read_manifest(struct store *st, const char *space,
                                  struct wk_buf *mb, struct mf *m,
                                  struct wk_err *err)
{
    char mkey[JOB_SPACE_ID_MAX + 32];
    enum wk_code rc;

    mf_key(space, mkey, sizeof(mkey));
    rc = store_get_all(st, mkey, mb, err);
    return rc == WK_OK ? mf_parse(mb->data, mb->len, m, err) : rc;
}

/* The archive of manifest m named key ("" or NULL: the current one) into
 * *a, and its data key into *dk when it is sealed (*sealed). */
static enum wk_code pick_archive(const struct cfg *cfg, const struct mf *m,
                                 const char *key, struct mf_archive *a,
                                 struct seal_dk *dk, bool *sealed,
                                 struct wk_err *err)
{
    struct seal_keyring *kr = NULL;
    enum wk_code rc;

    *sealed = false;
    if (!mf_find_archive(m, key ? key : "", a))
        return key && key[0]
                   ? wk_err_set(err, WK_E_NOTFOUND,
                                "archive '%s' is not in the manifest", key)
                   : wk_err_set(err, WK_E_NOTFOUND, "space '%s' has no archive",
                                m->space_id);
    if (!a->enc.on)
        return WK_OK;
    rc = cfg_keys(cfg, &kr, err);
    if (rc == WK_OK)
        rc = mf_open_key(a, m->space_id, kr, dk, err);
    seal_keyring_free(kr);
    *sealed = rc == WK_OK;
    return rc;
}

/* cat: the entry (or active object) streamed to stdout, never more than
 * the archive's uncompressedSize. */
struct cat_out {
    FILE *f;
    uint64_t left; /* an entry of an archive is never larger than the
                      archive's uncompressedSize (a zip bomb is) */
};

static enum wk_code cat_sink(const void *p, size_t n, void *ud,
                             struct wk_err *err)
{
    struct cat_out *o = ud;
    if (n > o->left)
        return wk_err_set(err, WK_E_CORRUPT,
                          "the entry is larger than the archive's "
                          "uncompressedSize: stopped (zip bomb?)");
    o->left -= n;
    return write_out(o->f, p, n, err);
}

/* One entry of space's archive named archive_key (NULL: the current). */
static enum wk_code cat_archived(const struct cfg *cfg, struct store *st,
                                 const struct mf *m, const char *archive_key,
                                 const char *path, struct cat_out *out,
                                 struct wk_err *err)
{
    struct mf_archive a;
    struct seal_dk dk;
    bool sealed = false;
    enum wk_code rc;

    rc = pick_archive(cfg, m, archive_key, &a, &dk, &sealed, err);
    if (rc != WK_OK)
        return rc;
    out->left = a.uncompressed_size;
    rc = zcat_read(st, a.key, a.size, sealed ? &dk : NULL, path, cat_sink, out,
                   NULL, err);
    seal_dk_wipe(&dk);
    return rc;
}

/* The stdout of a command that wrote its data there, flushed. */
static enum wk_code flush_stdout(struct wk_err *err)
{
    if (fflush(stdout) != 0)
        return wk_err_set(err, WK_E_IO, "write to stdout failed");
    return WK_OK;
}

/* cat of path in space: from its archive when the manifest says it is
 * archived (or archive_key names one), else the active object. */
static enum wk_code cat_run(const struct cfg *cfg, const char *space,
                            const char *path, const char *archive_key,
                            struct wk_err *err)
{
    struct store *st = NULL;
    struct wk_buf mb, key;
    struct mf *m = calloc(1, sizeof(*m));
    struct cat_out out = { stdout, UINT64_MAX };
    enum wk_code rc;

    wk_buf_init(&mb, 1u << 20);
    wk_buf_init(&key, 4096);
    rc = m ? store_open_url(cfg->store_url, &cfg->store, &st, err)
           : wk_err_set(err, WK_E_NOMEM, "out of memory");
    if (rc != WK_OK)
        goto out;
    rc = read_manifest(st, space, &mb, m, err);
    if (rc == WK_E_NOTFOUND) {
        wk_err_clear(err); /* never archived: read the active object */
        m->state = MF_ACTIVE;
    } else if (rc != WK_OK) {
        goto out;
    }
    if (mf_in_archive(m) || archive_key)
        rc = cat_archived(cfg, st, m, archive_key, path, &out, err);
    else if ((rc = wk_buf_appendf(&key, err, "active/%s/%s", space, path)) ==
             WK_OK)
        rc = store_get(st, wk_buf_cstr(&key), 0, UINT64_MAX, cat_sink, &out,
                       err);
    if (rc == WK_OK)
        rc = flush_stdout(err);
out:
    store_free(st);
    wk_buf_release(&mb);
    wk_buf_release(&key);
    free(m);
    return rc;
}

/* cat and export: npos positionals and --archive-key <key>. */
static int parse_archive_key(const char *name, const char *usage, int npos,
                             int argc, char **argv, struct cli_args *a,
                             const char **archive_key)
{
    const struct cli_opt opts[] = {
        { "--archive-key", CLI_OPT_STR, archive_key, NULL, false },
        { NULL, CLI_OPT_FLAG, NULL, NULL, false },
    };
    const struct cli_spec s = { name, usage, opts, npos, npos, 0 };

    *archive_key = NULL;
    return cli_parse(&s, argc, argv, a);
}

int cli_cat(int argc, char **argv)
{
    struct cfg cfg;
    struct wk_err err;
    const char *archive_key;
    struct cli_args a;
    int rc =
        parse_archive_key("cat", usage_cat, 2, argc, argv, &a, &archive_key);

    if (rc != CLI_GO)
        return rc;
    if (!job_space_id_valid(a.pos[0]) || !zipr_name_valid(a.pos[1], NULL, 0)) {
        fprintf(stderr, "sila-archiver cat: bad spaceId or path\n");
        return 2;
    }
    if ((rc = cli_load_cfg(&cfg)) != 0)
        return rc;
    if (!cfg.store_url[0]) {
        fprintf(stderr, "sila-archiver cat: SILA_STORE is not set\n");
        return 2;
    }
    wk_err_clear(&err);
    if (cat_run(&cfg, a.pos[0], a.pos[1], archive_key, &err) != WK_OK)
        return cli_fail(&err);
    return 0;
}

/* export: the stored archive streamed through SHA-256 (and, sealed,
 * through the chunk opener) to stdout. */
struct export_out {
    FILE *f;
    struct store_sha256 *hash;
    struct seal_dec *dec; /* NULL: a plain ZIP */
    struct wk_buf plain;
};

static enum wk_code export_sink(const void *p, size_t n, void *ud,
                                struct wk_err *err)
{
    struct export_out *o = ud;
    const char *s = p;

    store_sha256_update(o->hash, p, n);
    if (!o->dec)
        return write_out(o->f, p, n, err);
    /* a chunk at a time: plaintext is written once authenticated */
    while (n > 0) {
        size_t want = seal_dec_want(o->dec);
        size_t take = want && n > want ? want : n;
        enum wk_code rc;
        wk_buf_reset(&o->plain);
        rc = seal_dec_update(o->dec, s, take, &o->plain, err);
        if (rc == WK_OK && o->plain.len)
            rc = write_out(o->f, o->plain.data, o->plain.len, err);
        if (rc != WK_OK)
            return rc;
        s += take;
        n -= take;
    }
    return WK_OK;
}

/* export of space's archive named archive_key (NULL: the current). */
static enum wk_code export_run(const struct cfg *cfg, const char *space,
                               const char *archive_key, struct wk_err *err)
{
    struct store *st = NULL;
    struct wk_buf mb;
    struct mf *m = calloc(1, sizeof(*m));
    struct mf_archive a;
    struct seal_dk dk;
    struct export_out out;
    char sha[65];
    bool sealed = false;
    enum wk_code rc;

    memset(&out, 0, sizeof(out));
    memset(&dk, 0, sizeof(dk));
    out.f = stdout;
    wk_buf_init(&mb, 1u << 20);
    wk_buf_init(&out.plain, SEAL_CHUNK_MAX);
    if (!m) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    if ((rc = store_open_url(cfg->store_url, &cfg->store, &st, err)) != WK_OK ||
        (rc = read_manifest(st, space, &mb, m, err)) != WK_OK ||
        (rc = pick_archive(cfg, m, archive_key, &a, &dk, &sealed, err)) !=
            WK_OK ||
        (rc = store_sha256_new(&out.hash, err)) != WK_OK ||
        (sealed && (rc = seal_dec_new(&dk, a.size, &out.dec, err)) != WK_OK) ||
        (rc = store_get(st, a.key, 0, UINT64_MAX, export_sink, &out, err)) !=
            WK_OK ||
        (out.dec && (rc = seal_dec_final(out.dec, err)) != WK_OK))
        goto out;
    store_sha256_final_hex(out.hash, sha);
    if (strcmp(sha, a.checksum) != 0)
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "archive '%s': SHA-256 %s does not match the "
                        "manifest's %s",
                        a.key, sha, a.checksum);
    else
        rc = flush_stdout(err);
out:
    seal_dk_wipe(&dk);
    seal_dec_free(out.dec);
    store_sha256_free(out.hash);
    wk_buf_release(&out.plain);
    wk_buf_release(&mb);
    store_free(st);
    free(m);
    return rc;
}

int cli_export(int argc, char **argv)
{
    struct cfg cfg;
    struct wk_err err;
    const char *archive_key;
    struct cli_args a;
    int rc = parse_archive_key("export", usage_export, 1, argc, argv, &a,
                               &archive_key);

    if (rc != CLI_GO)
        return rc;
    if (!job_space_id_valid(a.pos[0])) {
        fputs(usage_export, stderr);
        return 2;
    }
    if (isatty(STDOUT_FILENO)) {
        fprintf(stderr, "sila-archiver export: stdout is a terminal; "
                        "redirect it to a file\n");
        return 2;
    }
    if ((rc = cli_load_cfg(&cfg)) != 0)
        return rc;
    wk_err_clear(&err);
    if (export_run(&cfg, a.pos[0], archive_key, &err) != WK_OK)
        return cli_fail(&err);
    return 0;
}

static enum wk_code set_expires(void *target, const char *name,
                                const char *value, struct wk_err *err)
{
    uint64_t *expires = target;
    struct wk_err perr;

    (void)name;
    wk_err_clear(&perr);
    if (wk_parse_u64(value, expires, &perr) != WK_OK || *expires < 1 ||
        *expires > 604800)
        return wk_err_set(err, WK_E_INVAL, "--expires: 1 to 604800 seconds");
    return WK_OK;
}

/* The presigned URL of space's current (plain) archive into url. */
static enum wk_code presign_run(const struct cfg *cfg, const char *space,
                                unsigned expires, struct wk_buf *url,
                                struct wk_err *err)
{
    struct store *st = NULL;
    struct wk_buf mb;
    struct mf m;
    enum wk_code rc;

    wk_buf_init(&mb, 1u << 20);
    if ((rc = store_open_url(cfg->store_url, &cfg->store, &st, err)) != WK_OK ||
        (rc = read_manifest(st, space, &mb, &m, err)) != WK_OK)
        goto out;
    if (!m.archive_key[0])
        rc = wk_err_set(err, WK_E_NOTFOUND, "space '%s' has no archive", space);
    else if (m.enc.on) /* ciphertext nobody outside can open */
        rc = wk_err_set(err, WK_E_INVAL,
                        "the archive of space '%s' is encrypted client-side "
                        "(key %s): a presigned URL would serve ciphertext; "
                        "use 'sila-archiver export %s > space.zip'",
                        space, m.enc.key_id, space);
    else
        rc = store_presign(st, m.archive_key, expires, url, err);
out:
    store_free(st);
    wk_buf_release(&mb);
    return rc;
}

int cli_presign(int argc, char **argv)
{
    struct cfg cfg;
    struct wk_err err;
    struct wk_buf url;
    struct cli_args a;
    uint64_t expires = 3600;
    int rc;
    const struct cli_opt opts[] = {
        { "--expires", CLI_OPT_FN, &expires, set_expires, false },
        { NULL, CLI_OPT_FLAG, NULL, NULL, false },
    };
    const struct cli_spec s = { "presign", usage_presign, opts, 1, 1, 0 };

    if ((rc = cli_parse(&s, argc, argv, &a)) != CLI_GO)
        return rc;
    if (!job_space_id_valid(a.pos[0]))
        return cli_usage(&s);
    if ((rc = cli_load_cfg(&cfg)) != 0)
        return rc;
    wk_err_clear(&err);
    wk_buf_init(&url, 64u << 10);
    if (presign_run(&cfg, a.pos[0], (unsigned)expires, &url, &err) != WK_OK)
        rc = cli_fail(&err);
    else
        printf("%s\n", wk_buf_cstr(&url));
    wk_buf_release(&url);
    return rc;
}
