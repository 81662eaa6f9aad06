import {Bus} from '@tachyon-ipc/core';
function process(data: Buffer, typeId: number): void {
  console.log(`rx ${typeId} ${data.toString()}`);
}
using bus = Bus.listen('/tmp/zc.sock', 1 << 16);
function main(): void {
  // --- seed 000, "Zero-copy RX", as written:
  const rx = bus.acquireRx();
  if (rx === null) return; // EINTR
  using _ = rx;
  process(rx.data(), rx.typeId);
  // commits on scope exit
}
main();
