'use strict';
// Every snippet of upstream's Node README (@tachyon-ipc/core, ../shared/seeds/000_*),
// run as written: TypeScript with `using`, through tsx, importing '@tachyon-ipc/core',
// which resolves to this package (as `npm install @tachyon-ipc/core@npm:tachyon-rpc`
// would install it). The snippets live in test/upstream/000/; only socket paths change,
// and a connect that starts before its listener is retried (upstream's connect also
// fails at once when nobody listens).
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./helpers');

const PKG = path.resolve(__dirname, '..');
const SNIPPETS = path.join(__dirname, 'upstream', '000');
const TSX = path.join(PKG, 'node_modules', 'tsx');
const skip = fs.existsSync(TSX) ? false : 'tsx not installed: run `make node-deps`';

// Retries Bus.connect while nobody listens (loaded with --import before a snippet).
const RETRY = `
import { Bus } from '@tachyon-ipc/core';
const connect = Bus.connect;
const nap = new Int32Array(new SharedArrayBuffer(4));
Bus.connect = (p, o) => {
  const deadline = Date.now() + 20000;
  for (;;) {
    try { return connect.call(Bus, p, o); } catch (e) {
      if (e.code !== 'ERR_TACHYON_CONNECT' || Date.now() > deadline) throw e;
      Atomics.wait(nap, 0, 0, 5);
    }
  }
};
`;

/** A project directory where '@tachyon-ipc/core' is this package, with the snippets. */
function project() {
  const dir = h.tmpDir('tachyon-seed000-');
  fs.mkdirSync(path.join(dir, 'node_modules', '@tachyon-ipc'), { recursive: true });
  fs.symlinkSync(PKG, path.join(dir, 'node_modules', '@tachyon-ipc', 'core'));
  fs.symlinkSync(TSX, path.join(dir, 'node_modules', 'tsx'));
  fs.writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }\n');
  fs.writeFileSync(path.join(dir, 'retry.mjs'), RETRY);
  const paths = {};
  for (const f of fs.readdirSync(SNIPPETS)) {
    let src = fs.readFileSync(path.join(SNIPPETS, f), 'utf8');
    // Fresh socket paths per run: '/tmp/x.sock' -> '<dir>/x.sock'.
    src = src.replace(/'\/tmp\/([\w-]+)\.sock'/g, (_, n) => {
      paths[n] = path.join(dir, `${n}.sock`);
      return JSON.stringify(paths[n]);
    });
    fs.writeFileSync(path.join(dir, f), src);
  }
  return { dir, paths };
}

/** Runs a snippet with tsx (and the connect retry, unless `retry` is false). */
function run(dir, file, args = [], retry = true) {
  const pre = retry ? ['--import', './retry.mjs'] : [];
  return h.run(process.execPath, ['--import', 'tsx', ...pre, path.join(dir, file), ...args], { cwd: dir });
}

async function pair(listener, connector, extra = []) {
  const { dir } = project();
  const a = run(dir, listener);
  const b = run(dir, connector, extra);
  const [ra, rb] = await Promise.all([a.done, b.done]);
  assert.equal(ra.code, 0, `${listener}: ${ra.stdout}${ra.stderr}`);
  assert.equal(rb.code, 0, `${connector}: ${rb.stdout}${rb.stderr}`);
  return [ra.stdout, rb.stdout];
}

test('seed 000 quickstart: worker.ts consumer, producer', { skip }, async () => {
  const [out] = await pair('quickstart-worker.ts', 'quickstart-producer.ts');
  assert.equal(out.trim(), 'received 13 bytes, type_id=1');
});

test('seed 000 zero-copy TX into zero-copy RX (`using` guards)', { skip }, async () => {
  const [out] = await pair('zero-copy-rx.ts', 'zero-copy-tx.ts');
  assert.equal(out.trim(), 'rx 7 zero-copy payload');
});

test('seed 000 batch TX (commitUnflushed + flush) into batch RX (msg.size)', { skip }, async () => {
  const [out] = await pair('batch-rx.ts', 'batch-tx.ts');
  assert.deepEqual(out.trim().split('\n'), ['batch 9 one 3', 'batch 9 two 3', 'batch 9 three 5']);
});

