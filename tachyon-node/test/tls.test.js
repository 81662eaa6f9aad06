'use strict';
// TLS 1.3 and mutual TLS from Node (loopback): createRpcServer({ tls }) and
// RpcClient.connect(addr, { tls }), with certificates from `tachyon-peer gen-certs`.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const t = require('..');
const h = require('./helpers');

const peer = h.peer();

function pki() {
  const dir = h.tmpDir('tachyon-node-pki-');
  execFileSync(peer.path, ['gen-certs', '--path', dir]);
  return (name) => path.join(dir, name);
}

test('mutual TLS: handlers see the caller, foreign and missing certificates are refused', { skip: peer.skip }, async (tc) => {
  const f = pki();
  const server = t.createRpcServer({
    address: 'tcp://127.0.0.1:0',
    // Paths, PEM text and Buffers all load.
    tls: { cert: f('server.pem'), key: fs.readFileSync(f('server.key'), 'utf8'), ca: fs.readFileSync(f('ca.pem')) },
    handlers: {
      1: (data) => data,
      7: (_data, ctx) => `${ctx.peer.commonName}|${ctx.peer.dnsNames.join(',')}|${ctx.peer.certificate.length > 100}`,
    },
  });
  tc.after(() => server.close());
  const c = t.RpcClient.connect(server.address, { timeoutMs: 5000, tls: { ca: f('ca.pem'), cert: f('client.pem'), key: f('client.key') } });
  // The handlers run on this thread: call without blocking it.
  assert.equal((await c.callAsync('sealed', 1, { timeoutMs: 5000 })).toString(), 'sealed');
  assert.equal((await c.callAsync('', 7, { timeoutMs: 5000 })).toString(), 'client-a|client-a.test|true');
  c.close();
  const refused = (opts) => assert.throws(() => t.RpcClient.connect(server.address, { timeoutMs: 5000, ...opts }), (e) => e.code === 'ERR_TACHYON_TLS');
  refused({ tls: { ca: f('ca.pem') } });
  refused({ tls: { ca: f('ca.pem'), cert: f('rogue.pem'), key: f('rogue.key') } });
  refused({}); // plaintext to a TLS server
  assert.throws(() => t.RpcClient.connect(server.address, { tls: { cert: f('client.pem') } }), TypeError);
  assert.throws(() => t.RpcClient.connect(server.address, { tls: { ca: f('ca.pem'), cert: f('client.pem') } }), (e) => e.code === 'ERR_INVALID_ARG_VALUE' || e instanceof TypeError || /tls.cert needs tls.key/.test(e.message));
  assert.throws(() => t.createRpcServer({ address: 'tcp://127.0.0.1:0', tls: { cert: f('server.pem') }, handlers: {} }), TypeError);
});

test('a CN forged inside another subject attribute is not believed', { skip: peer.skip }, async (tc) => {
  // spoof.pem: the CA signed CN=mallory with an Organization whose bytes are a whole
  // CN=admin attribute, placed before the real CN.
  const f = pki();
  const forged = '\x06\x03\x55\x04\x03\x0c\x05admin';
  const server = t.createRpcServer({
    address: 'tcp://127.0.0.1:0',
    tls: { cert: f('server.pem'), key: f('server.key'), ca: f('ca.pem') },
    handlers: { 9: (_data, ctx) => JSON.stringify([ctx.peer.commonName, ctx.peer.subject]) },
  });
  tc.after(() => server.close());
  const c = t.RpcClient.connect(server.address, { timeoutMs: 5000, tls: { ca: f('ca.pem'), cert: f('spoof.pem'), key: f('spoof.key') } });
  tc.after(() => c.close());
  const [cn, subject] = JSON.parse((await c.callAsync('', 9, { timeoutMs: 5000 })).toString());
  assert.equal(cn, 'mallory');
  assert.deepEqual(subject, [[{ oid: '2.5.4.10', name: 'O', value: forged }], [{ oid: '2.5.4.3', name: 'CN', value: 'mallory' }]]);
});

test('without TLS only loopback may be bound unless insecure', { skip: peer.skip }, async () => {
  assert.throws(() => t.createRpcServer({ address: 'tcp://0.0.0.0:0', handlers: {} }), (e) => e.code === 'ERR_TACHYON_PERMISSION' && /insecure/.test(e.message));
  const s = t.createRpcServer({ address: 'tcp://0.0.0.0:0', insecure: true, handlers: {} });
  await s.close();
});
