'use strict';
// Drop-in fidelity with @tachyon-ipc/core and Node conventions: upstream's defaults,
// one error class for sync and async errors, AbortSignal on every call that waits, and
// handler failures that are never silent.
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const t = require('..');
const h = require('./helpers');

async function pair(capacity = 1 << 12) {
  const p = h.sockPath('fid');
  const listening = t.Bus.listenAsync(p, capacity, { timeoutMs: 10000 });
  const producer = await h.connectRetry(() => t.Bus.connect(p));
  return { consumer: await listening, producer, path: p };
}

test('send and acquireTx fail at once with ERR_TACHYON_FULL on a full ring (upstream default)', async () => {
  const { consumer, producer } = await pair(1 << 10);
  let sent = 0;
  // Full at once (a default wait would hang here: nobody reads).
  assert.throws(() => {
    for (;;) {
      producer.send(Buffer.alloc(100), sent);
      sent++;
    }
  }, (e) => t.isFull(e));
  assert.throws(() => producer.acquireTx(100), (e) => t.isFull(e));
  // Waiting stays available.
  assert.throws(() => producer.send(Buffer.alloc(100), 0, { timeoutMs: 30 }), (e) => t.isTimeout(e));
  assert.ok(sent > 0);
  consumer.close();
  producer.close();
});

test('every error, sync or async, native or not, is instanceof TachyonError', async () => {
  let sync;
  try {
    t.Bus.connect(h.sockPath('nobody'));
  } catch (e) {
    sync = e;
  }
  assert.ok(sync instanceof t.TachyonError && sync instanceof Error && t.isConnectError(sync));
  assert.ok(new t.TachyonRpcError(1, 2, 'x') instanceof t.TachyonError);
  assert.ok(!(new Error('plain') instanceof t.TachyonError));
  assert.ok(!(sync instanceof t.TachyonRpcError), 'subclasses keep the usual test');
  const { consumer, producer } = await pair();
  const late = await consumer.recvAsync({ timeoutMs: 10 }).catch((e) => e);
  assert.ok(late instanceof t.TachyonError && t.isTimeout(late));
  consumer.close();
  producer.close();
});

test('AbortSignal: listenAsync, recvAsync, the async iterator, callAsync', async () => {
  // An already aborted signal fails a sync call at once.
  assert.throws(() => t.Bus.connect(h.sockPath('x'), { signal: AbortSignal.abort() }), { name: 'AbortError' });
  assert.throws(() => t.Bus.connect(h.sockPath('x'), { signal: 'nope' }), TypeError);

  // listenAsync: the native wait is cancelled, and the path can be listened on again.
  const p = h.sockPath('abort-listen');
  const ac = new AbortController();
  const listening = t.Bus.listenAsync(p, 1 << 12, { signal: ac.signal });
  setTimeout(() => ac.abort(), 50);
  await assert.rejects(listening, { name: 'AbortError' });
  // The native listen notices within 100 ms (allow more on a loaded machine).
  let again;
  for (let tries = 0; ; tries++) {
    await new Promise((r) => setTimeout(r, 100));
    again = t.Bus.listenAsync(p, 1 << 12, { timeoutMs: 10000 });
    const early = await Promise.race([again.then(() => null, (e) => e), new Promise((r) => setTimeout(() => r(null), 50))]);
    if (early === null) break;
    assert.ok(tries < 30 && early.code === 'ERR_TACHYON_ADDR_IN_USE', `re-listen: ${early}`);
  }
  const producer = await h.connectRetry(() => t.Bus.connect(p));
  const consumer = await again;

  // recvAsync: aborted while waiting; what arrives later is kept for the next receive.
  const ac2 = new AbortController();
  const waiting = consumer.recvAsync({ signal: ac2.signal });
  ac2.abort(new Error('stop waiting'));
  await assert.rejects(waiting, /stop waiting/);
  producer.send('kept', 5);
  const m = await consumer.recvAsync({ timeoutMs: 5000 });
  assert.equal(m.data.toString(), 'kept');

  // The iterator ends with the abort's reason.
  const ac3 = new AbortController();
  setTimeout(() => ac3.abort(), 50);
  await assert.rejects(
    (async () => {
      for await (const msg of consumer.messages({ signal: ac3.signal })) void msg;
    })(),
    { name: 'AbortError' },
  );
  consumer.close();
  producer.close();

  // callAsync: a callee that never answers; the abort gives the call up.
  const rp = h.sockPath('abort-call');
  const callee = t.RpcBus.listenAsync(rp, 1 << 12, 1 << 12, { timeoutMs: 10000 });
  const caller = await h.connectRetry(() => t.RpcBus.connect(rp));
  const server = await callee;
  const ac4 = new AbortController();
  const call = caller.callAsync('hello', 1, { signal: ac4.signal });
  assert.equal(caller.inFlight, 1);
  ac4.abort();
  await assert.rejects(call, { name: 'AbortError' });
  // Its late reply is dropped: the next call gets its own reply.
  const req = server.serve({ timeoutMs: 1000 });
  server.reply(req.correlationId, 'late', 1);
  const next = caller.callAsync('again', 1, { timeoutMs: 5000 });
  const req2 = server.serve({ timeoutMs: 5000 });
  server.reply(req2.correlationId, 'fresh', 1);
  assert.equal((await next).toString(), 'fresh');
  assert.equal(caller.inFlight, 0);
  caller.close();
  server.close();
});

test('a failing handler without onError is logged (console.error), never silent', async () => {
  const script = `
const t = require(${JSON.stringify(path.resolve(__dirname, '..'))});
(async () => {
  const server = t.createRpcServer({ socketPath: ${JSON.stringify(h.sockPath('log'))}, handlers: { 1: () => { throw new Error('handler broke'); } } });
  const rpc = t.RpcBus.connect(server.socketPath);
  await rpc.callAsync('x', 1).catch((e) => console.log('caller got', e.rpcMessage));
  rpc.close();
  await server.close();
})();
`;
  const r = await h.run(process.execPath, ['-e', script]).done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /caller got handler broke/);
  assert.match(r.stderr, /a handler failed.*handler broke/s);
});

test('the generated loader and native typings are committed as napi build writes them', { skip: !h.inGit() && 'not a git checkout' }, () => {
  // `make node` runs `napi build`, which rewrites them; a difference means they drifted
  // from the addon: commit the regenerated files.
  const pkg = path.resolve(__dirname, '..');
  const out = execFileSync('git', ['status', '--porcelain', '--', 'native.js', 'native.d.ts'], { cwd: pkg }).toString();
  assert.equal(out, '', `regenerated by napi build and not committed:\n${out}`);
});
