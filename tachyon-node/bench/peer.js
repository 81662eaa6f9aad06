'use strict';
// The other process of the Node benchmark.
//   peer.js produce PATH COUNT     connect and send COUNT 32-byte messages
//   peer.js rpc-echo PATH          listen as RPC callee, echo until the caller leaves
//   peer.js net-echo PATH          a net.Server on a UNIX socket echoing every chunk
const net = require('node:net');
const t = require('..');

const [role, path, count] = process.argv.slice(2);

async function connect() {
  for (;;) {
    try {
      return t.Bus.connect(path);
    } catch (e) {
      if (e.code !== 'ERR_TACHYON_CONNECT') throw e;
      await new Promise((r) => setTimeout(r, 2));
    }
  }
}

(async () => {
  if (role === 'produce') {
    const bus = await connect();
    const msg = Buffer.alloc(32, 1);
    for (let i = 0; i < Number(count); i++) bus.send(msg, i & 0xffff, { timeoutMs: 20000 });
    bus.flush();
    setTimeout(() => bus.close(), 100);
  } else if (role === 'rpc-echo') {
    const rpc = t.RpcBus.listen(path, 1 << 16, 1 << 16, { timeoutMs: 30000 });
    rpc.serveForever((data) => data);
    rpc.close();
  } else if (role === 'net-echo') {
    const server = net.createServer((s) => {
      s.setNoDelay(true);
      s.on('data', (d) => s.write(d));
      s.on('close', () => server.close());
    });
    server.listen(path, () => console.log('ready'));
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
