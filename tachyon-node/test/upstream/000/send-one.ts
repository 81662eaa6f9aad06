import {Bus, makeTypeId} from '@tachyon-ipc/core';
const [path, text] = [process.argv[2], process.argv[3]];
using bus = Bus.connect(path);
bus.send(Buffer.from(text), makeTypeId(0, 42));
