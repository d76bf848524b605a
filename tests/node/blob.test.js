// Reading a blob before the restore reached it (the want request): after
// `ready`, ask for the archive's last blob; the restore serves it ahead of
// its order (`served`) before `complete`. Without a restore running the
// request times out, the client queues one (deduplicated) and asks again.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const h = require('./helpers');

const MISSING = `space-v1/files/static/sha256/00/${'0'.repeat(62)}`;

test('a blob not yet restored is served between ready and complete', async () => {
  const prefix = h.prefixFor('blob');
  const conn = h.redis();
  const c = h.client(prefix, conn);
  let worker = h.startWorker(prefix, 'blob-archive');
  try {
    // many blobs, so that the restore is still writing them when asked
    const sp = h.makeSpace('blob', ['--ops-files', '50', '--blobs', '400', '--big-blobs', '4', '--var-blobs', '0']);
    h.archive(prefix, sp.spaceId);
    await h.stopWorker(worker);
    worker = h.startWorker(prefix, 'blob-restore');
    const blobs = sp.files.filter((f) => f.startsWith('space-v1/files/static/sha256/'));
    const last = blobs[blobs.length - 1]; // the last entry of the archive

    const op = await c.openSpace(sp.spaceId, { timeoutMs: 180000 });
    let completeAt = 0;
    op.complete.then(() => (completeAt = Date.now()), () => {});
    await op.ready;
    const mf = JSON.parse(await h.getObject(`metadata/${sp.spaceId}.json`));
    assert.equal(mf.state, 'restoring', 'asked while the restore runs');
    assert.ok(mf.readyAt, 'the manifest says ready');
    assert.equal(await h.headObject(`active/${sp.spaceId}/${last}`), false, 'the last blob is not restored yet');

    const [got, missing] = await Promise.all([
      c.ensureBlob(sp.spaceId, last, { wantTimeoutMs: 5000 }),
      c.ensureBlob(sp.spaceId, MISSING, { wantTimeoutMs: 5000 }),
    ]);
    const servedAt = Date.now();
    assert.deepEqual(got, { found: true, key: `active/${sp.spaceId}/${last}`, via: 'served' });
    assert.deepEqual(missing, { found: false, key: `active/${sp.spaceId}/${MISSING}`, via: 'served' });
    assert.equal(completeAt, 0, 'served before complete');
    const body = await c.readBlob(sp.spaceId, last);
    assert.ok(body.equals(fs.readFileSync(`${sp.dir}/${last}`)), 'the served blob holds its bytes');

    await op.complete;
    assert.ok(completeAt >= servedAt);
    const st = await c.jobStatus(op.jobId);
    assert.equal(st.state, 'succeeded');
    assert.equal(st.result.restored + st.result.kept, sp.files.length, 'the served blob is not written twice');
    assert.equal((await c.ensureBlob(sp.spaceId, last)).via, 'present');
  } finally {
    await h.stopWorker(worker);
    await c.close();
    conn.disconnect();
  }
});

test('no restore running: the want request times out, one urgent unarchive is queued', async () => {
  const prefix = h.prefixFor('blob-idle');
  const conn = h.redis();
  const c = h.client(prefix, conn);
  let worker = h.startWorker(prefix, 'blob-idle-archive');
  try {
    const sp = h.makeSpace('blob-idle', ['--ops-files', '5', '--blobs', '5', '--big-blobs', '0', '--var-blobs', '0']);
    h.archive(prefix, sp.spaceId);
    await h.stopWorker(worker);
    worker = null;
    const blob = sp.files.filter((f) => f.startsWith('space-v1/files/static/'))[0];
    await assert.rejects(c.ensureBlob(sp.spaceId, blob, { wantTimeoutMs: 400, tries: 2 }), /no answer/);
    const want = `${prefix}want:${sp.spaceId}`;
    const queued = await conn.lrange(want, 0, -1);
    assert.deepEqual(queued, [blob, blob], 'asked twice');
    const ttl = await conn.ttl(want);
    assert.ok(ttl > 0 && ttl <= 300, `want list expires (ttl ${ttl})`);
    assert.equal(await conn.xlen(`${prefix}jobs:urgent`), 1, 'one urgent unarchive, deduplicated');
    const jobId = await conn.get(`${prefix}dedup:unarchive:${sp.spaceId}`);
    assert.equal(await conn.hget(`${prefix}job:${jobId}`, 'priority'), 'urgent');

    worker = h.startWorker(prefix, 'blob-idle-restore');
    const got = await c.ensureBlob(sp.spaceId, blob, { wantTimeoutMs: 5000, tries: 5 });
    assert.equal(got.found, true);
    assert.ok(['served', 'complete', 'present'].includes(got.via), got.via);
    const body = await c.readBlob(sp.spaceId, blob);
    assert.ok(body.equals(fs.readFileSync(`${sp.dir}/${blob}`)));
  } finally {
    await h.stopWorker(worker);
    await c.close();
    conn.disconnect();
  }
});
