'use strict';
// Plain TCP byte streams on Tachyon's io_uring reactors (epoll where io_uring is
// forbidden), with ferrings' surface: `createTcpServer(onConnection)` (a net.Server-like
// facade), `UringTcpServer` (raw events, single or batched, explicit connection ids),
// `capabilities()` and `zcrxProbe()`.
//
// Unlike a bounded queue that drops data when full, a connection whose JS consumer lags
// stops receiving (TCP then slows its sender) until the consumer catches up: an event
// handler's data counts as consumed when the handler returns, or, for a paused facade
// connection, when `resume()` hands it on. Nothing is dropped.
const { EventEmitter } = require('node:events');
const native = require('./native');

const DEFAULT_BATCH = 64;

function bytesOf(data, encoding) {
  if (typeof data === 'string') return Buffer.from(data, encoding);
  if (Buffer.isBuffer(data)) return data;
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError('data must be a string, Buffer or Uint8Array');
}

function idOf(connectionId) {
  if (!Number.isSafeInteger(connectionId) || connectionId < 0) {
    throw new TypeError(`${connectionId} is not a connection id`);
  }
  return connectionId;
}

/** The native config from ferrings-style options (unsupported fast paths are refused, not faked). */
function configOf(opts = {}) {
  if (opts === null || typeof opts !== 'object') throw new TypeError('options must be an object');
  if (opts.useZeroCopyReceive) {
    const e = new Error('useZeroCopyReceive (ZCRX) is not implemented here; zcrxProbe() says why');
    e.code = 'ERR_TACHYON_UNSUPPORTED';
    throw e;
  }
  const port = opts.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`port must be in 0..=65535, got ${port}`);
  return {
    host: opts.host ?? '127.0.0.1',
    port,
    maxConnections: opts.maxConnections || undefined,
    highWater: opts.highWaterMark,
    idleTimeoutMs: opts.idleTimeoutMs || undefined,
    insecure: Boolean(opts.insecure),
    backend: opts.backend,
  };
}

/**
 * A raw TCP server: `start(onEvent)` or `startBatch(onEvents)`, then `send`/`sendBatch`,
 * `sendAndClose`, `closeConnection`, `info()`, `close()`.
 */
class UringTcpServer {
  #opts;
  #native = null;
  #batchSize;

  constructor(opts = {}) {
    this.#opts = configOf(opts);
    this.#batchSize = opts.eventBatchSize ?? DEFAULT_BATCH;
    if (!Number.isInteger(this.#batchSize) || this.#batchSize < 1) throw new RangeError('eventBatchSize must be a positive integer');
  }

  #begin(deliver) {
    if (this.#native !== null) throw new Error('the server is already started');
    this.#native = native.NativeRawServer.start(this.#opts, deliver);
    return this.info();
  }

  #live() {
    if (this.#native === null) throw new Error('the server is not started');
    return this.#native;
  }

  /** Starts; `onEvent(event)` gets each `connection`, `data` and `close` event. Returns info(). */
  start(onEvent) {
    if (typeof onEvent !== 'function') throw new TypeError('start(onEvent) needs a function');
    return this.#begin((events) => {
      for (const e of events) {
        try {
          onEvent(e);
        } finally {
          if (e.eventType === 'data') this.#native.consumed(e.connectionId, e.data.length);
        }
      }
    });
  }