test('seed 000 zero-copy pattern: a copy survives, the slot view is detached', { skip }, async () => {
  const { dir, paths } = project();
  const a = run(dir, 'zero-copy-pattern.ts');
  const b = run(dir, 'send-one.ts', [paths.pattern, 'keep me']);
  const [ra, rb] = await Promise.all([a.done, b.done]);
  assert.equal(rb.code, 0, rb.stderr);
  assert.equal(ra.code, 0, ra.stderr);
  assert.deepEqual(ra.stdout.trim().split('\n'), ['snapshot keep me', 'after scope: 0']);
});

// tsx cannot load a TypeScript Worker on Node 20 (its hooks are not registered in the
// worker in time: "Unknown file extension .ts", whatever package the worker imports), so
// this snippet's two files are transpiled by tsx's own esbuild first; the only edit is
// the worker's file name in main's `new URL(...)`.
test('seed 000 worker threads: the consumer on a Worker, the producer on the main thread', { skip }, async () => {
  const { dir } = project();
  const esbuild = require(path.join(PKG, 'node_modules', 'esbuild'));
  for (const f of ['consumer-worker', 'main']) {
    const src = fs.readFileSync(path.join(dir, `${f}.ts`), 'utf8').replace("'./consumer-worker.ts'", "'./consumer-worker.mjs'");
    const js = esbuild.transformSync(src, { loader: 'ts', format: 'esm', target: 'node20' }).code;
    fs.writeFileSync(path.join(dir, `${f}.mjs`), js);
  }
  const r = await h.run(process.execPath, ['--import', './retry.mjs', path.join(dir, 'main.mjs')], { cwd: dir }).done;
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^worker got ping type 1$/m);
});

test('seed 000 error handling: the guards, and a TachyonError rethrown', { skip }, async () => {
  const { dir, paths } = project();
  // With a consumer the send goes through.
  const consumer = run(dir, 'quickstart-worker.ts');
  const ok = await run(dir, 'error-handling.ts').done;
  assert.equal(ok.code, 0, ok.stderr);
  assert.match((await consumer.done).stdout, /received 4 bytes, type_id=1/);
  // Without one, connect fails; none of the specific guards match, and the error is
  // rethrown (the process exits 1 with it).
  assert.ok(!fs.existsSync(paths.demo), 'the one-shot listener removed its socket');
  const gone = await run(dir, 'error-handling.ts', [], false).done;
  assert.equal(gone.code, 1);
  assert.match(gone.stdout, /caught true ERR_TACHYON_CONNECT/);
});

test('seed 000 NUMA binding and type id encoding', { skip }, async () => {
  const { dir, paths } = project();
  const a = run(dir, 'numa-and-type-id.ts');
  const b = run(dir, 'send-one.ts', [paths.numa, 'typed']);
  const [ra, rb] = await Promise.all([a.done, b.done]);
  assert.equal(rb.code, 0, rb.stderr);
  assert.equal(ra.code, 0, ra.stderr);
  assert.equal(ra.stdout.trim(), '42 0 42 42');
});

// @tiga-ipc/mmap's usage example (seed 002), with '@tiga-ipc/mmap' resolving to this
// package and a Linux ipcDirectory.
test('seed 002 usage: startTigaServer, a synchronous tigaInvoke, tigaWrite and tigaRead', async () => {
  const dir = h.tmpDir('tachyon-seed002-');
  fs.mkdirSync(path.join(dir, 'node_modules', '@tiga-ipc'), { recursive: true });
  fs.symlinkSync(PKG, path.join(dir, 'node_modules', '@tiga-ipc', 'mmap'));
  fs.copyFileSync(path.join(__dirname, 'upstream', '002', 'usage.js'), path.join(dir, 'usage.js'));
  const ipc = path.join(dir, 'ipc');
  fs.mkdirSync(ipc);
  const r = await h.run(process.execPath, [path.join(dir, 'usage.js')], { cwd: dir, env: { ...process.env, TIGA_DIR: ipc } }).done;
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(r.stdout.trim(), 'reply:hello from node\n1 1');
});
