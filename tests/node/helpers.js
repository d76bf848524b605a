// Shared by the Node client's tests (run through tests/node/run.sh): the
// servers run.sh started, workers started and stopped by PID, the CLI,
// generated spaces (tests/gen_space.py, tests/upload_dir.py), and an S3
// getter with plain fetch (SigV4 signed by hand: no SDK needed).
'use strict';

const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const assert = require('node:assert/strict');

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run through tests/node/run.sh`);
  return v;
}

const ROOT = env('WK_SRCDIR');
const CLIENT_DIR = path.join(ROOT, 'clients/node');
const Redis = require(require.resolve('ioredis', { paths: [CLIENT_DIR] }));
const { SilaClient } = require(CLIENT_DIR);
const ENDPOINT = env('WK_TEST_S3_ENDPOINT');
const BUCKET = env('WK_TEST_BUCKET');
const REDIS_PORT = Number(env('WK_TEST_REDIS_PORT'));
const TMP = env('WK_TEST_TMP');
let seq = 0;

function tmpdir(tag) {
  const d = path.join(TMP, `${tag}-${process.pid}-${seq++}`);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

function prefixFor(tag) {
  return `test:node:${process.pid}:${tag}:`;
}

function redis() {
  return new Redis({ host: '127.0.0.1', port: REDIS_PORT, maxRetriesPerRequest: 2 });
}

function objectUrl(key) {
  return `${ENDPOINT}/${BUCKET}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

// AWS Signature V4 headers of a bodyless request (GET/HEAD), so that the
// getter is what an app server would send (moto checks none of it, but
// refuses anonymous reads of a private bucket).
function sign(method, url) {
  const u = new URL(url);
  const now = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const day = now.slice(0, 8);
  const region = process.env.AWS_REGION || 'us-east-1';
  const hmac = (k, v) => crypto.createHmac('sha256', k).update(v).digest();
  const sha = (v) => crypto.createHash('sha256').update(v).digest('hex');
  const query = [...u.searchParams.entries()]
    .map(([k, v]) => [encodeURIComponent(k), encodeURIComponent(v)])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const headers = { host: u.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'x-amz-date': now };
  const names = Object.keys(headers).sort();
  const canon = [method, u.pathname, query, ...names.map((n) => `${n}:${headers[n]}`), '', names.join(';'), 'UNSIGNED-PAYLOAD'].join('\n');
  const scope = `${day}/${region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', now, scope, sha(canon)].join('\n');
  let k = hmac(`AWS4${process.env.AWS_SECRET_ACCESS_KEY || 'test'}`, day);
  k = hmac(hmac(hmac(k, region), 's3'), 'aws4_request');
  const sig = crypto.createHmac('sha256', k).update(toSign).digest('hex');
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${process.env.AWS_ACCESS_KEY_ID || 'test'}/${scope}, SignedHeaders=${names.join(';')}, Signature=${sig}`;
  delete headers.host;
  return headers;
}

function s3fetch(url, method = 'GET') {
  return fetch(url, { method, headers: sign(method, url) });
}

// The S3 getter an app server passes to SilaClient (fetch, signed).
async function getObject(key) {
  const r = await s3fetch(objectUrl(key));
  if (r.status === 404) return null;
  if (!r.ok) throw new Error(`GET ${key}: HTTP ${r.status}`);
  return Buffer.from(await r.arrayBuffer());
}

async function headObject(key) {
  const r = await s3fetch(objectUrl(key), 'HEAD');
  if (r.status === 404) return false;
  if (!r.ok) throw new Error(`HEAD ${key}: HTTP ${r.status}`);
  return true;
}

