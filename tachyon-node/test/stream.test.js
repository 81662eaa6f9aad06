'use strict';
// 1,000,000 messages Node -> Rust and Rust -> Node, checksummed, none lost.
const test = require('node:test');
const assert = require('node:assert/strict');
const t = require('..');
const h = require('./helpers');

const COUNT = 1_000_000;
const MAX = 64;
const peer = h.peer();

test('1M messages Node -> Rust (half of them zero-copy), verified by the Rust consumer', { skip: peer.skip }, async () => {
  const path = h.sockPath('n2r');
  const rust = h.run(peer.path, ['consume', '--path', path, '--listen', String(1 << 20),
    '--count', String(COUNT), '--seed', '11', '--max-size', String(MAX), '--timeout-ms', '30000']);
  const bus = await h.connectRetry(() => t.Bus.connect(path));
  const scratch = Buffer.alloc(MAX);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < COUNT; i++) {
    const n = h.payloadSize(11, i, MAX);
    if (i % 2 === 1) {
      const tx = bus.acquireTx(n, { timeoutMs: 30000 });
      const b = tx.bytes();
      h.fillPayload(i, b);
      tx.commitUnflushed(n, h.checksum(b));
    } else {
      const b = scratch.subarray(0, n);
      h.fillPayload(i, b);
      bus.send(b, h.checksum(b), { timeoutMs: 30000 });
    }
  }
  bus.flush();
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const out = await rust.done;
  bus.close();
  assert.equal(out.code, 0, out.stdout + out.stderr);
  assert.match(out.stdout, new RegExp(`ok ${COUNT} messages`));
  console.log(`# Node -> Rust: ${COUNT} messages in ${secs.toFixed(2)} s`);
});

test('1M messages Rust -> Node, received with drainBatch and verified', { skip: peer.skip }, async () => {
  const path = h.sockPath('r2n');
  const listening = t.Bus.listenAsync(path, 1 << 20, { timeoutMs: 10000 });
  const rust = h.run(peer.path, ['produce', '--path', path, '--connect', '--count', String(COUNT),
    '--seed', '12', '--max-size', String(MAX), '--batch', '32', '--timeout-ms', '30000']);
  const bus = await listening;
  let i = 0;
  while (i < COUNT) {
    const batch = bus.drainBatch(256, undefined, { timeoutMs: 30000 });
    for (const m of batch) h.verify(12, i++, MAX, m.data, m.typeId);
    batch.commit();
  }
  bus.close();
  const out = await rust.done;
  assert.equal(out.code, 0, out.stdout + out.stderr);
  assert.equal(i, COUNT);
});

test('100k messages Rust -> Node through the async iterator', { skip: peer.skip }, async () => {
  const n = 100_000;
  const path = h.sockPath('r2n-async');
  const listening = t.Bus.listenAsync(path, 1 << 20, { timeoutMs: 10000 });
  const rust = h.run(peer.path, ['produce', '--path', path, '--connect', '--count', String(n),
    '--seed', '13', '--max-size', String(MAX), '--batch', '32', '--timeout-ms', '30000']);
  const bus = await listening;
  let i = 0;
  for await (const m of bus) {
    h.verify(13, i++, MAX, m.data, m.typeId);
    if (i === n) break;
  }
  bus.close();
  assert.equal((await rust.done).code, 0);
});
