// Opening a space: an archived one is restored (urgent unarchive), `ready`
// comes first (space.json, sila.md, secrets, ops in place; the manifest
// says restoring with readyAt), `complete` at the end (state active), and
// the times count from the request. An active space opens at once.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./helpers');

function spaceEvents(prefix, spaceId) {
  const sub = h.redis();
  const events = [];
  const ready = sub.subscribe(`${prefix}space:${spaceId}`);
  sub.on('message', (_ch, msg) => events.push({ at: Date.now(), ...JSON.parse(msg) }));
  return { events, ready, close: () => sub.disconnect() };
}

test('open an archived space: ready, then complete; times from the request', async () => {
  const prefix = h.prefixFor('open');
  const conn = h.redis();
  const c = h.client(prefix, conn);
  let worker = h.startWorker(prefix, 'open-archive');
  let evs = null;
  try {
    const sp = h.makeSpace('open', ['--ops-files', '40', '--blobs', '60', '--big-blobs', '2']);
    h.archive(prefix, sp.spaceId);
    await h.stopWorker(worker);
    worker = null;
    evs = spaceEvents(prefix, sp.spaceId);
    await evs.ready;

    const t0 = Date.now();
    const op = await c.openSpace(sp.spaceId, { timeoutMs: 120000 });
    assert.equal(op.state, 'archived');
    assert.equal(op.created, true);
    assert.match(op.jobId, /^[0-9a-f]{32}$/);
    // no worker for a while: the wait is part of the time to ready
    await h.sleep(1200);
    worker = h.startWorker(prefix, 'open-restore');
    let completeSeen = false;
    op.complete.then(() => (completeSeen = true), () => {});
    const ready = await op.ready;
    const tReady = Date.now();
    assert.equal(ready.jobId, op.jobId);
    // the event, or the status hash read in the same instant (the event
    // itself is checked below)
    assert.ok(['event', 'hash'].includes(ready.via), ready.via);
    assert.equal(completeSeen, false, 'ready resolves before complete');
    assert.ok(ready.timeToReadyMs >= 1200, `timeToReadyMs ${ready.timeToReadyMs} counts from the request`);
    assert.ok(ready.timeToReadyMs <= tReady - t0 + 50);

    const done = await op.complete;
    assert.equal(done.jobId, op.jobId);
    assert.ok(done.timeToCompleteMs >= ready.timeToReadyMs);

    // complete may be learnt from the hash an instant before the event
    // (same transaction) reaches this subscriber: give it 2 s
    for (let i = 0; i < 40 && !evs.events.some((e) => e.event === 'complete'); i++) await h.sleep(50);
    const r = evs.events.filter((e) => e.event === 'ready');
    const k = evs.events.filter((e) => e.event === 'complete');
    assert.ok(r.length >= 1, 'a ready event');
    assert.equal(k.length, 1, 'one complete event');
    assert.ok(evs.events.indexOf(r[0]) < evs.events.indexOf(k[0]), 'ready before complete');
    assert.deepEqual(Object.keys(r[0]).filter((x) => x !== 'at').sort(), ['event', 'jobId', 'spaceId', 'timeToReadyMs']);
    assert.deepEqual(Object.keys(k[0]).filter((x) => x !== 'at').sort(), ['event', 'jobId', 'spaceId', 'timeToCompleteMs']);
    assert.equal(k[0].jobId, op.jobId);

    const st = await c.jobStatus(op.jobId);
    assert.equal(st.state, 'succeeded');
    assert.ok(st.readyAt, 'status hash readyAt');
    assert.equal(st.timeToReadyMs, st.result.timeToReadyMs);
    assert.ok(st.result.timeToReadyMs >= 1200);
    assert.ok(st.result.timeToCompleteMs >= st.result.timeToReadyMs);
    assert.ok(Date.parse(st.readyAt) >= Date.parse(st.createdAt) + st.timeToReadyMs - 5);

    const mf = JSON.parse(await h.getObject(`metadata/${sp.spaceId}.json`));
    assert.equal(mf.state, 'active');
    assert.ok(mf.restoredAt);
    assert.equal(mf.readyAt, undefined, 'readyAt is removed when the space is active');
    for (const f of sp.files) {
      const body = await h.getObject(`active/${sp.spaceId}/${f}`);
      assert.ok(body && body.equals(require('node:fs').readFileSync(`${sp.dir}/${f}`)), f);
    }
  } finally {
    if (evs) evs.close();
    await h.stopWorker(worker);
    await c.close();
    conn.disconnect();
  }
});

test('open an active space: ready and complete at once, no job', async () => {
  const prefix = h.prefixFor('open-active');
  const conn = h.redis();
  const c = h.client(prefix, conn);
  try {
    const sp = h.makeSpace('open-active', ['--ops-files', '3', '--blobs', '1', '--big-blobs', '0', '--var-blobs', '0']);
    const op = await c.openSpace(sp.spaceId);
    assert.equal(op.jobId, null);
    assert.equal((await op.ready).via, 'manifest');
    assert.equal((await op.complete).via, 'manifest');
    assert.equal(await conn.xlen(`${prefix}jobs:urgent`), 0);
    assert.equal(await conn.xlen(`${prefix}jobs`), 0);
  } finally {
    await c.close();
    conn.disconnect();
  }
});

test('a failed restore rejects ready and complete with the error', async () => {
  const prefix = h.prefixFor('open-fail');
  const conn = h.redis();
  const c = h.client(prefix, conn);
  let worker = h.startWorker(prefix, 'open-fail-archive');
  try {
    const sp = h.makeSpace('open-fail', ['--ops-files', '3', '--blobs', '2', '--big-blobs', '0']);
    h.archive(prefix, sp.spaceId);
    await h.stopWorker(worker);
    // the archive is gone: the restore fails for good (permanent)
    const mf = JSON.parse(await h.getObject(`metadata/${sp.spaceId}.json`));
    const { spawnSync } = require('node:child_process');
    const rm = spawnSync('python3', ['-c', `import boto3,os;boto3.client('s3',endpoint_url=os.environ['WK_TEST_S3_ENDPOINT'],region_name='us-east-1').delete_object(Bucket=os.environ['WK_TEST_BUCKET'],Key=${JSON.stringify(mf.archiveKey)})`], { encoding: 'utf8' });
    assert.equal(rm.status, 0, rm.stderr);
    worker = h.startWorker(prefix, 'open-fail-restore');
    const op = await c.openSpace(sp.spaceId, { timeoutMs: 60000 });
    await assert.rejects(op.ready, (e) => e.jobId === op.jobId && /failed/.test(e.message));
    await assert.rejects(op.complete, (e) => e.jobId === op.jobId);
    const st = await c.jobStatus(op.jobId);
    assert.equal(st.state, 'failed');
    const after = JSON.parse(await h.getObject(`metadata/${sp.spaceId}.json`));
    assert.equal(after.state, 'archived', 'a failure before ready leaves the space archived');
  } finally {
    await h.stopWorker(worker);
    await c.close();
    conn.disconnect();
  }
});
