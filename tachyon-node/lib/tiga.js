'use strict';
// The Tiga-shaped API of @tiga-ipc/mmap: `startTigaServer({ channelName, onInvoke })`,
// a synchronous `tigaInvoke` returning the response string, and `tigaInvokeAsync`,
// over the multi-client RPC server. How a method name maps onto a msg_type is defined
// in the Rust core (tachyon::rpc::tiga) and documented in the README:
//  - "0".."32767" is that msg_type, data as it is (call any #[tachyon_rpc] handler);
//  - any other name routes on methodId(name) in 0x8000..=0xFFFE, and the payload
//    carries the name and the client id.
const os = require('node:os');
const native = require('./native');
const { RpcBus } = require('./rpc');
const { RpcClient } = require('./tcp');
const { RpcServer, startNative, serverConfig } = require('./server');
const { bytesOf, signalOf } = require('./bus');
const arg = require('./args');
const { isPeerGone, isClosed, withSignal } = require('./errors');

/** Tiga servers of this process, by socket path (a sync tigaInvoke reaches them inline). */
const local = new Map();

/** The bytes an onInvoke result travels as. */
function answerBytes(v) {
  if (v === undefined || v === null) return Buffer.alloc(0);
  if (typeof v === 'string' || Buffer.isBuffer(v) || v instanceof Uint8Array || v instanceof ArrayBuffer) {
    return bytesOf(v, 'an onInvoke result');
  }
  return Buffer.from(JSON.stringify(v));
}

function optionalMs(opts, name) {
  const v = opts[name];
  if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v >= 0)) {
    throw new TypeError(`${name} must be a non-negative number of milliseconds`);
  }
}

/** A Tiga server: `onInvoke(method, data, context)` answers every client. */
class TigaServer {
  #opts;
  #server = null;

  /** @internal */
  constructor(opts) {
    if (opts === null || typeof opts !== 'object') throw new TypeError('options object required');
    if (typeof opts.channelName !== 'string' || opts.channelName === '') {
      throw new TypeError('channelName must be a non-empty string');
    }
    if (typeof opts.onInvoke !== 'function') throw new TypeError('onInvoke must be a function');
    if (opts.onError !== undefined && typeof opts.onError !== 'function') {
      throw new TypeError('onError must be a function');
    }
    // Accepted for @tiga-ipc/mmap's options: new clients are noticed at once here (the
    // server listens on a socket), so there is no discovery interval to wait out.
    optionalMs(opts, 'discoveryIntervalMs');
    optionalMs(opts, 'waitTimeoutMs');
    if (opts.address !== undefined && (typeof opts.address !== 'string' || !opts.address.startsWith('tcp://'))) {
      throw new TypeError('address must be a tcp://host:port address');
    }
    this.#opts = { ...opts, ipcDirectory: opts.ipcDirectory ?? os.tmpdir() };
  }

