'use strict';
// Multi-client servers: every client gets a native thread (the Rust core's RpcServer);
// each request is handed to JS, answered by a handler that may return a Promise.
const native = require('./native');
const { RpcCode } = require('./errors');
const { bytesOf } = require('./bus');
const arg = require('./args');

function toBytes(v) {
  if (v === undefined || v === null) return Buffer.alloc(0);
  return bytesOf(v, 'a handler result');
}

/** Where handler failures go without an onError hook (after the error reply). */
function logHandlerError(e, ctx) {
  console.error(`tachyon: a handler failed (the caller got the error reply):`, e, ctx);
}

function isThenable(v) {
  return v !== null && typeof v === 'object' && typeof v.then === 'function';
}

/** Marks handler functions that stream (see `streaming`). */
const kStream = Symbol('tachyon.streaming');

/**
 * Marks `fn` as a server-streaming handler: it returns an iterable or async iterable
 * (a generator, an async generator) of items, each sent as one reply of the call.
 * `createRpcServer({ handlers: { 5: streaming(async function* (data) { yield data; }) } })`.
 */
function streaming(fn) {
  if (typeof fn !== 'function') throw new TypeError('streaming() takes a handler function');
  fn[kStream] = true;
  return fn;
}

/** Whether `fn` was marked with `streaming`. */
function isStreaming(fn) {
  return typeof fn === 'function' && fn[kStream] === true;
}

/** Items a stream may queue natively before the producer waits for the caller. */
const STREAM_HIGH_WATER = 64;

/**
 * Sends a streaming handler's items: pulls one, queues it natively, and waits for
 * room when the caller reads slower than the handler produces. A cancel from the
 * caller (or the server closing) stops the pulling and runs the iterator's `return()`,
 * so a generator's `finally` blocks run.
 */
async function pumpStream(server, req, items, fail) {
  let it;
  try {
    if (items == null) throw new TypeError('a streaming handler must return an iterable or async iterable');
    if (typeof items[Symbol.asyncIterator] === 'function') it = items[Symbol.asyncIterator]();
    else if (typeof items[Symbol.iterator] === 'function') it = items[Symbol.iterator]();
    else throw new TypeError('a streaming handler must return an iterable or async iterable');
    for (;;) {
      const step = await it.next();
      if (step.done) {
        server.streamEnd(req.requestId);
        return;
      }
      const queued = server.streamItem(req.requestId, toBytes(step.value));
      if (queued < 0 || (queued >= STREAM_HIGH_WATER && !(await server.streamDrained(req.requestId)))) {
        await it.return?.();
        return;
      }
    }
  } catch (e) {
    fail(req, e);
  }
}

/**
 * Starts a native server at `socketPath` and routes each request with `route(req)`,
 * which returns the answer (or a Promise of it) or throws. Shared by createRpcServer
 * and the Tiga server.
 * @internal
 */
function startNative(config, route, onError = logHandlerError) {
  let server = null;
  const fail = (req, e) => {
    const code = Number.isInteger(e?.rpcCode) ? e.rpcCode : RpcCode.HANDLER_ERROR;
    const message = e instanceof Error ? e.message : String(e);
    server.respondError(req.requestId, code, message);
    if (onError) {
      try {
        onError(e, req);
      } catch {
        // a failing error hook must not take the server down
      }
    }
  };
  const answer = (req, v) => {
    try {
      server.respond(req.requestId, toBytes(v));
    } catch (e) {
      fail(req, e);
    }
  };
  server = native.NativeServer.start(config, (reqs) => {
    for (const req of reqs) handle(req);
  });
  return server;

  function handle(req) {
    let out;
    try {
      out = route(req);
    } catch (e) {
      fail(req, e);
      return;
    }
    if (req.stream) {
      pumpStream(server, req, out, fail);
      return;
    }
    if (isThenable(out)) {
      out.then((v) => answer(req, v), (e) => fail(req, e));
    } else {
      answer(req, out);
    }
  }
}

/** A running multi-client RPC server. */
class RpcServer {
  #n;

