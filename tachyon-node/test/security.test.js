'use strict';
// Security and reliability from Node: bounded connects, refused arguments, sockets only
// their owner can open, and a clean end of stream told apart from a killed producer.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const t = require('..');
const h = require('./helpers');

test('a sync connect to a listener that never answers times out (and nothing there is a connect error)', async () => {
  const path = h.sockPath('silent');
  const silent = net.createServer(() => {}).listen(path);
  await new Promise((r) => silent.once('listening', r));
  // The kernel queues the connection on the listener's backlog; nobody ever answers.
  for (const connect of [() => t.Bus.connect(path, { timeoutMs: 300 }), () => t.RpcBus.connect(path, { timeoutMs: 300 })]) {
    const start = Date.now();
    assert.throws(connect, (e) => t.isTimeout(e));
    assert.ok(Date.now() - start >= 290, `timed out early: ${Date.now() - start} ms`);
  }
  silent.close();
  assert.throws(() => t.Bus.connect(h.sockPath('nobody')), (e) => t.isConnectError(e) && e instanceof Error);
});

test('maxClients 0 is refused', () => {
  assert.throws(
    () => t.createRpcServer({ socketPath: h.sockPath('zero'), maxClients: 0, handlers: { 1: (d) => d } }),
    (e) => e.code === 'ERR_TACHYON_INVALID_ARG',
  );
});

test('a server socket is 0600 whatever the umask', async () => {
  const socketPath = h.sockPath('mode');
  const old = process.umask(0);
  let server;
  try {
    server = t.createRpcServer({ socketPath, handlers: { 1: (d) => d } });
  } finally {
    process.umask(old);
  }
  assert.equal(fs.statSync(socketPath).mode & 0o777, 0o600);
  await server.close();
});

test('for await ends when the producer closes, and throws PEER_DEAD when it is killed', async () => {
  // Clean: the producer sends 300 messages and closes its bus.
  let path = h.sockPath('clean');
  let pending = t.Bus.listenAsync(path, 1 << 16, { timeoutMs: 10000 });
  let proc = h.runNode('bus_peer.js', ['produce', path, '300', '5', '32']);
  let bus = await pending;
  let n = 0;
  for await (const m of bus) {
    h.verify(5, n++, 32, m.data, m.typeId);
  }
  assert.equal(n, 300);
  await proc.done;
  bus.close();

  // Killed: a producer that never stops, killed mid-stream.
  path = h.sockPath('killed');
  pending = t.Bus.listenAsync(path, 1 << 16, { timeoutMs: 10000 });
  proc = h.runNode('bus_peer.js', ['produce', path, '100000000', '5', '32']);
  bus = await pending;
  n = 0;
  await assert.rejects(
    (async () => {
      for await (const m of bus) {
        h.verify(5, n++, 32, m.data, m.typeId);
        if (n === 1000) proc.child.kill('SIGKILL');
      }
    })(),
    (e) => t.isPeerDead(e) && !t.isPeerClosed(e),
  );
  assert.ok(n >= 1000, `received ${n} before the error`);
  bus.close();
});
