/* Users keep writing while their space is archived (SILA-FORMAT.md: ops
 * appended every 500 ms, -p.jsonl rewritten in place). A writer process
 * does that to a space (file:// store, and S3 on the test server) while a
 * real worker archives it; whatever the job decides (archived after
 * redoing, or skipped with "concurrent-writes"), it must succeed, and every
 * line the writer wrote must be in the archive or still under active/. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/manifest.h"
#include "tests/integration/it_flow.h"
#include "tests/integration/suites.h"

/* Today's ops of one session (argv: space root as a directory or
 * s3://bucket/active/<id>/, journal, period in seconds, manifest path or
 * key): -p.jsonl rewritten (all lines plus a new one), -m.jsonl appended,
 * and a new session's file every 30 writes; each line is journaled once
 * written. Stops on SIGTERM, or once the manifest says "archived", as the
 * Sila server must (a write after that belongs to a restored space). */
static const char writer_py[] =
    "import datetime, json, os, signal, sys, time\n"
    "root, journal, period, manifest = sys.argv[1], sys.argv[2], "
    "float(sys.argv[3]), sys.argv[4]\n"
    "stop = False\n"
    "def on_term(*_):\n"
    "    global stop\n"
    "    stop = True\n"
    "signal.signal(signal.SIGTERM, on_term)\n"
    "d = datetime.datetime.now(datetime.timezone.utc)\n"
    "tree = \"7e57a11ce0ffee0000000000000c0ffe\"\n"
    "day = \"space-v1/ops/%s/%s/%04d/%02d/%02d/\" % (tree[:2], tree[2:], "
    "d.year, d.month, d.day)\n"
    "peer = \"%032x\" % os.getpid()\n"
    "jf = open(journal, \"a\")\n"
    "if root.startswith(\"s3://\"):\n"
    "    import boto3\n"
    "    bucket, _, prefix = root[5:].partition(\"/\")\n"
    "    s3 = boto3.client(\"s3\", "
    "endpoint_url=os.environ[\"WK_TEST_S3_ENDPOINT\"])\n"
    "    held = {}\n"
    "    def store(rel, mode, text):\n"
    "        data = held.get(rel, \"\") + text if mode == \"a\" else text\n"
    "        s3.put_object(Bucket=bucket, Key=prefix + rel, "
    "Body=data.encode())\n"
    "        held[rel] = data\n"
    "    def manifest_text():\n"
    "        try:\n"
    "            return s3.get_object(Bucket=bucket, "
    "Key=manifest)[\"Body\"].read()\n"
    "        except s3.exceptions.NoSuchKey:\n"
    "            return None\n"
    "else:\n"
    "    def store(rel, mode, text):\n"
    "        p = os.path.join(root, rel)\n"
    "        for _ in range(100):\n"
    "            try:\n"
    "                os.makedirs(os.path.dirname(p), exist_ok=True)\n"
    "                with open(p, mode) as f:\n"
    "                    f.write(text)\n"
    "                return\n"
    "            except FileNotFoundError:\n"
    "                continue\n"
    "        sys.exit(\"cannot write \" + rel)\n"
    "    def manifest_text():\n"
    "        try:\n"
    "            with open(manifest, \"rb\") as f:\n"
    "                return f.read()\n"
    "        except OSError:\n"
    "            return None\n"
    "def archived():\n"
    "    try:\n"
    "        return json.loads(manifest_text() or b\"{}\").get(\"state\") == "
    "\"archived\"\n"
    "    except ValueError:\n"
    "        return False\n"
    "def write(rel, mode, text, line):\n"
    "    store(rel, mode, text)\n"
    "    jf.write(rel + \"\\t\" + line + \"\\n\")\n"
    "    jf.flush()\n"
    "props = []\n"
    "seq = 0\n"
    "def step():\n"
    "    global seq\n"
    "    seq += 1\n"
    "    target = \"%032x\" % seq\n"
    "    if seq % 3 == 1:\n"
    "        line = json.dumps([seq, target, \"name\", \"value %d\" % seq])\n"
    "        props.append(line)\n"
    "        write(day + peer + \"-p.jsonl\", \"w\", \"\".join(l + \"\\n\" for "
    "l in props), line)\n"
    "    elif seq % 3 == 2:\n"
    "        line = json.dumps([seq, target, None])\n"
    "        write(day + peer + \"-m.jsonl\", \"a\", line + \"\\n\", line)\n"
    "    else:\n"
    "        line = json.dumps([seq, target, tree])\n"
    "        write(day + \"%032x-m.jsonl\" % (seq // 30), \"a\", line + "
    "\"\\n\", line)\n"
    "step()\n"
    "step()\n"
    "print(\"ready\", flush=True)\n"
    "while not stop and not archived():\n"
    "    time.sleep(period)\n"
    "    if stop or archived():\n"
    "        break\n"
    "    step()\n"
    "print(\"stopped after %d writes\" % seq, flush=True)\n";

