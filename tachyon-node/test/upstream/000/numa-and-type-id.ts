import {Bus, makeTypeId, routeId, msgType} from '@tachyon-ipc/core';
const path = '/tmp/numa.sock';
// --- seed 000, "NUMA binding", as written:
using bus = Bus.listen(path, 1 << 16);
bus.setNumaNode(0); // bind SHM pages to NUMA node 0, before the first message
// --- seed 000, "Type ID encoding", as written:
const id = makeTypeId(0, 42); // == 42, identical to v0.3.x
routeId(id); // 0
msgType(id); // 42
const {typeId} = bus.recv();
msgType(typeId); // 42
console.log(`${id} ${routeId(id)} ${msgType(id)} ${msgType(typeId)}`);
