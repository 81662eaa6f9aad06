'use strict';
// The Node benchmark (not a test): Node to Node and Node to Rust, against Node's own
// `net` over a UNIX socket and against Rust to Rust over the same core, in one run. Run
// with `make bench-node`, which pins this process to CPU 0; every peer it starts runs on
// CPU 1 (through taskset). Prints one table with the ratios.
const { spawn } = require('node:child_process');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const fs = require('node:fs');
const t = require('..');

const PEER = process.env.TACHYON_PEER;
const STREAM = Number(process.env.BENCH_STREAM ?? 2_000_000);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 50_000);
let n = 0;
const sock = (name) => path.join(os.tmpdir(), `tachyon-bench-${process.pid}-${++n}-${name}.sock`);

// Peers run on CPU 1 (this process is pinned to CPU 0 by `make bench-node`).
const PEER_CPU = process.env.BENCH_PEER_CPU ?? '1';
function spawnPeer(cmd, args) {
  const child = spawn('taskset', ['-c', PEER_CPU, cmd, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const done = new Promise((r) => child.on('exit', r));
  const ready = async () => {
    while (!out.includes('ready')) await new Promise((r) => setTimeout(r, 2));
  };
  return { child, done, ready };
}
const nodePeer = (...args) => spawnPeer(process.execPath, [path.join(__dirname, 'peer.js'), ...args]);

function stats(samples) {
  samples.sort((a, b) => a - b);
  const at = (p) => samples[Math.min(samples.length - 1, Math.floor((samples.length * p) / 100))];
  return { p50: at(50), p99: at(99) };
}
const now = () => process.hrtime.bigint();

/** Messages per second (millions) received with `take(bus) -> messages` (awaited). */
async function stream(producer, take) {
  const p = sock('s');
  const listening = t.Bus.listenAsync(p, 1 << 22, { timeoutMs: 20000 });
  const peer = producer(p);
  const bus = await listening;
  let got = 0;
  let t0 = null;
  while (got < STREAM) {
    const batch = await take(bus);
    if (t0 === null) t0 = now();
    for (const m of batch) got += m.data.length >= 0 ? 1 : 0; // read every message
    batch.commit?.();
  }
  const secs = Number(now() - t0) / 1e9;
  bus.close();
  await peer.done;
  return got / secs / 1e6;
}
const streamSync = (producer) => stream(producer, (bus) => bus.drainBatch(1024, undefined, { timeoutMs: 20000 }));
const streamAsync = (producer) => stream(producer, (bus) => bus.recvManyAsync(1024, { timeoutMs: 20000 }));

async function rpcRtt(startServer, msgType) {
  const p = sock('r');
  const server = startServer(p);
  let rpc;
  for (;;) {
    try {
      rpc = t.RpcBus.connect(p);
      break;
    } catch (e) {
      if (e.code !== 'ERR_TACHYON_CONNECT') throw e;
      await new Promise((r) => setTimeout(r, 2));
    }
  }
  const payload = Buffer.alloc(32, 3);
  for (let i = 0; i < 2000; i++) rpc.invoke(payload, msgType);
  const sync = [];
  for (let i = 0; i < SAMPLES; i++) {
    const t0 = now();
    rpc.invoke(payload, msgType);
    sync.push(Number(now() - t0));
  }
  const asyn = [];
  for (let i = 0; i < Math.min(SAMPLES, 20000); i++) {
    const t0 = now();
    await rpc.callAsync(payload, msgType);
    asyn.push(Number(now() - t0));
  }
  rpc.close();
  server.child.kill();
  await server.done;
  return { sync: stats(sync), async: stats(asyn) };
}

async function netRtt() {
  const p = sock('net');
  const server = nodePeer('net-echo', p);
  await server.ready();
  const s = net.createConnection(p);
  s.setNoDelay(true);
  await new Promise((r) => s.once('connect', r));
  const payload = Buffer.alloc(32, 3);
  let pending = null;
  let have = 0;
  s.on('data', (d) => {
    have += d.length;
    if (have >= 32 && pending) {
      have -= 32;
      const r = pending;
      pending = null;
      r();
    }
  });
  const once = () => new Promise((r) => {
    pending = r;
    s.write(payload);
  });
  for (let i = 0; i < 2000; i++) await once();
  const samples = [];
  for (let i = 0; i < Math.min(SAMPLES, 20000); i++) {
    const t0 = now();
    await once();
    samples.push(Number(now() - t0));
  }
  s.destroy();
  await server.done;
  fs.rmSync(p, { force: true });
  return stats(samples);
}

/** Rust to Rust: tachyon-peer's rpc-bench (on this process's CPU) against its rpc-serve. */
async function rustToRust() {
  const p = sock('rr');
  const server = spawnPeer(PEER, ['rpc-serve', '--path', p]);
  await server.ready();
  const out = await new Promise((resolve, reject) => {
    const c = spawn('taskset', ['-c', '0', PEER, 'rpc-bench', '--path', p, '--count', String(SAMPLES)],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    c.stdout.on('data', (d) => (text += d));
    c.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`rpc-bench exited ${code}`))));
  });
  server.child.kill();
  await server.done;
  const m = /rtt p50=(\d+) p99=(\d+)/.exec(out);
  return { p50: Number(m[1]), p99: Number(m[2]) };
}