/* Nothing lost: every journaled line is in the archive's version of its
 * file or in the active one, and every file of the original space is,
 * unchanged, in one of them. */
static const char check_py[] =
    "import json, os, sys, zipfile\n"
    "journal, zpath, active, src = sys.argv[1:5]\n"
    "arch = {}\n"
    "if zpath != \"-\":\n"
    "    with zipfile.ZipFile(zpath) as z:\n"
    "        for n in z.namelist():\n"
    "            arch[n] = z.read(n)\n"
    "act = {}\n"
    "for d, _, names in os.walk(active):\n"
    "    for n in names:\n"
    "        p = os.path.join(d, n)\n"
    "        with open(p, \"rb\") as f:\n"
    "            act[os.path.relpath(p, active)] = f.read()\n"
    "lost, lines, files = [], 0, 0\n"
    "with open(journal) as f:\n"
    "    for rec in f:\n"
    "        rel, line = rec.rstrip(\"\\n\").split(\"\\t\", 1)\n"
    "        lines += 1\n"
    "        have = set(arch.get(rel, b\"\").decode().splitlines())\n"
    "        have |= set(act.get(rel, b\"\").decode().splitlines())\n"
    "        if line not in have:\n"
    "            lost.append(rel + \": \" + line)\n"
    "for d, _, names in os.walk(src):\n"
    "    for n in names:\n"
    "        p = os.path.join(d, n)\n"
    "        rel = os.path.relpath(p, src)\n"
    "        files += 1\n"
    "        with open(p, \"rb\") as f:\n"
    "            data = f.read()\n"
    "        if arch.get(rel) != data and act.get(rel) != data:\n"
    "            lost.append(rel + \": original file missing or changed\")\n"
    "print(json.dumps({\"lines\": lines, \"files\": files, \"archived\": "
    "len(arch),\n"
    "                  \"active\": len(act), \"lost\": len(lost)}))\n"
    "for l in lost[:20]:\n"
    "    print(\"LOST \" + l, file=sys.stderr)\n"
    "sys.exit(1 if lost else 0)\n";

/* One space in a store, a worker on it, and the scripts. */
struct conc {
    bool s3;
    char id[33], tmp[512], src[600], root[600], active[700], mf[700];
    char log[600], wlog[600], journal[600], writer[600], checker[600];
    char url[700], zip[700], space_root[700], prefix[64];
    struct it_env e;
    struct store *st;
    pid_t worker;
};

static void write_script(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_ge(fputs(text, f), 0);
    ck_assert_int_eq(fclose(f), 0);
}

