#!/usr/bin/env python3
"""Check the deployment files against the program, without a container engine.

    python3 tests/check_deploy.py        (from the repository root)

Exit status 0 when everything holds, 1 with the list of problems, 2 when it
cannot run (PyYAML missing: Debian package python3-yaml).

What it checks:
  - every YAML document and JSON file under deploy/ parses;
  - Deployment: resources, /healthz and /livez probes on the metrics port,
    terminationGracePeriodSeconds above SILA_SHUTDOWN_GRACE (README default
    or the configured value), non-root, read-only root fs, no privilege
    escalation, all capabilities dropped, a writable /tmp;
  - KEDA ScaledObject: redis-streams triggers on streams and the consumer
    group named in docs/PROTOCOL.md, targeting the Deployment, with a
    TriggerAuthentication whose secret keys exist;
  - CronJob runs `sweep` with concurrencyPolicy Forbid; PDB selects workers;
  - kustomization.yaml lists files that exist (and every manifest but
    hpa.yaml);
  - one image name across compose, Kubernetes and the Dockerfile comment;
  - every SILA_*, AWS_* or REDIS_URL name in deploy/ is read by the C
    sources (quoted in worker/ storage/ jobs/ common/), README's
    configuration table and the C sources name the same variables, and
    docs/OPERATIONS.md documents all of them;
  - the Dockerfile installs every build package of scripts/install-deps.sh,
    runs the README's `make`, installs the runtime libraries the built
    binary links (when build/rel/sila-archiver and dpkg are there), runs as
    uid 10001 with an exec-form ENTRYPOINT/CMD, STOPSIGNAL SIGTERM and a
    `sila-archiver healthcheck` HEALTHCHECK (a command worker/main.c must
    have);
  - compose: workers read-only with a /tmp tmpfs and a stop grace above the
    shutdown grace, a sweep --every service, files it mounts exist;
  - s3-lifecycle.json aborts incomplete multipart uploads;
  - iam-policy.json allows exactly the S3 actions the worker needs;
  - the Redis ACL line of docs/OPERATIONS.md grants exactly the commands
    worker/*.c sends.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

try:
    import yaml
except ImportError:
    print("check_deploy: cannot run: the Python module 'yaml' (PyYAML) is "
          "missing; install the Debian package python3-yaml "
          "(apt-get install python3-yaml) or 'pip install pyyaml'",
          file=sys.stderr)
    sys.exit(2)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DEPLOY = os.path.join(ROOT, "deploy")
K8S = os.path.join(DEPLOY, "k8s")
IMAGE_REPO_HINT = "sila-archiver"
C_DIRS = ("worker", "storage", "jobs", "common")
ENV_RE = re.compile(r"\b(SILA_[A-Z0-9][A-Z0-9_]*|AWS_[A-Z0-9][A-Z0-9_]*|REDIS_URL)\b")
# Packages of install-deps.sh that only the tests need.
TEST_ONLY_PKGS = {"check", "libsubunit-dev", "redis-server", "zip", "unzip",
                  "python3", "python3-pip"}
# Always in debian:bookworm-slim.
BASE_IMAGE_PKGS = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}
IAM_BUCKET_ACTIONS = {"s3:ListBucket", "s3:ListBucketMultipartUploads",
                      "s3:ListBucketVersions", "s3:GetBucketVersioning"}
IAM_OBJECT_ACTIONS = {"s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                      "s3:DeleteObjectVersion", "s3:AbortMultipartUpload",
                      "s3:ListMultipartUploadParts"}
IAM_OBJECT_PREFIXES = ("active/", "archived/", "metadata/")
# Redis command names, to tell the commands in worker/*.c from their
# arguments (COUNT, MAXLEN, GROUP...) and error prefixes (BUSY, LOADING).
REDIS_COMMANDS = set("""
APPEND ASKING AUTH BITCOUNT BLMOVE BLPOP BRPOP BZPOPMIN CLIENT COMMAND CONFIG COPY
DBSIZE DECR DECRBY DEL DISCARD DUMP ECHO EVAL EVALSHA EVALSHA_RO EVAL_RO EXEC
EXISTS EXPIRE EXPIREAT FCALL FLUSHALL FLUSHDB FUNCTION GET GETDEL GETEX GETSET
HDEL HELLO HEXISTS HGET HGETALL HINCRBY HINCRBYFLOAT HKEYS HLEN HMGET HMSET
HSCAN HSET HSETNX HSTRLEN HVALS INCR INCRBY INFO KEYS LINDEX LLEN LMOVE LPOP
LPUSH LRANGE LREM LSET LTRIM MGET MONITOR MSET MULTI OBJECT PERSIST PEXPIRE
PEXPIREAT PFADD PING PSUBSCRIBE PTTL PUBLISH PUBSUB PUNSUBSCRIBE QUIT RENAME
ROLE RPOP RPUSH SADD SCAN SCARD SCRIPT SELECT SET SETEX SETNX SINTER SISMEMBER
SMEMBERS SPOP SREM SSCAN STRLEN SUBSCRIBE TIME TOUCH TTL TYPE UNLINK
UNSUBSCRIBE UNWATCH WAIT WATCH XACK XADD XAUTOCLAIM XCLAIM XDEL XGROUP XINFO
XLEN XPENDING XRANGE XREAD XREADGROUP XREVRANGE XSETID XTRIM ZADD ZCARD ZCOUNT
ZINCRBY ZPOPMAX ZPOPMIN ZRANGE ZRANGEBYSCORE ZRANK ZREM ZREMRANGEBYSCORE
ZREVRANGE ZREVRANGEBYSCORE ZSCAN ZSCORE
""".split())

problems = []
notes = []
checks = 0


def problem(msg):
    problems.append(msg)


def ok(cond, msg):
    """Count a check; record msg as a problem when cond is false."""
    global checks
    checks += 1
    if not cond:
        problem(msg)
    return cond


def rel(path):
    return os.path.relpath(path, ROOT)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def duration_s(text):
    """'25s', '500ms', '5m', '1h', '7d', or a bare number of seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", str(text))
    if not m:
        return None
    n = float(m.group(1))
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400,
                None: 1}[m.group(2)]


