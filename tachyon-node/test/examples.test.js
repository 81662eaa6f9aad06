'use strict';
// The demo's Node caller (examples/node/quote_client.js) against the Rust demo server.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const h = require('./helpers');

const peer = h.peer();
const demo = peer.path ? path.join(path.dirname(peer.path), 'rpc_demo') : null;

test('the Node demo caller runs against `rpc_demo server`', { skip: peer.skip }, async (tc) => {
  const sock = h.sockPath('demo');
  const server = h.run(demo, ['server', sock]);
  tc.after(() => server.child.kill('SIGKILL'));
  // What `npm install tachyon-rpc` gives the example: the package under its name.
  const modules = h.tmpDir('node-path-');
  require('node:fs').symlinkSync(path.join(h.ROOT, 'tachyon-node'), path.join(modules, 'tachyon-rpc'));
  const env = { ...process.env, NODE_PATH: modules };
  const client = h.run(process.execPath, [path.join(h.ROOT, 'examples', 'node', 'quote_client.js'), sock], { env });
  const out = await client.done;
  assert.equal(out.code, 0, out.stdout + out.stderr);
  assert.match(out.stdout, /client\.quote\(bad request\) -> TachyonRpcError\(code 100\)/);
  assert.match(out.stdout, /client\.echoSync, 32 bytes: p50 \d+ ns/);
  assert.match(out.stdout, /callAsync with 16 in flight: \d+ calls\/s/);
  assert.match(out.stdout, /tigaInvoke\('2'\) answered "tiga says hi"/);
});
