import {Bus, isAbiMismatch, isFull, isPeerDead, isTachyonError} from '@tachyon-ipc/core';
const payload = Buffer.from('ping');
// --- seed 000, "Error handling", as written:
try {
  using bus = Bus.connect('/tmp/demo.sock');
  bus.send(payload, 1);
} catch (err) {
  if (isAbiMismatch(err)) {
    throw new Error('Rebuild producer and consumer from the same Tachyon tag.');
  }
  if (isFull(err)) {
    // Ring buffer full - producer outpacing consumer.
  }
  if (isPeerDead(err)) {
    // Bus entered FATAL_ERROR - corrupted message header. Close immediately.
  }
  console.log(`caught ${isTachyonError(err)} ${(err as {code: string}).code}`);
  throw err;
}