# ------------------------------------------------------------- sources --

def c_env_names():
    """Environment variable names the C sources read (quoted literals)."""
    names = set()
    for d in C_DIRS:
        base = os.path.join(ROOT, d)
        for dirpath, _, files in os.walk(base):
            for fn in files:
                if fn.endswith((".c", ".h")):
                    text = read(os.path.join(dirpath, fn))
                    for m in re.finditer(r'"(SILA_[A-Z0-9_]+|AWS_[A-Z0-9_]+|REDIS_URL)"', text):
                        names.add(m.group(1))
    return names


def readme_config():
    """{name: default} from README's 'Configuration (environment)' table."""
    text = read(os.path.join(ROOT, "README.md"))
    m = re.search(r"^## Configuration \(environment\)\s*$(.*?)^## ", text, re.M | re.S)
    if not m:
        problem("README.md: no '## Configuration (environment)' section")
        return {}
    table = {}
    for line in m.group(1).splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or cells[0] == "Variable":
            continue
        names = re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[0])
        defaults = re.findall(r"`([^`]*)`", cells[1])
        for i, n in enumerate(names):
            table[n] = defaults[i] if i < len(defaults) else (defaults[0] if defaults else "")
    return table


def install_deps_pkgs():
    text = read(os.path.join(ROOT, "scripts", "install-deps.sh"))
    m = re.search(r"DEB_PKGS=\((.*?)\)", text, re.S)
    if not m:
        problem("scripts/install-deps.sh: no DEB_PKGS=( ... ) list")
        return []
    body = re.sub(r"#.*", "", m.group(1))
    return body.split()


def makefile_var(name):
    text = read(os.path.join(ROOT, "Makefile"))
    m = re.search(r"^%s\s*:?=\s*(.*)$" % re.escape(name), text, re.M)
    return m.group(1).strip() if m else None


# -------------------------------------------------------------- loading --

def load_all():
    """Parse every YAML (all documents) and JSON file under deploy/."""
    docs = {}   # path -> list of documents
    jsons = {}  # path -> object
    texts = {}  # path -> text, every file
    for dirpath, _, files in os.walk(DEPLOY):
        for fn in sorted(files):
            path = os.path.join(dirpath, fn)
            try:
                texts[path] = read(path)
            except UnicodeDecodeError:
                continue
            if fn.endswith((".yaml", ".yml")):
                try:
                    docs[path] = [d for d in yaml.safe_load_all(texts[path]) if d is not None]
                    ok(bool(docs[path]), "%s: no YAML document" % rel(path))
                except yaml.YAMLError as e:
                    ok(False, "%s: YAML does not parse: %s" % (rel(path), e))
            elif fn.endswith(".json"):
                try:
                    jsons[path] = json.loads(texts[path])
                    ok(True, "")
                except ValueError as e:
                    ok(False, "%s: JSON does not parse: %s" % (rel(path), e))
    return docs, jsons, texts


def k8s_objects(docs):
    objs = []
    for path, ds in docs.items():
        if not path.startswith(K8S + os.sep):
            continue
        for d in ds:
            if isinstance(d, dict) and "kind" in d and "apiVersion" in d:
                objs.append((path, d))
    return objs


def name_of(obj):
    return (obj.get("metadata") or {}).get("name")


def by_kind(objs, kind):
    return [(p, o) for p, o in objs if o.get("kind") == kind]


def pod_spec(obj):
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec") or {})
    return ((spec.get("template") or {}).get("spec") or {})


# --------------------------------------------------------------- checks --

