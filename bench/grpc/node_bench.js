'use strict';
// Node RPC over TCP: tachyon's RpcClient and createRpcServer against @grpc/grpc-js (the
// same echo.proto, same 32-byte payload), side by side in one run.
//
//   node node_bench.js [--rounds R] [--seconds S] [--samples N]
//
// Latency: round trips on one connection, client and server pinned to CPU 0 (a wake-up
// across vCPUs adds 50 to 70 us on this VM). Throughput: 64 connections x 8 calls in
// flight, client on CPU 0, server on CPU 1. Our client's callAsync waits on libuv's
// thread pool, so the client runs with UV_THREADPOOL_SIZE=128. Rounds alternate the two
// stacks; medians are printed. Not a test: `make bench-grpc` runs it.
const { spawn, spawnSync } = require('node:child_process');
const path = require('node:path');

const PAYLOAD = Buffer.alloc(32, 7);
const DEPTH = 8;
const PROTO = path.join(__dirname, 'echo.proto');

function grpc() {
  const g = require('@grpc/grpc-js');
  const loader = require('@grpc/proto-loader');
  const def = g.loadPackageDefinition(loader.loadSync(PROTO, { keepCase: true }));
  return { g, Echo: def.tachyonbench.Echo };
}

function serve(kind) {
  if (kind === 'tachyon') {
    const t = require('tachyon-rpc');
    const server = t.createRpcServer({ address: 'tcp://127.0.0.1:0', handlers: { 1: (d) => d } });
    console.log('ready', server.address.split(':').pop());
    return;
  }
  const { g, Echo } = grpc();
  const server = new g.Server();
  server.addService(Echo.service, { Echo: (call, cb) => cb(null, { data: call.request.data }) });
  server.bindAsync('127.0.0.1:0', g.ServerCredentials.createInsecure(), (e, port) => {
    if (e) throw e;
    console.log('ready', port);
  });
}

async function client(what, kind, port, arg) {
  if (kind === 'tachyon') {
    const t = require('tachyon-rpc');
    if (what === 'latency') {
      const c = t.RpcClient.connect(`tcp://127.0.0.1:${port}`);
      const v = [];
      for (let i = 0; i < arg * 1.1; i++) {
        const s = process.hrtime.bigint();
        c.invoke(PAYLOAD, 1);
        if (i >= arg * 0.1) v.push(Number(process.hrtime.bigint() - s));
      }
      return v;
    }
    const c = t.RpcClient.connect(`tcp://127.0.0.1:${port}`, { connections: 64 });
    return run(arg, () => c.callAsync(PAYLOAD, 1));
  }
  const { g, Echo } = grpc();
  const mk = () => new Echo(`127.0.0.1:${port}`, g.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  const call = (stub) => new Promise((resolve, reject) => stub.Echo({ data: PAYLOAD }, (e, r) => (e ? reject(e) : resolve(r))));
  if (what === 'latency') {
    const stub = mk();
    await call(stub);
    const v = [];
    for (let i = 0; i < arg * 1.1; i++) {
      const s = process.hrtime.bigint();
      await call(stub);
      if (i >= arg * 0.1) v.push(Number(process.hrtime.bigint() - s));
    }
    return v;
  }
  const stubs = Array.from({ length: 64 }, mk);
  let next = 0;
  return run(arg, () => call(stubs[next++ % 64]));
}

/** 64 x DEPTH loops of calls for `seconds` (after a warm-up): calls/s. */
async function run(seconds, call) {
  const loop = async (until) => {
    let n = 0;
    while (Date.now() < until) {
      await call();
      n++;
    }
    return n;
  };
  const all = (until) => Promise.all(Array.from({ length: 64 * DEPTH }, () => loop(until)));
  await all(Date.now() + 300);
  const t = Date.now();
  const counts = await all(t + seconds * 1000);
  return [counts.reduce((a, b) => a + b, 0) / ((Date.now() - t) / 1000)];
}

function start(kind, cpu) {
  const p = spawn('taskset', ['-c', String(cpu), process.execPath, __filename, 'serve', kind], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve) => {
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
      const m = /ready (\d+)/.exec(out);
      if (m) resolve({ p, port: Number(m[1]) });
    });
  });
}

function measure(what, kind, port, arg) {
  const r = spawnSync('taskset', ['-c', '0', process.execPath, __filename, 'client', what, kind, String(port), String(arg)], {
    env: { ...process.env, UV_THREADPOOL_SIZE: '128' },
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`${kind} ${what}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const pct = (v, q) => {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(s.length * q) - 1)] / 1000;
};

async function main() {
  const [role, ...rest] = process.argv.slice(2);
  if (role === 'serve') return serve(rest[0]);
  if (role === 'client') {
    const out = await client(rest[0], rest[1], Number(rest[2]), Number(rest[3]));
    process.stdout.write(JSON.stringify(out));
    process.exit(0);
  }
  const opt = (name, d) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : d;
  };
  const rounds = opt('--rounds', 3);
  const seconds = opt('--seconds', 2);
  const samples = opt('--samples', 5000);
  const kinds = ['tachyon', 'grpc-js'];
  const rows = Object.fromEntries(kinds.map((k) => [k, { p50: [], p99: [], tput: [] }]));
  for (let r = 0; r < rounds; r++) {
    for (const k of kinds) {
      let s = await start(k, 0);
      const v = measure('latency', k, s.port, samples);
      s.p.kill('SIGKILL');
      rows[k].p50.push(pct(v, 0.5));
      rows[k].p99.push(pct(v, 0.99));
      s = await start(k, 1);
      rows[k].tput.push(measure('throughput', k, s.port, seconds)[0]);
      s.p.kill('SIGKILL');
    }
  }
  console.log(
    `Node, unary echo of ${PAYLOAD.length} bytes over loopback TCP. Latency: one connection, client and server on CPU 0. ` +
      `Throughput: 64 connections x ${DEPTH} in flight, client on CPU 0, server on CPU 1. ${rounds} rounds, medians.`,
  );
  console.log(`${''.padEnd(10)} ${'p50 us'.padStart(9)} ${'p99 us'.padStart(9)} ${'calls/s'.padStart(10)}`);
  const med = {};
  for (const k of kinds) {
    med[k] = { p50: median(rows[k].p50), p99: median(rows[k].p99), tput: median(rows[k].tput) };
    console.log(`${k.padEnd(10)} ${med[k].p50.toFixed(1).padStart(9)} ${med[k].p99.toFixed(1).padStart(9)} ${med[k].tput.toFixed(0).padStart(10)}`);
  }
  console.log(
    `tachyon/grpc-js: p50 ${(med.tachyon.p50 / med['grpc-js'].p50).toFixed(2)}x (target <= 0.2x), ` +
      `throughput ${(med.tachyon.tput / med['grpc-js'].tput).toFixed(1)}x (target >= 5x)`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
