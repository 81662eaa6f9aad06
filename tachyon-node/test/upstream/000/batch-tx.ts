import {Bus} from '@tachyon-ipc/core';
using bus = Bus.connect('/tmp/batch.sock');
const payloads = [Buffer.from('one'), Buffer.from('two'), Buffer.from('three')];
const typeId = 9;
// --- seed 000, "Batch TX", as written:
// Batch TX - one flush for N messages.
for (const payload of payloads) {
  using tx = bus.acquireTx(payload.byteLength);
  payload.copy(tx.bytes());
  tx.commitUnflushed(payload.byteLength, typeId);
}
bus.flush();
