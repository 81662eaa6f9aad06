'use strict';
// RPC over TCP from Node (loopback): RpcClient against the Rust TcpServer, and
// createRpcServer({ address: 'tcp://...' }) serving the Rust TCP client.
const test = require('node:test');
const assert = require('node:assert/strict');
const t = require('..');
const h = require('./helpers');

const peer = h.peer();

test('RpcClient calls the Rust TCP server: sync, async, error replies, pipelined', { skip: peer.skip }, async (tc) => {
  const server = h.run(peer.path, ['tcp-serve', '--addr', 'tcp://127.0.0.1:0']);
  tc.after(() => server.child.kill('SIGKILL'));
  await h.waitForLine(server, 'ready');
  const address = server.stdoutSoFar().split(/\s+/)[1];
  const c = t.RpcClient.connect(address, { timeoutMs: 5000 });
  assert.equal(c.address, address);
  assert.equal(c.invoke('sync', 1, { timeoutMs: 5000 }).toString(), 'sync');
  assert.equal((await c.callAsync('async', 1, { timeoutMs: 5000 })).toString(), 'async');
  // msg_type 3 fails with its (MessagePack string) request in the message.
  await assert.rejects(c.callAsync(Buffer.from([0xa1, 0x78]), 3, { timeoutMs: 5000 }), (e) =>
    e instanceof t.TachyonRpcError && e.rpcCode === 2 && /failing on purpose: x/.test(e.message));
  assert.throws(() => c.invoke('', 999, { timeoutMs: 5000 }), (e) => e.rpcCode === t.RpcCode.UNKNOWN_MSG_TYPE);
  const replies = await Promise.all(Array.from({ length: 32 }, (_, i) => c.callAsync(`n${i}`, 1, { timeoutMs: 5000 })));
  assert.deepEqual(replies.map(String), Array.from({ length: 32 }, (_, i) => `n${i}`));
  assert.throws(() => t.RpcClient.connect('/tmp/not-tcp.sock'), TypeError);
  c.close();
  assert.throws(() => c.invoke('x', 1), (e) => e.code === 'ERR_TACHYON_CLOSED');
});

test('createRpcServer over TCP serves the Rust TCP client (2,000 checksummed calls)', { skip: peer.skip }, async () => {
  const srv = t.createRpcServer({ address: 'tcp://127.0.0.1:0', handlers: { 1: (data) => data }, onError: () => {} });
  assert.match(srv.address, /^tcp:\/\/127\.0\.0\.1:\d+$/);
  const r = await h.run(peer.path, ['tcp-call', '--addr', srv.address, '--count', '2000', '--pipeline', '8']).done;
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /rpc-error msg_type=999 code=1/);
  assert.match(r.stdout, /ok 2000 messages/);
  await srv.close();
});

test('over TCP too, a handler that never answers (or answers late) costs its caller an error reply', async (tc) => {
  const server = t.createRpcServer({
    address: 'tcp://127.0.0.1:0',
    handlerTimeoutMs: 150,
    handlers: {
      1: () => new Promise(() => {}),
      2: (data) => new Promise((r) => setTimeout(() => r(data), 500)),
      3: (data) => data,
    },
  });
  tc.after(() => server.close());
  const c = t.RpcClient.connect(server.address, { timeoutMs: 5000 });
  tc.after(() => c.close());
  // The server's handler timeout answers both (not the calls' own 5 s timeouts).
  const late = (e) => e.rpcCode === t.RpcCode.HANDLER_ERROR && /did not answer/.test(e.rpcMessage);
  await assert.rejects(c.callAsync('x', 1, { timeoutMs: 5000 }), late);
  await assert.rejects(c.callAsync('y', 2, { timeoutMs: 5000 }), late);
  // The late answer went nowhere; the connection serves on.
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(String(await c.callAsync('still here', 3, { timeoutMs: 5000 })), 'still here');
});

test('RpcClient.stream over TCP: items in order, an error ends it, break cancels the server', async (tc) => {
  let sent = 0;
  const server = t.createRpcServer({
    address: 'tcp://127.0.0.1:0',
    handlers: {
      5: t.streaming(async function* (data) {
        const n = Number(data.toString());
        for (let i = 0; i < n; i++) {
          sent++;
          yield `tick ${i}`;
        }
      }),
      6: t.streaming(function* () {
        yield 'one';
        throw Object.assign(new Error('feed broke'), { rpcCode: 77 });
      }),
    },
  });
  tc.after(() => server.close());
  const c = t.RpcClient.connect(server.address, { timeoutMs: 5000 });
  const got = [];
  for await (const item of c.stream('1000', 5, { timeoutMs: 5000 })) got.push(item.toString());
  assert.equal(got.length, 1000);
  assert.equal(got[999], 'tick 999');
  const items = [];
  await assert.rejects(
    (async () => {
      for await (const item of c.stream('', 6, { timeoutMs: 5000 })) items.push(item.toString());
    })(),
    (e) => e instanceof t.TachyonRpcError && e.rpcCode === 77 && /feed broke/.test(e.message),
  );
  assert.deepEqual(items, ['one']);
  sent = 0;
  for await (const item of c.stream('1000000', 5, { timeoutMs: 5000 })) {
    if (item.toString() === 'tick 10') break; // cancels on the server
  }
  await new Promise((r) => setTimeout(r, 200));
  const after = sent;
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(sent, after, 'the server stopped producing after the cancel');
  assert.ok(sent < 1000000);
  c.close();
});

test('connectAsync: RpcClient and RpcBus connect without blocking the event loop, and abort', async (tc) => {
  // An in-process server: a blocking connect would deadlock with its JS handlers.
  const srv = t.createRpcServer({ address: 'tcp://127.0.0.1:0', handlers: { 1: (d) => d } });
  tc.after(() => srv.close());
  const c = await t.RpcClient.connectAsync(srv.address, { timeoutMs: 5000, connections: 2 });
  tc.after(() => c.close());
  assert.equal((await c.callAsync('tcp', 1, { timeoutMs: 5000 })).toString(), 'tcp');
  const shm = t.createRpcServer({ socketPath: h.sockPath('connect-async'), handlers: { 1: (d) => d } });
  tc.after(() => shm.close());
  const bus = await t.RpcBus.connectAsync(shm.socketPath, { timeoutMs: 5000 });
  assert.equal((await bus.callAsync('shm', 1, { timeoutMs: 5000 })).toString(), 'shm');
  bus.close();
  // A listener that never answers: the loop keeps ticking while the handshake waits, and
  // the signal ends the wait with an AbortError.
  const net = require('node:net');
  const path = h.sockPath('silent-async');
  const silent = net.createServer(() => {}).listen(path);
  await new Promise((r) => silent.once('listening', r));
  tc.after(() => silent.close());
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 100);
  await assert.rejects(t.RpcBus.connectAsync(path, { signal: ac.signal }), { name: 'AbortError' });
  clearInterval(timer);
  assert.ok(ticks > 0, 'the event loop ran while connectAsync waited');
  await assert.rejects(t.RpcBus.connectAsync(path, { timeoutMs: 50 }), (e) => t.isTimeout(e));
  await assert.rejects(t.RpcClient.connectAsync('not-tcp'), TypeError);
  await assert.rejects(t.RpcClient.connectAsync(srv.address, { connections: 0 }), TypeError);
});
