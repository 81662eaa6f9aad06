// ESM entry: the same exports as the CommonJS entry.
import cjs from './index.js';

export const {
  Bus, TxGuard, RxGuard, RxBatch, RpcBus, RpcClient, ReplyStream, RpcServer, createRpcServer, serverDefaults, streaming,
  TigaServer, createTigaServer, startTigaServer, tigaInvoke, tigaInvokeAsync, tigaCloseAll, methodId,
  initialized, tigaWrite, tigaWriteAsync, tigaRead, tigaReadAsync, createTigaNotificationListener, TigaNotificationListener, IPCBuffer,
  createTcpServer, UringTcpServer, UringHttpServer, UringTcpEchoServer, TcpServer, TcpConnection, capabilities, zcrxProbe,
  makeTypeId, routeId, msgType, setNumaNode, setPollingMode, CHANNELS,
  TachyonError, TachyonRpcError, RpcCode, MSG_TYPE_ERROR, MSG_TYPE_STREAM_END,
  isTachyonError, isAbiMismatch, isFull, isPeerDead, isPeerClosed, isPeerGone, isConnectError,
  isPermissionDenied, isTimeout, isClosed, isRpcError,
} = cjs;
export default cjs;
