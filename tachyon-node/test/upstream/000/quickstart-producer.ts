// producer - main thread or any Worker
import {Bus} from '@tachyon-ipc/core';
using bus = Bus.connect('/tmp/demo.sock');
bus.send(Buffer.from('hello tachyon'), 1);
