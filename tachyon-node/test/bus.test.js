'use strict';
// Bus: every API across real processes, zero-copy guards, errors.
const test = require('node:test');
const assert = require('node:assert/strict');
const t = require('..');
const h = require('./helpers');

/** Listens (off the main thread) while `start()` spawns the connecting peer. */
async function listenWith(capacity, start) {
  const path = h.sockPath('bus');
  const pending = t.Bus.listenAsync(path, capacity, { timeoutMs: 10000 });
  const proc = start(path);
  return { bus: await pending, proc, path };
}

test('send, recv, zero-copy TX from a Node producer; guards and batches on the consumer', async () => {
  const { bus, proc } = await listenWith(1 << 16, (p) => h.runNode('bus_peer.js', ['produce', p, '2000', '7', '200', 'zero-copy']));
  let i = 0;
  const m = bus.recv(undefined, { timeoutMs: 10000 });
  h.verify(7, i++, 200, m.data, m.typeId);
  // (Node 20 has no `using` syntax: Symbol.dispose is called as `using` would;
  // test/types/usage.ts runs real `using` blocks, down-levelled by tsc.)
  {
    const g = bus.acquireRx(undefined, { timeoutMs: 10000 });
    assert.ok(g !== null);
    const d = g.data();
    h.verify(7, i++, 200, d, g.typeId);
    assert.equal(g.actualSize, d.length);
    assert.equal(g.length, 1);
    g[Symbol.dispose]();
    assert.equal(g.open, false);
    assert.equal(d.length, 0);
  }
  let kept = null;
  while (i < 2000) {
    const batch = bus.drainBatch(64, undefined, { timeoutMs: 10000 });
    assert.ok(batch.length >= 1 && batch.length <= 64);
    assert.equal(batch.at(-1).typeId, batch.at(batch.length - 1).typeId);
    assert.equal(batch.at(batch.length), undefined);
    for (const item of batch) {
      h.verify(7, i++, 200, item.data, item.typeId);
      if (item.data.length > 0) kept = item.data;
    }
    batch.commit();
    batch.commit(); // idempotent
  }
  // A kept slot Buffer is detached: it no longer reads the ring's reused memory.
  assert.equal(kept.length, 0);
  assert.equal(kept.buffer.byteLength, 0);
  const out = await proc.done;
  assert.match(out.stdout, /ok 2000 messages/);
  // The receiving side's counters match what arrived from the other process.
  const s = bus.stats();
  assert.equal(s.receivedMessages, 2000);
  let bytes = 0;
  for (let k = 0; k < 2000; k++) bytes += h.payloadSize(7, k, 200);
  assert.equal(s.receivedBytes, bytes);
  assert.deepEqual([s.sentMessages, s.timeouts, s.protocolErrors], [0, 0, 0]);
  bus.close();
  bus.close(); // idempotent
  assert.equal(bus.closed, true);
  assert.throws(() => bus.recv(), (e) => t.isClosed(e) && t.isTachyonError(e));
});

test('zero-copy TX guard: commit, rollback on dispose, detached after commit, misuse refused', async () => {
  const path = h.sockPath('tx');
  const consumer = t.Bus.listenAsync(path, 1 << 12, { timeoutMs: 10000 });
  const producer = await h.connectRetry(() => t.Bus.connect(path));
  const bus = await consumer;
  {
    const tx = producer.acquireTx(32);
    assert.equal(tx.maxSize, 32);
    const b = tx.bytes();
    b.write('hello');
    tx.commit(5, t.makeTypeId(3, 4));
    assert.equal(tx.open, false);
    assert.equal(b.length, 0, 'the Buffer is detached after commit');
    assert.equal(b.write('late'), 0, 'nothing can be written through it');
    assert.equal(b[0], undefined);
    assert.throws(() => tx.commit(1), (e) => e.code === 'ERR_TACHYON_GUARD');
    tx[Symbol.dispose](); // a no-op after commit
  }
  {
    const tx = producer.acquireTx(16);
    tx.bytes().write('dropped');
    tx[Symbol.dispose](); // what leaving a `using` block does: roll back, publish nothing
  }
  {
    const tx = producer.acquireTx(8);
    assert.throws(() => producer.acquireTx(8), (e) => e.code === 'ERR_TACHYON_BUSY');
    assert.throws(() => tx.commit(9), (e) => e.code === 'ERR_TACHYON_INVALID_ARG');
    tx.bytes().fill(1);
    tx.commitUnflushed(8, 9);
    producer.flush();
  }
  const m = bus.recv(undefined, { timeoutMs: 5000 });
  assert.equal(m.data.toString(), 'hello');
  assert.equal(t.routeId(m.typeId), 3);
  assert.equal(t.msgType(m.typeId), 4);
  const m2 = bus.recv(undefined, { timeoutMs: 5000 });
  assert.deepEqual([...m2.data], [1, 1, 1, 1, 1, 1, 1, 1]);
  assert.equal(m2.typeId, 9);
  assert.equal(bus.acquireRx(undefined, { timeoutMs: 20 }), null, 'the rolled-back slot never arrived');
  // Zero-length messages go through every path.
  producer.send(Buffer.alloc(0), 5);
  const g = bus.acquireRx(undefined, { timeoutMs: 5000 });
  assert.equal(g.actualSize, 0);
  assert.equal(g.data().length, 0);
  g.commit();
  producer.close();
  bus.close();
});

