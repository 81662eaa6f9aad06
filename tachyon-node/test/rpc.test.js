'use strict';
// RpcBus and createRpcServer against Rust peers, and Node against Node.
const test = require('node:test');
const assert = require('node:assert/strict');
const t = require('..');
const h = require('./helpers');

const peer = h.peer();

async function rustServer() {
  const path = h.sockPath('rust-srv');
  const proc = h.run(peer.path, ['rpc-serve', '--path', path]);
  await h.waitForLine(proc, 'ready');
  return { path, proc };
}

test('Node caller -> Rust #[tachyon_rpc] server: sync, async, errors, deadlines', { skip: peer.skip }, async (tc) => {
  const { path, proc } = await rustServer();
  tc.after(() => proc.child.kill('SIGKILL'));
  const rpc = t.RpcBus.connect(path);
  tc.after(() => rpc[Symbol.dispose]());
  const cid = rpc.call('hello', 1);
  assert.equal(rpc.inFlight, 1);
  const r = rpc.wait(cid, { timeoutMs: 5000 });
  assert.equal(r.data.toString(), 'hello');
  assert.equal(r.msgType, 1);
  assert.equal(r.correlationId, cid);
  assert.equal(rpc.invoke(Buffer.from('again'), 1, { timeoutMs: 5000 }).toString(), 'again');
  // An unknown msg_type: the 0xFFFF reply becomes TachyonRpcError, sync and async.
  assert.throws(() => rpc.invoke('x', 999, { timeoutMs: 5000 }), (e) =>
    e instanceof t.TachyonRpcError && e.msgType === 999 && e.rpcCode === t.RpcCode.UNKNOWN_MSG_TYPE && t.isRpcError(e));
  await assert.rejects(rpc.callAsync('x', 999), (e) => e.rpcCode === t.RpcCode.UNKNOWN_MSG_TYPE);
  // Many async calls in flight at once, answered in order of arrival.
  const replies = await Promise.all(Array.from({ length: 64 }, (_, i) => rpc.callAsync(`m${i}`, 1, { timeoutMs: 5000 })));
  assert.deepEqual(replies.map(String), Array.from({ length: 64 }, (_, i) => `m${i}`));
  assert.equal(rpc.inFlight, 0);
  assert.throws(() => rpc.wait(12345), (e) => e.code === 'ERR_TACHYON_PROTOCOL');
  assert.throws(() => rpc.call('x', 70000), (e) => e.code === 'ERR_TACHYON_INVALID_ARG');
  // This side's counters: 68 requests out, 68 replies (4 of them errors) in.
  const s = rpc.stats();
  assert.equal(s.sentMessages, 68);
  assert.equal(s.receivedMessages, 68);
  assert.equal(s.sentBytes, 'hello'.length + 'again'.length + 'x'.length * 2 + replies.join('').length);
  assert.deepEqual([s.timeouts, s.peerDeaths, s.protocolErrors], [0, 0, 0]);
});

test('deadlines: a callee that holds requests makes calls time out, and the late replies are dropped', { skip: peer.skip }, async () => {
  const path = h.sockPath('reverse');
  // rpc-reverse answers only after it has 3 requests, in reverse order.
  const proc = h.run(peer.path, ['rpc-reverse', '--path', path, '--count', '3', '--timeout-ms', '10000']);
  const rpc = await h.connectRetry(() => t.RpcBus.connect(path));
  const c1 = rpc.call('one', 1);
  assert.throws(() => rpc.wait(c1, { timeoutMs: 50 }), (e) => t.isTimeout(e));
  rpc.abandon(c1);
  await assert.rejects(rpc.callAsync('two', 1, { timeoutMs: 50 }), (e) => t.isTimeout(e));
  const third = rpc.callAsync('three', 1, { timeoutMs: 5000 });
  assert.equal((await third).toString(), 'three'); // the abandoned calls' replies never reach it
  assert.equal(rpc.inFlight, 0);
  rpc.close();
  await proc.done;
});

test('a killed callee fails pending calls with PEER_DEAD', { skip: peer.skip }, async () => {
  const path = h.sockPath('killed');
  const proc = h.run(peer.path, ['rpc-reverse', '--path', path, '--count', '5', '--timeout-ms', '10000']);
  const rpc = await h.connectRetry(() => t.RpcBus.connect(path));
  const pending = rpc.callAsync('never', 1);
  const cid = rpc.call('never either', 1);
  await new Promise((r) => setTimeout(r, 50));
  proc.child.kill('SIGKILL');
  await assert.rejects(pending, (e) => t.isPeerDead(e));
  assert.throws(() => rpc.wait(cid, { timeoutMs: 5000 }), (e) => t.isPeerDead(e));
  rpc.close();
});

test('Rust caller -> Node callee (RpcBus.listenAsync + serveForever in another Node process)', { skip: peer.skip }, async () => {
  const path = h.sockPath('node-callee');
  const node = h.runNode('bus_peer.js', ['rpc-serve', path, '101']);
  const rust = h.run(peer.path, ['rpc-call', '--path', path, '--count', '100', '--max-size', '512']);
  const [r, n] = await Promise.all([rust.done, node.done]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /ok 100 messages/);
  assert.match(n.stdout, /ok 101 messages/);
});