def check_env_names(texts, c_names, readme):
    for path, text in sorted(texts.items()):
        for n in sorted(set(ENV_RE.findall(text))):
            ok(n in c_names,
               "%s: environment variable %s is not read by the program (no \"%s\" in %s)"
               % (rel(path), n, n, "/ ".join(C_DIRS) + "/"))
    for n in sorted(readme):
        ok(n in c_names, "README.md configuration table: %s is not read by the C sources" % n)
    for n in sorted(c_names):
        ok(n in readme, "%s is read by the C sources but missing from README's configuration table" % n)
    ops = os.path.join(ROOT, "docs", "OPERATIONS.md")
    if ok(os.path.exists(ops), "docs/OPERATIONS.md is missing"):
        text = read(ops)
        for n in sorted(c_names):
            ok("`%s`" % n in text, "docs/OPERATIONS.md does not document %s" % n)
        for n in sorted(set(ENV_RE.findall(text))):
            ok(n in c_names, "docs/OPERATIONS.md: %s is not read by the program" % n)


def redis_commands_used():
    """Redis commands in worker/*.c (string literals and redis.call()s) and
    in docs/enqueue.lua, the script the worker embeds."""
    used = set()
    lua = read(os.path.join(ROOT, "docs", "enqueue.lua"))
    used |= {w.upper() for w in re.findall(r"redis\.call\(['\"]([A-Za-z]+)['\"]", lua)}
    base = os.path.join(ROOT, "worker")
    for fn in os.listdir(base):
        if fn.endswith(".c"):
            text = read(os.path.join(base, fn))
            used |= {w for w in re.findall(r'"([A-Z]+)"', text) if w in REDIS_COMMANDS}
            used |= {w.upper() for w in re.findall(r"redis\.call\('([A-Za-z]+)'", text)}
    return used


def check_redis_acl():
    """The ACL line of docs/OPERATIONS.md grants exactly what q.c sends."""
    ops = os.path.join(ROOT, "docs", "OPERATIONS.md")
    if not os.path.exists(ops):
        return
    m = re.search(r"^ACL SETUSER sila-archiver .*$", read(ops), re.M)
    if not ok(m is not None, "docs/OPERATIONS.md: no `ACL SETUSER sila-archiver ...` line"):
        return
    acl = {t[1:].split("|")[0].upper() for t in m.group(0).split() if t.startswith("+")}
    used = redis_commands_used()
    ok(not (used - acl), "docs/OPERATIONS.md: the ACL line lacks %s, which worker/*.c sends"
       % sorted(used - acl))
    ok(not (acl - used), "docs/OPERATIONS.md: the ACL line grants %s, which worker/*.c never sends"
       % sorted(acl - used))
    for t in ("~sila:*", "&sila:*", "-@all"):
        ok(t in m.group(0).split(), "docs/OPERATIONS.md: the ACL line lacks %s" % t)


def configured_grace(objs, compose):
    """Largest SILA_SHUTDOWN_GRACE configured anywhere in deploy/."""
    vals = []
    for _, o in by_kind(objs, "ConfigMap"):
        v = (o.get("data") or {}).get("SILA_SHUTDOWN_GRACE")
        if v is not None:
            vals.append(duration_s(v))
    for svc in (compose.get("services") or {}).values():
        env = svc.get("environment") or {}
        if isinstance(env, dict) and "SILA_SHUTDOWN_GRACE" in env:
            vals.append(duration_s(env["SILA_SHUTDOWN_GRACE"]))
    return max([v for v in vals if v is not None], default=None)


def env_refs(container):
    """(configmap names, [(secret, key)]) a container's env refers to."""
    cms, secrets = [], []
    for e in container.get("envFrom") or []:
        if "configMapRef" in e:
            cms.append(e["configMapRef"].get("name"))
        if "secretRef" in e:
            secrets.append((e["secretRef"].get("name"), None))
    for e in container.get("env") or []:
        vf = e.get("valueFrom") or {}
        if "secretKeyRef" in vf:
            secrets.append((vf["secretKeyRef"].get("name"), vf["secretKeyRef"].get("key")))
        if "configMapKeyRef" in vf:
            cms.append(vf["configMapKeyRef"].get("name"))
    return cms, secrets


def check_refs(path, obj, objs):
    cm_names = {name_of(o) for _, o in by_kind(objs, "ConfigMap")}
    secrets = {name_of(o): set((o.get("stringData") or {}).keys()) |
               set((o.get("data") or {}).keys()) for _, o in by_kind(objs, "Secret")}
    for c in pod_spec(obj).get("containers") or []:
        cms, srefs = env_refs(c)
        for n in cms:
            ok(n in cm_names, "%s: container %s uses ConfigMap %s, not defined in deploy/k8s"
               % (rel(path), c.get("name"), n))
        for n, k in srefs:
            if ok(n in secrets, "%s: container %s uses Secret %s, not defined in deploy/k8s"
                  % (rel(path), c.get("name"), n)) and k is not None:
                ok(k in secrets[n], "%s: Secret %s has no key %s" % (rel(path), n, k))


def metrics_port(objs):
    for _, o in by_kind(objs, "ConfigMap"):
        v = (o.get("data") or {}).get("SILA_METRICS_ADDR")
        if v:
            return int(str(v).rsplit(":", 1)[-1])
    return 9464