  /** Starts; `onEvents(events)` gets arrays of up to `eventBatchSize` events. Returns info(). */
  startBatch(onEvents) {
    if (typeof onEvents !== 'function') throw new TypeError('startBatch(onEvents) needs a function');
    return this.#begin((events) => {
      for (let i = 0; i < events.length; i += this.#batchSize) {
        const batch = events.slice(i, i + this.#batchSize);
        try {
          onEvents(batch);
        } finally {
          for (const e of batch) if (e.eventType === 'data') this.#native.consumed(e.connectionId, e.data.length);
        }
      }
    });
  }

  /**
   * Starts; `onEvents(events)` gets every batch, and data counts as consumed only when
   * `consumed(connectionId, bytes)` says so: for consumers that finish later (the
   * facade's paused connections). @internal
   */
  startManual(onEvents) {
    return this.#begin(onEvents);
  }

  /** Queues `data` on a connection. */
  send(connectionId, data) {
    this.#live().send(idOf(connectionId), bytesOf(data));
  }

  /** Queues each `{ connectionId, data }`. */
  sendBatch(sends) {
    for (const s of sends) this.send(s.connectionId, s.data);
  }

  /** Queues `data`, then closes the connection once it is sent. */
  sendAndClose(connectionId, data) {
    this.send(connectionId, data);
    this.closeConnection(connectionId);
  }

  /** sendAndClose for each `{ connectionId, data }`. */
  sendBatchAndClose(sends) {
    for (const s of sends) this.sendAndClose(s.connectionId, s.data);
  }

  /** Closes a connection once what is queued is sent. */
  closeConnection(connectionId) {
    this.#live().end(idOf(connectionId));
  }

  /** Closes a connection now, dropping what is queued. */
  destroyConnection(connectionId) {
    this.#live().destroy(idOf(connectionId));
  }

  /** Says `bytes` of a connection's data were dealt with (after startManual). @internal */
  consumed(connectionId, bytes) {
    this.#live().consumed(idOf(connectionId), bytes);
  }

  /** The address and counters now (accepted/rejected/active connections, bytes, backpressure pauses). */
  info() {
    return this.#live().info();
  }

  /** Stops: every connection sends what is queued and closes. */
  async close() {
    if (this.#native !== null) await this.#native.close();
  }

  /** ferrings' name for close(). */
  stop() {
    return this.close();
  }

  async [Symbol.asyncDispose]() {
    await this.close();
  }
}

/**
 * A server that answers by itself on the reactor thread (no JS per request or per byte):
 * the base of UringHttpServer and UringTcpEchoServer. `start()` binds and returns info().
 */
class ResponderServer {
  #opts;
  #responder;
  #native = null;

  constructor(opts, responder) {
    this.#opts = configOf(opts);
    this.#responder = responder;
  }

