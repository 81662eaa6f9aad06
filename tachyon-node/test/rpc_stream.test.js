'use strict';
// Server-streaming calls from Node: `streaming()` handlers (generators and async
// generators) on createRpcServer, read with `rpc.stream()` (`for await`), cancelled by
// `break`, paced by a slow reader, and ended by a handler's error.
const test = require('node:test');
const assert = require('node:assert/strict');
const t = require('..');
const h = require('./helpers');

function server(gauge) {
  const socketPath = h.sockPath('node-stream');
  const srv = t.createRpcServer({
    socketPath,
    onError: () => {},
    handlers: {
      1: (data) => data,
      5: t.streaming(function* count(data) {
        const n = data.readUInt32LE(0);
        try {
          for (let i = 0; i < n; i++) {
            gauge.sent++;
            const b = Buffer.alloc(4);
            b.writeUInt32LE(i);
            yield b;
          }
        } finally {
          gauge.closed++;
        }
      }),
      6: t.streaming(async function* letters(data) {
        for (const c of data.toString()) {
          await new Promise((r) => setImmediate(r));
          yield c;
        }
      }),
      7: t.streaming(function* failAfter(data) {
        yield 'one';
        const e = new Error('short and stout');
        e.rpcCode = 418;
        throw e;
      }),
      8: t.streaming(() => 42), // not iterable: the caller gets the error reply
    },
  });
  return { socketPath, srv };
}

function u32(n) {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

test('10,000 items in order, then the end; async generators; errors end the stream', async (tc) => {
  const gauge = { sent: 0, closed: 0 };
  const { socketPath, srv } = server(gauge);
  tc.after(() => srv.close());
  const rpc = t.RpcBus.connect(socketPath);
  tc.after(() => rpc.close());
  let want = 0;
  for await (const item of rpc.stream(u32(10_000), 5, { timeoutMs: 10_000 })) {
    assert.equal(item.readUInt32LE(0), want++);
  }
  assert.equal(want, 10_000);
  assert.equal(rpc.inFlight, 0);
  const letters = [];
  for await (const item of rpc.stream('abc', 6, { timeoutMs: 10_000 })) letters.push(item.toString());
  assert.deepEqual(letters, ['a', 'b', 'c']);
  const got = [];
  await assert.rejects(
    (async () => {
      for await (const item of rpc.stream('', 7, { timeoutMs: 10_000 })) got.push(item.toString());
    })(),
    (e) => e instanceof t.TachyonRpcError && e.rpcCode === 418 && /short and stout/.test(e.message),
  );
  assert.deepEqual(got, ['one']);
  await assert.rejects(
    (async () => {
      for await (const _ of rpc.stream('', 8, { timeoutMs: 10_000 })) assert.fail('no items');
    })(),
    (e) => e instanceof t.TachyonRpcError && /iterable/.test(e.message),
  );
  assert.equal(rpc.inFlight, 0);
});

test('break cancels midway: the generator closes and the window frees', async (tc) => {
  const gauge = { sent: 0, closed: 0 };
  const { socketPath, srv } = server(gauge);
  tc.after(() => srv.close());
  const rpc = t.RpcBus.connect(socketPath);
  tc.after(() => rpc.close());
  let want = 0;
  for await (const item of rpc.stream(u32(1_000_000_000), 5, { timeoutMs: 10_000 })) {
    assert.equal(item.readUInt32LE(0), want++);
    if (want === 5_000) break;
  }
  const deadline = Date.now() + 10_000;
  while (rpc.inFlight !== 0) {
    assert.ok(Date.now() < deadline, 'the cancelled stream never ended');
    assert.equal((await rpc.callAsync('x', 1, { timeoutMs: 5000 })).toString(), 'x');
  }
  while (gauge.closed < 1) {
    assert.ok(Date.now() < deadline, "the generator's finally never ran");
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(gauge.sent < 1_000_000, `the handler kept going: ${gauge.sent}`);
});

test('a slow reader paces the handler; an AbortSignal cancels', async (tc) => {
  const gauge = { sent: 0, closed: 0 };
  const { socketPath, srv } = server(gauge);
  tc.after(() => srv.close());
  const rpc = t.RpcBus.connect(socketPath);
  tc.after(() => rpc.close());
  const ac = new AbortController();
  const s = rpc.stream(u32(1_000_000_000), 5, { timeoutMs: 10_000, signal: ac.signal });
  assert.ok(s.correlationId > 0 && !s.done);
  const first = await s.next();
  assert.equal(first.value.readUInt32LE(0), 0);
  await new Promise((r) => setTimeout(r, 300));
  const paused = gauge.sent;
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(gauge.sent, paused, 'the handler ran on while nobody read');
  // The reply ring (1 MiB) and the native queue bound what went ahead.
  assert.ok(paused < 200_000, `${paused} items produced for a reader that took one`);
  ac.abort();
  await assert.rejects(s.next(), (e) => e.name === 'AbortError' || /abort/i.test(String(e)));
  assert.ok(s.done);
  const deadline = Date.now() + 10_000;
  while (gauge.closed < 1) {
    assert.ok(Date.now() < deadline, "the generator's finally never ran");
    await rpc.callAsync('drain', 1, { timeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 10));
  }
});
