'use strict';
// Shared by the node:test suites: peer processes, socket paths, the stream payloads
// (the same as tachyon-tests' payload_size / fill_payload / checksum).
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');

const ROOT = path.resolve(__dirname, '..', '..');
const REQUIRE = process.env.TACHYON_REQUIRE_PEERS === '1';

/**
 * The path of an outside program a test needs, or null with a skip reason. Under
 * `make test` (TACHYON_REQUIRE_PEERS=1) a missing one fails instead of skipping.
 */
function need(envVar, fallback, makeTarget) {
  const p = process.env[envVar] || fallback;
  if (p && fs.existsSync(p)) return { path: p, skip: false };
  const why = `${envVar} (${p}) not found: run \`make ${makeTarget}\``;
  if (REQUIRE) throw new Error(why);
  return { path: null, skip: why };
}

const peer = () => need('TACHYON_PEER', path.join(ROOT, 'target', 'ci', 'tachyon-peer'), 'build');
const python = () => need('TACHYON_PYTHON', path.join(ROOT, '.venv', 'bin', 'python'), 'py');
const upstreamPython = () =>
  need('UPSTREAM_PYTHON', path.join(ROOT, '.venv-upstream', 'bin', 'python'), 'upstream');

// This test process works in a scratch directory of its own (also the temp dir of the
// processes it starts, through TMPDIR), removed when it exits, passed or failed.
const SCRATCH = fs.mkdtempSync(path.join(os.tmpdir(), `tachyon-node-${process.pid}-`));
process.env.TMPDIR = SCRATCH;
process.on('exit', () => fs.rmSync(SCRATCH, { recursive: true, force: true }));

/** A fresh directory in this process's scratch directory. */
function tmpDir(prefix) {
  return fs.mkdtempSync(path.join(SCRATCH, prefix));
}

let counter = 0;
/** A fresh socket path (in the scratch directory). */
function sockPath(name) {
  counter += 1;
  return path.join(SCRATCH, `${counter}-${name}.sock`);
}

/**
 * Spawns a process; `done` resolves with { code, signal, stdout, stderr } when it
 * exits. The process is killed if the test process exits first.
 */
function run(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  done.then(() => process.removeListener('exit', kill));
  return { child, done, stdoutSoFar: () => stdout };
}

/** Runs a Node peer script from test/peers. */
function runNode(script, args) {
  return run(process.execPath, [path.join(__dirname, 'peers', script), ...args]);
}

/** Resolves once `proc` printed `line` (or rejects when it exits first). */
async function waitForLine(proc, line, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  proc.done.then(() => (exited = true));
  while (!proc.stdoutSoFar().includes(line)) {
    if (exited) throw new Error(`peer exited before printing ${line}: ${proc.stdoutSoFar()}`);
    if (Date.now() > deadline) throw new Error(`peer did not print ${line} in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Retries `fn` while it fails because nobody listens yet. */
async function connectRetry(fn, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return fn();
    } catch (e) {
      if (e.code !== 'ERR_TACHYON_CONNECT' || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

const M64 = (1n << 64n) - 1n;
function splitmix64(x) {
  x = (x + 0x9e3779b97f4a7c15n) & M64;
  x = ((x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  x = ((x ^ (x >> 27n)) * 0x94d049bb133111ebn) & M64;
  return x ^ (x >> 31n);
}

/** Payload size of message i of a stream: uniform in 0..=max. */
function payloadSize(seed, i, max) {
  return Number(splitmix64(BigInt(seed) ^ BigInt(i)) % BigInt(max + 1));
}

/** Writes message i's content into `out`: byte j is (i + 31 j) mod 251. */
function fillPayload(i, out) {
  let v = i % 251;
  for (let j = 0; j < out.length; j++) {
    out[j] = v;
    v += 31;
    if (v >= 251) v -= 251;
  }
}

/** The checksum carried in the type id: CRC-32 (IEEE) of the payload. */
const checksum = (buf) => zlib.crc32(buf) >>> 0;

/** Throws unless `data` / `typeId` are message i of the stream. */
function verify(seed, i, max, data, typeId) {
  const want = payloadSize(seed, i, max);
  if (data.length !== want) throw new Error(`message ${i}: size ${data.length}, expected ${want}`);
  if (checksum(data) !== typeId) throw new Error(`message ${i}: checksum mismatch`);
}

/**
 * The payload of entry `seq` of channel writer `writer`, as tachyon_tests::channel_entry
 * writes it in Rust: writer and seq (u64 LE each), the CRC-32 of the rest, then
 * fillPayload content of a splitmix-chosen size up to `max`.
 */
function channelEntry(writer, seq, max) {
  const seed = ((BigInt(writer) * 0x100000001n) & M64) ^ 7n;
  const n = payloadSize(seed, seq, max);
  const out = Buffer.alloc(20 + n);
  out.writeBigUInt64LE(BigInt(writer), 0);
  out.writeBigUInt64LE(BigInt(seq), 8);
  fillPayload(Number(BigInt(seq) ^ BigInt(writer)), out.subarray(20));
  out.writeUInt32LE(checksum(out.subarray(20)), 16);
  return out;
}

/** Checks a channelEntry payload; returns `{ writer, seq }`. */
function checkChannelEntry(buf, max) {
  if (buf.length < 20) throw new Error(`${buf.length} bytes is shorter than the prefix`);
  const writer = Number(buf.readBigUInt64LE(0));
  const seq = Number(buf.readBigUInt64LE(8));
  if (!channelEntry(writer, seq, max).equals(buf)) throw new Error(`writer ${writer} seq ${seq}: content differs`);
  return { writer, seq };
}

/** Whether the package sits in a git checkout (drift checks need one). */
function inGit() {
  return fs.existsSync(path.join(ROOT, '.git'));
}

module.exports = {
  ROOT, tmpDir, peer, python, upstreamPython, sockPath, run, runNode, waitForLine, connectRetry, inGit,
  payloadSize, fillPayload, checksum, verify, channelEntry, checkChannelEntry,
};
