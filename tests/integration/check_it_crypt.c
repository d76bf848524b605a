/* Client-side encryption end to end, on the real S3 server and Redis: a
 * sealed archive that an independent implementation of the documented
 * format (tests/seal_open.py) opens, cat and export through the CLI, key
 * rotation without a restart, a tampered archive refused with the space
 * left archived, and no key material anywhere in what the run produced. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "jobs/manifest.h"
#include "tests/integration/it_flow.h"
#include "tests/integration/it_util.h"
#include "tests/integration/suites.h"

#define KEY_A "6b1f0c9e2d4a7358b0e1f2a3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7"
#define KEY_B "d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a392817069999"

/* The python decoder; returns its exit status. */
static int seal_open(const char *id, const char *keyfile, const char *zip,
                     const char *log)
{
    return it_sh("python3 '%s/tests/seal_open.py' '%s' '%s' '%s' '%s' "
                 "--endpoint '%s' > '%s' 2>&1",
                 it_env("WK_SRCDIR"), it_env("WK_TEST_BUCKET"), id, keyfile,
                 zip, it_env("WK_TEST_S3_ENDPOINT"), log);
}

START_TEST(test_it_crypt_sealed_space)
{
    char id[33], tmp[512], src[600], log[600], out[600], job[256], url[128];
    char prefix[128], args[256], keyfile[600], kenv[700], zip[600], zip2[600];
    char pylog[600];
    struct it_env e;
    struct store *st;
    struct mf m;
    pid_t w;

    it_space_id(id);
    it_tmpdir("crypt", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/space", tmp);
    it_gen_space(src, id, 47, "--ops-files 20 --blobs 6 --big-blobs 1");
    snprintf(prefix, sizeof(prefix), "active/%s/", id);
    it_upload_dir(src, prefix, NULL);
    st = it_s3_store(NULL);
    snprintf(keyfile, sizeof(keyfile), "%s/keys/master.key", tmp);
    ck_assert_int_eq(it_sh("mkdir -m 700 '%s/keys' && umask 077 && "
                           "echo " KEY_A " > '%s'",
                           tmp, keyfile),
                     0);
    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, url, "crypt", NULL);
    snprintf(kenv, sizeof(kenv), "SILA_ENCRYPTION_KEY_FILE=%s", keyfile);
    it_env_add(&e, kenv);
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    snprintf(pylog, sizeof(pylog), "%s/seal_open.out", tmp);
    w = it_start_worker(&e, log);

    snprintf(args, sizeof(args), "enqueue archive %s --wait", id);
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);
    ck_assert_uint_eq(it_count(st, prefix), 0);
    it_read_mf(st, id, &m);
    ck_assert_int_eq(m.state, MF_ARCHIVED);
    ck_assert(m.enc.on);

    /* the format as documented: an independent decoder opens it, and the
     * ZIP inside holds the space byte for byte */
    snprintf(zip, sizeof(zip), "%s/opened.zip", tmp);
    ck_assert_msg(seal_open(id, keyfile, zip, pylog) == 0, "see %s", pylog);
    ck_assert_int_eq(
        it_sh("python3 - '%s' '%s' <<'PY'\n"
              "import os, sys, zipfile\n"
              "z = zipfile.ZipFile(sys.argv[1])\n"
              "root = sys.argv[2]\n"
              "files = {os.path.relpath(os.path.join(d, n), root)\n"
              "         for d, _, ns in os.walk(root) for n in ns}\n"
              "assert set(z.namelist()) == files, 'names'\n"
              "for n in files:\n"
              "    assert z.read(n) == open(os.path.join(root, n),"
              " 'rb').read(), n\n"
              "PY",
              zip, src),
        0);
    /* the stored object shows no name and no content of the space */
    snprintf(zip2, sizeof(zip2), "%s/stored.bin", tmp);
    it_download(st, m.archive_key, zip2);
    ck_assert_int_eq(it_sh("head -c 9 '%s' | grep -q SILASEAL", zip2), 0);
    ck_assert_int_ne(it_sh("grep -c -a -e 'space-v1/' -e 'sila.md' '%s' "
                           ">/dev/null",
                           zip2),
                     0);

    /* cat reads one file through authenticated ranges; export writes the
     * same ZIP the independent decoder produced */
    snprintf(args, sizeof(args), "cat %s sila.md", id);
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);
    ck_assert_int_eq(it_sh("cmp -s '%s' '%s/sila.md'", out, src), 0);
    snprintf(args, sizeof(args), "export %s", id);
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);
    ck_assert_int_eq(it_sh("cmp -s '%s' '%s'", out, zip), 0);
    /* presign would hand out ciphertext: refused, naming export */
    snprintf(args, sizeof(args), "presign %s", id);
    ck_assert_int_ne(it_cli(&e, args, job, sizeof(job), out), 0);
    ck_assert_int_eq(it_sh("grep -q 'encrypted client-side.*export' '%s'", out),
                     0);

    /* rotation, with the worker running: the new key first, the old one
     * kept; the old archive restores, the next one uses the new key */
    ck_assert_int_eq(it_sh("printf '# rotated\\n%%s\\n%%s\\n' " KEY_B " " KEY_A
                           " > '%s.new' && mv '%s.new' '%s'",
                           keyfile, keyfile, keyfile),
                     0);
    snprintf(args, sizeof(args), "enqueue unarchive %s --urgent --wait", id);
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);
    ck_assert_int_eq(it_sh("python3 '%s/tests/compare_prefix.py' '%s' '%s' "
                           "'%s' --endpoint '%s' >/dev/null",
                           it_env("WK_SRCDIR"), it_env("WK_TEST_BUCKET"),
                           prefix, src, it_env("WK_TEST_S3_ENDPOINT")),
                     0);
    {
        char old_id[17];
        snprintf(old_id, sizeof(old_id), "%s", m.enc.key_id);
        snprintf(args, sizeof(args), "enqueue archive %s --wait", id);
        ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);
        it_read_mf(st, id, &m);
        ck_assert_str_ne(m.enc.key_id, old_id);
        ck_assert_uint_ge(m.n_history, 1);
        ck_assert_str_eq(m.history[0].enc.key_id, old_id);
        /* the old key is still needed for the old archive only */
        ck_assert_msg(seal_open(id, keyfile, zip, pylog) == 0, "see %s", pylog);
    }

    /* tampering: one byte of the stored archive, and the manifest's
     * checksum made to match, as someone with write access to the bucket
     * could; the restore fails and the space stays archived */
    ck_assert_int_eq(
        it_sh("python3 - '%s' '%s' '%s' <<'PY'\n"
              "import boto3, hashlib, json, sys\n"
              "ep, b, sid = sys.argv[1:4]\n"
              "s3 = boto3.client('s3', endpoint_url=ep, "
              "region_name='us-east-1')\n"
              "mk = 'metadata/%%s.json' %% sid\n"
              "m = json.loads(s3.get_object(Bucket=b, Key=mk)['Body'].read())\n"
              "z = bytearray(s3.get_object(Bucket=b, Key=m['archiveKey'])"
              "['Body'].read())\n"
              "z[len(z) // 2] ^= 0x40\n"
              "s3.put_object(Bucket=b, Key=m['archiveKey'], Body=bytes(z))\n"
              "m['checksum'] = hashlib.sha256(z).hexdigest()\n"
              "s3.put_object(Bucket=b, Key=mk, Body=json.dumps(m, indent=2))\n"
              "PY",
              it_env("WK_TEST_S3_ENDPOINT"), it_env("WK_TEST_BUCKET"), id),
        0);
    snprintf(args, sizeof(args), "enqueue unarchive %s --urgent --wait", id);
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 1);
    {
        const char *msg = it_job_field(it_prefix_of(&e), job, "error");
        ck_assert_msg(strstr(msg, "does not authenticate"), "error: %s", msg);
    }
    /* the tampered chunk lies past the ready point (metadata and ops come
     * first): the space was usable by then, so the restore keeps what it
     * wrote and the space stays restoring with readyAt (docs/PROTOCOL.md) */
    ck_assert_str_eq(it_mf_state(st, id), "restoring");
    ck_assert_uint_gt(it_count(st, prefix), 0);
    {
        struct mf *tm = calloc(1, sizeof(*tm));
        it_read_mf(st, id, tm);
        ck_assert_int_ne(tm->ready_at, 0);
        free(tm);
    }
    /* export refuses it too */
    snprintf(args, sizeof(args), "export %s", id);
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 1);
    ck_assert_int_eq(it_sh("grep -q 'does not authenticate' '%s'", out), 0);

    /* the worker logged which key seals, never a key */
    ck_assert_int_eq(
        it_sh("grep -q '\"encryption_key_id\":\"[0-9a-f]\\{16\\}\"'"
              " '%s'",
              log),
        0);
    ck_assert_int_eq(it_stop(w), 0);
    {
        /* (a prefix of each key is enough to find it) */
        static const char *const keys[] = { "6b1f0c9e2d4a7358b0e1",
                                            "d3c2b1a09f8e7d6c5b4a", NULL };
        it_assert_no_secrets(&e, tmp, keys);
    }
    store_free(st);
}
END_TEST

