'use strict';
// Plain TCP on the io_uring reactor with ferrings' surface: createTcpServer,
// UringTcpServer (single and batched events), capabilities() and zcrxProbe(); a slow
// consumer that gets every one of 100 MB in order with bounded memory; and ferrings'
// README examples run as written against this package.
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const fs = require('node:fs');
const path = require('node:path');
const t = require('..');
const h = require('./helpers');

// A full collection before each memory sample, so the samples count live memory (not
// buffers the collector has not got round to yet).
require('node:v8').setFlagsFromString('--expose-gc');
const gc = require('node:vm').runInNewContext('gc');

function connect(port, host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const c = net.createConnection({ port, host }, () => resolve(c));
    c.on('error', reject);
  });
}

function readAll(socket) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    socket.on('data', (d) => chunks.push(d));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString()));
    socket.on('error', reject);
  });
}

test('createTcpServer: connection, data, write, end, address, getConnections, close', async () => {
  const seen = [];
  const server = t.createTcpServer((c) => {
    seen.push(`connection ${c.remoteAddress}`);
    c.on('data', (d) => {
      c.write('got:');
      c.end(d);
    });
    c.on('close', () => seen.push('close'));
  });
  const info = await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  assert.equal(info.host, '127.0.0.1');
  assert.ok(info.port > 0);
  assert.deepEqual(server.address(), { address: '127.0.0.1', family: 'IPv4', port: info.port });
  const client = await connect(info.port);
  client.write('hello');
  assert.equal(await readAll(client), 'got:hello');
  const n = await new Promise((resolve) => server.getConnections((e, count) => resolve(count)));
  assert.ok(n <= 1);
  await new Promise((resolve) => server.close(resolve));
  assert.deepEqual(seen, ['connection 127.0.0.1', 'close']);
  assert.equal(server.info().acceptedConnections, 1);
});

test('UringTcpServer: single and batched events, sends, closeConnection, info counters', async () => {
  const single = new t.UringTcpServer({ host: '127.0.0.1', port: 0 });
  const events = [];
  const info = single.start((e) => {
    events.push(e.eventType);
    if (e.eventType === 'data') single.sendAndClose(e.connectionId, Buffer.from('pong'));
  });
  const c = await connect(info.port);
  c.write('ping');
  assert.equal(await readAll(c), 'pong');
  await single.close();
  assert.deepEqual(events, ['connection', 'data', 'close']);

  const batch = new t.UringTcpServer({ port: 0, eventBatchSize: 2 });
  const sizes = [];
  const binfo = batch.startBatch((evs) => {
    sizes.push(evs.length);
    const sends = evs.filter((e) => e.eventType === 'data').map((e) => ({ connectionId: e.connectionId, data: e.data }));
    if (sends.length > 0) batch.sendBatchAndClose(sends);
  });
  const clients = await Promise.all([1, 2, 3].map(() => connect(binfo.port)));
  clients.forEach((k, i) => k.write(`echo ${i}`));
  assert.deepEqual(await Promise.all(clients.map(readAll)), ['echo 0', 'echo 1', 'echo 2']);
  assert.ok(sizes.every((n) => n <= 2), `batches of at most eventBatchSize: ${sizes}`);
  const counters = batch.info();
  assert.equal(counters.acceptedConnections, 3);
  assert.equal(counters.bytesReceived, 18);
  assert.equal(counters.droppedBytes, 0);
  await batch.stop();
  assert.throws(() => batch.send(-1, 'x'), TypeError);
});

test('capabilities() and zcrxProbe() report this kernel; ZCRX is refused clearly', () => {
  const caps = t.capabilities();
  assert.equal(typeof caps.ioUring, 'boolean');
  assert.ok(['io_uring', 'epoll'].includes(caps.backend));
  for (const k of ['multishotAccept', 'multishotRecv', 'providedBufferRing', 'zeroCopySend', 'recvBundle', 'zeroCopyReceive']) {
    assert.equal(typeof caps[k], 'boolean', k);
  }
  if (caps.backend === 'io_uring') assert.ok(caps.multishotAccept && caps.multishotRecv && caps.providedBufferRing);
  const z = t.zcrxProbe({ interfaceName: 'eth0', rxQueue: 0 });
  assert.equal(z.supported, false);
  assert.match(z.reason, /header\/data split/);
  assert.throws(() => new t.UringTcpServer({ useZeroCopyReceive: true }), (e) => e.code === 'ERR_TACHYON_UNSUPPORTED');
  assert.throws(() => new t.UringTcpServer({ host: '0.0.0.0' }).start(() => {}), (e) => e.code === 'ERR_TACHYON_PERMISSION');
});

