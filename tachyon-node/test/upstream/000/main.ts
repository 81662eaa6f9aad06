// main.ts
import {Worker} from 'node:worker_threads';
import {createRequire} from 'node:module';
import {Bus} from '@tachyon-ipc/core';
const TSX_ESM = createRequire(import.meta.url).resolve('tsx/esm');
const worker = new Worker(new URL('./consumer-worker.ts', import.meta.url), {
execArgv: ['--import', TSX_ESM],
});
using bus = Bus.connect('/tmp/bus.sock');
bus.send(Buffer.from('ping'), 1);
// --- test harness (not part of the snippet): report what the worker received.
worker.on('message', (m) => {
  if (m.type === 'ready') return;
  console.log(`worker got ${Buffer.from(m.data).toString()} type ${m.typeId}`);
  void worker.terminate();
});
worker.on('error', (e) => console.log(`worker error ${e.message}`));
