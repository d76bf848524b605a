// docs/PROTOCOL.md against what the worker writes: the archive and
// unarchive result JSON (the documented examples), the status hash table,
// the space channel's events and the manifest table. Every field written
// is documented; every documented field that always appears appears.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./helpers');

const DOC = fs.readFileSync(path.join(h.ROOT, 'docs/PROTOCOL.md'), 'utf8');

// The text of the section whose heading line starts with `heading`.
function section(heading) {
  const lines = DOC.split('\n');
  const i = lines.findIndex((l) => l.startsWith(heading));
  assert.ok(i >= 0, `PROTOCOL.md has a section "${heading}"`);
  const level = heading.match(/^#+/)[0].length;
  let j = i + 1;
  while (j < lines.length && !(lines[j].match(/^#+ /) && lines[j].match(/^#+/)[0].length <= level)) j++;
  return lines.slice(i + 1, j).join('\n');
}

// The first ```json block after the line that contains `marker`.
function jsonAfter(text, marker) {
  const i = text.indexOf(marker);
  assert.ok(i >= 0, `PROTOCOL.md has "${marker}"`);
  const m = text.slice(i).match(/```json\n([\s\S]*?)```/);
  assert.ok(m, `a json block after "${marker}"`);
  return m[1];
}

// The backquoted names in the first column of the section's table(s).
function tableFields(text) {
  const out = new Set();
  for (const line of text.split('\n')) {
    const m = line.match(/^\| ([^|]+) \|/);
    if (!m || /^-+$/.test(m[1].trim())) continue;
    for (const n of m[1].matchAll(/`([A-Za-z]+)`/g)) out.add(n[1]);
  }
  return out;
}

const statusDoc = tableFields(section('### Status hash `sila:job:<id>`'));
const jobDoc = section('### Status hash `sila:job:<id>`');
const archiveResultDoc = Object.keys(JSON.parse(jsonAfter(jobDoc, 'Archive `result`:')));
const unarchiveResultDoc = Object.keys(JSON.parse(jsonAfter(jobDoc, 'Unarchive `result`:')));
const spaceDoc = {};
for (const line of jsonAfter(section('### Space channel `sila:space:<spaceId>`'), '').trim().split('\n')) {
  const ev = JSON.parse(line);
  spaceDoc[ev.event] = Object.keys(ev).sort();
}
const manifestDoc = tableFields(section('## Manifest `metadata/<spaceId>.json`'));

// Fields a succeeded job's hash always has (the table's other rows are
// written in some states only: retrying, waiting, a lost entry, ...).
const ALWAYS = ['state', 'attempts', 'spec', 'type', 'spaceId', 'priority', 'phase', 'progress', 'bytesDone',
  'bytesTotal', 'filesDone', 'filesTotal', 'result', 'worker', 'createdAt', 'startedAt', 'finishedAt', 'updatedAt'];
const ALWAYS_UNARCHIVE = [...ALWAYS, 'readyAt', 'timeToReadyMs'];

function subset(written, documented, what) {
  const extra = [...written].filter((f) => !documented.has(f));
  assert.deepEqual(extra, [], `${what}: written but not documented in PROTOCOL.md`);
}

test('PROTOCOL.md documents the fields this test checks', () => {
  for (const f of ALWAYS_UNARCHIVE) assert.ok(statusDoc.has(f), `status hash table lists ${f}`);
  assert.ok(archiveResultDoc.includes('archiveKey'));
  assert.ok(unarchiveResultDoc.includes('kept'), 'the unarchive result documents kept');
  assert.ok(unarchiveResultDoc.includes('timeToCompleteMs'));
  assert.deepEqual(Object.keys(spaceDoc).sort(), ['complete', 'failed', 'ready', 'served']);
  for (const f of ['readyAt', 'state', 'restoredAt', 'restoringArchive']) assert.ok(manifestDoc.has(f), `manifest table lists ${f}`);
});

test('what the worker writes is what PROTOCOL.md documents', async () => {
  const prefix = h.prefixFor('fields');
  const conn = h.redis();
  const sub = h.redis();
  const c = h.client(prefix, conn);
  const worker = h.startWorker(prefix, 'fields');
  try {
    const sp = h.makeSpace('fields', ['--ops-files', '30', '--blobs', '20', '--big-blobs', '1']);

    // archive
    const a = await c.enqueue('archive', sp.spaceId, { requestedBy: 'node-test' });
    const ast = await c.followJob(a.id, null, { timeoutMs: 120000 });
    assert.equal(ast.state, 'succeeded', ast.error);
    const ahash = await conn.hgetall(`${prefix}job:${a.id}`);
    subset(Object.keys(ahash), statusDoc, 'archive status hash');
    for (const f of ALWAYS) assert.ok(f in ahash, `archive status hash has ${f}`);
    const ares = JSON.parse(ahash.result);
    assert.deepEqual(Object.keys(ares).sort(), [...archiveResultDoc].sort(), 'archive result = the documented example');
    const amf = JSON.parse(await h.getObject(`metadata/${sp.spaceId}.json`));
    subset(Object.keys(amf), manifestDoc, 'archived manifest');

    // unarchive, with the space channel's events
    const events = [];
    sub.on('message', (_c, m) => events.push(JSON.parse(m)));
    await sub.subscribe(`${prefix}space:${sp.spaceId}`);
    const op = await c.openSpace(sp.spaceId, { timeoutMs: 120000 });
    let restoring = null;
    await op.ready;
    restoring = JSON.parse(await h.getObject(`metadata/${sp.spaceId}.json`));
    await op.complete;
    const uhash = await conn.hgetall(`${prefix}job:${op.jobId}`);
    subset(Object.keys(uhash), statusDoc, 'unarchive status hash');
    for (const f of ALWAYS_UNARCHIVE) assert.ok(f in uhash, `unarchive status hash has ${f}`);
    const ures = JSON.parse(uhash.result);
    assert.deepEqual(Object.keys(ures).sort(), [...unarchiveResultDoc].sort(), 'unarchive result = the documented example');
    subset(Object.keys(restoring), manifestDoc, 'manifest at ready');
    const umf = JSON.parse(await h.getObject(`metadata/${sp.spaceId}.json`));
    subset(Object.keys(umf), manifestDoc, 'restored manifest');

    const mine = events.filter((e) => e.jobId === op.jobId);
    for (const kind of ['ready', 'complete']) {
      const e = mine.find((x) => x.event === kind);
      assert.ok(e, `a ${kind} event`);
      assert.deepEqual(Object.keys(e).sort(), spaceDoc[kind], `${kind} event = the documented one`);
    }
    for (const e of mine) assert.ok(spaceDoc[e.event], `event ${e.event} is documented`);
  } finally {
    await h.stopWorker(worker);
    await c.close();
    sub.disconnect();
    conn.disconnect();
  }
});