async function main() {
  const nodeProducer = (p) => nodePeer('produce', p, String(STREAM));
  const rustProducer = (p) => spawnPeer(PEER, ['produce', '--path', p, '--connect', '--count', String(STREAM),
    '--seed', '1', '--max-size', '32', '--batch', '64', '--timeout-ms', '20000']);
  const rows = [];
  const mps = (v) => v.toFixed(2);
  rows.push(['streaming, Node -> Node, sync drainBatch (M msg/s)', mps(await streamSync(nodeProducer))]);
  rows.push(['streaming, Node -> Node, async batches (M msg/s)', mps(await streamAsync(nodeProducer))]);
  if (PEER) {
    rows.push(['streaming, Rust -> Node, sync drainBatch (M msg/s)', mps(await streamSync(rustProducer))]);
    rows.push(['streaming, Rust -> Node, async batches (M msg/s)', mps(await streamAsync(rustProducer))]);
  }
  const base = await netRtt();
  const r2r = PEER ? await rustToRust() : null;
  const n2n = await rpcRtt((p) => nodePeer('rpc-echo', p), 1);
  const n2r = PEER
    ? await rpcRtt((p) => {
      const s = spawnPeer(PEER, ['rpc-serve', '--path', p]);
      return s;
    }, 1)
    : null;
  console.log(`tachyon-node benchmark: ${STREAM} streamed messages (32 bytes; Rust's are 0..32), ${SAMPLES} RPC samples, 32-byte echo`);
  for (const [k, v] of rows) console.log(`${k.padEnd(58)}${v.padStart(10)}`);
  const line = (k, s) => console.log(`${k.padEnd(58)}${String(s.p50).padStart(10)}${String(s.p99).padStart(10)}${(base.p50 / s.p50).toFixed(1).padStart(10)}`);
  console.log(`${'round trip (ns)'.padEnd(58)}${'p50'.padStart(10)}${'p99'.padStart(10)}${'x net p50'.padStart(10)}`);
  line('Node net over a UNIX socket, echo (baseline)', base);
  if (r2r) line('RPC echo Rust -> Rust (tachyon-peer, both pinned)', r2r);
  line('RPC echo Node -> Node, sync invoke', n2n.sync);
  line('RPC echo Node -> Node, async callAsync', n2n.async);
  if (n2r) {
    line('RPC echo Node -> Rust, sync invoke', n2r.sync);
    line('RPC echo Node -> Rust, async callAsync', n2r.async);
  }
  console.log('target: RPC round trip p50 at least 10x better than the UNIX-socket baseline');
  if (r2r) {
    console.log(`ratio: Node -> Node sync / Rust -> Rust p50 = ${(n2n.sync.p50 / r2r.p50).toFixed(2)} (target <= 3)`);
    if (n2r) console.log(`ratio: Node -> Rust sync / Rust -> Rust p50 = ${(n2r.sync.p50 / r2r.p50).toFixed(2)}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