  /**
   * Where clients reach it: `<ipcDirectory>/<channelName>.sock`, or with the `address`
   * option the TCP address (the real port once started, for `tcp://host:0`).
   */
  get socketPath() {
    if (this.#opts.address !== undefined) return this.#server?.address ?? this.#opts.address;
    return native.tigaSocketPath(this.#opts.ipcDirectory, this.#opts.channelName);
  }

  /** The same as socketPath. */
  get address() {
    return this.socketPath;
  }

  /** Whether it serves. */
  get running() {
    return this.#server !== null && this.#server.running;
  }

  /** The context onInvoke and onError get for a request. */
  #context(req) {
    const { channelName, ipcDirectory } = this.#opts;
    const clientId = req.clientId ?? '';
    return {
      channelName,
      clientId,
      requestName: `${channelName}.req.${clientId}`,
      responseName: `${channelName}.resp.${clientId}`,
      ipcDirectory,
      requestId: String(req.requestId),
      entryId: req.requestId,
      mediaType: null,
    };
  }

  /** Answers one request: onInvoke's result (or a Promise of it). @internal */
  route(req) {
    const data = Buffer.isBuffer(req.data) ? req.data.toString('utf8') : String(req.data ?? '');
    return this.#opts.onInvoke(req.method, data, this.#context(req));
  }

  /** Starts serving (clients are noticed at once). Returns this. */
  start() {
    if (this.#server !== null) throw new Error('the Tiga server is already started');
    const { onError } = this.#opts;
    const report = (e, req) => {
      if (onError) onError(e, this.#context(req));
      else console.error(`tachyon: Tiga onInvoke failed (the client got the error):`, e);
    };
    const route = (req) => {
      const out = this.route(req);
      return out !== null && typeof out === 'object' && typeof out.then === 'function'
        ? out.then(answerBytes)
        : answerBytes(out);
    };
    const config = serverConfig(this.#opts, this.#opts.address ?? this.socketPath, true);
    this.#server = new RpcServer(startNative(config, route, report));
    local.set(this.socketPath, this);
    return this;
  }

  /** Stops serving; connected clients see the peer gone. */
  async close() {
    if (local.get(this.socketPath) === this) local.delete(this.socketPath);
    if (this.#server !== null) await this.#server.close();
  }

  async [Symbol.asyncDispose]() {
    await this.close();
  }
}

/** A Tiga server, not started yet. */
function createTigaServer(opts) {
  return new TigaServer(opts);
}

/** A started Tiga server. */
function startTigaServer(opts) {
  return createTigaServer(opts).start();
}

/** Connections of tigaInvoke, by socket path and client id. */
const connections = new Map();

function connection(socketPath, clientId) {
  const key = `${socketPath}\0${clientId}`;
  let bus = connections.get(key);
  if (bus === undefined || bus.closed) {
    bus = socketPath.startsWith('tcp://') ? RpcClient.connect(socketPath) : RpcBus.connect(socketPath);
    connections.set(key, bus);
  }
  return { key, bus };
}

function forget(key, bus, e) {
  if (isPeerGone(e) || isClosed(e)) {
    connections.delete(key);
    bus.close();
  }
}

/** Where a call goes: the socket of the channel, its client id and the encoded call. */
function target(requestName, responseName, method, data, options) {
  const names = native.tigaParseNames(requestName, responseName);
  const dir = options.ipcDirectory ?? os.tmpdir();
  // `options.address` (tcp://host:port) reaches a Tiga server over TCP instead.
  const socketPath = options.address ?? native.tigaSocketPath(dir, names.channel);
  const bytes = bytesOf(data ?? Buffer.alloc(0));
  return { names, socketPath, bytes, call: native.tigaEncode(String(method), names.clientId, bytes) };
}

/**
 * Calls `method` on the server of the channel named by `requestName`
 * (`<channel>.req.<clientId>`, with `responseName` `<channel>.resp.<clientId>`) and
 * returns the response as a string, synchronously, as @tiga-ipc/mmap does. It blocks
 * this thread (options.timeoutMs bounds it); a server started in this same process is
 * called inline, since its onInvoke runs on this thread. Throws TachyonRpcError if the
 * handler threw, ERR_TACHYON_TIMEOUT after options.timeoutMs.
 */
function tigaInvoke(requestName, responseName, method, data, options = {}) {
  signalOf(options);
  const { names, socketPath, bytes, call } = target(requestName, responseName, method, data, options);
  const here = local.get(socketPath);
  if (here !== undefined && here.running) {
    const out = here.route({ method: String(method), clientId: names.clientId, data: Buffer.from(bytes), requestId: 0 });
    if (out !== null && typeof out === 'object' && typeof out.then === 'function') {
      throw new TypeError(
        'onInvoke returned a Promise, which a synchronous tigaInvoke in the same process cannot wait for; use tigaInvokeAsync',
      );
    }
    return answerBytes(out).toString('utf8');
  }
  const { key, bus } = connection(socketPath, names.clientId);
  try {
    return bus.invoke(call.payload, call.msgType, { timeoutMs: options.timeoutMs }).toString('utf8');
  } catch (e) {
    forget(key, bus, e);
    throw e;
  }
}

/**
 * As tigaInvoke, without blocking: resolves with the response string. options.signal
 * aborts the call (its late reply is dropped).
 */
async function tigaInvokeAsync(requestName, responseName, method, data, options = {}) {
  const signal = signalOf(options);
  const { names, socketPath, call } = target(requestName, responseName, method, data, options);
  const { key, bus } = connection(socketPath, names.clientId);
  try {
    const reply = await withSignal(
      bus.callAsync(call.payload, call.msgType, { timeoutMs: options.timeoutMs, signal }),
      signal,
    );
    return reply.toString('utf8');
  } catch (e) {
    forget(key, bus, e);
    throw e;
  }
}

/** Closes the connections tigaInvoke keeps. */
function tigaCloseAll() {
  for (const bus of connections.values()) bus.close();
  connections.clear();
}

module.exports = {
  TigaServer,
  createTigaServer,
  startTigaServer,
  tigaInvoke,
  tigaInvokeAsync,
  tigaCloseAll,
  methodId: (name) => native.methodId(arg.str(name, 'name')),
};
