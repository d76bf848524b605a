// Following a job: subscribe to sila:job:<id> first, then read the hash;
// progress events as the job runs, the end from the hash.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./helpers');

test('follow an archive job: progress as it runs, then its result', async () => {
  const prefix = h.prefixFor('follow');
  const conn = h.redis();
  const c = h.client(prefix, conn);
  let worker = null;
  try {
    const sp = h.makeSpace('follow', ['--ops-files', '200', '--blobs', '80', '--big-blobs', '2']);
    const job = await c.enqueue('archive', sp.spaceId);
    assert.equal(job.created, true);
    // An own subscriber sees every event the worker publishes, the last
    // one too: followJob may resolve on a hash read (its poll) before the
    // final event arrives on its subscription, so that one is not asserted.
    const sub = h.redis();
    const published = [];
    sub.on('message', (_ch, msg) => published.push(JSON.parse(msg)));
    await sub.subscribe(`${prefix}job:${job.id}`);
    const seen = [];
    const following = c.followJob(job.id, (ev) => seen.push(ev), { timeoutMs: 120000 });
    await h.sleep(300); // the follower sees the job queued first
    worker = h.startWorker(prefix, 'follow');
    const st = await following;
    assert.equal(st.state, 'succeeded');
    assert.equal(st.progress, 100);
    assert.equal(st.result.fileCount, sp.files.length);
    assert.match(st.result.archiveKey, new RegExp(`^archived/${sp.spaceId}/workspace-\\d{8}T\\d{6}Z\\.zip$`));

    const events = seen.filter((e) => e.source === 'event');
    const running = events.filter((e) => e.state === 'running');
    assert.ok(running.length >= 2, `progress events while running (got ${running.length})`);
    for (const e of running) {
      assert.equal(e.jobId, job.id);
      assert.equal(e.type, 'archive');
      assert.equal(e.spaceId, sp.spaceId);
      for (const f of ['phase', 'progress', 'bytesDone', 'bytesTotal', 'filesDone', 'filesTotal']) assert.ok(f in e, f);
    }
    const progress = running.map((e) => e.progress);
    assert.deepEqual([...progress].sort((a, b) => a - b), progress, 'progress never goes back');
    for (const e of events.filter((x) => x.state !== 'running')) assert.equal(e.state, 'succeeded', 'no other end published');
    // the final event: published with the result, whatever won the race
    for (let i = 0; i < 100 && !published.some((e) => e.state === 'succeeded'); i++) await h.sleep(50);
    sub.disconnect();
    const last = published[published.length - 1];
    assert.equal(last.state, 'succeeded', 'the last event published says succeeded');
    assert.equal(last.progress, 100);
    assert.deepEqual(last.result, st.result);
    const hashes = seen.filter((e) => e.source === 'hash');
    assert.equal(hashes[0].state, 'queued', 'the first hash read saw the job queued');
    assert.equal(hashes[hashes.length - 1].state, 'succeeded');

    // a job that has ended: answered from the hash at once
    const again = await c.followJob(job.id, null, { timeoutMs: 5000 });
    assert.equal(again.state, 'succeeded');
    await assert.rejects(c.followJob('no-such-job-0001'), /no such job/);
  } finally {
    await h.stopWorker(worker);
    await c.close();
    conn.disconnect();
  }
});
