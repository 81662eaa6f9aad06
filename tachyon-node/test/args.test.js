'use strict';
// Wrong arguments to the public functions are a TypeError (or a RangeError for a number
// out of range) naming the parameter, never napi's "Failed to convert napi value ...".
const test = require('node:test');
const assert = require('node:assert/strict');
const t = require('..');
const h = require('./helpers');

function named(param, kind = TypeError) {
  return (e) => {
    assert.ok(e instanceof kind, `${e.constructor.name}: ${e.message}`);
    assert.ok(e.message.includes(param), `the message names ${param}: ${e.message}`);
    assert.doesNotMatch(e.message, /Failed to convert|rust type/);
    return true;
  };
}

test('bad arguments name the parameter (sync and async entry points)', async (tc) => {
  const bad = {};
  const p = h.sockPath('args');
  assert.throws(() => t.Bus.listen(bad, 4096), named('socketPath'));
  assert.throws(() => t.Bus.listen(p, 'big'), named('capacity'));
  assert.throws(() => t.Bus.connect(5), named('socketPath'));
  assert.throws(() => t.Bus.connect(p, { timeoutMs: 'soon' }), named('opts.timeoutMs'));
  await assert.rejects(t.Bus.listenAsync(p, bad), named('capacity'));
  await assert.rejects(t.RpcBus.connectAsync(bad), named('socketPath'));
  assert.throws(() => t.RpcBus.listen(p, 'x'), named('capFwd'));
  assert.throws(() => t.RpcClient.connect('tcp://127.0.0.1:1', { timeoutMs: bad }), named('opts.timeoutMs'));
  assert.throws(() => t.createRpcServer({ socketPath: p, handlers: {}, maxClients: bad }), named('opts.maxClients'));
  assert.throws(() => t.createRpcServer({ socketPath: p, handlers: {}, capFwd: 'x' }), named('opts.capFwd'));
  assert.throws(() => t.createRpcServer({ socketPath: p, handlers: {}, handlerTimeoutMs: 'x' }), named('opts.handlerTimeoutMs'));
  assert.throws(() => t.makeTypeId(bad, 1), named('route'));
  assert.throws(() => t.makeTypeId(1, 70000), named('msgType', RangeError));
  assert.throws(() => t.routeId('x'), named('typeId'));
  assert.throws(() => t.methodId(bad), named('name'));

  const srv = t.createRpcServer({ socketPath: h.sockPath('args-srv'), handlers: { 1: (d) => d } });
  tc.after(() => srv.close());
  const rpc = await t.RpcBus.connectAsync(srv.socketPath, { timeoutMs: 5000 });
  tc.after(() => rpc.close());
  assert.throws(() => rpc.invoke('x', bad), named('msgType'));
  assert.throws(() => rpc.call('x', '1'), named('msgType'));
  assert.throws(() => rpc.notify('x', 70000), named('msgType', RangeError));
  assert.throws(() => rpc.wait(bad), named('correlationId'));
  assert.throws(() => rpc.invoke(5, 1), named('payload'));
  await assert.rejects(rpc.callAsync('x', bad), named('msgType'));
  assert.throws(() => rpc.stream('x', -1), named('msgType', RangeError));
  // The bus still works after all that.
  assert.equal((await rpc.callAsync('fine', 1, { timeoutMs: 5000 })).toString(), 'fine');

  const bp = h.sockPath('args-bus');
  const listening = t.Bus.listenAsync(bp, 4096, { timeoutMs: 5000 });
  const producer = await h.connectRetry(() => t.Bus.connect(bp, { timeoutMs: 5000 }));
  const consumer = await listening;
  tc.after(() => { producer.close(); consumer.close(); });
  assert.throws(() => producer.send('x', bad), named('typeId'));
  assert.throws(() => producer.acquireTx('x'), named('maxSize'));
  assert.throws(() => consumer.recv(bad, { timeoutMs: 1 }), named('spinThreshold'));
  assert.throws(() => consumer.drainBatch('all'), named('maxMsgs'));
});
