import {Bus} from '@tachyon-ipc/core';
function process(snapshot: Buffer): void {
  console.log(`snapshot ${snapshot.toString()}`);
}
using bus = Bus.listen('/tmp/pattern.sock', 1 << 16);
let kept: Buffer;
{
  // --- seed 000, "Zero-copy pattern", as written:
  // Safe: copy before the guard closes.
  using rx = bus.acquireRx()!;
  const snapshot = Buffer.from(rx.data()); // heap copy
  // rx.data() would throw after scope exit
  process(snapshot); // valid indefinitely
  kept = rx.data();
}
console.log(`after scope: ${kept.length}`); // detached: length 0
