'use strict';
// The Tiga channel API (@tiga-ipc/mmap's tigaWrite, tigaRead, initialized and
// createTigaNotificationListener) over the core's log channels, against Rust and
// Python writers and readers on the same channel file.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const fs = require('node:fs');
const t = require('..');
const h = require('./helpers');

const peer = h.peer();
const py = h.python();
const INTEROP = path.join(h.ROOT, 'tests', 'interop');

function ipcDir() {
  return h.tmpDir('tachyon-chan-');
}

test('tigaWrite and tigaRead as 002 documents, with explicit loss', () => {
  const ipcDirectory = ipcDir();
  assert.equal(t.initialized(), true);
  assert.equal(t.tigaWrite('sample.events', 'event payload', { ipcDirectory, mediaType: 'text/plain' }), 'ok:1');
  assert.equal(t.tigaWrite('sample.events', Buffer.from([0, 1, 2]), { ipcDirectory }), 'ok:2');
  const r = t.tigaRead('sample.events', { ipcDirectory, lastId: 0 });
  assert.equal(r.lastId, 2);
  assert.deepEqual(r.entries, [
    { id: 1, message: Buffer.from('event payload'), mediaType: 'text/plain' },
    { id: 2, message: Buffer.from([0, 1, 2]) },
  ]);
  assert.equal(r.lost, 0);
  assert.deepEqual(t.tigaRead('sample.events', { ipcDirectory, lastId: 2 }).entries, []);
  assert.equal(fs.statSync(path.join(ipcDirectory, 'sample.events')).mode & 0o777, 0o600);
  // A small channel overwrites its oldest entries; a late reader is told how many.
  for (let i = 0; i < 500; i++) t.tigaWrite('small', `entry ${i}`, { ipcDirectory, capacity: 4096 });
  const late = t.tigaRead('small', { ipcDirectory, lastId: 0 });
  assert.ok(late.lost > 0);
  assert.equal(late.lost + late.entries.length, 500);
  assert.equal(late.entries[0].id, late.lost + 1);
  assert.equal(late.entries.at(-1).message.toString(), 'entry 499');
});

test('bad names, oversized entries and corrupt files get typed errors', () => {
  const ipcDirectory = ipcDir();
  for (const bad of ['', '..', 'a/b']) {
    assert.throws(() => t.tigaWrite(bad, 'x', { ipcDirectory }), (e) => e.code === 'ERR_TACHYON_INVALID_ARG');
  }
  assert.throws(() => t.tigaWrite('tiny', Buffer.alloc(5000), { ipcDirectory, capacity: 4096 }), (e) => e.code === 'ERR_TACHYON_TOO_LARGE');
  assert.throws(() => t.tigaRead('x', { ipcDirectory, lastId: -1 }), TypeError);
  fs.writeFileSync(path.join(ipcDirectory, 'garbage'), Buffer.alloc(8192, 7));
  assert.throws(() => t.tigaRead('garbage', { ipcDirectory }), (e) => e.code === 'ERR_TACHYON_CORRUPT' && /bad magic/.test(e.message));
});

test('Promise forms, and a notification listener: sync, async, abort, close', async () => {
  const ipcDirectory = ipcDir();
  assert.equal(await t.tigaWriteAsync('events', 'a', { ipcDirectory }), 'ok:1');
  assert.equal((await t.tigaReadAsync('events', { ipcDirectory })).entries[0].message.toString(), 'a');
  const l = t.createTigaNotificationListener('events', { ipcDirectory });
  assert.equal(l.lastId, 1);
  assert.equal(l.wait(20), false);
  const woke = l.waitAsync(10_000);
  setTimeout(() => t.tigaWrite('events', 'b', { ipcDirectory }), 20);
  assert.equal(await woke, true);
  assert.equal(l.lastId, 2);
  const ac = new AbortController();
  const aborted = l.waitAsync(10_000, { signal: ac.signal });
  ac.abort();
  await assert.rejects(aborted, (e) => e.name === 'AbortError');
  const l2 = t.createTigaNotificationListener('events', { ipcDirectory, lastId: 2 });
  const pending = l2.waitAsync(10_000);
  setTimeout(() => l2.close(), 20);
  assert.equal(await pending, false, 'close ends a pending wait');
  assert.equal(l2.wait(10), false);
  l[Symbol.dispose]();
  assert.ok(l.closed);
});

test('a Rust and a Python writer, one Node reader woken by the listener', { skip: peer.skip || py.skip }, async () => {
  const ipcDirectory = ipcDir();
  const file = path.join(ipcDirectory, 'mixed');
  const listener = t.createTigaNotificationListener('mixed', { ipcDirectory, lastId: 0 });
  const rust = h.run(peer.path, ['channel-write', '--path', file, '--count', '20000', '--seed', '1', '--max-size', '64']);
  const python = h.run(py.path, ['-c', [
    'import sys',
    `sys.path.insert(0, ${JSON.stringify(INTEROP)})`,
    'import tachyon',
    'from payloads import channel_entry',
    `ch = tachyon.Channel("mixed", ${JSON.stringify(ipcDirectory)})`,
    'for seq in range(20000): ch.write(channel_entry(2, seq, 64))',
  ].join('\n')]);
  let last = 0;
  let read = 0;
  let lost = 0;
  const next = new Map();
  while (last < 40_000) {
    const r = t.tigaRead('mixed', { ipcDirectory, lastId: last });
    assert.equal(r.lastId - last, r.entries.length + r.lost + r.abandoned);
    for (const e of r.entries) {
      const { writer, seq } = h.checkChannelEntry(e.message, 64);
      assert.ok(seq >= (next.get(writer) ?? 0), `writer ${writer} went back`);
      next.set(writer, seq + 1);
    }
    read += r.entries.length;
    lost += r.lost;
    last = r.lastId;
    if (r.entries.length === 0 && last < 40_000) {
      listener.lastId = last;
      assert.ok(await listener.waitAsync(20_000), `nothing after ${last}`);
    }
  }
  const [a, b] = await Promise.all([rust.done, python.done]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(read + lost, 40_000);
  listener.close();
});

test('a Node writer, checked by a Rust reader and a Python reader', { skip: peer.skip || py.skip }, async () => {
  const ipcDirectory = ipcDir();
  const file = path.join(ipcDirectory, 'from-node');
  const rust = h.run(peer.path, ['channel-read', '--path', file, '--count', '20000', '--max-size', '64', '--timeout-ms', '20000']);
  await h.waitForLine(rust, 'ready');
  const python = h.run(py.path, ['-c', [
    'import sys',
    `sys.path.insert(0, ${JSON.stringify(INTEROP)})`,
    'import tachyon',
    'from payloads import check_channel_entry',
    `ch = tachyon.Channel("from-node", ${JSON.stringify(ipcDirectory)})`,
    'last = read = 0',
    'while last < 20000:',
    '    assert ch.wait(last, timeout=20)',
    '    b = ch.read(last)',
    '    for e in b.entries: check_channel_entry(e.data, 64)',
    '    read += len(b.entries); last = b.last_id',
    'print("python read", read)',
  ].join('\n')]);
  for (let seq = 0; seq < 20_000; seq++) {
    t.tigaWrite('from-node', h.channelEntry(3, seq, 64), { ipcDirectory, mediaType: 'application/x-tachyon-test' });
    if (seq % 1000 === 0) await new Promise((r) => setImmediate(r));
  }
  const [a, b] = await Promise.all([rust.done, python.done]);
  assert.equal(a.code, 0, a.stdout + a.stderr);
  assert.match(a.stdout, /read \d+ lost \d+ abandoned 0/);
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stdout, /python read \d+/);
});