  /** Binds and serves; returns info() (host, port, counters). */
  start() {
    if (this.#native !== null) throw new Error('the server is already started');
    // Held natively until close(), this function keeps the process running while the
    // server serves, and (through `this`) the server object from being collected.
    this.#native = native.NativeRawServer.startResponder(this.#opts, this.#responder, () => void this);
    return this.info();
  }

  /** The address and counters now (accepted/active connections, bytes each way). */
  info() {
    if (this.#native === null) throw new Error('the server is not started');
    return this.#native.info();
  }

  /** Stops: every connection sends what is queued and closes. */
  async close() {
    if (this.#native !== null) await this.#native.close();
  }

  /** ferrings' name for close(). */
  stop() {
    return this.close();
  }

  async [Symbol.asyncDispose]() {
    await this.close();
  }
}

/**
 * ferrings' fixed-response HTTP server: the same HTTP/1.1 response (keep-alive) to every
 * request, written on the reactor thread. A benchmark server, not an HTTP framework:
 * requests are answered by their heads, and bodies are not read.
 */
class UringHttpServer extends ResponderServer {
  constructor(opts = {}) {
    if (opts === null || typeof opts !== 'object') throw new TypeError('options must be an object');
    const body = opts.responseBody ?? 'ok\n';
    if (typeof body !== 'string' && !ArrayBuffer.isView(body)) {
      throw new TypeError(`responseBody must be a string or a Buffer, got ${typeof body}`);
    }
    const status = opts.statusCode ?? 200;
    if (!Number.isInteger(status) || status < 100 || status > 599) {
      throw new RangeError(`statusCode must be an integer in 100..=599, got ${status}`);
    }
    const contentType = opts.contentType ?? 'text/plain; charset=utf-8';
    if (typeof contentType !== 'string') throw new TypeError('contentType must be a string');
    super(opts, { kind: 'http', body: bytesOf(body), contentType, status });
  }
}

/** ferrings' native TCP echo: every byte back, with no JS per connection. */
class UringTcpEchoServer extends ResponderServer {
  constructor(opts = {}) {
    super(opts, { kind: 'echo' });
  }
}

/** One client connection of a `createTcpServer` server: 'data', 'end', 'close' events. */
class TcpConnection extends EventEmitter {
  #server;
  #id;
  #paused = false;
  #held = [];
  #ended = false;
  #closed = false;

  /** @internal */
  constructor(server, e) {
    super();
    this.#server = server;
    this.#id = e.connectionId;
    this.remoteAddress = e.remoteAddress;
    this.remotePort = e.remotePort;
    this.remoteFamily = e.remoteAddress?.includes(':') ? 'IPv6' : 'IPv4';
  }

  /** The server's id of this connection. */
  get id() {
    return this.#id;
  }

  /** Whether close has happened. */
  get destroyed() {
    return this.#closed;
  }

  /** @internal */
  _data(data) {
    if (this.#paused || this.#held.length > 0) {
      // Not consumed yet: past its high-water mark the native side stops receiving.
      this.#held.push(data);
      return;
    }
    try {
      this.emit('data', data);
    } finally {
      this.#server._consumed(this.#id, data.length);
    }
  }

  /** @internal */
  _close() {
    if (this.#closed) return;
    this.#closed = true;
    const finish = () => {
      this.emit('end');
      this.emit('close', false);
    };
    if (this.#held.length > 0) this.once('drained', finish);
    else finish();
  }

  /** Queues bytes (a string is encoded with `encoding`, utf8 by default). */
  write(data, encoding, cb) {
    if (typeof encoding === 'function') [cb, encoding] = [encoding, undefined];
    if (this.#ended || this.#closed) {
      const e = new Error('write after end');
      e.code = 'ERR_STREAM_WRITE_AFTER_END';
      if (cb) process.nextTick(cb, e);
      else process.nextTick(() => this.emit('error', e));
      return false;
    }
    this.#server._send(this.#id, bytesOf(data, encoding));
    if (cb) process.nextTick(cb);
    return true;
  }

  /** Writes `data` (if any), then closes once everything queued is sent. */
  end(data, encoding, cb) {
    if (typeof data === 'function') [cb, data] = [data, undefined];
    if (data !== undefined && data !== null) this.write(data, encoding);
    if (!this.#ended) {
      this.#ended = true;
      this.#server._end(this.#id);
    }
    if (cb) this.once('close', () => cb());
    return this;
  }

  /** Closes now, dropping what is queued. */
  destroy() {
    this.#ended = true;
    this.#server._destroy(this.#id);
    return this;
  }

  /** Stops 'data' events; received bytes wait (and the sender is slowed) until resume(). */
  pause() {
    this.#paused = true;
    return this;
  }

  /** Delivers what waited, then goes on delivering. */
  resume() {
    this.#paused = false;
    while (!this.#paused && this.#held.length > 0) {
      const data = this.#held.shift();
      try {
        this.emit('data', data);
      } finally {
        this.#server._consumed(this.#id, data.length);
      }
    }
    if (this.#held.length === 0) this.emit('drained');
    return this;
  }

  /** Whether data events are paused. */
  isPaused() {
    return this.#paused;
  }

  /** TCP_NODELAY is always on here. */
  setNoDelay() {
    return this;
  }

  /** Accepted for net.Socket compatibility (keepalive is always on). */
  setKeepAlive() {
    return this;
  }
}

/** A net.Server-like server over UringTcpServer: 'listening', 'connection', 'close' events. */
class TcpServer extends EventEmitter {
  #raw = null;
  #conns = new Map();
  #info = null;

  /** Binds and serves: `listen(port, host, cb)`, `listen(port, cb)` or `listen(options, cb)`; cb gets info(). */
  listen(...args) {
    const cb = typeof args[args.length - 1] === 'function' ? args.pop() : undefined;
    let opts;
    if (args[0] !== null && typeof args[0] === 'object') opts = { ...args[0] };
    else opts = { port: args[0] ?? 0, host: typeof args[1] === 'string' ? args[1] : undefined };
    if (this.#raw !== null) throw new Error('the server is already listening');
    this.#raw = new UringTcpServer(opts);
    this.#info = this.#raw.startManual((events) => this.#onEvents(events));
    if (cb) this.once('listening', cb);
    process.nextTick(() => this.emit('listening', this.#info));
    return this;
  }

  #onEvents(events) {
    for (const e of events) {
      if (e.eventType === 'connection') {
        const c = new TcpConnection(this, e);
        this.#conns.set(e.connectionId, c);
        this.emit('connection', c);
      } else if (e.eventType === 'data') {
        const c = this.#conns.get(e.connectionId);
        if (c === undefined) this.#raw.consumed(e.connectionId, e.data.length);
        else c._data(e.data);
      } else if (e.eventType === 'close') {
        const c = this.#conns.get(e.connectionId);
        this.#conns.delete(e.connectionId);
        c?._close();
      }
    }
  }

  /** @internal */ _send(id, data) { this.#raw.send(id, data); }
  /** @internal */ _end(id) { this.#raw.closeConnection(id); }
  /** @internal */ _destroy(id) { this.#raw.destroyConnection(id); }
  /** @internal */ _consumed(id, n) { this.#raw.consumed(id, n); }

  /** `{ address, family, port }` once listening, else null. */
  address() {
    if (this.#info === null) return null;
    return { address: this.#info.host, family: this.#info.host.includes(':') ? 'IPv6' : 'IPv4', port: this.#info.port };
  }

  /** Connections open now; with a callback, also `cb(null, count)` as net.Server does. */
  getConnections(cb) {
    const n = this.#conns.size;
    if (typeof cb === 'function') process.nextTick(cb, null, n);
    return n;
  }

  /** Counters (see UringTcpServer.info). */
  info() {
    return this.#raw === null ? null : this.#raw.info();
  }

  /** Stops accepting; open connections send what is queued and close. Emits 'close'. */
  close(cb) {
    if (cb) this.once('close', cb);
    const raw = this.#raw;
    if (raw === null) {
      process.nextTick(() => this.emit('close'));
      return this;
    }
    raw.close().then(
      () => this.emit('close'),
      (e) => this.emit('error', e),
    );
    return this;
  }

  async [Symbol.asyncDispose]() {
    await new Promise((resolve) => this.close(resolve));
  }
}

/** A TCP server on the io_uring reactor: `createTcpServer((connection) => ...).listen(port, host, cb)`. */
function createTcpServer(onConnection) {
  const server = new TcpServer();
  if (typeof onConnection === 'function') server.on('connection', onConnection);
  return server;
}

/** What this kernel lets the TCP transport use, with ferrings' field names beside the raw probe. */
function capabilities() {
  const c = native.tcpCapabilities();
  const has = (name) => [...c.opcodes, ...c.features].some((e) => e.name === name && e.supported);
  return {
    platform: process.platform,
    backend: c.backend,
    ioUring: c.ioUring,
    ioUringUnavailable: c.ioUringUnavailable ?? null,
    ioUringDisabledSysctl: c.ioUringDisabledSysctl ?? null,
    multishotAccept: has('Accept (multishot)'),
    multishotRecv: has('RecvMulti'),
    providedBufferRing: has('buffer ring'),
    recvBundle: false,
    recvBundleSupportedByKernel: has('FEAT_RECVSEND_BUNDLE'),
    zeroCopySend: has('SendZc'),
    registeredSendBuffer: false,
    zeroCopyReceive: false,
    opcodes: Object.fromEntries(c.opcodes.map((e) => [e.name, e.supported])),
    features: Object.fromEntries(c.features.map((e) => [e.name, e.supported])),
  };
}

/** Zero-copy receive (ZCRX) needs NIC header/data split and flow steering; this package does not implement it. */
function zcrxProbe(opts = {}) {
  return {
    supported: false,
    interfaceName: opts.interfaceName ?? null,
    rxQueue: opts.rxQueue ?? null,
    activeRegistration: false,
    reason:
      'zero-copy receive (io_uring ZCRX) is out of scope: it needs a NIC with header/data split, ' +
      'flow steering to a dedicated RX queue and CAP_NET_ADMIN; receives use provided buffer rings instead',
  };
}

module.exports = {
  UringTcpServer, UringHttpServer, UringTcpEchoServer, TcpServer, TcpConnection, createTcpServer, capabilities, zcrxProbe,
};
