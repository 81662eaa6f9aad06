// consumer-worker.ts
import {parentPort} from 'node:worker_threads';
import {Bus} from '@tachyon-ipc/core';
using bus = Bus.listen('/tmp/bus.sock', 1 << 16);
parentPort!.postMessage({type: 'ready'});
for (; ;) {
const {data, typeId} = bus.recv();
parentPort!.postMessage({data, typeId}, [data.buffer]);
}