test('createRpcServer answers several Rust clients at once; async handlers, thrown errors, unknown msg_type', { skip: peer.skip }, async () => {
  const socketPath = h.sockPath('node-srv');
  const errors = [];
  const server = t.createRpcServer({
    socketPath,
    maxClients: 8,
    handlers: {
      1: async (data) => {
        await new Promise((r) => setImmediate(r));
        return data;
      },
      2: () => {
        throw Object.assign(new Error('handler said no'), { rpcCode: 77 });
      },
    },
    onError: (e) => errors.push(e),
  });
  assert.equal(server.running, true);
  const clients = [1, 2, 3].map((seed) =>
    h.run(peer.path, ['rpc-call', '--path', socketPath, '--count', '300', '--seed', String(seed), '--max-size', '1024']));
  // And a Node client in this very process, next to the server, without Workers.
  const rpc = t.RpcBus.connect(socketPath);
  assert.equal((await rpc.callAsync('local', 1)).toString(), 'local');
  await assert.rejects(rpc.callAsync('x', 2), (e) => e.rpcCode === 77 && e.rpcMessage === 'handler said no');
  await assert.rejects(rpc.callAsync('x', 5), (e) => e.rpcCode === t.RpcCode.UNKNOWN_MSG_TYPE);
  for (const c of clients) {
    const out = await c.done;
    assert.equal(out.code, 0, out.stdout + out.stderr);
    assert.match(out.stdout, /rpc-error msg_type=999 code=1/);
    assert.match(out.stdout, /ok 300 messages/);
  }
  assert.ok(errors.length >= 1);
  // Four clients (three Rust processes and ours); 3 x 301 + 3 requests; error replies
  // by code: the unknown msg_types (code 1) and the handler's own code 77.
  const s = server.stats();
  assert.equal(s.accepted, 4);
  assert.equal(s.requests, 3 * 301 + 3);
  assert.deepEqual(s.errors, { 1: 4, 77: 1 });
  await server.close();
  assert.equal(server.running, false);
  assert.deepEqual(server.stats().errors, { 1: 4, 77: 1 }, 'readable after close');
  await assert.rejects(rpc.callAsync('after', 1, { timeoutMs: 5000 }), (e) => t.isPeerClosed(e));
  rpc.close();
  assert.throws(() => t.createRpcServer({ socketPath, handlers: { 65535: () => null } }), RangeError);
});

test('a handler that never answers costs its caller an error reply, not a hang', async () => {
  const socketPath = h.sockPath('slow');
  const server = t.createRpcServer({ socketPath, handlerTimeoutMs: 100, handlers: { 1: () => new Promise(() => {}) } });
  const rpc = t.RpcBus.connect(socketPath);
  await assert.rejects(rpc.callAsync('x', 1, { timeoutMs: 5000 }), (e) =>
    e.rpcCode === t.RpcCode.HANDLER_ERROR && /did not answer/.test(e.rpcMessage));
  rpc.close();
  await server.close();
});

test('Node <-> Node RpcBus in one process: listenAsync callee, async caller', async () => {
  const path = h.sockPath('n2n');
  const callee = t.RpcBus.listenAsync(path, 1 << 14, 1 << 14, { timeoutMs: 5000 });
  const caller = await h.connectRetry(() => t.RpcBus.connect(path));
  const server = await callee;
  const cid = caller.call('ping', 3);
  const req = server.serve({ timeoutMs: 1000 });
  assert.deepEqual([req.data.toString(), req.msgType, req.correlationId], ['ping', 3, cid]);
  server.replyError(req.correlationId, 3, 9, 'nope');
  assert.throws(() => caller.wait(cid, { timeoutMs: 1000 }), (e) => e.rpcCode === 9 && e.rpcMessage === 'nope');
  assert.equal(server.serve({ timeoutMs: 10 }), null);
  // A raw 0xFFFF reply passes through, as the core and Python let it: upstream's 2-byte
  // sentinel (the failed msg_type, big-endian) reaches the caller as an UPSTREAM error.
  const again = caller.call('again', 3);
  const req2 = server.serve({ timeoutMs: 1000 });
  server.reply(req2.correlationId, Buffer.from([0x00, 0x03]), 0xffff);
  assert.throws(() => caller.wait(again, { timeoutMs: 1000 }), (e) =>
    e instanceof t.TachyonRpcError && e.rpcCode === t.RpcCode.UPSTREAM && e.msgType === 3);
  caller.close();
  server.close();
});

test('connection events reach diagnostics_channel: connects, accepts, refusals, across processes', { skip: peer.skip }, async (tc) => {
  const dc = require('node:diagnostics_channel');
  const seen = [];
  const names = ['connect', 'connected', 'accepted', 'refused'];
  const on = (m) => seen.push(m);
  for (const n of names) dc.subscribe(t.CHANNELS[n], on);
  tc.after(() => { for (const n of names) dc.unsubscribe(t.CHANNELS[n], on); });
  const until = async (pred) => {
    const deadline = Date.now() + 10000;
    while (!seen.some(pred)) {
      assert.ok(Date.now() < deadline, `no such event in ${JSON.stringify(seen)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return seen.find(pred);
  };
  const socketPath = h.sockPath('events');
  const server = t.createRpcServer({ socketPath, maxClients: 1, handlers: { 1: (d) => d } });
  tc.after(() => server.close());
  const rpc = t.RpcBus.connect(socketPath);
  tc.after(() => rpc.close());
  const connected = await until((m) => m.name === 'connected' && m.address === socketPath);
  assert.equal(connected.kind, 'event');
  assert.equal(connected.level, 'info');
  assert.equal(connected.transport, 'shm');
  assert.equal(connected.address, socketPath);
  const span = await until((m) => m.name === 'connect' && m.address === socketPath);
  assert.equal(span.kind, 'span');
  await until((m) => m.name === 'accepted' && m.peer_pid === String(process.pid));
  // A Rust client in another process finds the only slot taken.
  const out = await h.run(peer.path, ['rpc-call', '--path', socketPath, '--count', '1']).done;
  assert.notEqual(out.code, 0);
  const refused = await until((m) => m.name === 'refused');
  assert.equal(refused.level, 'warn');
  assert.match(refused.reason, /TooManyClients/);
});