/* extra_env: one more "NAME=value" for the worker, or NULL */
static void conc_setup(struct conc *c, const char *tag, bool s3,
                       const char *extra_env)
{
    memset(c, 0, sizeof(*c));
    c->s3 = s3;
    it_space_id(c->id);
    it_tmpdir(tag, c->tmp, sizeof(c->tmp));
    snprintf(c->src, sizeof(c->src), "%s/space", c->tmp);
    snprintf(c->prefix, sizeof(c->prefix), "active/%s/", c->id);
    snprintf(c->log, sizeof(c->log), "%s/worker.log", c->tmp);
    snprintf(c->wlog, sizeof(c->wlog), "%s/writer.log", c->tmp);
    snprintf(c->journal, sizeof(c->journal), "%s/journal.tsv", c->tmp);
    snprintf(c->writer, sizeof(c->writer), "%s/writer.py", c->tmp);
    snprintf(c->checker, sizeof(c->checker), "%s/check.py", c->tmp);
    snprintf(c->zip, sizeof(c->zip), "%s/archive.zip", c->tmp);
    /* big enough that one archive attempt outlasts several writes */
    it_gen_space(c->src, c->id, 17,
                 "--ops-files 120 --blobs 20 --big-blobs 2 "
                 "--big-size 4194304 --var-blobs 3");
    if (s3) {
        /* active/ is downloaded here to be checked */
        snprintf(c->active, sizeof(c->active), "%s/active", c->tmp);
        snprintf(c->mf, sizeof(c->mf), "metadata/%s.json", c->id);
        snprintf(c->space_root, sizeof(c->space_root), "s3://%s/%s",
                 it_env("WK_TEST_BUCKET"), c->prefix);
        snprintf(c->url, sizeof(c->url), "s3://%s", it_env("WK_TEST_BUCKET"));
        it_upload_dir(c->src, c->prefix, NULL);
        c->st = it_s3_store(NULL);
    } else {
        snprintf(c->root, sizeof(c->root), "%s/store", c->tmp);
        snprintf(c->active, sizeof(c->active), "%s/%s", c->root, c->prefix);
        snprintf(c->mf, sizeof(c->mf), "%s/metadata/%s.json", c->root, c->id);
        snprintf(c->space_root, sizeof(c->space_root), "%s", c->active);
        snprintf(c->url, sizeof(c->url), "file://%s", c->root);
        ck_assert_int_eq(it_sh("mkdir -p '%s' && cp -a '%s/.' '%s/'", c->active,
                               c->src, c->active),
                         0);
        c->st = it_fs_store(c->root);
    }
    write_script(c->writer, writer_py);
    write_script(c->checker, check_py);
    it_env_init(&c->e, c->url, tag, NULL);
    if (extra_env)
        it_env_add(&c->e, extra_env);
    c->worker = it_start_worker(&c->e, c->log);
}

static void conc_teardown(struct conc *c)
{
    ck_assert_int_eq(it_stop(c->worker), 0);
    store_free(c->st);
}

static pid_t start_writer(const struct conc *c, const char *period_s)
{
    const char *argv[] = { "python3", c->writer, c->space_root, c->journal,
                           period_s,  c->mf,     NULL };
    pid_t pid = it_spawn_prog(argv, c->wlog);
    for (int i = 0; i < 200; i++) {
        if (it_sh("grep -q ready '%s' 2>/dev/null", c->wlog) == 0)
            return pid;
        it_sleep_ms(100);
    }
    it_stop(pid);
    ck_abort_msg("writer did not start (see %s)", c->wlog);
    return -1;
}

/* Enqueue an archive of the space; its job id into job. */
static void enqueue(const struct conc *c, char *job, size_t len)
{
    char args[128], out[700];
    snprintf(args, sizeof(args), "enqueue archive '%s'", c->id);
    snprintf(out, sizeof(out), "%s/enqueue.out", c->tmp);
    ck_assert_int_eq(it_cli(&c->e, args, job, len, out), 0);
    ck_assert_int_eq(strlen(job), 32);
}

/* Wait for the job to succeed; its result, parsed (json_decref()). */
static json_t *job_result(const struct conc *c, const char *job)
{
    const char *state = it_wait_job(it_prefix_of(&c->e), job, 300);
    json_error_t jerr;
    json_t *res;
    ck_assert_msg(strcmp(state, "succeeded") == 0, "job %s: %s: %s (see %s)",
                  job, state, it_job_field(it_prefix_of(&c->e), job, "error"),
                  c->log);
    res =
        json_loads(it_job_field(it_prefix_of(&c->e), job, "result"), 0, &jerr);
    ck_assert_ptr_nonnull(res);
    return res;
}

static long long res_int(json_t *res, const char *field)
{
    json_t *v = json_object_get(res, field);
    ck_assert_msg(json_is_integer(v), "result has no integer '%s'", field);
    return (long long)json_integer_value(v);
}

