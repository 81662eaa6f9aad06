'use strict';
// The Node side of the network-namespace tests (see py_peer.py for the roles):
//   node node_peer.js serve ADDR [TLS_DIR]
//   node node_peer.js call ADDR [TLS_DIR [WHO]]
const { createRpcServer, RpcClient, TachyonRpcError } = require('tachyon-rpc');
// msgpackr as the package has it (the package's own dependency, wherever NODE_PATH points).
const { pack, unpack } = require(require.resolve('msgpackr', { paths: [require.resolve('tachyon-rpc')] }));

const [role, address, tlsDir, who = 'client'] = process.argv.slice(2);

function clientTls() {
  if (!tlsDir) return undefined;
  const ca = `${tlsDir}/ca.pem`;
  return who === 'none' ? { ca } : { ca, cert: `${tlsDir}/${who}.pem`, key: `${tlsDir}/${who}.key` };
}

async function serve() {
  const tls = tlsDir ? { cert: `${tlsDir}/server.pem`, key: `${tlsDir}/server.key`, ca: `${tlsDir}/ca.pem` } : undefined;
  const server = createRpcServer({
    address,
    tls,
    insecure: !tls,
    handlers: {
      1: (data) => data,
      2: (data) => {
        const { a, b } = unpack(data);
        return pack({ sum: a + b });
      },
      7: (_data, ctx) => pack(ctx.peer?.commonName ?? ''),
    },
  });
  console.log('ready', server.address);
  process.on('SIGTERM', async () => {
    await server.close();
    process.exit(0);
  });
}

async function call() {
  let client;
  try {
    client = RpcClient.connect(address, { timeoutMs: 10000, tls: clientTls() });
  } catch (e) {
    if (e.code === 'ERR_TACHYON_TLS') {
      console.log(`tls-error: ${e.message}`);
      process.exit(3);
    }
    throw e;
  }
  const payload = Buffer.alloc(16384, 7);
  for (let i = 0; i < 100; i++) {
    if (!client.invoke(payload, 1, { timeoutMs: 10000 }).equals(payload)) throw new Error('echo differs');
  }
  const replies = await Promise.all([1, 2, 3].map((i) => client.callAsync(pack({ a: 40, b: i }), 2, { timeoutMs: 10000 })));
  const sums = replies.map((r) => unpack(r).sum);
  if (sums.join() !== '41,42,43') throw new Error(`add gave ${sums}`);
  try {
    client.invoke(Buffer.alloc(0), 999, { timeoutMs: 10000 });
    throw new Error('an unknown msg_type was answered');
  } catch (e) {
    if (!(e instanceof TachyonRpcError) || e.rpcCode !== 1) throw e;
  }
  console.log(`ok caller=${unpack(client.invoke(pack(null), 7, { timeoutMs: 10000 }))}`);
  client.close();
}

(role === 'serve' ? serve() : call()).catch((e) => {
  console.error(e);
  process.exit(1);
});
