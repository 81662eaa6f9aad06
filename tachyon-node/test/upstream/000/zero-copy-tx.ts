import {Bus} from '@tachyon-ipc/core';
using bus = Bus.connect('/tmp/zc.sock');
const payload = Buffer.from('zero-copy payload');
// --- seed 000, "Zero-copy TX", as written:
using tx = bus.acquireTx(64);
payload.copy(tx.bytes());
tx.commit(payload.byteLength, 7);