test('100 MB to a slow consumer: every byte, in order, memory bounded, sender held back', { timeout: 120000 }, async (tc) => {
  const TOTAL = 100 * 1024 * 1024;
  const pattern = Buffer.alloc((1 << 20) + 251);
  for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 7 + 3) % 251;
  let got = 0;
  let chunks = 0;
  let maxHeld = 0;
  let bad = null;
  gc();
  const rss0 = process.memoryUsage().rss;
  let rssMax = rss0;
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  const server = t.createTcpServer((c) => {
    c.on('data', (d) => {
      for (let k = 0; k < d.length && bad === null; k++) {
        if (d[k] !== ((got + k) * 7 + 3) % 251) bad = `byte ${got + k}`;
      }
      got += d.length;
      // Deliberately slow: every 32 chunks, stop for 5 ms.
      if (++chunks % 32 === 0) {
        c.pause();
        setTimeout(() => c.resume(), 5);
      }
      if (chunks % 512 === 0) {
        gc();
        rssMax = Math.max(rssMax, process.memoryUsage().rss);
      }
      if (got >= TOTAL) done();
    });
  });
  const info = await new Promise((resolve) => server.listen({ port: 0, host: '127.0.0.1', highWaterMark: 1 << 20 }, resolve));
  tc.after(() => server.close());
  const client = await connect(info.port);
  tc.after(() => client.destroy());
  let sent = 0;
  while (sent < TOTAL) {
    const off = sent % 251;
    const len = Math.min(TOTAL - sent, 1 << 20);
    const ok = client.write(pattern.subarray(off, off + len));
    sent += len;
    if (!ok) await new Promise((r) => client.once('drain', r));
    maxHeld = Math.max(maxHeld, client.writableLength);
  }
  await finished;
  client.end();
  assert.equal(bad, null);
  assert.equal(got, TOTAL);
  const s = server.info();
  assert.equal(s.bytesReceived, TOTAL);
  assert.ok(s.backpressurePauses > 0, `the consumer never held the sender back: ${JSON.stringify(s)}`);
  assert.equal(s.droppedBytes, 0);
  // 100 MB went through; live memory grew by far less.
  assert.ok(rssMax - rss0 < 32 * 1024 * 1024, `rss grew ${(rssMax - rss0) >> 20} MiB`);
  console.log(`100 MB through a slow consumer: ${s.backpressurePauses} pauses, rss +${(rssMax - rss0) >> 20} MiB`);
  await new Promise((resolve) => server.close(resolve));
});

// ferrings' README examples, with `require('./')` replaced by this package's name.
const EXAMPLES = {
  quickstart: `'use strict';
const net = require('node:net');
const { createTcpServer, capabilities } = require('tachyon-rpc');
console.log(capabilities());
const server = createTcpServer((connection) => {
  connection.on('data', (data) => {
    connection.end(Buffer.concat([Buffer.from('echo:'), data]));
  });
});
server.listen(
  {
    host: '127.0.0.1',
    port: 0,
    backlog: 1024,
    useRecvBundle: true,
    useZeroCopySend: true
  },
  (info) => {
    console.log(\`listening on tcp://\${info.host}:\${info.port}\`);
    const client = net.createConnection({ host: info.host, port: info.port }, () => {
      client.write('hello');
    });
    let body = Buffer.alloc(0);
    client.on('data', (chunk) => {
      body = Buffer.concat([body, chunk]);
    });
    client.on('end', () => {
      console.log(body.toString('utf8'));
      server.close();
    });
  }
);`,
  ping: `const net = require('node:net');
const { createTcpServer } = require('tachyon-rpc');
const server = createTcpServer((connection) => {
  connection.on('data', (data) => connection.end(\`ferrings:\${data}\`));
});
server.listen(0, '127.0.0.1', (info) => {
  const client = net.createConnection(info.port, info.host, () => client.write('ping'));
  client.on('data', (data) => {
    console.log(data.toString());
    server.close();
  });
});`,
  raw: `const { UringTcpServer } = require('tachyon-rpc');
const server = new UringTcpServer({
  host: '127.0.0.1',
  port: 0,
  useRecvBundle: true,
  useZeroCopySend: true
});
const info = server.start((event) => {
  if (event.eventType === 'data') {
    server.sendAndClose(event.connectionId, Buffer.from('pong'));
  }
});
console.log(\`tcp://\${info.host}:\${info.port}\`);`,
  batch: `const { UringTcpServer } = require('tachyon-rpc');
const server = new UringTcpServer({ host: '127.0.0.1', port: 0 });
const info = server.startBatch((events) => {
  const sends = [];
  for (const event of events) {
    if (event.eventType === 'data') {
      sends.push({ connectionId: event.connectionId, data: event.data });
    }
  }
  if (sends.length > 0) {
    server.sendBatchAndClose(sends);
  }
});
console.log(\`tcp://\${info.host}:\${info.port}\`);`,
  // Seed 004's "Fixed-response HTTP" and "Native echo benchmark server", as written.
  http: `const { UringHttpServer } = require('tachyon-rpc');

const server = new UringHttpServer({
  host: '127.0.0.1',
  port: 0,
  responseBody: 'hello from ferrings\\n',
  useZeroCopySend: true
});

const info = server.start();
console.log(\`http://\${info.host}:\${info.port}\`);`,
  echo: `const { UringTcpEchoServer } = require('tachyon-rpc');

const server = new UringTcpEchoServer({
  host: '127.0.0.1',
  port: 0,
  useZeroCopySend: true
});

const info = server.start();
console.log(\`tcp://\${info.host}:\${info.port}\`);`,
  probes: `const { capabilities, zcrxProbe } = require('tachyon-rpc');
console.log(capabilities());
console.log(zcrxProbe({ interfaceName: 'eth0' }));
console.log(zcrxProbe({
  interfaceName: 'eth0',
  rxQueue: 0,
  activeRegistration: true
}));`,
};