static bool log_has(const char *log, const char *event)
{
    return it_sh("grep -q '\"event\":\"%s\"' '%s'", event, log) == 0;
}

static bool change_noticed(const struct conc *c)
{
    return log_has(c->log, "archive.space_changed") ||
           log_has(c->log, "archive.object_changed");
}

struct dl_ctx {
    struct store *st;
    const struct conc *c;
    size_t n;
};

static enum wk_code dl_cb(const struct store_entry *e, void *ud,
                          struct wk_err *err)
{
    struct dl_ctx *d = ud;
    char path[1400];
    (void)err;
    snprintf(path, sizeof(path), "%s/%s", d->c->active,
             e->key + strlen(d->c->prefix));
    ck_assert_int_eq(it_sh("mkdir -p \"$(dirname '%s')\"", path), 0);
    it_download(d->st, e->key, path);
    d->n++;
    return WK_OK;
}

/* Objects under active/ (S3: downloaded into c->active first). */
static size_t active_objects(const struct conc *c)
{
    struct dl_ctx d = { c->st, c, 0 };
    struct wk_err err;
    if (!c->s3)
        return it_count(c->st, c->prefix);
    ck_assert_int_eq(
        it_sh("rm -rf '%s' && mkdir -p '%s'", c->active, c->active), 0);
    wk_err_clear(&err);
    ck_assert_int_eq(store_list(c->st, c->prefix, NULL, dl_cb, &d, &err),
                     WK_OK);
    return d.n;
}

/* Nothing the writer wrote and nothing of the original space is missing
 * from the archive (zip, or NULL) and active/ together. */
static void check_nothing_lost(const struct conc *c, const char *zip)
{
    char out[700];
    int rc;
    (void)active_objects(c);
    snprintf(out, sizeof(out), "%s/check.out", c->tmp);
    rc = it_sh("mkdir -p '%s' && python3 '%s' '%s' '%s' '%s' '%s' > '%s' 2>&1",
               c->active, c->checker, c->journal, zip ? zip : "-", c->active,
               c->src, out);
    ck_assert_msg(rc == 0, "writes lost (see %s)", out);
}

static size_t archives(const struct conc *c)
{
    char pfx[128];
    snprintf(pfx, sizeof(pfx), "archived/%s/", c->id);
    return it_count(c->st, pfx);
}

static size_t uploads_open(const struct conc *c)
{
    char pfx[128];
    size_t n = 99;
    struct wk_err err;
    snprintf(pfx, sizeof(pfx), "archived/%s/", c->id);
    wk_err_clear(&err);
    ck_assert_int_eq(store_count_pending(c->st, pfx, &n, &err), WK_OK);
    return n;
}

/* The manifest names a verified archive; copy it to c->zip. */
static void check_archived(const struct conc *c, struct mf *m)
{
    char key[128], hex[65];
    unsigned long long size;
    struct wk_err err;
    size_t len;
    char *text;

    snprintf(key, sizeof(key), "metadata/%s.json", c->id);
    text = it_get_text(c->st, key, &len);
    wk_err_clear(&err);
    ck_assert_msg(mf_parse(text, len, m, &err) == WK_OK, "%s", err.msg);
    free(text);
    ck_assert_int_eq(m->state, MF_ARCHIVED);
    it_download(c->st, m->archive_key, c->zip);
    it_file_sha256(c->zip, hex, &size);
    ck_assert_str_eq(hex, m->checksum);
    ck_assert_uint_eq(size, m->size);
    ck_assert_int_eq(it_sh("unzip -tq '%s' >/dev/null", c->zip), 0);
}

/* The writer never stops before the job ends: every try sees a change.
 * The job gives up and leaves the space exactly as active as it was; once
 * the writer is gone the next archive takes everything. */
