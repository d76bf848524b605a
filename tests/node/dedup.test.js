// Many users opening one archived space make one job and one restore: the
// deduplicated enqueue (docs/enqueue.lua) from many connections at once.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./helpers');

test('concurrent opens of one archived space: one job id, one restore', async () => {
  const prefix = h.prefixFor('dedup');
  const conns = [h.redis(), h.redis(), h.redis(), h.redis()];
  let worker = h.startWorker(prefix, 'dedup-archive');
  const clients = [];
  try {
    const sp = h.makeSpace('dedup', ['--ops-files', '20', '--blobs', '10', '--big-blobs', '0']);
    h.archive(prefix, sp.spaceId);
    await h.stopWorker(worker);
    worker = null;
    const mf = JSON.parse(await h.getObject(`metadata/${sp.spaceId}.json`));
    assert.equal(mf.state, 'archived');

    // 40 opens over 4 connections, all at once, no worker running yet
    for (let i = 0; i < 40; i++) clients.push(h.client(prefix, conns[i % conns.length]));
    const opens = await Promise.all(clients.map((c) => c.openSpace(sp.spaceId, { timeoutMs: 60000 })));
    const ids = new Set(opens.map((o) => o.jobId));
    assert.equal(ids.size, 1, `one job for the space, got ${[...ids].join(', ')}`);
    assert.equal(opens.filter((o) => o.created).length, 1, 'exactly one open created the job');
    const [jobId] = ids;
    assert.equal(await conns[0].xlen(`${prefix}jobs:urgent`), 1, 'one entry in the urgent lane');
    assert.equal(await conns[0].get(`${prefix}dedup:unarchive:${sp.spaceId}`), jobId);

    worker = h.startWorker(prefix, 'dedup-restore');
    const done = await Promise.all(opens.map((o) => o.complete));
    for (const d of done) assert.equal(d.jobId, jobId);
    const st = await clients[0].jobStatus(jobId);
    assert.equal(st.state, 'succeeded');
    assert.equal(st.attempts, 1);
    assert.equal(st.result.restored, sp.files.length, 'every object restored once');
    assert.equal(st.result.kept, 0);
    const audit = await conns[0].xrange(`${prefix}audit`, '-', '+');
    const restores = audit.filter(([, f]) => {
      const o = {};
      for (let i = 0; i < f.length; i += 2) o[f[i]] = f[i + 1];
      return o.action === 'unarchive' && o.spaceId === sp.spaceId;
    });
    assert.equal(restores.length, 1, 'one restore in the audit trail');
    const keys = await h.listKeys(`active/${sp.spaceId}/`);
    assert.deepEqual(keys.map((k) => k.slice(`active/${sp.spaceId}/`.length)).sort(), sp.files);

    // once it ended, the dedup key no longer holds: a new request is a new
    // job (a no-op on an active space)
    const again = await clients[1].enqueue('unarchive', sp.spaceId, { urgent: true });
    assert.equal(again.created, true);
    assert.notEqual(again.id, jobId);
  } finally {
    await h.stopWorker(worker);
    await Promise.all(clients.map((c) => c.close()));
    for (const c of conns) c.disconnect();
  }
});

test('an urgent request promotes a job queued on the normal lane', async () => {
  const prefix = h.prefixFor('promote');
  const conn = h.redis();
  const c = h.client(prefix, conn);
  try {
    const space = 'b0000000000000000000000000000001';
    const first = await c.enqueue('unarchive', space);
    assert.equal(first.created, true);
    assert.equal(await conn.hget(`${prefix}job:${first.id}`, 'priority'), 'normal');
    const rs = await Promise.all(Array.from({ length: 10 }, () => c.enqueue('unarchive', space, { urgent: true })));
    for (const r of rs) assert.deepEqual(r, { id: first.id, created: false });
    assert.equal(await conn.hget(`${prefix}job:${first.id}`, 'priority'), 'urgent');
    assert.equal(await conn.xlen(`${prefix}jobs`), 1);
    assert.equal(await conn.xlen(`${prefix}jobs:urgent`), 1, 'promoted once, not once per request');
    const [[, fields]] = await conn.xrange(`${prefix}jobs:urgent`, '-', '+');
    assert.equal(fields[0], 'id');
    assert.equal(fields[1], first.id);
    assert.equal(JSON.parse(fields[3]).id, first.id);
    // another type of job for the space is not deduplicated against it
    const arch = await c.enqueue('archive', space);
    assert.equal(arch.created, true);
    assert.notEqual(arch.id, first.id);
  } finally {
    await c.close();
    conn.disconnect();
  }
});
