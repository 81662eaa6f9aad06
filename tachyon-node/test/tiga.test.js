'use strict';
// The Tiga-shaped server and client, against Python and Rust peers.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const fs = require('node:fs');
const t = require('..');
const h = require('./helpers');

const peer = h.peer();
const py = h.python();

function ipcDir() {
  return h.tmpDir('tachyon-tiga-');
}

function startEcho(dir, channelName, seen) {
  return t.startTigaServer({
    channelName,
    ipcDirectory: dir,
    onInvoke: async (method, data, ctx) => {
      seen.push({ method, ctx });
      if (method === 'fail') throw new Error(`refused: ${data}`);
      if (method === 'sync') return `sync:${data}`;
      await new Promise((r) => setImmediate(r));
      return `${method}|${ctx.clientId}|${data}`;
    },
  });
}

test('method names map onto msg_types as documented', () => {
  assert.equal(t.methodId('7'), 7);
  assert.equal(t.methodId('32767'), 32767);
  for (const name of ['echo', 'getQuote', '07', '32768', 'Ω']) {
    const id = t.methodId(name);
    assert.ok(id >= 0x8000 && id <= 0xfffe, `${name} -> ${id}`);
  }
  assert.throws(() => t.methodId(''), (e) => e.code === 'ERR_TACHYON_INVALID_ARG');
});