def check_security(path, obj):
    spec = pod_spec(obj)
    psc = spec.get("securityContext") or {}
    for c in spec.get("containers") or []:
        sc = c.get("securityContext") or {}
        name = "%s: container %s" % (rel(path), c.get("name"))
        ok(sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, "%s: runAsNonRoot is not true" % name)
        ok(sc.get("readOnlyRootFilesystem") is True, "%s: readOnlyRootFilesystem is not true" % name)
        ok(sc.get("allowPrivilegeEscalation") is False, "%s: allowPrivilegeEscalation is not false" % name)
        ok("ALL" in ((sc.get("capabilities") or {}).get("drop") or []), "%s: capabilities do not drop ALL" % name)
        uid = sc.get("runAsUser", psc.get("runAsUser"))
        ok(uid == 10001, "%s: runAsUser is %r, the image's user is 10001" % (name, uid))
        mounts = {m.get("mountPath"): m.get("name") for m in c.get("volumeMounts") or []}
        vols = {v.get("name"): v for v in spec.get("volumes") or []}
        ok("/tmp" in mounts and "emptyDir" in (vols.get(mounts.get("/tmp")) or {}),
           "%s: no emptyDir mounted on /tmp (read-only root filesystem)" % name)
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            for r in ("cpu", "memory"):
                ok(r in (res.get(part) or {}), "%s: resources.%s.%s missing" % (name, part, r))


def check_deployment(objs, grace, images):
    deps = by_kind(objs, "Deployment")
    if not ok(len(deps) == 1, "deploy/k8s: expected one Deployment, found %d" % len(deps)):
        return None
    path, d = deps[0]
    spec = pod_spec(d)
    tgps = spec.get("terminationGracePeriodSeconds")
    ok(isinstance(tgps, int) and grace is not None and tgps > grace,
       "%s: terminationGracePeriodSeconds %r is not above SILA_SHUTDOWN_GRACE (%ss)"
       % (rel(path), tgps, grace))
    ok("replicas" not in (d.get("spec") or {}),
       "%s: spec.replicas is set; the autoscaler owns the replica count" % rel(path))
    port = metrics_port(objs)
    for c in spec.get("containers") or []:
        images.append((path, c.get("image")))
        ok((c.get("args") or c.get("command") or ["worker"])[0] == "worker",
           "%s: the worker container does not run `worker`" % rel(path))
        ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
        for probe, want in (("readinessProbe", "/healthz"), ("livenessProbe", "/livez")):
            hg = (c.get(probe) or {}).get("httpGet") or {}
            ok(hg.get("path") == want, "%s: %s is not httpGet %s" % (rel(path), probe, want))
            ok(("\"%s\"" % want) in read(os.path.join(ROOT, "worker", "metrics.c")),
               "%s: %s: worker/metrics.c does not serve %s" % (rel(path), probe, want))
            p = hg.get("port")
            p = ports.get(p, p)
            ok(p == port, "%s: %s port %r is not the metrics port %d (SILA_METRICS_ADDR)"
               % (rel(path), probe, p, port))
        ok(port in ports.values(), "%s: containerPort %d not declared" % (rel(path), port))
    check_security(path, d)
    check_refs(path, d, objs)
    return d


def protocol_names():
    text = read(os.path.join(ROOT, "docs", "PROTOCOL.md"))
    return set(re.findall(r"`([^`\s]+)`", text)) | set(re.findall(r"\*\*`?([^*`\s]+)`?\*\*", text)), text


def check_keda(objs, deployment, secrets_keys):
    names, ptext = protocol_names()
    sos = by_kind(objs, "ScaledObject")
    if not ok(len(sos) == 1, "deploy/k8s: expected one KEDA ScaledObject, found %d" % len(sos)):
        return
    path, so = sos[0]
    spec = so.get("spec") or {}
    dep_name = ((deployment or {}).get("metadata") or {}).get("name")
    ok((spec.get("scaleTargetRef") or {}).get("name") == dep_name,
       "%s: scaleTargetRef is not the Deployment %s" % (rel(path), dep_name))
    lo, hi = spec.get("minReplicaCount"), spec.get("maxReplicaCount")
    ok(isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi,
       "%s: minReplicaCount/maxReplicaCount %r/%r" % (rel(path), lo, hi))
    tas = {name_of(o): o for _, o in by_kind(objs, "TriggerAuthentication")}
    streams = set()
    for t in spec.get("triggers") or []:
        md = t.get("metadata") or {}
        ok(t.get("type") == "redis-streams", "%s: trigger type %r" % (rel(path), t.get("type")))
        s = md.get("stream")
        streams.add(s)
        ok(s in names, "%s: stream %r is not a stream of docs/PROTOCOL.md" % (rel(path), s))
        g = md.get("consumerGroup")
        ok(g in names and "group" in ptext,
           "%s: consumerGroup %r is not the group of docs/PROTOCOL.md" % (rel(path), g))
        ok(any(k in md for k in ("pendingEntriesCount", "lagCount")),
           "%s: trigger on %s has neither pendingEntriesCount nor lagCount" % (rel(path), s))
        ok("lagCount" not in md or "activationLagCount" in md,
           "%s: lagCount without activationLagCount" % rel(path))
        ar = (t.get("authenticationRef") or {}).get("name")
        if ok(ar in tas, "%s: authenticationRef %r is not a TriggerAuthentication" % (rel(path), ar)):
            for ref in (tas[ar].get("spec") or {}).get("secretTargetRef") or []:
                ok(ref.get("key") in secrets_keys.get(ref.get("name"), set()),
                   "%s: TriggerAuthentication %s: Secret %s has no key %s"
                   % (rel(path), ar, ref.get("name"), ref.get("key")))
    for lane in ("sila:jobs", "sila:jobs:urgent"):
        ok(lane in streams, "%s: no trigger on %s" % (rel(path), lane))


