'use strict';
// Interop with upstream Tachyon's own Python package (tachyon-ipc 0.5.1) on the SPSC bus.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const t = require('..');
const h = require('./helpers');

const up = h.upstreamPython();
const SCRIPT = path.join(h.ROOT, 'tests', 'interop', 'upstream_peer.py');
const COUNT = 20000;
const MAX = 2048;

test('upstream Python producer -> Node consumer', { skip: up.skip }, async () => {
  const p = h.sockPath('up2n');
  const listening = t.Bus.listenAsync(p, 1 << 20, { timeoutMs: 20000 });
  const proc = h.run(up.path, [SCRIPT, 'produce', '--path', p, '--connect', '--count', String(COUNT), '--seed', '21', '--max-size', String(MAX)]);
  const bus = await listening;
  let i = 0;
  while (i < COUNT) {
    const batch = bus.drainBatch(128, undefined, { timeoutMs: 20000 });
    for (const m of batch) h.verify(21, i++, MAX, m.data, m.typeId);
    batch[Symbol.dispose]();
  }
  bus.close();
  const out = await proc.done;
  assert.equal(out.code, 0, out.stdout + out.stderr);
});

test('Node producer (half zero-copy) -> upstream Python consumer', { skip: up.skip }, async () => {
  const p = h.sockPath('n2up');
  const proc = h.run(up.path, [SCRIPT, 'consume', '--path', p, '--listen', String(1 << 20), '--count', String(COUNT), '--seed', '22', '--max-size', String(MAX)]);
  const bus = await h.connectRetry(() => t.Bus.connect(p), 20000);
  const scratch = Buffer.alloc(MAX);
  for (let i = 0; i < COUNT; i++) {
    const n = h.payloadSize(22, i, MAX);
    if (i % 2) {
      const tx = bus.acquireTx(n, { timeoutMs: 20000 });
      h.fillPayload(i, tx.bytes());
      tx.commit(n, h.checksum(tx.bytes()));
    } else {
      const b = scratch.subarray(0, n);
      h.fillPayload(i, b);
      bus.send(b, h.checksum(b), { timeoutMs: 20000 });
    }
  }
  const out = await proc.done;
  bus.close();
  assert.equal(out.code, 0, out.stdout + out.stderr);
  assert.match(out.stdout, new RegExp(`ok ${COUNT} messages`));
});