test('errors: full ring, timeouts, bad arguments, nobody listening, killed peer', async () => {
  const { bus, proc } = await listenWith(1 << 12, (p) => h.runNode('bus_peer.js', ['hold', p]));
  await h.waitForLine(proc, 'ready');
  // Timeouts the caller set.
  const t0 = Date.now();
  assert.throws(() => bus.recv(undefined, { timeoutMs: 50 }), (e) => t.isTimeout(e));
  assert.ok(Date.now() - t0 >= 45);
  await assert.rejects(bus.recvAsync({ timeoutMs: 50 }), (e) => t.isTimeout(e) && e instanceof t.TachyonError);
  assert.throws(() => bus.recv(undefined, { timeoutMs: -1 }), (e) => e.code === 'ERR_TACHYON_INVALID_ARG');
  assert.throws(() => bus.drainBatch(0), (e) => e.code === 'ERR_TACHYON_INVALID_ARG');
  assert.throws(() => bus.send(42), TypeError);
  // The peer is killed while we wait: the wait ends with PEER_DEAD, sync and async.
  const waiting = bus.recvAsync();
  proc.child.kill('SIGKILL');
  await assert.rejects(waiting, (e) => t.isPeerDead(e));
  assert.throws(() => bus.recv(undefined, { timeoutMs: 5000 }), (e) => t.isPeerDead(e));
  bus.close();
  assert.throws(() => t.Bus.connect(h.sockPath('nobody')), (e) => e.code === 'ERR_TACHYON_CONNECT');
  assert.throws(() => t.Bus.listen(h.sockPath('cap'), 1000), (e) => e.code === 'ERR_TACHYON_INVALID_ARG');
  assert.throws(() => t.makeTypeId(70000, 1), (e) => e.code === 'ERR_TACHYON_INVALID_ARG');

  // A full ring: a send that may not wait fails with FULL; nothing is half-written.
  const path = h.sockPath('full');
  const consumer = t.Bus.listenAsync(path, 1 << 10, { timeoutMs: 10000 });
  const producer = await h.connectRetry(() => t.Bus.connect(path));
  const c = await consumer;
  let sent = 0;
  assert.throws(() => {
    for (;;) {
      producer.send(Buffer.alloc(100, sent & 255), sent, { timeoutMs: 0 });
      sent++;
    }
  }, (e) => t.isFull(e));
  assert.throws(() => producer.send(Buffer.alloc(10), 0, { timeoutMs: 30 }), (e) => t.isTimeout(e));
  assert.throws(() => producer.send(Buffer.alloc(5000)), (e) => e.code === 'ERR_TACHYON_TOO_LARGE');
  for (let i = 0; i < sent; i++) assert.equal(c.recv(undefined, { timeoutMs: 1000 }).typeId, i);
  producer.close();
  assert.throws(() => c.recv(undefined, { timeoutMs: 2000 }), (e) => t.isPeerClosed(e));
  c.close();
});

test('async: listenAsync, recvAsync and the async iterator keep the event loop free', async () => {
  const { bus, proc } = await listenWith(1 << 16, (p) => h.runNode('bus_peer.js', ['produce', p, '5000', '3', '64']));
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 1);
  let i = 0;
  const first = await bus.recvAsync({ timeoutMs: 10000 });
  h.verify(3, i++, 64, first.data, first.typeId);
  for await (const m of bus) {
    h.verify(3, i++, 64, m.data, m.typeId);
    if (i === 2500) break; // the rest stays for the next receive: nothing is lost
  }
  for await (const m of bus.messages({ batch: 7 })) {
    h.verify(3, i++, 64, m.data, m.typeId);
  }
  clearInterval(ticker);
  assert.equal(i, 5000);
  assert.ok(ticks > 0, 'timers ran while messages were awaited');
  assert.match((await proc.done).stdout, /ok 5000 messages/);
  const pending = bus.recvAsync();
  bus.close();
  await assert.rejects(pending, (e) => t.isClosed(e) || t.isPeerGone(e));
});

test('ESM import gives the same API', async () => {
  const esm = await import('../index.mjs');
  assert.equal(esm.Bus, t.Bus);
  assert.equal(esm.startTigaServer, t.startTigaServer);
  assert.equal(esm.default.RpcBus, t.RpcBus);
});