function example(name) {
  const dir = h.tmpDir('ferrings-readme-');
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(path.resolve(__dirname, '..'), path.join(dir, 'node_modules', 'tachyon-rpc'));
  const file = path.join(dir, `${name}.js`);
  fs.writeFileSync(file, EXAMPLES[name]);
  return h.run(process.execPath, [file], { cwd: dir });
}

test('ferrings README: quick start and the Node-style snippet print what it says', async () => {
  const q = await example('quickstart').done;
  assert.equal(q.code, 0, q.stderr);
  assert.match(q.stdout, /multishotRecv/);
  assert.match(q.stdout, /listening on tcp:\/\/127\.0\.0\.1:\d+/);
  assert.match(q.stdout, /echo:hello/);
  const p = await example('ping').done;
  assert.equal(p.code, 0, p.stderr);
  assert.equal(p.stdout.trim(), 'ferrings:ping');
  const z = await example('probes').done;
  assert.equal(z.code, 0, z.stderr);
  assert.match(z.stdout, /supported: false/);
});

for (const [name, reply] of [['raw', 'pong'], ['batch', 'batched echo']]) {
  test(`ferrings README: the ${name} UringTcpServer snippet serves`, async (tc) => {
    const proc = example(name);
    tc.after(() => proc.child.kill('SIGKILL'));
    await h.waitForLine(proc, 'tcp://');
    const port = Number(proc.stdoutSoFar().trim().split(':').pop());
    const c = await connect(port);
    c.write(name === 'raw' ? 'ping' : reply);
    assert.equal(await readAll(c), reply);
  });
}

test('ferrings README: the fixed-response HTTP server answers every request, pipelined too', async (tc) => {
  const proc = example('http');
  tc.after(() => proc.child.kill('SIGKILL'));
  await h.waitForLine(proc, 'http://');
  const url = proc.stdoutSoFar().trim();
  const get = () => new Promise((resolve, reject) => {
    require('node:http').get(url, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], body }));
    }).on('error', reject);
  });
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(await get(), { status: 200, type: 'text/plain; charset=utf-8', body: 'hello from ferrings\n' });
  }
  // Three requests in one write, the last cut in two: three responses, in order.
  const c = await connect(Number(url.split(':').pop()));
  c.write('GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\n\r\nGET / HT');
  setTimeout(() => c.end('TP/1.1\r\n\r\n'), 20);
  const all = await readAll(c);
  assert.equal(all.split('HTTP/1.1 200 OK').length - 1, 3, all);
  assert.equal(all.split('hello from ferrings').length - 1, 3);
});

test('ferrings README: the native echo server echoes with no JS per byte, and info() counts', async (tc) => {
  const proc = example('echo');
  tc.after(() => proc.child.kill('SIGKILL'));
  await h.waitForLine(proc, 'tcp://');
  const port = Number(proc.stdoutSoFar().trim().split(':').pop());
  const c = await connect(port);
  const payload = 'x'.repeat(100000);
  c.end(payload);
  assert.equal(await readAll(c), payload);
  // In-process too: info() reports the connection and the bytes.
  const server = new t.UringTcpEchoServer({ port: 0 });
  const info = server.start();
  tc.after(() => server.close());
  assert.match(info.backend, /io_uring|epoll/);
  const d = await connect(info.port);
  d.end('ping');
  assert.equal(await readAll(d), 'ping');
  assert.ok(server.info().acceptedConnections >= 1);
  assert.throws(() => new t.UringHttpServer({ statusCode: 42 }), RangeError);
  assert.throws(() => new t.UringHttpServer({ responseBody: 5 }), TypeError);
  assert.throws(() => new t.UringHttpServer({ useZeroCopyReceive: true }), (e) => e.code === 'ERR_TACHYON_UNSUPPORTED');
});