test('a Tiga server answers a Rust client and a Python client by method name', { skip: peer.skip || py.skip }, async () => {
  const dir = ipcDir();
  const seen = [];
  const server = startEcho(dir, 'quotes', seen);
  assert.equal(server.socketPath, path.join(dir, 'quotes.sock'));
  const rust = h.run(peer.path, ['tiga-call', '--path', server.socketPath, '--method', 'lookup',
    '--client', 'rust-7', '--data', 'AAPL', '--count', '3']);
  const pyScript = `
import sys, tachyon
bus = tachyon.RpcBus.connect(sys.argv[1])
mt, payload = tachyon.tiga_call("lookup", b"MSFT", client_id="py-1")
assert mt == tachyon.method_id("lookup"), mt
print("reply", bus.invoke(payload, mt, timeout=5).decode())
mt, payload = tachyon.tiga_call("fail", b"nope", client_id="py-1")
try:
    bus.invoke(payload, mt, timeout=5)
except tachyon.TachyonRpcError as e:
    print("rpc-error", e.code, e.message)
`;
  const python = h.run(py.path, ['-c', pyScript, server.socketPath]);
  const [r, p] = await Promise.all([rust.done, python.done]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /reply lookup\|rust-7\|AAPL#0/);
  assert.match(r.stdout, /reply lookup\|rust-7\|AAPL#2/);
  assert.equal(p.code, 0, p.stdout + p.stderr);
  assert.match(p.stdout, /reply lookup\|py-1\|MSFT/);
  assert.match(p.stdout, /rpc-error 2 refused: nope/);
  const ctx = seen.find((s) => s.ctx.clientId === 'py-1').ctx;
  assert.deepEqual(
    { ...ctx, requestId: typeof ctx.requestId, entryId: typeof ctx.entryId },
    {
      channelName: 'quotes', clientId: 'py-1', requestName: 'quotes.req.py-1', responseName: 'quotes.resp.py-1',
      ipcDirectory: dir, requestId: 'string', entryId: 'number', mediaType: null,
    },
  );
  assert.equal(ctx.requestId, String(ctx.entryId));
  await server.close();
});

test('tigaInvokeAsync from Node: named methods on a Node server, in the same process', async () => {
  const dir = ipcDir();
  const seen = [];
  const server = t.createTigaServer({ channelName: 'local', ipcDirectory: dir, onInvoke: startEchoInvoke(seen), onError: () => {} });
  assert.equal(server.running, false);
  server.start();
  const opts = { ipcDirectory: dir, timeoutMs: 5000 };
  assert.equal(await t.tigaInvokeAsync('local.req.a', 'local.resp.a', 'hello', 'x', opts), 'hello|a|x');
  assert.equal(await t.tigaInvokeAsync('local.req.a', 'local.resp.a', 'sync', 'y', opts), 'sync:y');
  await assert.rejects(t.tigaInvokeAsync('local.req.a', 'local.resp.a', 'fail', 'z', opts), (e) =>
    e instanceof t.TachyonRpcError && e.rpcMessage === 'refused: z');
  // Many concurrent calls from two clients.
  const calls = [];
  for (let i = 0; i < 100; i++) calls.push(t.tigaInvokeAsync(`local.req.c${i % 2}`, `local.resp.c${i % 2}`, `m${i}`, `${i}`, opts));
  const got = await Promise.all(calls);
  got.forEach((b, i) => assert.equal(b, `m${i}|c${i % 2}|${i}`));
  // The synchronous form reaches a server of this process inline; it cannot wait for
  // a Promise there, and says so.
  assert.throws(() => t.tigaInvoke('local.req.a', 'local.resp.a', 'hello', 'x', opts), /tigaInvokeAsync/);
  // Bad names are refused before anything is sent.
  await assert.rejects(t.tigaInvokeAsync('local.req.a', 'other.resp.a', 'x', '', opts), (e) => e.code === 'ERR_TACHYON_INVALID_ARG');
  await assert.rejects(t.tigaInvokeAsync('nochannel', 'x', 'x', '', opts), (e) => e.code === 'ERR_TACHYON_INVALID_ARG');
  await assert.rejects(t.tigaInvokeAsync('gone.req.a', 'gone.resp.a', 'x', '', opts), (e) => e.code === 'ERR_TACHYON_CONNECT');
  t.tigaCloseAll();
  await server.close();
  assert.throws(() => t.createTigaServer({ channelName: '', onInvoke: () => null }), TypeError);
  assert.throws(() => t.createTigaServer({ channelName: 'x', onInvoke: () => null, waitTimeoutMs: -1 }), TypeError);
});

test('tigaInvoke is synchronous and returns the response string, from another process too', { skip: peer.skip }, async () => {
  const dir = ipcDir();
  const seen = [];
  const server = t.startTigaServer({ channelName: 'syncsrv', ipcDirectory: dir, onInvoke: startEchoInvoke(seen), onError: () => {} });
  const script = `
const t = require(${JSON.stringify(path.resolve(__dirname, '..'))});
const opts = { ipcDirectory: ${JSON.stringify(dir)}, timeoutMs: 5000 };
const r = t.tigaInvoke('syncsrv.req.cli', 'syncsrv.resp.cli', 'echo', 'hello from node', opts);
console.log(typeof r, r);
try { t.tigaInvoke('syncsrv.req.cli', 'syncsrv.resp.cli', 'fail', 'x', opts); } catch (e) { console.log('error', e instanceof t.TachyonError, e.rpcMessage); }
t.tigaCloseAll();
`;
  const child = h.run(process.execPath, ['-e', script]);
  const out = await child.done;
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /^string echo\|cli\|hello from node$/m);
  assert.match(out.stdout, /^error true refused: x$/m);
  await server.close();
});

function startEchoInvoke(seen) {
  return async (method, data, ctx) => {
    seen.push(method);
    if (method === 'fail') throw new Error(`refused: ${data}`);
    if (method === 'sync') return `sync:${data}`;
    return `${method}|${ctx.clientId}|${data}`;
  };
}

test('tigaInvoke against a Rust #[tachyon_rpc] server: numbered methods are msg_types', { skip: peer.skip }, async (tc) => {
  const dir = ipcDir();
  const proc = h.run(peer.path, ['rpc-serve', '--path', path.join(dir, 'rust.sock')]);
  tc.after(() => proc.child.kill('SIGKILL'));
  await h.waitForLine(proc, 'ready');
  const opts = { ipcDirectory: dir, timeoutMs: 5000 };
  assert.equal(t.tigaInvoke('rust.req.n1', 'rust.resp.n1', '1', Buffer.from('via tiga'), opts), 'via tiga');
  assert.equal(await t.tigaInvokeAsync('rust.req.n1', 'rust.resp.n1', 1, 'number', opts), 'number');
  assert.throws(() => t.tigaInvoke('rust.req.n1', 'rust.resp.n1', 'notThere', 'x', opts), (e) =>
    e.rpcCode === t.RpcCode.UNKNOWN_MSG_TYPE && e.msgType === t.methodId('notThere'));
  t.tigaCloseAll();
});

test('a malformed named call is refused by the server, never handed to onInvoke', async () => {
  const dir = ipcDir();
  const seen = [];
  const server = startEcho(dir, 'strict', seen);
  const rpc = t.RpcBus.connect(server.socketPath);
  await assert.rejects(rpc.callAsync('no envelope', t.methodId('echo')), (e) => e.rpcCode === t.RpcCode.BAD_REQUEST);
  // A numbered call carries no envelope: the method is its msg_type.
  assert.equal((await rpc.callAsync('raw', 12)).toString(), '12||raw');
  assert.deepEqual(seen.map((s) => s.method), ['12']);
  rpc.close();
  await server.close();
});

test('startTigaServer and tigaInvoke over TCP (an address option beside ipcDirectory)', async () => {
  const server = t.startTigaServer({
    channelName: 'overtcp',
    address: 'tcp://127.0.0.1:0',
    onInvoke: async (method, data, ctx) => `${method}|${ctx.clientId}|${data}`,
    onError: () => {},
  });
  const address = server.address;
  assert.match(address, /^tcp:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(await t.tigaInvokeAsync('overtcp.req.c1', 'overtcp.resp.c1', 'echo', 'hi', { address, timeoutMs: 5000 }), 'echo|c1|hi');
  // A synchronous tigaInvoke from another process, over TCP.
  const child = await h.run(process.execPath, ['-e', `
    const t = require(${JSON.stringify(path.join(__dirname, '..'))});
    console.log(t.tigaInvoke('overtcp.req.c2', 'overtcp.resp.c2', 'sync', 'there', { address: ${JSON.stringify(address)}, timeoutMs: 5000 }));
    t.tigaCloseAll();
  `]).done;
  assert.equal(child.code, 0, child.stderr);
  assert.equal(child.stdout.trim(), 'sync|c2|there');
  assert.throws(() => t.startTigaServer({ channelName: 'x', address: '/tmp/x.sock', onInvoke: () => '' }), TypeError);
  t.tigaCloseAll();
  await server.close();
});