  /** @internal */
  constructor(n) {
    this.#n = n;
  }

  /**
   * Clients accepted, refused and active, requests answered, protocol errors,
   * backpressure pauses (TCP), and `errors`: error replies sent, keyed by code.
   * Readable after close() too.
   */
  stats() {
    return this.#n.stats();
  }

  /** Where clients connect (for TCP, `tcp://host:port` with the real port). */
  get socketPath() {
    return this.#n.path;
  }

  /** The same as socketPath. */
  get address() {
    return this.#n.path;
  }

  /** Whether it still serves. */
  get running() {
    return this.#n.running;
  }

  /** Stops accepting, ends every session (their callers see the peer gone). */
  async close() {
    if (this.#n.running) await this.#n.close();
  }

  async [Symbol.asyncDispose]() {
    await this.close();
  }
}

function serverConfig(opts, socketPath, tiga, streams) {
  const ms = (name) => {
    const v = opts[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !(v >= 0)) throw arg.typeError(`opts.${name}`, 'a non-negative number of milliseconds', v);
    return v;
  };
  return {
    socketPath,
    tiga,
    streams,
    capFwd: arg.optInt(opts.capFwd, 'opts.capFwd', 1, 0xffffffff),
    capRev: arg.optInt(opts.capRev, 'opts.capRev', 1, 0xffffffff),
    maxClients: arg.optInt(opts.maxClients, 'opts.maxClients', 1, 0xffffffff), // 0: refused
    handlerTimeoutMs: ms('handlerTimeoutMs'),
    replyTimeoutMs: ms('replyTimeoutMs'),
    workers: arg.optInt(opts.workers, 'opts.workers', 0, 1024),
    allowRemote: opts.allowRemote || opts.insecure,
    tls: require('./tcp').serverTls(opts.tls),
  };
}

/**
 * A server routing on msg_type, like Python's RpcDispatcher:
 * `createRpcServer({ socketPath, handlers: { 1: (data, ctx) => data } })`.
 * Handlers get `(data: Buffer, ctx: { msgType, requestId, peer })` and return a Buffer,
 * Uint8Array, string, or a Promise of one. A thrown error (or rejected Promise)
 * becomes the 0xFFFF error reply; its `rpcCode` property sets the code. A handler
 * wrapped in `streaming()` yields any number of items instead.
 */
function createRpcServer(opts) {
  if (opts === null || typeof opts !== 'object') throw new TypeError('options object required');
  const { handlers = {}, onError = logHandlerError } = opts;
  // `address: 'tcp://host:port'` serves over TCP; `socketPath` over shared memory.
  const socketPath = opts.address ?? opts.socketPath;
  if (typeof socketPath !== 'string') throw new TypeError('socketPath (or address) must be a string');
  const table = new Map();
  const streams = [];
  for (const [k, fn] of Object.entries(handlers)) {
    const t = Number(k);
    if (!Number.isInteger(t) || t < 0 || t > 0xfffe) {
      throw new RangeError(`handler key ${k} is not a msg_type in 0..=65534 (0xFFFF is the error sentinel)`);
    }
    if (typeof fn !== 'function') throw new TypeError(`handler for msg_type ${k} is not a function`);
    if (isStreaming(fn)) {
      if (t === 0xfffe) throw new RangeError('msg_type 0xFFFE ends streams; no streaming handler may use it');
      streams.push(t);
    }
    table.set(t, fn);
  }
  const route = (req) => {
    const fn = table.get(req.msgType);
    if (fn === undefined) {
      const e = new Error(`no handler for msg_type ${req.msgType}`);
      e.rpcCode = RpcCode.UNKNOWN_MSG_TYPE;
      throw e;
    }
    return fn(req.data, { msgType: req.msgType, requestId: req.requestId, peer: req.peer ?? null });
  };
  return new RpcServer(startNative(serverConfig(opts, socketPath, false, streams), route, onError));
}

module.exports = { createRpcServer, RpcServer, startNative, serverConfig, streaming, isStreaming };