static void busy_space(bool s3)
{
    struct conc c;
    char job[200];
    json_t *res;
    pid_t writer;
    struct mf m;

    conc_setup(&c, s3 ? "concbusys3" : "concbusy", s3, NULL);
    writer = start_writer(&c, "0.02");
    enqueue(&c, job, sizeof(job));
    res = job_result(&c, job);
    ck_assert_int_eq(it_stop(writer), 0);
    ck_assert_msg(change_noticed(&c), "no write was noticed (see %s)", c.log);
    if (json_object_get(res, "skipped")) {
        ck_assert_str_eq(json_string_value(json_object_get(res, "skipped")),
                         "concurrent-writes");
        ck_assert_int_eq(res_int(res, "attempts"), 3);
        /* fully active, no archive, no upload left open */
        ck_assert_str_eq(it_mf_state(c.st, c.id), "active");
        ck_assert_uint_eq(archives(&c), 0);
        ck_assert_uint_eq(uploads_open(&c), 0);
        check_nothing_lost(&c, NULL);
    } else {
        /* a try fell between two writes: archived, nothing lost either */
        check_archived(&c, &m);
        check_nothing_lost(&c, c.zip);
    }
    json_decref(res);

    /* quiet now: the next run archives all of it, the writer's lines too */
    if (strcmp(it_mf_state(c.st, c.id), "archived") != 0) {
        enqueue(&c, job, sizeof(job));
        res = job_result(&c, job);
        ck_assert_int_eq(res_int(res, "attempts"), 1);
        ck_assert_int_eq(res_int(res, "keptNewer"), 0);
        json_decref(res);
        check_archived(&c, &m);
        ck_assert_uint_eq(active_objects(&c), 0);
        check_nothing_lost(&c, c.zip);
    }
    conc_teardown(&c);
}

/* The user stops while the first try runs: the job redoes the archive from
 * the new listing and archives the space with every line written. */
static void writes_during_first_try(bool s3)
{
    struct conc c;
    char job[200];
    json_t *res;
    pid_t writer;
    struct mf m;
    int i;

    /* An attempt takes tens of milliseconds (compressed blobs are stored,
     * not deflated), so the writer may still be running through several:
     * enough tries that one comes after it stopped. */
    conc_setup(&c, s3 ? "concredos3" : "concredo", s3, "SILA_ARCHIVE_TRIES=20");
    writer = start_writer(&c, "0.02");
    enqueue(&c, job, sizeof(job));
    for (i = 0; i < 1200 && !change_noticed(&c); i++)
        it_sleep_ms(50);
    ck_assert_msg(i < 1200, "no write was noticed (see %s)", c.log);
    ck_assert_int_eq(it_stop(writer), 0);
    res = job_result(&c, job);
    ck_assert_msg(json_object_get(res, "archiveKey") != NULL,
                  "not archived: %s (see %s)",
                  it_job_field(it_prefix_of(&c.e), job, "result"), c.log);
    ck_assert_int_ge(res_int(res, "attempts"), 2);
    ck_assert_int_eq(res_int(res, "keptNewer"), 0);
    json_decref(res);
    check_archived(&c, &m);
    /* active/ emptied, one archive (the redone tries left none) */
    ck_assert_uint_eq(active_objects(&c), 0);
    ck_assert_uint_eq(archives(&c), 1);
    ck_assert_uint_eq(uploads_open(&c), 0);
    check_nothing_lost(&c, c.zip);
    conc_teardown(&c);
}

START_TEST(test_it_concurrent_fs_busy_space_skipped_then_archived)
{
    busy_space(false);
}
END_TEST

START_TEST(test_it_concurrent_fs_writes_during_first_try_redone)
{
    writes_during_first_try(false);
}
END_TEST

START_TEST(test_it_concurrent_s3_busy_space_skipped_then_archived)
{
    busy_space(true);
}
END_TEST

START_TEST(test_it_concurrent_s3_writes_during_first_try_redone)
{
    writes_during_first_try(true);
}
END_TEST

Suite *it_concurrent_suite(void)
{
    Suite *s = suite_create("it_concurrent");
    TCase *tc = tcase_create("concurrent");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_it_concurrent_fs_busy_space_skipped_then_archived);
    tcase_add_test(tc, test_it_concurrent_fs_writes_during_first_try_redone);
    tcase_add_test(tc, test_it_concurrent_s3_busy_space_skipped_then_archived);
    tcase_add_test(tc, test_it_concurrent_s3_writes_during_first_try_redone);
    suite_add_tcase(s, tc);
    return s;
}
