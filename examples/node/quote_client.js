'use strict';
// The Node caller of the RPC demo: calls the Rust quote service (examples/src/lib.rs)
// through the client generated from schemas/quote.tachyon (examples/generated/ts), sync
// and async, and through the Tiga API (a numbered method is its msg_type), then prints
// what it measured.
//
//   node quote_client.js /tmp/socket-of-rpc_demo-server
const path = require('node:path');
const t = require('tachyon-rpc');
const quote = require('../generated/ts/quote.js');

const ECHO = quote.QuotesMsgType.ECHO;

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

async function connect(socketPath) {
  const deadline = Date.now() + 10000;
  for (;;) {
    try {
      return t.RpcBus.connect(socketPath);
    } catch (e) {
      if (e.code !== 'ERR_TACHYON_CONNECT' || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

async function main() {
  const socketPath = process.argv[2];
  const rpc = await connect(socketPath);
  const client = new quote.QuotesClient(rpc, { timeoutMs: 5000 });
  await client.verify();
  const q = await client.quote({ symbol: 'TCHY', qty: 100, side: quote.Side.SELL });
  console.log(`node caller: client.quote(TCHY x100, sell) -> bid ${q.bid.toFixed(2)} ask ${q.ask.toFixed(2)}`);
  await client.quote({ symbol: '', qty: 0 }).catch((e) => {
    if (e.rpcCode !== quote.QuotesError.BAD_ORDER) throw e;
    console.log(`node caller: client.quote(bad request) -> TachyonRpcError(code ${e.rpcCode}): ${e.rpcMessage}`);
  });
  const payload = Buffer.alloc(32, 7);
  const samples = [];
  for (let i = 0; i < 20000; i++) {
    const t0 = process.hrtime.bigint();
    const reply = client.echoSync(payload);
    samples.push(Number(process.hrtime.bigint() - t0));
    if (reply.length !== 32) throw new Error('echo came back different');
  }
  samples.sort((a, b) => a - b);
  console.log(`node caller: client.echoSync, 32 bytes: p50 ${percentile(samples, 50)} ns, p99 ${percentile(samples, 99)} ns`);

  const req = { symbol: 'TCHY', qty: 100 };
  const typedSamples = [];
  for (let i = 0; i < 20000; i++) {
    const t0 = process.hrtime.bigint();
    client.quoteSync(req);
    typedSamples.push(Number(process.hrtime.bigint() - t0));
  }
  typedSamples.sort((a, b) => a - b);
  console.log(`node caller: client.quoteSync, typed (msgpackr): p50 ${percentile(typedSamples, 50)} ns, p99 ${percentile(typedSamples, 99)} ns`);
  console.log(`node caller: typed/raw p50 ${(percentile(typedSamples, 50) / percentile(samples, 50)).toFixed(2)}x`);

  const asyncSamples = [];
  for (let i = 0; i < 5000; i++) {
    const t0 = process.hrtime.bigint();
    await rpc.callAsync(payload, ECHO, { timeoutMs: 5000 });
    asyncSamples.push(Number(process.hrtime.bigint() - t0));
  }
  asyncSamples.sort((a, b) => a - b);
  console.log(`node caller: echo.callAsync (await each), 32 bytes: p50 ${percentile(asyncSamples, 50)} ns, p99 ${percentile(asyncSamples, 99)} ns`);

  const inFlight = 16;
  const total = 20000;
  let sent = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (sent < total) {
      sent++;
      await rpc.callAsync(payload, ECHO, { timeoutMs: 5000 });
    }
  }));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`node caller: callAsync with ${inFlight} in flight: ${Math.round(total / secs)} calls/s`);

  const dir = path.dirname(socketPath);
  const channel = path.basename(socketPath, '.sock');
  const viaTiga = await t.tigaInvoke(`${channel}.req.demo`, `${channel}.resp.demo`, String(ECHO), 'tiga says hi', { ipcDirectory: dir, timeoutMs: 5000 });
  console.log(`node caller: tigaInvoke('${ECHO}') answered ${JSON.stringify(viaTiga.toString())}`);
  t.tigaCloseAll();
  rpc.close();
}

main().catch((e) => {
  console.error('node caller failed:', e);
  process.exit(1);
});
