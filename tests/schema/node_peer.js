'use strict';
// The Node side of the schema tests, through the generated TypeScript module.
//   node node_peer.js serve PATH            serve Conformance (a mirror) until killed
//   node node_peer.js call PATH COUNT SEED  call a Conformance server: verify, mirror
//                                           COUNT random values, check -> rejected
//   node node_peer.js feed-serve PATH       serve Feed (server streaming) until killed
//   node node_peer.js feed-call PATH COUNT  stream COUNT ticks from a Feed server, then
//                                           cancel a stream midway
const assert = require('node:assert/strict');
const t = require('tachyon-rpc');
const { ServiceError } = require('tachyon-rpc/schema');
const c = require('./generated/conformance.js');
const feed = require('./generated/feed.js');

function rng(seed) {
  let s = BigInt(seed);
  return () => {
    s = (s + 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
    let z = s;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
    return z ^ (z >> 31n);
  };
}

// Code points, not UTF-16 units: a lone surrogate is not valid UTF-8.
const ALPHABET = Array.from('aZ0 é✓"\\𝄞_');

function everything(next, depth) {
  const below = (n) => Number(next() % BigInt(n));
  const text = () => Array.from({ length: below(10) }, () => ALPHABET[below(ALPHABET.length)]).join('');
  const bytes = () => Buffer.from(Array.from({ length: below(30) }, () => below(256)));
  const leaf = () => ({ name: text(), tags: Array.from({ length: below(3) }, text) });
  const byName = {};
  for (let i = below(3); i > 0; i--) byName[text()] = leaf();
  const v = {
    u8v: below(256),
    u16v: below(65536),
    u32v: below(2) ? 4294967295 : below(4294967296),
    u64v: below(2) ? 0xffffffffffffffffn : next(),
    i8v: below(256) - 128,
    i16v: below(65536) - 32768,
    i32v: below(2) ? -2147483648 : below(4294967296) - 2147483648,
    i64v: below(2) ? -(1n << 63n) : (next() & ((1n << 63n) - 1n)),
    f64v: below(2) ? below(1000) - 500 : below(1000000) / 7,
    flag: below(2) === 0,
    text: text(),
    blob: bytes(),
    color: ['red', 'green', 'blue'][below(3)],
    leaf: leaf(),
    leaves: Array.from({ length: below(3) }, leaf),
    by_name: byName,
    nested: Array.from({ length: below(3) }, () => Array.from({ length: below(3) }, () => below(1000) - 500)),
    blobs: Array.from({ length: below(3) }, bytes),
    level: below(100) - 50,
    type: text(),
    children: depth > 0 ? Array.from({ length: below(3) }, () => everything(next, depth - 1)) : [],
  };
  if (below(2)) v.maybe = text();
  if (below(2)) v.maybe_leaf = leaf();
  if (below(2)) v.maybe_blob = bytes();
  return v;
}

async function connect(path) {
  const deadline = Date.now() + 10000;
  for (;;) {
    try {
      return t.RpcBus.connect(path);
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

async function call(path, count, seed) {
  const bus = await connect(path);
  const client = new c.ConformanceClient(bus, { timeoutMs: 10000 });
  await client.verify();
  const next = rng(seed);
  for (let i = 0; i < count; i++) {
    const v = everything(next, 2);
    const back = i % 2 ? await client.mirror(v) : client.mirrorSync(v);
    // Bytes come back as Buffers, 64-bit integers as bigint: compare as values.
    assert.deepEqual(back, v, `value ${i}`);
  }
  const v = everything(next, 0);
  v.text = 'reject';
  await assert.rejects(client.check(v), (e) => e.code === 'ERR_TACHYON_RPC' && e.rpcCode === c.ConformanceError.REJECTED);
  v.text = 'fine';
  assert.equal(await client.check(v), true);
  // Oneway sends: no reply; the server saw each before the next call.
  const before = await client.recorded(Buffer.alloc(0));
  for (let i = 0; i < 100; i++) client.recordSync({ name: 'n', tags: [] }, { timeoutMs: 5000 });
  await client.record({ name: 'n', tags: ['async'] }, { timeoutMs: 5000 });
  assert.equal(await client.recorded(Buffer.alloc(0)), before + 101n);
  // A value outside the schema never leaves: u8 300 is refused by the server's reader.
  await assert.rejects(client.mirror({ ...v, u8v: 300 }), (e) => e.rpcCode === 4);
  bus.close();
  console.log(`ok ${count} values`);
}

function serve(path) {
  let leaves = 0n;
  const server = t.createRpcServer({
    socketPath: path,
    handlers: c.conformanceHandlers({
      mirror: async (v) => v,
      check: (v) => {
        if (v.text === 'reject') throw new ServiceError(c.ConformanceError.REJECTED, 'rejected as asked');
        return true;
      },
      record: () => {
        leaves += 1n;
      },
      recorded: () => leaves,
    }),
  });
  console.log('ready');
  process.on('SIGTERM', () => server.close().then(() => process.exit(0)));
}

// Receives COUNT topic messages on a Bus it listens on: message i is a blob of i % 17
// bytes of value i % 256 when i % 3 == 0, else the leaf { name: `leaf${i}`, tags: [`${i}`] };
// then one message of another msg_type, which decodeMessage must leave alone.
async function topics(path, count) {
  const listening = t.Bus.listenAsync(path, 1 << 16, { timeoutMs: 20000 });
  console.log('ready');
  const bus = await listening;
  for (let i = 0; i < count; i++) {
    const m = await bus.recvAsync({ timeoutMs: 10000 });
    const got = c.decodeMessage(m.typeId, m.data);
    if (i % 3 === 0) {
      assert.equal(got.topic, 'blobs');
      assert.deepEqual(got.value, Buffer.alloc(i % 17, i % 256));
    } else {
      assert.deepEqual(got, { topic: 'leaves', value: { name: `leaf${i}`, tags: [`${i}`] } });
    }
  }
  const other = await bus.recvAsync({ timeoutMs: 10000 });
  assert.equal(c.decodeMessage(other.typeId, other.data), null);
  bus.close();
  console.log(`ok ${count} topic messages`);
}

// Serves Feed: `ticks` yields `count` ticks (counted in `sent`, so a caller sees a
// cancelled stream stop), `bytes_of` one item per request byte.
function feedServe(path) {
  let sent = 0n;
  const server = t.createRpcServer({
    socketPath: path,
    handlers: feed.feedHandlers({
      *ticks(sub) {
        for (let seq = 0; seq < sub.count; seq++) {
          yield { symbol: sub.symbol, seq, price: seq / 4 };
          sent += 1n;
        }
      },
      async *bytes_of(data) {
        for (const b of data) yield Buffer.from([b]);
      },
      sent: () => sent,
    }),
  });
  console.log('ready');
  process.on('SIGTERM', () => server.close().then(() => process.exit(0)));
}

// Streams from a Feed server through the generated client: COUNT ticks in order,
// bytes_of, then a billion-tick stream left after COUNT / 2 (the server must stop).
async function feedCall(path, count) {
  const bus = await connect(path);
  const client = new feed.FeedClient(bus, { timeoutMs: 10000 });
  await client.verify();
  let n = 0;
  for await (const tick of client.ticks({ symbol: 'TCHY', count })) {
    assert.deepEqual(tick, { symbol: 'TCHY', seq: n, price: n / 4 });
    n++;
  }
  assert.equal(n, count);
  const raw = [];
  for await (const b of client.bytes_of(Buffer.from('abc'))) raw.push(b.toString());
  assert.deepEqual(raw, ['a', 'b', 'c']);
  const before = await client.sent(Buffer.alloc(0));
  n = 0;
  for await (const tick of client.ticks({ symbol: 'X', count: 1_000_000_000 })) {
    assert.equal(tick.seq, n++);
    if (n === count / 2) break; // cancels
  }
  const deadline = Date.now() + 20000;
  while (bus.inFlight !== 0) {
    assert.ok(Date.now() < deadline, 'the cancelled stream never ended');
    await client.sent(Buffer.alloc(0));
  }
  const stopped = (await client.sent(Buffer.alloc(0))) - before;
  await new Promise((r) => setTimeout(r, 50));
  assert.equal((await client.sent(Buffer.alloc(0))) - before, stopped, 'the server kept streaming');
  assert.ok(stopped < 1_000_000n, `${stopped} ticks sent after the cancel`);
  bus.close();
  console.log(`streamed ${count} ticks; cancelled after the server sent ${stopped}`);
}

const [mode, path, count, seed] = process.argv.slice(2);
const die = (e) => {
  console.error(e);
  process.exit(1);
};
if (mode === 'serve') serve(path);
else if (mode === 'feed-serve') feedServe(path);
else if (mode === 'feed-call') feedCall(path, Number(count)).catch(die);
else if (mode === 'topics') topics(path, Number(count)).catch((e) => {
  console.error(e);
  process.exit(1);
});
else call(path, Number(count ?? 100), seed ?? '1').catch((e) => {
  console.error(e);
  process.exit(1);
});
