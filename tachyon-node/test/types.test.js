'use strict';
// The TypeScript declarations: `tsc --noEmit` over test/types/usage.ts, then the same
// file compiled (down-levelling `using`) and run against real buses.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const t = require('..');
const h = require('./helpers');

const PKG = path.resolve(__dirname, '..');
const TSC = path.join(PKG, 'node_modules', '.bin', 'tsc');
const skip = fs.existsSync(TSC) ? false : 'typescript not installed: run `make node-deps`';

test('tsc --noEmit accepts the typed usage (and rejects a forged RxSlot)', { skip }, () => {
  execFileSync(TSC, ['-p', path.join(__dirname, 'types'), '--noEmit'], { stdio: 'pipe' });
});

test('the typed usage runs: `using` commits, rolls back and disposes', { skip }, async () => {
  const out = h.tmpDir('tachyon-ts-');
  execFileSync(TSC, ['-p', path.join(__dirname, 'types'), '--noEmit', 'false', '--outDir', out, '--rootDir', PKG], { stdio: 'pipe' });
  // The compiled file requires '../../index': point that at this package.
  const compiled = path.join(out, 'test', 'types', 'usage.js');
  const src = fs.readFileSync(compiled, 'utf8').replace(/require\("\.\.\/\.\.\/index"\)/g, `require(${JSON.stringify(PKG)})`);
  fs.writeFileSync(compiled, src);
  const usage = require(compiled);
  const p = h.sockPath('ts');
  const listening = t.Bus.listenAsync(p, 256, { timeoutMs: 5000 });
  const producer = await h.connectRetry(() => t.Bus.connect(p));
  const consumer = await listening;
  usage.producer(producer); // typed, rolled back, then fills the ring until FULL
  assert.equal(usage.consumer(consumer), 'typed');
  const next = consumer.recv(undefined, { timeoutMs: 1000 });
  assert.equal(next.data.length, 8, 'the rolled-back slot was never sent');
  producer.close();
  consumer.close();
  const dir = h.tmpDir('tachyon-ts-srv-');
  assert.equal(await usage.servers(dir), 'echo@ts:hi#true');
  assert.equal(await usage.channels(dir), 'ok:1'.length + 1 + 1000);
  await usage.streamingServer(dir).close();
  assert.equal(await usage.sharedBuffers(`tachyon-ts-${process.pid}`), 1 + 10 + 8);
  t.tigaCloseAll();
});

test('index.d.ts declares exactly the runtime exports (the declarations cannot drift)', () => {
  const dts = fs.readFileSync(path.join(PKG, 'index.d.ts'), 'utf8');
  const declared = new Set(
    [...dts.matchAll(/^export declare (?:class|function|const) (\w+)/gm)].map((m) => m[1]),
  );
  const runtime = new Set(Object.keys(t));
  assert.deepEqual([...runtime].filter((k) => !declared.has(k)).sort(), [], 'exported but not declared');
  assert.deepEqual([...declared].filter((k) => !runtime.has(k)).sort(), [], 'declared but not exported');
  const esm = fs.readFileSync(path.join(PKG, 'index.mjs'), 'utf8');
  for (const k of runtime) assert.match(esm, new RegExp(`\\b${k}\\b`), `index.mjs misses ${k}`);
});

test("index.d.ts states the core's numbers: RpcCode and the server options' defaults", () => {
  const dts = fs.readFileSync(path.join(PKG, 'index.d.ts'), 'utf8');
  // RpcCode: the declaration lists the core's table, which the runtime object is.
  const block = dts.match(/export declare const RpcCode: Readonly<\{([^}]*)\}>/)[1];
  const declared = Object.fromEntries([...block.matchAll(/(\w+): (\d+);/g)].map((m) => [m[1], Number(m[2])]));
  assert.deepEqual(declared, { ...t.RpcCode });
  assert.ok(Object.keys(t.RpcCode).length >= 10, 'DEADLINE_EXCEEDED, CANCELLED and UNSUPPORTED are there');
  // ServerOptions: every "(default N" in its doc comments is what the core applies.
  const opts = dts.match(/export interface ServerOptions \{([\s\S]*?)\n\}/)[1];
  const documented = Object.fromEntries(
    [...opts.matchAll(/\(default (\d+)[^\n]*\*\/\n\s+(\w+)\?:/g)].map((m) => [m[2], Number(m[1])]),
  );
  assert.deepEqual(documented, { ...t.serverDefaults() });
});