/* rekey --all on a file:// store: every space's old data keys wrapped
 * under the new key, after which the old key can go; a space whose lock a
 * job holds is left alone and reported. */
START_TEST(test_it_crypt_rekey_all)
{
    char ids[2][33], tmp[512], root[600], src[700], log[600], out[600];
    char job[256], url[700], args[256], keyfile[600], kenv[700];
    struct it_env e;
    pid_t w;

    it_tmpdir("rekey", tmp, sizeof(tmp));
    snprintf(root, sizeof(root), "%s/store", tmp);
    for (int i = 0; i < 2; i++) {
        it_space_id(ids[i]);
        snprintf(src, sizeof(src), "%s/space-%d", tmp, i);
        it_gen_space(src, ids[i], 50 + i,
                     "--ops-files 8 --blobs 3 --big-blobs 0");
        ck_assert_int_eq(
            it_sh("mkdir -p '%s/active' && cp -r '%s' '%s/active/%s'", root,
                  src, root, ids[i]),
            0);
    }
    snprintf(keyfile, sizeof(keyfile), "%s/keys/master.key", tmp);
    ck_assert_int_eq(
        it_sh("mkdir -m 700 '%s/keys' && echo " KEY_A " > '%s'", tmp, keyfile),
        0);
    snprintf(url, sizeof(url), "file://%s", root);
    it_env_init(&e, url, "rekey", NULL);
    snprintf(kenv, sizeof(kenv), "SILA_ENCRYPTION_KEY_FILE=%s", keyfile);
    it_env_add(&e, kenv);
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    w = it_start_worker(&e, log);
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof(args), "enqueue archive %s --wait", ids[i]);
        ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);
    }

    /* new key first, then rekey everything */
    ck_assert_int_eq(
        it_sh("printf '%%s\\n%%s\\n' " KEY_B " " KEY_A " > '%s'", keyfile), 0);
    ck_assert_int_eq(it_cli(&e, "rekey --all --dry-run", job, sizeof(job), out),
                     0);
    ck_assert_int_eq(it_sh("grep -q '\"summary\":true,\"spaces\":2,"
                           "\"toRewrap\":2,\"failed\":0' '%s'",
                           out),
                     0);
    ck_assert_int_eq(it_cli(&e, "rekey --all", job, sizeof(job), out), 0);
    ck_assert_int_eq(it_sh("grep -q '\"summary\":true,\"spaces\":2,"
                           "\"rewrapped\":2,\"failed\":0' '%s'",
                           out),
                     0);
    /* the old key removed: both archives still export as valid ZIPs */
    ck_assert_int_eq(it_sh("echo " KEY_B " > '%s'", keyfile), 0);
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof(args), "export %s", ids[i]);
        ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);
        ck_assert_int_eq(
            it_sh("python3 -c 'import sys, zipfile; "
                  "sys.exit(zipfile.ZipFile(sys.argv[1]).testzip() "
                  "is not None)' '%s'",
                  out),
            0);
    }
    /* a space a job holds is not touched, and the run says so */
    ck_assert_int_eq(
        it_sh("printf '%%s\\n%%s\\n' " KEY_A " " KEY_B " > '%s'", keyfile), 0);
    it_redis("SET %slock:%s someone PX 60000", it_prefix_of(&e), ids[0]);
    snprintf(args, sizeof(args), "rekey %s", ids[0]);
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 1);
    ck_assert_int_eq(it_sh("grep -q 'is busy' '%s'", out), 0);
    it_redis("DEL %slock:%s", it_prefix_of(&e), ids[0]);
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);
    ck_assert_int_eq(it_sh("grep -q '\"rewrapped\":1,' '%s'", out), 0);
    ck_assert_int_eq(it_stop(w), 0);
}
END_TEST

Suite *it_crypt_suite(void)
{
    Suite *s = suite_create("it_crypt");
    TCase *tc = tcase_create("crypt");

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_it_crypt_sealed_space);
    tcase_add_test(tc, test_it_crypt_rekey_all);
    suite_add_tcase(s, tc);
    return s;
}
