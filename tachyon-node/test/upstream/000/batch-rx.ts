import {Bus} from '@tachyon-ipc/core';
function process(data: Buffer, typeId: number, size?: number): void {
  console.log(`batch ${typeId} ${data.toString()} ${size ?? data.length}`);
}
using bus = Bus.listen('/tmp/batch.sock', 1 << 16);
let seen = 0;
while (seen < 3) {
  // --- seed 000, "Batch RX", as written:
  using batch = bus.drainBatch(64);
  for (const msg of batch) {
    process(msg.data, msg.typeId, msg.size);
  }
  // auto-commits on scope exit - all ArrayBuffers are detached
  seen += batch.length;
}