async function listKeys(prefix) {
  const keys = [];
  let token = '';
  for (;;) {
    const q = `list-type=2&prefix=${encodeURIComponent(prefix)}${token ? `&continuation-token=${encodeURIComponent(token)}` : ''}`;
    const r = await s3fetch(`${ENDPOINT}/${BUCKET}?${q}`);
    assert.equal(r.status, 200);
    const xml = await r.text();
    for (const m of xml.matchAll(/<Key>([^<]*)<\/Key>/g)) keys.push(m[1].replace(/&amp;/g, '&'));
    const t = xml.match(/<NextContinuationToken>([^<]*)<\/NextContinuationToken>/);
    if (!t) return keys;
    token = t[1];
  }
}

function client(prefix, conn) {
  return new SilaClient({ redis: conn, getObject, headObject, prefix, requestedBy: 'node-test' });
}

function workerEnv(prefix, extra = {}) {
  return {
    ...process.env,
    SILA_STORE: `s3://${BUCKET}`,
    REDIS_URL: `redis://127.0.0.1:${REDIS_PORT}/0`,
    SILA_KEY_PREFIX: prefix,
    AWS_ENDPOINT_URL_S3: ENDPOINT,
    SILA_PART_SIZE: '5MiB',
    SILA_QUEUE_BLOCK_MS: '200',
    SILA_S3_RETRIES: '2',
    ...extra,
  };
}

// A worker process (the real binary) with its log in the temp dir.
function startWorker(prefix, tag, extra = {}) {
  const log = path.join(TMP, `worker-${tag}-${process.pid}-${seq++}.log`);
  const fd = fs.openSync(log, 'a');
  const child = spawn(env('WK_BIN'), ['worker'], { env: workerEnv(prefix, extra), stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  child.logPath = log;
  child.exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve({ code, sig })));
  return child;
}

// SIGTERM by PID, SIGKILL after 15 s; resolves with the exit status.
async function stopWorker(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return child && child.exited;
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 15000);
  const r = await child.exited;
  clearTimeout(t);
  return r;
}

function cli(prefix, args, extra = {}) {
  const r = spawnSync(env('WK_BIN'), args, { env: workerEnv(prefix, extra), encoding: 'utf8', timeout: 120000 });
  return { code: r.status, stdout: r.stdout || '', stderr: r.stderr || '' };
}

function python(args) {
  const r = spawnSync('python3', args, { encoding: 'utf8', env: { ...process.env, SVC_S3_ENDPOINT: ENDPOINT } });
  if (r.status !== 0) throw new Error(`python3 ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

// Every regular file below dir, as paths relative to it ('/'-separated).
function filesOf(dir) {
  const out = [];
  const walk = (d, rel) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(d, e.name), r);
      else if (e.isFile()) out.push(r);
    }
  };
  walk(dir, '');
  return out.sort();
}

// A generated space uploaded under active/<id>/: {spaceId, dir, files}.
function makeSpace(tag, genArgs = []) {
  const dir = path.join(tmpdir(tag), 'space');
  const info = JSON.parse(python([path.join(ROOT, 'tests/gen_space.py'), '--out', dir, '--space-id', 'random', ...genArgs]));
  python([path.join(ROOT, 'tests/upload_dir.py'), dir, BUCKET, `active/${info.space_id}/`, '--endpoint', ENDPOINT]);
  return { spaceId: info.space_id, dir, files: filesOf(dir), info };
}

// Archive a space with the CLI (a worker of this prefix must be running).
function archive(prefix, spaceId) {
  const r = cli(prefix, ['enqueue', 'archive', spaceId, '--wait']);
  assert.equal(r.code, 0, `archive ${spaceId}: ${r.stdout}${r.stderr}`);
  return r.stdout.split('\n')[0].trim();
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

module.exports = {
  ROOT,
  CLIENT_DIR,
  Redis,
  SilaClient,
  BUCKET,
  ENDPOINT,
  tmpdir,
  prefixFor,
  redis,
  getObject,
  headObject,
  listKeys,
  client,
  startWorker,
  stopWorker,
  cli,
  makeSpace,
  filesOf,
  archive,
  sleep,
};
