'use strict';
// The Tiga-shaped API: `startTigaServer({ channelName, onInvoke })` and `tigaInvoke`,
// over the multi-client RPC server. How a method name maps onto a msg_type is defined
// in the Rust core (tachyon::rpc::tiga) and documented in the README:
//  - "0".."32767" is that msg_type, data as it is (call any #[tachyon_rpc] handler);
//  - any other name routes on methodId(name) in 0x8000..=0xFFFE, and the payload
//    carries the name and the client id.
const os = require('node:os');
const native = require('./native');
const { RpcBus } = require('./rpc');
const { RpcServer, startNative, serverConfig } = require('./server');
const { bytesOf } = require('./bus');
const { isPeerGone, isClosed } = require('./errors');

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
    this.#opts = { ...opts, ipcDirectory: opts.ipcDirectory ?? os.tmpdir() };
  }

  /** `<ipcDirectory>/<channelName>.sock`. */
  get socketPath() {
    return native.tigaSocketPath(this.#opts.ipcDirectory, this.#opts.channelName);
  }

  /** Whether it serves. */
  get running() {
    return this.#server !== null && this.#server.running;
  }

  /** Starts serving (clients are noticed at once). Returns this. */
  start() {
    if (this.#server !== null) throw new Error('the Tiga server is already started');
    const { channelName, ipcDirectory, onInvoke, onError } = this.#opts;
    const route = (req) => {
      const clientId = req.clientId ?? '';
      const context = {
        channelName,
        clientId,
        requestName: `${channelName}.req.${clientId}`,
        responseName: `${channelName}.resp.${clientId}`,
        ipcDirectory,
        requestId: req.requestId,
      };
      return onInvoke(req.method, req.data, context);
    };
    const config = serverConfig(this.#opts, this.socketPath, true);
    this.#server = new RpcServer(startNative(config, route, onError));
    return this;
  }

  /** Stops serving; connected clients see the peer gone. */
  async close() {
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
    bus = RpcBus.connect(socketPath);
    connections.set(key, bus);
  }
  return { key, bus };
}

/**
 * Calls `method` on the server of the channel named by `requestName`
 * (`<channel>.req.<clientId>`, with `responseName` `<channel>.resp.<clientId>`) and
 * resolves with the answer's bytes. Rejects with TachyonRpcError if the handler threw,
 * ERR_TACHYON_TIMEOUT after options.timeoutMs. The connection is kept for the next call
 * (tigaCloseAll closes them).
 */
async function tigaInvoke(requestName, responseName, method, data, options = {}) {
  const names = native.tigaParseNames(requestName, responseName);
  const dir = options.ipcDirectory ?? os.tmpdir();
  const socketPath = native.tigaSocketPath(dir, names.channel);
  const call = native.tigaEncode(String(method), names.clientId, bytesOf(data ?? Buffer.alloc(0)));
  const { key, bus } = connection(socketPath, names.clientId);
  try {
    return await bus.callAsync(call.payload, call.msgType, { timeoutMs: options.timeoutMs });
  } catch (e) {
    if (isPeerGone(e) || isClosed(e)) {
      connections.delete(key);
      bus.close();
    }
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
  tigaCloseAll,
  methodId: native.methodId,
};
