'use strict';
// node-ipcbuffer's IPCBuffer (seed 003) over the core's shared buffers: every form of
// 003, each shared kind against Rust and Python processes, wait/notify across
// processes, files outliving their processes, and sizes checked.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const fs = require('node:fs');
const { IPCBuffer } = require('..');
const h = require('./helpers');

const peer = h.peer();
const py = h.python();
let n = 0;
const unique = () => `tachyon-nodebuf-${process.pid}-${n++}`;

test("003's plain Buffer forms behave as Buffer does", () => {
  assert.ok(Buffer.isBuffer(IPCBuffer(16)) && IPCBuffer(16).length === 16);
  assert.equal(IPCBuffer(8, 'utf8').length, 8);
  const parent = Buffer.from('abcdefgh');
  const alias = IPCBuffer(parent, 3, 2);
  alias[0] = 'X'.charCodeAt(0);
  assert.equal(parent.toString(), 'abXdefgh', 'an alias shares its parent');
  assert.equal(IPCBuffer(parent, 4).toString(), 'abXd');
  assert.equal(IPCBuffer(parent, 2, 'utf8', 6).toString(), 'gh');
  assert.equal(IPCBuffer('héllo').toString(), 'héllo');
  assert.equal(IPCBuffer('aGk=', 'base64').toString(), 'hi');
  assert.throws(() => IPCBuffer(parent, 9), RangeError);
  assert.throws(() => IPCBuffer(-1), RangeError);
  assert.equal(IPCBuffer.isShared(IPCBuffer(4)), false);
  assert.throws(() => IPCBuffer.unlink(IPCBuffer(4)), TypeError);
});

test('shared kinds: the same bytes in two mappings, sizes checked, mode 0600', () => {
  const name = unique();
  const a = IPCBuffer(4096, `*${name}`);
  const b = new IPCBuffer(4096, `*${name}`);
  assert.ok(IPCBuffer.isShared(a) && IPCBuffer.created(a) && !IPCBuffer.created(b));
  a.write('shared!', 100);
  assert.equal(b.toString('utf8', 100, 107), 'shared!');
  b.writeUInt32LE(0xdeadbeef, 4);
  assert.equal(a.readUInt32LE(4), 0xdeadbeef);
  assert.throws(() => IPCBuffer(8192, `*${name}`), (e) => e.code === 'ERR_TACHYON_INVALID_ARG' && /4096 bytes/.test(e.message));
  assert.equal(fs.statSync(`/dev/shm/${name}`).mode & 0o777, 0o600);
  IPCBuffer.unlink(a);
  assert.throws(() => IPCBuffer(4096, `*${name}`, { create: false }), (e) => e.code === 'ERR_TACHYON_IO');
  // A file keeps what was written after the buffer is gone; the encoding form of 003.
  const dir = h.tmpDir('tachyon-ipcbuf-');
  const file = path.join(dir, 'kept.bin');
  const f = IPCBuffer(1024, 'utf8', file);
  f.write('on disk', 0);
  IPCBuffer.flush(f);
  assert.equal(fs.readFileSync(file).toString('utf8', 0, 7), 'on disk');
  assert.equal(fs.readFileSync(file).length, 1024);
});

/** A Rust process waits on word 0 of `spec`, then checks bytes 64.. (fill_payload(seed)). */
function rustWaiter(spec, size, seed) {
  return h.run(peer.path, ['buffer', '--method', 'wait', '--path', spec, '--count', String(size), '--seed', String(seed)]);
}

test('each kind: a Node writer wakes a Rust waiter, a Rust writer wakes a Node waiter', { skip: peer.skip }, async () => {
  const dir = h.tmpDir('tachyon-ipcbuf-');
  const key = 0x56000000 | (process.pid & 0xffff);
  for (const spec of [`*${unique()}`, path.join(dir, 'shared.bin'), key]) {
    const size = 32768;
    // Node writes, Rust waits.
    const mine = IPCBuffer(size, spec);
    const rust = rustWaiter(String(spec), size, 4);
    await h.waitForLine(rust, 'attached');
    h.fillPayload(4, mine.subarray(64));
    mine.writeUInt32LE(1, 0);
    IPCBuffer.notify(mine, 0);
    const r = await rust.done;
    assert.equal(r.code, 0, `${spec}: ${r.stderr}`);
    // Rust writes, Node waits (off the main thread).
    mine.writeUInt32LE(0, 0);
    const woke = IPCBuffer.waitAsync(mine, 0, 0, 20000);
    const w = await h.run(peer.path, ['buffer', '--method', 'write', '--path', String(spec), '--count', String(size), '--seed', '6']).done;
    assert.equal(w.code, 0, w.stderr);
    assert.equal(await woke, true);
    const want = Buffer.alloc(size - 64);
    h.fillPayload(6, want);
    assert.ok(mine.subarray(64).equals(want), `${spec}: the bytes Rust wrote`);
    IPCBuffer.unlink(mine);
  }
});

test('a Node writer and a Python reader on one POSIX name; close ends a wait', { skip: py.skip }, async () => {
  const name = unique();
  const mine = IPCBuffer(4096, `*${name}`);
  const reader = h.run(py.path, ['-c', [
    'import tachyon',
    `with tachyon.SharedBuffer(4096, name=${JSON.stringify(name)}, create=False) as b:`,
    '    print("attached", flush=True)',
    '    assert b.wait(0, 0, timeout=20)',
    '    print("python read", bytes(memoryview(b)[8:13]).decode())',
  ].join('\n')]);
  await h.waitForLine(reader, 'attached');
  mine.write('hello', 8);
  mine.writeUInt32LE(1, 0);
  IPCBuffer.notify(mine, 0);
  const r = await reader.done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /python read hello/);
  // A wait nobody ends: close() ends it with false.
  const pending = IPCBuffer.waitAsync(mine, 0, 1, 20000);
  setTimeout(() => IPCBuffer.close(mine), 20);
  assert.equal(await pending, false);
  IPCBuffer.unlink(mine);
});
