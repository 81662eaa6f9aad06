// worker.ts - consumer side (must run on a Worker thread)
import {Bus} from '@tachyon-ipc/core';
using bus = Bus.listen('/tmp/demo.sock', 1 << 16);
const {data, typeId} = bus.recv();
console.log(`received ${data.byteLength} bytes, type_id=${typeId}`);
