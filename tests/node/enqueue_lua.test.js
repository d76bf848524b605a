// The enqueue script has one source: docs/enqueue.lua. The client's copy
// is byte-for-byte the same, the worker binary embeds exactly that text,
// and the client's EVALSHA falls back to EVAL when Redis lost its scripts.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./helpers');

const doc = fs.readFileSync(path.join(h.ROOT, 'docs/enqueue.lua'));

test('clients/node/enqueue.lua is a byte-for-byte copy of docs/enqueue.lua', () => {
  const copy = fs.readFileSync(path.join(h.CLIENT_DIR, 'enqueue.lua'));
  assert.ok(doc.length > 500, 'docs/enqueue.lua is the documented script');
  assert.ok(copy.equals(doc), 'copy differs: cp docs/enqueue.lua clients/node/enqueue.lua');
  const { ENQUEUE_SHA } = require(h.CLIENT_DIR);
  assert.equal(ENQUEUE_SHA, crypto.createHash('sha1').update(doc).digest('hex'));
});

test('PROTOCOL.md shows docs/enqueue.lua as it is', () => {
  const md = fs.readFileSync(path.join(h.ROOT, 'docs/PROTOCOL.md'), 'utf8');
  const m = md.match(/```lua\n([\s\S]*?)```/);
  assert.ok(m, 'PROTOCOL.md has a lua block');
  assert.equal(m[1], doc.toString('utf8'), 'PROTOCOL.md\'s copy of the script differs from docs/enqueue.lua');
});

test('the worker binary embeds docs/enqueue.lua as it is', () => {
  const bin = fs.readFileSync(process.env.WK_BIN);
  assert.ok(bin.includes(doc), 'the text of docs/enqueue.lua is not in the binary: rebuild (make)');
});

test('the worker and the client run the same script (one SHA-1 in Redis)', async () => {
  const conn = h.redis();
  try {
    const prefix = h.prefixFor('lua');
    const sha = crypto.createHash('sha1').update(doc).digest('hex');
    await conn.script('FLUSH');
    // the CLI's enqueue (EVAL of the embedded text) caches it under sha
    const r = h.cli(prefix, ['enqueue', 'archive', 'a0000000000000000000000000000001']);
    assert.equal(r.code, 0, r.stderr);
    const id = r.stdout.trim();
    assert.match(id, /^[0-9a-f]{32}$/);
    assert.deepEqual(await conn.script('EXISTS', sha), [1]);
    // the client, after a flush (NOSCRIPT), falls back to EVAL and dedups
    // against the job the CLI made
    await conn.script('FLUSH');
    const c = h.client(prefix, conn);
    const again = await c.enqueue('archive', 'a0000000000000000000000000000001');
    assert.deepEqual(again, { id, created: false });
    const other = await c.enqueue('archive', 'a0000000000000000000000000000002');
    assert.equal(other.created, true);
    assert.equal(await conn.hget(`${prefix}job:${other.id}`, 'state'), 'queued');
    assert.equal(await conn.get(`${prefix}dedup:archive:a0000000000000000000000000000002`), other.id);
    await c.close();
  } finally {
    conn.disconnect();
  }
});
