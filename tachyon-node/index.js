'use strict';
// tachyon-node: shared-memory IPC and RPC for Node.js over the Tachyon Rust core.
const native = require('./lib/native');
const errors = require('./lib/errors');
const { Bus, TxGuard, RxGuard, RxBatch } = require('./lib/bus');
const { RpcBus, ReplyStream, MSG_TYPE_STREAM_END } = require('./lib/rpc');
const { createRpcServer, RpcServer, streaming } = require('./lib/server');
const tiga = require('./lib/tiga');
const channel = require('./lib/channel');
const { IPCBuffer } = require('./lib/ipcbuffer');
const { RpcClient } = require('./lib/tcp');
const uring = require('./lib/uring');
const events = require('./lib/events');

const arg = require('./lib/args');

/** Binds a bus's ring to a NUMA node (as upstream's free function). */
function setNumaNode(bus, node) {
  bus.setNumaNode(node);
}

/** Spin only (true) or spin then sleep (false) while the bus waits. */
function setPollingMode(bus, spinOnly) {
  bus.setPollingMode(spinOnly);
}

/** `route << 16 | msgType`: the type id of a routed message. */
function makeTypeId(route, msgType) {
  return native.makeTypeId(arg.int(route, 'route', 0, 0xffff), arg.msgType(msgType));
}

/** The route of a type id (its high 16 bits). */
function routeId(typeId) {
  return native.routeId(arg.u32(typeId, 'typeId'));
}

/** The msg_type of a type id (its low 16 bits). */
function msgType(typeId) {
  return native.msgType(arg.u32(typeId, 'typeId'));
}

module.exports = {
  Bus,
  TxGuard,
  RxGuard,
  RxBatch,
  RpcBus,
  RpcClient,
  ReplyStream,
  RpcServer,
  createRpcServer,
  serverDefaults: native.serverDefaults,
  streaming,
  TigaServer: tiga.TigaServer,
  createTigaServer: tiga.createTigaServer,
  startTigaServer: tiga.startTigaServer,
  tigaInvoke: tiga.tigaInvoke,
  tigaInvokeAsync: tiga.tigaInvokeAsync,
  tigaCloseAll: tiga.tigaCloseAll,
  initialized: channel.initialized,
  tigaWrite: channel.tigaWrite,
  tigaWriteAsync: channel.tigaWriteAsync,
  tigaRead: channel.tigaRead,
  tigaReadAsync: channel.tigaReadAsync,
  createTigaNotificationListener: channel.createTigaNotificationListener,
  TigaNotificationListener: channel.TigaNotificationListener,
  IPCBuffer,
  createTcpServer: uring.createTcpServer,
  UringTcpServer: uring.UringTcpServer,
  UringHttpServer: uring.UringHttpServer,
  UringTcpEchoServer: uring.UringTcpEchoServer,
  TcpServer: uring.TcpServer,
  TcpConnection: uring.TcpConnection,
  capabilities: uring.capabilities,
  zcrxProbe: uring.zcrxProbe,
  methodId: tiga.methodId,
  makeTypeId,
  routeId,
  msgType,
  setNumaNode,
  /** diagnostics_channel names of the core's connection events. */
  CHANNELS: events.CHANNELS,
  setPollingMode,
  TachyonError: errors.TachyonError,
  TachyonRpcError: errors.TachyonRpcError,
  RpcCode: errors.RpcCode,
  MSG_TYPE_ERROR: errors.MSG_TYPE_ERROR,
  MSG_TYPE_STREAM_END,
  isTachyonError: errors.isTachyonError,
  isAbiMismatch: errors.isAbiMismatch,
  isFull: errors.isFull,
  isPeerDead: errors.isPeerDead,
  isPeerClosed: errors.isPeerClosed,
  isPeerGone: errors.isPeerGone,
  isConnectError: errors.isConnectError,
  isPermissionDenied: errors.isPermissionDenied,
  isTimeout: errors.isTimeout,
  isClosed: errors.isClosed,
  isRpcError: errors.isRpcError,
};
