'use strict';
// A Node process on the other end of a bus, for the tests.
//   bus_peer.js produce PATH COUNT SEED MAX [zero-copy]   connect, send the stream, linger
//   bus_peer.js hold PATH                                  connect, print ready, never read
//   bus_peer.js rpc-serve PATH COUNT                        listen as callee, echo COUNT requests
const t = require('../..');
const h = require('../helpers');

async function main() {
  const [role, path, ...rest] = process.argv.slice(2);
  if (role === 'produce') {
    const [count, seed, max] = rest.slice(0, 3).map(Number);
    const zeroCopy = rest[3] === 'zero-copy';
    const bus = await h.connectRetry(() => t.Bus.connect(path));
    const scratch = Buffer.alloc(max);
    for (let i = 0; i < count; i++) {
      const n = h.payloadSize(seed, i, max);
      if (zeroCopy && i % 2 === 1) {
        const tx = bus.acquireTx(n, { timeoutMs: 10000 });
        const b = tx.bytes();
        h.fillPayload(i, b.subarray(0, n));
        tx.commit(n, h.checksum(b.subarray(0, n)));
      } else {
        const b = scratch.subarray(0, n);
        h.fillPayload(i, b);
        bus.send(b, h.checksum(b), { timeoutMs: 10000 });
      }
    }
    console.log(`ok ${count} messages`);
    setTimeout(() => bus.close(), 200);
  } else if (role === 'hold') {
    const bus = await h.connectRetry(() => t.Bus.connect(path));
    console.log('ready');
    setInterval(() => bus.closed, 1000);
  } else if (role === 'rpc-serve') {
    const bus = await t.RpcBus.listenAsync(path, 1 << 16, 1 << 16, { timeoutMs: 10000 });
    console.log('ready');
    const n = bus.serveForever((data, req) => {
      if (req.msgType !== 1) throw Object.assign(new Error(`no handler for msg_type ${req.msgType}`), { rpcCode: 1 });
      return data;
    }, { count: Number(rest[0]), timeoutMs: 10000 });
    console.log(`ok ${n} messages`);
    setTimeout(() => bus.close(), 200);
  } else {
    throw new Error(`unknown role ${role}`);
  }
}

main().catch((e) => {
  console.log(`error: ${e.code}: ${e.message}`);
  process.exit(1);
});