def check_cronjob(objs, images):
    cjs = by_kind(objs, "CronJob")
    if not ok(len(cjs) == 1, "deploy/k8s: expected one CronJob, found %d" % len(cjs)):
        return
    path, cj = cjs[0]
    ok((cj.get("spec") or {}).get("concurrencyPolicy") == "Forbid",
       "%s: concurrencyPolicy is not Forbid" % rel(path))
    for c in pod_spec(cj).get("containers") or []:
        images.append((path, c.get("image")))
        argv = (c.get("command") or []) + (c.get("args") or [])
        ok("sweep" in argv, "%s: container %s does not run `sweep`" % (rel(path), c.get("name")))
    check_security(path, cj)
    check_refs(path, cj, objs)


def check_pdb(objs, deployment):
    pdbs = by_kind(objs, "PodDisruptionBudget")
    if not ok(len(pdbs) == 1, "deploy/k8s: expected one PodDisruptionBudget"):
        return
    path, pdb = pdbs[0]
    spec = pdb.get("spec") or {}
    ok(("minAvailable" in spec) != ("maxUnavailable" in spec),
       "%s: set exactly one of minAvailable/maxUnavailable" % rel(path))
    sel = ((spec.get("selector") or {}).get("matchLabels") or {})
    labels = ((((deployment or {}).get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    ok(sel and all(labels.get(k) == v for k, v in sel.items()),
       "%s: selector does not match the Deployment's pods" % rel(path))


def check_secret(objs):
    keys = {}
    for path, o in by_kind(objs, "Secret"):
        sd = o.get("stringData") or {}
        keys[name_of(o)] = set(sd) | set(o.get("data") or {})
        ok("data" not in o, "%s: use stringData (a readable template), not data" % rel(path))
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "REDIS_URL"):
            if ok(k in sd, "%s: no %s" % (rel(path), k)):
                ok("PLACEHOLDER" in str(sd[k]), "%s: %s is not clearly a placeholder" % (rel(path), k))
    return keys


def check_kustomization(docs, objs, images):
    path = os.path.join(K8S, "kustomization.yaml")
    if not ok(path in docs, "deploy/k8s/kustomization.yaml is missing"):
        return
    k = docs[path][0]
    res = k.get("resources") or []
    for r in res:
        ok(os.path.exists(os.path.join(K8S, r)), "%s: resource %s does not exist" % (rel(path), r))
    ok("hpa.yaml" not in res, "%s: hpa.yaml is listed (it is the alternative to KEDA)" % rel(path))
    for p in docs:
        fn = os.path.basename(p)
        if os.path.dirname(p) == K8S and fn not in ("kustomization.yaml", "hpa.yaml"):
            ok(fn in res, "%s: %s is not listed" % (rel(path), fn))
    for im in k.get("images") or []:
        images.append((path, "%s:%s" % (im.get("name"), im.get("newTag", "latest"))))


def check_compose(docs, grace, images):
    path = os.path.join(DEPLOY, "compose.yaml")
    if not ok(path in docs, "deploy/compose.yaml is missing"):
        return {}
    comp = docs[path][0]
    svcs = comp.get("services") or {}
    workers = [n for n, s in svcs.items()
               if "build" in s and (s.get("command") or ["worker"])[0] == "worker"]
    ok(len(workers) >= 2, "%s: expected two worker services, found %s" % (rel(path), workers))
    for n, s in svcs.items():
        if "build" in s:
            images.append((path, s.get("image")))
            b = s["build"]
            ctx = os.path.normpath(os.path.join(DEPLOY, b.get("context", ".")))
            ok(os.path.exists(os.path.join(ctx, b.get("dockerfile", "Dockerfile"))),
               "%s: service %s: Dockerfile %s not found from context %s"
               % (rel(path), n, b.get("dockerfile"), rel(ctx)))
            env = s.get("environment") or {}
            for v in ("SILA_STORE", "REDIS_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID"):
                ok(v in env, "%s: service %s has no %s" % (rel(path), n, v))
        for dep in (s.get("depends_on") or {}):
            ok(dep in svcs, "%s: service %s depends on unknown %s" % (rel(path), n, dep))
        for v in s.get("volumes") or []:
            src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
            if src.startswith("."):
                ok(os.path.exists(os.path.join(DEPLOY, src)),
                   "%s: service %s mounts %s, which does not exist" % (rel(path), n, src))
    for n in workers:
        s = svcs[n]
        ok(s.get("read_only") is True, "%s: %s is not read_only" % (rel(path), n))
        tmpfs = s.get("tmpfs") or []
        tmpfs = [tmpfs] if isinstance(tmpfs, str) else tmpfs
        ok(any(t.split(":")[0] == "/tmp" for t in tmpfs), "%s: %s has no tmpfs on /tmp" % (rel(path), n))
        sg = duration_s(s.get("stop_grace_period", "10s"))
        ok(grace is not None and sg is not None and sg > grace,
           "%s: %s stop_grace_period %s is not above SILA_SHUTDOWN_GRACE (%ss)"
           % (rel(path), n, s.get("stop_grace_period"), grace))
    sweeps = [n for n, s in svcs.items()
              if (s.get("command") or [None])[0] == "sweep" and "--every" in s.get("command")]
    ok(len(sweeps) == 1, "%s: expected one service running `sweep --every`" % rel(path))
    ok(any("s3-lifecycle.json" in json.dumps(s) for s in svcs.values()),
       "%s: no service applies s3-lifecycle.json" % rel(path))
    for need in ("redis", "minio"):
        ok(need in svcs, "%s: no %s service" % (rel(path), need))
    ok("healthcheck" in (svcs.get("minio") or {}), "%s: minio has no healthcheck" % rel(path))
    return comp


def dockerfile_stages(text):
    """[(from line, [instructions])] with continuation lines joined."""
    lines, cur = [], ""
    for raw in text.splitlines():
        s = raw.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        lines.append(cur + s)
        cur = ""
    stages = []
    for ln in lines:
        if ln.upper().startswith("FROM "):
            stages.append((ln, []))
        elif stages:
            stages[-1][1].append(ln)
    return stages


def apt_pkgs(instrs):
    pkgs = set()
    for ins in instrs:
        if not ins.upper().startswith("RUN "):
            continue
        for part in re.split(r"&&|;", ins[4:]):
            words = shlex.split(part)
            if "apt-get" in words and "install" in words:
                pkgs |= {w for w in words[words.index("install") + 1:] if not w.startswith("-")}
    return pkgs


def instr(instrs, name):
    return [i[len(name) + 1:].strip() for i in instrs if i.upper().startswith(name + " ")]


def binary_runtime_pkgs(binary):
    """Debian packages owning the binary's NEEDED libraries, or None."""
    if not (os.path.exists(binary) and shutil.which("readelf") and shutil.which("ldd")
            and shutil.which("dpkg")):
        return None
    needed = re.findall(r"\(NEEDED\).*\[(.+?)\]",
                        subprocess.run(["readelf", "-d", binary], capture_output=True,
                                       text=True).stdout)
    paths = {}
    for ln in subprocess.run(["ldd", binary], capture_output=True, text=True).stdout.splitlines():
        m = re.match(r"\s*(\S+) => (\S+)", ln)
        if m:
            paths[m.group(1)] = m.group(2)
    out = {}
    for lib in needed:
        p = paths.get(lib)
        if not p:
            continue
        for cand in (p, os.path.realpath(p), p.replace("/lib/", "/usr/lib/", 1),
                     os.path.realpath(p).replace("/lib/", "/usr/lib/", 1)):
            r = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
            if r.returncode == 0:
                out[lib] = r.stdout.split(":")[0].strip()
                break
    return out


def pc_dev_pkgs():
    """Debian packages providing the Makefile's pkg-config modules, or None."""
    mods = (makefile_var("PKGS") or "").split()
    if not (mods and shutil.which("pkg-config") and shutil.which("dpkg")):
        return None
    out = {}
    for m in mods:
        r = subprocess.run(["pkg-config", "--path", m], capture_output=True, text=True)
        if r.returncode != 0:
            out[m] = None
            continue
        d = subprocess.run(["dpkg", "-S", r.stdout.strip()], capture_output=True, text=True)
        out[m] = d.stdout.split(":")[0].strip() if d.returncode == 0 else None
    return out


def check_dockerfile(images):
    path = os.path.join(DEPLOY, "Dockerfile")
    if not ok(os.path.exists(path), "deploy/Dockerfile is missing"):
        return
    text = read(path)
    stages = dockerfile_stages(text)
    if not ok(len(stages) >= 2, "%s: expected a build and a runtime stage" % rel(path)):
        return
    for frm, _ in stages:
        ok(frm.split()[1] == "debian:bookworm-slim", "%s: %s is not debian:bookworm-slim" % (rel(path), frm))
    build, runtime = stages[0][1], stages[-1][1]
    # Build packages: install-deps.sh minus the test-only ones.
    bpk = apt_pkgs(build)
    for p in install_deps_pkgs():
        if p not in TEST_ONLY_PKGS:
            ok(p in bpk, "%s: build stage does not install %s (scripts/install-deps.sh)" % (rel(path), p))
    devs = pc_dev_pkgs()
    if devs is None:
        notes.append("pkg-config/dpkg missing: Makefile PKGS not mapped to Debian packages")
    else:
        for mod, pkg in devs.items():
            if pkg is None:
                notes.append("pkg-config module %s not installed here: not mapped" % mod)
            else:
                ok(pkg in bpk, "%s: build stage does not install %s (pkg-config %s, Makefile PKGS)"
                   % (rel(path), pkg, mod))
    # The README's build step.
    readme = read(os.path.join(ROOT, "README.md"))
    ok(re.search(r"`make` \(builds `build/sila-archiver`\)", readme) is not None,
       "README.md no longer says `make` (builds `build/sila-archiver`): recheck the Dockerfile build step")
    makes = [r for r in instr(build, "RUN") if re.search(r"(^|[;&|]\s*)make\b", r)]
    ok(makes, "%s: the build stage never runs make" % rel(path))
    for r in makes:
        for part in re.split(r"&&|;", r):
            w = shlex.split(part)
            if w and w[0] == "make":
                targets = [a for a in w[1:] if not a.startswith("-") and "=" not in a]
                ok(all(t in ("all", "build/rel/sila-archiver", "build/sila-archiver") for t in targets),
                   "%s: `%s` is not the README's `make`" % (rel(path), part.strip()))
    bin_path = "%s/sila-archiver" % (makefile_var("BUILD") or "build/rel")
    copies = instr(runtime, "COPY")
    ok(any("--from=" in c and bin_path in c and c.split()[-1] == "/usr/local/bin/sila-archiver"
           for c in copies),
       "%s: runtime stage does not copy %s to /usr/local/bin/sila-archiver" % (rel(path), bin_path))
    # Runtime libraries.
    rpk = apt_pkgs(runtime)
    ok("ca-certificates" in rpk, "%s: runtime stage lacks ca-certificates" % rel(path))
    ok(not any(p.endswith("-dev") or p in ("build-essential", "pkg-config") for p in rpk),
       "%s: runtime stage installs build packages" % rel(path))
    libs = binary_runtime_pkgs(os.path.join(ROOT, bin_path))
    if libs is None:
        notes.append("%s or readelf/ldd/dpkg missing: runtime libraries not checked against the binary" % bin_path)
    else:
        for lib, pkg in sorted(libs.items()):
            if pkg not in BASE_IMAGE_PKGS:
                ok(pkg in rpk, "%s: runtime stage does not install %s (the binary needs %s)"
                   % (rel(path), pkg, lib))
    for p in sorted(rpk - {"ca-certificates"}):
        r = subprocess.run(["apt-cache", "show", p], capture_output=True, text=True) \
            if shutil.which("apt-cache") else None
        if r is not None:
            ok(r.returncode == 0 and "Package: %s" % p in r.stdout,
               "%s: no Debian package %s (apt-cache show)" % (rel(path), p))
    # Process, user, signals, health.
    ok(instr(runtime, "USER") and instr(runtime, "USER")[-1].split(":")[0] in ("10001", "sila"),
       "%s: runtime USER is not 10001" % rel(path))
    ep = instr(runtime, "ENTRYPOINT")
    ok(ep and json.loads(ep[-1]) == ["/usr/local/bin/sila-archiver"],
       "%s: ENTRYPOINT is not [\"/usr/local/bin/sila-archiver\"] (exec form)" % rel(path))
    cmd = instr(runtime, "CMD")
    ok(cmd and json.loads(cmd[-1]) == ["worker"], "%s: CMD is not [\"worker\"] (exec form)" % rel(path))
    ok(instr(runtime, "STOPSIGNAL") == ["SIGTERM"], "%s: STOPSIGNAL is not SIGTERM" % rel(path))
    hc = instr(runtime, "HEALTHCHECK")
    ok(hc and re.search(r"CMD\s+\[\"/usr/local/bin/sila-archiver\",\s*\"healthcheck\"\]", hc[-1]),
       "%s: HEALTHCHECK does not run sila-archiver healthcheck" % rel(path))
    env = " ".join(instr(runtime, "ENV"))
    ok("TMPDIR=/tmp" in env, "%s: ENV TMPDIR=/tmp missing" % rel(path))
    ok("SILA_METRICS_ADDR=0.0.0.0:9464" in env, "%s: ENV SILA_METRICS_ADDR=0.0.0.0:9464 missing" % rel(path))
    main_c = read(os.path.join(ROOT, "worker", "main.c"))
    ok('"healthcheck"' in main_c,
       "%s: HEALTHCHECK runs `sila-archiver healthcheck`, but worker/main.c has no "
       "such command" % rel(path))
    m = re.search(r"docker build -f deploy/Dockerfile -t (\S+) \.", text)
    if ok(m is not None, "%s: the header comment lacks `docker build -f deploy/Dockerfile -t <image> .`"
          % rel(path)):
        images.append((path, m.group(1)))


def check_lifecycle(jsons):
    path = os.path.join(DEPLOY, "s3-lifecycle.json")
    if not ok(path in jsons, "deploy/s3-lifecycle.json is missing or does not parse"):
        return
    rules = jsons[path].get("Rules") if isinstance(jsons[path], dict) else None
    if not ok(isinstance(rules, list) and rules, "%s: no Rules list" % rel(path)):
        return
    for r in rules:
        ok(r.get("ID") and r.get("Status") in ("Enabled", "Disabled") and "Filter" in r,
           "%s: rule %r lacks ID, Status or Filter" % (rel(path), r.get("ID")))
    abort = [r for r in rules if r.get("Status") == "Enabled"
             and (r.get("AbortIncompleteMultipartUpload") or {}).get("DaysAfterInitiation", 0) >= 1
             and (r.get("Filter") or {}).get("Prefix", None) == ""]
    ok(len(abort) == 1, "%s: no enabled whole-bucket AbortIncompleteMultipartUpload rule" % rel(path))


def check_iam(jsons):
    path = os.path.join(DEPLOY, "iam-policy.json")
    if not ok(path in jsons, "deploy/iam-policy.json is missing or does not parse"):
        return
    pol = jsons[path]
    ok(pol.get("Version") == "2012-10-17", "%s: Version is not 2012-10-17" % rel(path))
    allowed = set()
    for st in pol.get("Statement") or []:
        acts = st.get("Action")
        acts = [acts] if isinstance(acts, str) else (acts or [])
        res = st.get("Resource")
        res = [res] if isinstance(res, str) else (res or [])
        ok(st.get("Effect") == "Allow", "%s: statement %s is not Allow" % (rel(path), st.get("Sid")))
        ok("NotAction" not in st and "NotResource" not in st,
           "%s: NotAction/NotResource widen the policy" % rel(path))
        for a in acts:
            ok("*" not in a, "%s: wildcard action %s" % (rel(path), a))
            allowed.add(a)
            if a in IAM_BUCKET_ACTIONS:
                ok(res == ["arn:aws:s3:::sila"], "%s: %s must be on arn:aws:s3:::sila only" % (rel(path), a))
            elif a in IAM_OBJECT_ACTIONS:
                ok(sorted(res) == sorted("arn:aws:s3:::sila/%s*" % p for p in IAM_OBJECT_PREFIXES),
                   "%s: %s must be on sila/active/*, sila/archived/*, sila/metadata/* only"
                   % (rel(path), a))
    want = IAM_BUCKET_ACTIONS | IAM_OBJECT_ACTIONS
    ok(allowed == want, "%s: allows %s; expected exactly %s (missing %s, extra %s)"
       % (rel(path), sorted(allowed), sorted(want), sorted(want - allowed), sorted(allowed - want)))


def check_images(images):
    sila = [(p, i) for p, i in images if i and IMAGE_REPO_HINT in i]
    names = {i for _, i in sila}
    ok(len(names) == 1, "image names differ: %s"
       % "; ".join(sorted({"%s: %s" % (rel(p), i) for p, i in sila})))
    ok(len(sila) == len(images), "images without the sila-archiver name: %s"
       % [(rel(p), i) for p, i in images if not i or IMAGE_REPO_HINT not in i])


def main():
    os.chdir(ROOT)
    docs, jsons, texts = load_all()
    objs = k8s_objects(docs)
    c_names = c_env_names()
    readme = readme_config()
    images = []

    check_env_names(texts, c_names, readme)
    grace_default = duration_s(readme.get("SILA_SHUTDOWN_GRACE", ""))
    ok(grace_default is not None, "README.md: no default for SILA_SHUTDOWN_GRACE")
    compose = docs.get(os.path.join(DEPLOY, "compose.yaml"), [{}])[0]
    conf = configured_grace(objs, compose)
    grace = max(v for v in (grace_default, conf, 0) if v is not None)

    secrets_keys = check_secret(objs)
    deployment = check_deployment(objs, grace, images)
    check_keda(objs, deployment, secrets_keys)
    check_cronjob(objs, images)
    check_pdb(objs, deployment)
    check_kustomization(docs, objs, images)
    check_compose(docs, grace, images)
    check_dockerfile(images)
    check_lifecycle(jsons)
    check_iam(jsons)
    check_images(images)
    check_redis_acl()

    for n in notes:
        print("check_deploy: note: %s" % n)
    if problems:
        print("check_deploy: %d problem(s) in %d checks:" % (len(problems), checks))
        for p in problems:
            print("  - %s" % p)
        return 1
    print("check_deploy: ok (%d checks; %d YAML files, %d JSON files)"
          % (checks, len(docs), len(jsons)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
