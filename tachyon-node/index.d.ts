// Types of tachyon-node. The runtime is index.js (CommonJS) / index.mjs (ESM).
/// <reference types="node" />
import { EventEmitter } from "node:events";

/** Bytes accepted wherever a payload goes in. */
export type Bytes = Buffer | Uint8Array | ArrayBuffer | string;

declare const txSlotBrand: unique symbol;
declare const rxSlotBrand: unique symbol;
/** A Buffer over a reserved TX slot in shared memory: writable until commit or rollback. */
export type TxSlot = Buffer & { readonly [txSlotBrand]: true };
/** A Buffer over a received message in shared memory: valid until commit. */
export type RxSlot = Buffer & { readonly [rxSlotBrand]: true };

/** Options of calls that can wait. */
export interface WaitOptions {
  /** Give up after this many milliseconds (ERR_TACHYON_TIMEOUT). Default: wait while the peer lives. */
  timeoutMs?: number;
  /**
   * Aborts the call: an async call rejects at once with the signal's reason; a sync
   * call throws it if the signal is already aborted when it starts.
   */
  signal?: AbortSignal;
}

/** Options of sends: without timeoutMs a full ring throws ERR_TACHYON_FULL at once. */
export interface SendOptions extends WaitOptions {
  /** Wait this many milliseconds for room instead of failing at once. */
  timeoutMs?: number;
}

/** A received message: a heap copy, safe to keep. */
export interface Message {
  data: Buffer;
  typeId: number;
}

/** A message of an RxBatch, read in place (upstream's RxMessage). */
export interface BatchItem {
  data: RxSlot;
  typeId: number;
  actualSize: number;
  /** The payload size (upstream's name; the same as actualSize). */
  size: number;
}
export type RxMessage = BatchItem;

/** A reserved TX slot. Leaving a `using` block without commit rolls back. */
export declare class TxGuard implements Disposable {
  private constructor();
  readonly maxSize: number;
  readonly open: boolean;
  /** The slot as a Buffer over shared memory; detached (length 0) after commit or rollback. */
  bytes(): TxSlot;
  /** Publishes `actualSize` bytes and wakes the consumer. */
  commit(actualSize: number, typeId?: number): void;
  /** Publishes without waking the consumer (bus.flush() does). */
  commitUnflushed(actualSize: number, typeId?: number): void;
  rollback(): void;
  [Symbol.dispose](): void;
}

/** Received messages held in place. Leaving a `using` block commits. */
export declare class RxBatch implements Disposable, Iterable<BatchItem> {
  protected constructor();
  readonly length: number;
  readonly open: boolean;
  at(i: number): BatchItem | undefined;
  [Symbol.iterator](): Iterator<BatchItem>;
  /** Releases the slots; every Buffer handed out is detached afterwards. */
  commit(): void;
  [Symbol.dispose](): void;
}

/** One received message held in place. */
export declare class RxGuard extends RxBatch {
  data(): RxSlot;
  readonly typeId: number;
  readonly actualSize: number;
}

/** A core connection event as published on its `diagnostics_channel` (`tachyon:<name>`). */
export interface TachyonEventMessage {
  kind: 'span' | 'event';
  name: string;
  level: 'error' | 'warn' | 'info' | 'debug' | 'trace';
  message: string;
  /** The event's other fields (transport, address, peer_pid, reason, error, ...), as text. */
  [field: string]: string;
}

/** diagnostics_channel names of the core's connection events, by event name. */
export declare const CHANNELS: Readonly<{
  connect: 'tachyon:connect';
  accept: 'tachyon:accept';
  handshake: 'tachyon:handshake';
  connected: 'tachyon:connected';
  accepted: 'tachyon:accepted';
  refused: 'tachyon:refused';
  handshake_failed: 'tachyon:handshake_failed';
  peer_dead: 'tachyon:peer_dead';
  connect_failed: 'tachyon:connect_failed';
}>;

/** This side's counters of a bus (`Bus#stats`, `RpcBus#stats`): plain numbers. */
export interface BusStats {
  /** Messages this side committed. */
  sentMessages: number;
  /** Their payload bytes. */
  sentBytes: number;
  /** Messages this side received. */
  receivedMessages: number;
  /** Their payload bytes. */
  receivedBytes: number;
  /** Times a send found the ring full (one per episode, however often it retried). */
  fullWaits: number;
  /** Times a receive slept on the futex. */
  sleeps: number;
  /** Sleeps no wake-up ended (lost wake-ups the watchdog rescued); 0 when healthy. */
  watchdogRescues: number;
  /** Times a send woke a sleeping receiver. */
  wakes: number;
  /** Calls that timed out. */
  timeouts: number;
  /** Times the peer was found dead. */
  peerDeaths: number;
  /** Corruption or protocol violations seen on the rings. */
  protocolErrors: number;
}

/** A server's counters (`RpcServer#stats`). */
export interface ServerStats {
  accepted: number;
  refused: number;
  active: number;
  /** Requests answered, error replies included. */
  requests: number;
  protocolErrors: number;
  /** Backpressure pauses (TCP only). */
  paused: number;
  /** Error replies sent, keyed by error code. */
  errors: Record<string, number>;
}

/** The single-producer, single-consumer shared-memory bus. */
export declare class Bus implements Disposable, AsyncIterable<Message> {
  private constructor();
  static listen(socketPath: string, capacity: number, opts?: WaitOptions): Bus;
  static listenAsync(socketPath: string, capacity: number, opts?: WaitOptions): Promise<Bus>;
  static connect(socketPath: string, opts?: WaitOptions): Bus;
  /** As connect, off the main thread (`signal` aborts the wait). */
  static connectAsync(socketPath: string, opts?: WaitOptions): Promise<Bus>;
  close(): void;
  readonly closed: boolean;
  readonly capacity: number;
  /** This side's counters; never blocks. */
  stats(): BusStats;
  /** Throws ERR_TACHYON_FULL at once when the ring is full, unless opts.timeoutMs. */
  send(data: Bytes, typeId?: number, opts?: SendOptions): void;
  flush(): void;
  recv(spinThreshold?: number, opts?: WaitOptions): Message;
  /** Throws ERR_TACHYON_FULL at once when the ring is full, unless opts.timeoutMs. */
  acquireTx(maxSize: number, opts?: SendOptions): TxGuard;
  acquireRx(spinThreshold?: number, opts?: WaitOptions): RxGuard | null;
  drainBatch(maxMsgs: number, spinThreshold?: number, opts?: WaitOptions): RxBatch;
  recvAsync(opts?: WaitOptions): Promise<Message>;
  recvManyAsync(maxMsgs: number, opts?: WaitOptions): Promise<Message[]>;
  messages(opts?: WaitOptions & { batch?: number }): AsyncGenerator<Message, void, undefined>;
  [Symbol.asyncIterator](): AsyncGenerator<Message, void, undefined>;
  setPollingMode(spinOnly: boolean | number): void;
  setNumaNode(node: number): void;
  [Symbol.dispose](): void;
}

/** An RPC reply (or request) as returned by wait/serve. */
export interface Reply {
  data: Buffer;
  msgType: number;
  correlationId: number;
}
export type Request = Reply;

/** One RPC connection: the caller connects and calls, the callee listens and serves. */
export declare class RpcBus implements Disposable {
  private constructor();
  static listen(socketPath: string, capFwd?: number, capRev?: number, opts?: WaitOptions): RpcBus;
  static listenAsync(socketPath: string, capFwd?: number, capRev?: number, opts?: WaitOptions): Promise<RpcBus>;
  static connect(socketPath: string, opts?: WaitOptions): RpcBus;
  /** As connect, off the main thread: the event loop runs on while it waits (`signal` aborts). */
  static connectAsync(socketPath: string, opts?: WaitOptions): Promise<RpcBus>;
  call(payload: Bytes, msgType: number, opts?: WaitOptions): number;
  wait(correlationId: number, opts?: WaitOptions): Reply;
  invoke(payload: Bytes, msgType: number, opts?: WaitOptions): Buffer;
  /** A oneway request: no reply comes back. Fails at once with ERR_TACHYON_FULL unless opts.timeoutMs allows waiting. */
  notify(payload: Bytes, msgType: number, opts?: WaitOptions): void;
  /** opts.spin: rounds to spin for the reply first when no other call is in flight (default 1000, 0: never). */
  callAsync(payload: Bytes, msgType: number, opts?: WaitOptions & { spin?: number }): Promise<Buffer>;
  callAsyncReply(payload: Bytes, msgType: number, opts?: WaitOptions & { spin?: number }): Promise<Reply>;
  /** A server-streaming call: its items, in order; leaving `for await` early cancels it. */
  stream(payload: Bytes, msgType: number, opts?: WaitOptions): ReplyStream;
  abandon(correlationId: number): void;
  readonly inFlight: number;
  /** This side's counters on both rings. */
  stats(): BusStats;
  serve(opts?: WaitOptions): Request | null;
  reply(correlationId: number, data: Bytes, msgType: number, opts?: WaitOptions): void;
  replyError(correlationId: number, failedMsgType: number, code: number, message: string, opts?: WaitOptions): void;
  serveForever(
    handler: (data: Buffer, request: Request) => Bytes | null | undefined,
    opts?: WaitOptions & { count?: number },
  ): number;
  close(): void;
  readonly closed: boolean;
  setPollingMode(spinOnly: boolean | number): void;
  [Symbol.dispose](): void;
}

/** The items of a server-streaming call (Buffers); `return()`/`cancel()` cancel it. */
export declare class ReplyStream implements AsyncIterableIterator<Buffer>, AsyncDisposable {
  private constructor();
  readonly correlationId: number;
  readonly done: boolean;
  next(): Promise<IteratorResult<Buffer, undefined>>;
  return(): Promise<IteratorResult<Buffer, undefined>>;
  cancel(): void;
  [Symbol.asyncIterator](): ReplyStream;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The msg_type of the reply that ends a stream (0xFFFE). */
export declare const MSG_TYPE_STREAM_END: number;

/** What a streaming handler returns: items (Bytes) from a generator or async generator. */
export type StreamResult = Iterable<Bytes> | AsyncIterable<Bytes>;

/** A handler marked with `streaming()`. */
export type StreamingHandler = ((data: Buffer, ctx: HandlerContext) => StreamResult) & {
  readonly __tachyonStreaming: true;
};

/** Marks a handler as server-streaming: each item it yields is one reply of the call. */
export declare function streaming(
  fn: (data: Buffer, ctx: HandlerContext) => StreamResult,
): StreamingHandler;

/** A PEM source: a file path, PEM text, or a Buffer/Uint8Array of PEM. */
export type PemSource = string | Uint8Array;

/** TLS 1.3 for a TCP client. */
export interface ClientTlsOptions {
  /** The CA that signed the server's certificate (required). */
  ca: PemSource;
  /** This client's certificate chain, for a server that requires one (mutual TLS). */
  cert?: PemSource;
  /** This client's private key. */
  key?: PemSource;
  /** The name to check the server's certificate against (default: the address's host). */
  serverName?: string;
}

/** TLS 1.3 for a TCP server; with `ca`, mutual TLS (clients need a certificate it signed). */
export interface ServerTlsOptions {
  cert: PemSource;
  key: PemSource;
  ca?: PemSource;
}

/** One attribute of a certificate subject, such as `CN=client-a`. */
export interface NameAttribute {
  /** The attribute type's OID, dotted (`2.5.4.3` for CN). */
  oid: string;
  /** Its short name where it has a common one (`CN`, `O`, `OU`, ...). */
  name?: string | null;
  /** The value decoded by its string type (`#` and hex when it is no string). */
  value: string;
}

/**
 * The verified certificate of the client being served (mutual TLS), read by the core's
 * X.509 parser. `commonName` is the subject's one CN attribute: a subject with several
 * is ambiguous and has none here (all are in `subject`).
 */
export interface PeerInfo {
  commonName?: string | null;
  /** The subject as written: its RDNs in order, each a list of attributes. */
  subject: NameAttribute[][];
  dnsNames: string[];
  uriNames: string[];
  ipAddresses: string[];
  emailAddresses: string[];
  certificate: Buffer;
}

/** What a handler learns about its call. */
export interface HandlerContext {
  msgType: number;
  requestId: number;
  /** The caller's certificate over mutual TLS, else null. */
  peer?: PeerInfo | null;
}

/** The caller over TCP (`tcp://host:port`): RpcBus's call shapes. */
export declare class RpcClient implements Disposable {
  private constructor();
  static connect(address: string, opts?: WaitOptions & { connections?: number; tls?: ClientTlsOptions }): RpcClient;
  /** As connect, with the handshakes off the main thread; `signal` rejects at once. */
  static connectAsync(address: string, opts?: WaitOptions & { connections?: number; tls?: ClientTlsOptions }): Promise<RpcClient>;
  invoke(payload: Bytes, msgType: number, opts?: WaitOptions): Buffer;
  callAsync(payload: Bytes, msgType: number, opts?: WaitOptions): Promise<Buffer>;
  notify(payload: Bytes, msgType: number, opts?: WaitOptions): void;
  stream(payload: Bytes, msgType: number, opts?: WaitOptions): ReplyStream;
  readonly inFlight: number;
  readonly address: string;
  close(): void;
  [Symbol.dispose](): void;
}

/** Options shared by the multi-client servers. */
export interface ServerOptions {
  /** Request ring bytes per client (default 65536: 64 KiB). */
  capFwd?: number;
  /** Reply ring bytes per client (default 65536: 64 KiB). */
  capRev?: number;
  /** Clients served at once; more are refused (ERR_TACHYON_REFUSED) (default 64). */
  maxClients?: number;
  /** A handler that takes longer gets its caller an error reply (default 30000 ms). */
  handlerTimeoutMs?: number;
  /** How long a reply may wait for room in a full reply ring (default 10000 ms). */
  replyTimeoutMs?: number;
}

export type HandlerResult = Bytes | null | undefined | Promise<Bytes | null | undefined>;

/** The server options' defaults, as the core applies them (what `ServerOptions` documents). */
export interface ServerDefaults {
  capFwd: number;
  capRev: number;
  maxClients: number;
  handlerTimeoutMs: number;
  replyTimeoutMs: number;
}
export declare function serverDefaults(): ServerDefaults;

/** A running multi-client server. */
export declare class RpcServer implements AsyncDisposable {
  private constructor();
  readonly socketPath: string;
  readonly address: string;
  readonly running: boolean;
  /** Clients, requests and error replies by code; readable after close() too. */
  stats(): ServerStats;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface RpcServerOptions extends ServerOptions {
  /** A socket path (shared memory)... */
  socketPath?: string;
  /** ...or `tcp://host:port` (port 0 picks one; read it back from `server.address`). */
  address?: string;
  /** Over TCP: threads running streaming handlers (default 4); unary calls reach JS in batches and need none. */
  workers?: number;
  /** Over TCP: serve plaintext on an address other than loopback (insecure; a warning is logged). */
  insecure?: boolean;
  /** The older name of `insecure`. */
  allowRemote?: boolean;
  /** Over TCP: TLS 1.3; with `ca`, mutual TLS and `ctx.peer` in handlers. */
  tls?: ServerTlsOptions;
  handlers: Record<number, ((data: Buffer, ctx: HandlerContext) => HandlerResult) | StreamingHandler>;
  /** Sees every error a handler threw (after its error reply); default console.error. */
  onError?: (error: unknown, request: { msgType: number; requestId: number }) => void;
}

export declare function createRpcServer(opts: RpcServerOptions): RpcServer;

/** What onInvoke and onError learn about a call (@tiga-ipc/mmap's TigaServerContext). */
export interface TigaServerContext {
  channelName: string;
  clientId: string;
  requestName: string;
  responseName: string;
  ipcDirectory: string;
  /** The request's id, as a string. */
  requestId: string;
  /** The request's sequence number on this server. */
  entryId: number;
  /** Calls carry no media type here: always null. */
  mediaType?: string | null;
}
/** This package's earlier name for TigaServerContext. */
export type TigaContext = TigaServerContext;

export interface TigaServerOptions extends ServerOptions {
  channelName: string;
  /** Where the channel's socket lives (default os.tmpdir()). */
  ipcDirectory?: string;
  /** Serve over TCP instead: `tcp://host:port` (port 0 picks one; read `address`). */
  address?: string;
  /** Over TCP: allow an address other than loopback. */
  allowRemote?: boolean;
  /** Accepted for @tiga-ipc/mmap compatibility: new clients are noticed at once here. */
  discoveryIntervalMs?: number;
  /** Accepted for @tiga-ipc/mmap compatibility. */
  waitTimeoutMs?: number;
  /** Answers a call: a string, Buffer, Uint8Array (or JSON-able value), or a Promise of one. */
  onInvoke: (method: string, data: string, context: TigaServerContext) => unknown | Promise<unknown>;
  /** Sees every error onInvoke threw (the client got it as its error); default console.error. */
  onError?: (error: unknown, context: TigaServerContext) => void;
}

export declare class TigaServer implements AsyncDisposable {
  private constructor();
  readonly socketPath: string;
  readonly address: string;
  readonly running: boolean;
  start(): this;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export declare function createTigaServer(opts: TigaServerOptions): TigaServer;
export declare function startTigaServer(opts: TigaServerOptions): TigaServer;
/** Options of tigaInvoke / tigaInvokeAsync. */
export interface TigaInvokeOptions {
  ipcDirectory?: string;
  /** Reach a Tiga server over TCP (`tcp://host:port`) instead of `ipcDirectory`. */
  address?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}
/** Calls `method` synchronously (blocking this thread) and returns the response string. */
export declare function tigaInvoke(
  requestName: string,
  responseName: string,
  method: string | number,
  data?: Bytes | null,
  options?: TigaInvokeOptions,
): string;
/** As tigaInvoke, without blocking: resolves with the response string. */
export declare function tigaInvokeAsync(
  requestName: string,
  responseName: string,
  method: string | number,
  data?: Bytes | null,
  options?: TigaInvokeOptions,
): Promise<string>;
export declare function tigaCloseAll(): void;

/** Options of the Tiga channel functions (@tiga-ipc/mmap's, on Linux). */
export interface TigaChannelOptions {
  /** Where channel files live (default: the OS temporary directory). */
  ipcDirectory?: string;
  /** Bytes of entries of a channel this call creates (default 1 MiB). */
  capacity?: number;
}

/** One channel entry. */
export interface TigaEntry {
  id: number;
  message: Buffer;
  mediaType?: string;
}

/** What tigaRead returns: pass `lastId` to the next read. */
export interface TigaReadResult {
  lastId: number;
  entries: TigaEntry[];
  /** Entries overwritten (the channel is bounded) before this reader got to them. */
  lost: number;
  /** Entries whose writer died mid-append. */
  abandoned: number;
}

/** Whether channels can be used (the native addon is loaded). */
export declare function initialized(): boolean;
/** Appends an entry to channel `name`; returns `ok:<id>`. */
export declare function tigaWrite(name: string, message: Bytes, options?: TigaChannelOptions & { mediaType?: string }): string;
export declare function tigaWriteAsync(name: string, message: Bytes, options?: TigaChannelOptions & { mediaType?: string }): Promise<string>;
/** The entries of channel `name` after `options.lastId`. */
export declare function tigaRead(name: string, options?: TigaChannelOptions & { lastId?: number; maxEntries?: number }): TigaReadResult;
export declare function tigaReadAsync(name: string, options?: TigaChannelOptions & { lastId?: number; maxEntries?: number }): Promise<TigaReadResult>;

/** Wakes when a channel gets entries after `lastId` (a futex word, no polling). */
export declare class TigaNotificationListener implements Disposable {
  private constructor();
  readonly name: string;
  readonly ipcDirectory: string;
  lastId: number;
  readonly closed: boolean;
  wait(timeoutMs?: number): boolean;
  waitAsync(timeoutMs?: number, options?: { signal?: AbortSignal }): Promise<boolean>;
  close(): void;
  [Symbol.dispose](): void;
}
export declare function createTigaNotificationListener(
  name: string,
  options?: TigaChannelOptions & { lastId?: number },
): TigaNotificationListener;
/** The msg_type a Tiga method name routes on. */
export declare function methodId(name: string): number;

export declare function makeTypeId(route: number, msgType: number): number;
export declare function routeId(typeId: number): number;
export declare function msgType(typeId: number): number;
export declare function setNumaNode(bus: Bus, node: number): void;
export declare function setPollingMode(bus: Bus | RpcBus, spinOnly: boolean | number): void;

export type TachyonErrorCode =
  | 'ERR_TACHYON'
  | 'ERR_TACHYON_FULL'
  | 'ERR_TACHYON_PEER_DEAD'
  | 'ERR_TACHYON_PEER_CLOSED'
  | 'ERR_TACHYON_CONNECT'
  | 'ERR_TACHYON_PERMISSION'
  | 'ERR_TACHYON_ADDR_IN_USE'
  | 'ERR_TACHYON_CAPACITY_LIMIT'
  | 'ERR_TACHYON_ABI_MISMATCH'
  | 'ERR_TACHYON_TIMEOUT'
  | 'ERR_TACHYON_INTERRUPTED'
  | 'ERR_TACHYON_REFUSED'
  | 'ERR_TACHYON_PROTOCOL'
  | 'ERR_TACHYON_RPC'
  | 'ERR_TACHYON_BUSY'
  | 'ERR_TACHYON_TOO_LARGE'
  | 'ERR_TACHYON_INVALID_ARG'
  | 'ERR_TACHYON_IO'
  | 'ERR_TACHYON_CLOSED'
  | 'ERR_TACHYON_GUARD';

/** An error with an ERR_TACHYON_* code. */
/**
 * Every error this package throws, sync or async, is `instanceof TachyonError` (the
 * native addon's errors included) and carries an ERR_TACHYON_* code.
 */
export declare class TachyonError extends Error {
  constructor(message: string, code?: TachyonErrorCode);
  code: TachyonErrorCode;
  static [Symbol.hasInstance](value: unknown): boolean;
}

/** The remote handler failed (the 0xFFFF error reply). */
export declare class TachyonRpcError extends TachyonError {
  constructor(msgType: number, rpcCode: number, message: string);
  readonly msgType: number;
  readonly rpcCode: number;
  readonly rpcMessage: string;
}

/** Error codes of the 0xFFFF reply: the core's table, the same as Python's `tachyon.RpcCode`. */
export declare const RpcCode: Readonly<{
  UPSTREAM: 0;
  UNKNOWN_MSG_TYPE: 1;
  HANDLER_ERROR: 2;
  HANDLER_PANIC: 3;
  BAD_REQUEST: 4;
  BAD_RESPONSE: 5;
  MALFORMED: 6;
  DEADLINE_EXCEEDED: 7;
  CANCELLED: 8;
  UNSUPPORTED: 9;
}>;
export declare const MSG_TYPE_ERROR: 0xffff;

export interface CodedError extends Error {
  code: TachyonErrorCode;
}
export declare function isTachyonError(e: unknown): e is CodedError;
export declare function isAbiMismatch(e: unknown): e is CodedError;
export declare function isFull(e: unknown): e is CodedError;
/** The peer died (exited or crashed without closing its bus). */
export declare function isPeerDead(e: unknown): e is CodedError;
/** The peer closed its bus on purpose; everything it sent was delivered. */
export declare function isPeerClosed(e: unknown): e is CodedError;
/** The peer is gone, cleanly or not. */
export declare function isPeerGone(e: unknown): e is CodedError;
/** Nobody listens at the path, or a server turned this connector away. */
export declare function isConnectError(e: unknown): e is CodedError;
/** The other side runs as an untrusted user, or refused this one. */
export declare function isPermissionDenied(e: unknown): e is CodedError;
export declare function isTimeout(e: unknown): e is CodedError;
export declare function isClosed(e: unknown): e is CodedError;
export declare function isRpcError(e: unknown): e is TachyonRpcError;

/** Options of a shared IPCBuffer: a new object's mode (0o600) and whether to create it. */
export interface IPCBufferOptions {
  mode?: number;
  create?: boolean;
}

/** `"*name"` (POSIX shared memory), a file path, or a numeric System V key. */
export type IPCBufferTarget = string | number;

/** node-ipcbuffer's IPCBuffer: a Buffer, shared between processes when a target is given. */
export interface IPCBufferFunction {
  (length: number, target?: IPCBufferTarget, options?: IPCBufferOptions): Buffer;
  (length: number, encoding: BufferEncoding, target?: IPCBufferTarget, options?: IPCBufferOptions): Buffer;
  (parent: Uint8Array, length: number, offset?: number): Buffer;
  (parent: Uint8Array, length: number, encoding: BufferEncoding, offset?: number): Buffer;
  (text: string, encoding?: BufferEncoding, target?: IPCBufferTarget, options?: IPCBufferOptions): Buffer;
  new (length: number, target?: IPCBufferTarget, options?: IPCBufferOptions): Buffer;
  isShared(buf: Buffer): boolean;
  created(buf: Buffer): boolean;
  unlink(buf: Buffer): void;
  flush(buf: Buffer): void;
  wait(buf: Buffer, offset: number, expected: number, timeoutMs?: number): boolean;
  waitAsync(buf: Buffer, offset: number, expected: number, timeoutMs?: number, options?: { signal?: AbortSignal }): Promise<boolean>;
  notify(buf: Buffer, offset: number, count?: number): number;
  close(buf: Buffer): void;
}
export declare const IPCBuffer: IPCBufferFunction;

/** ferrings-style options of the plain TCP servers (`UringTcpServer`, `createTcpServer().listen`). */
export interface UringTcpServerOptions {
  /** Bind address (default 127.0.0.1; others need `insecure`, raw streams have no TLS). */
  host?: string;
  /** Bind port (default 0: the kernel picks one). */
  port?: number;
  /** Most connections at once (default 1024; 0 means the default). */
  maxConnections?: number;
  /** Close a connection idle this long (0: never). */
  idleTimeoutMs?: number;
  /** Events per batch in startBatch() (default 64). */
  eventBatchSize?: number;
  /** Bytes a connection may have delivered and not consumed before it stops receiving (default 1 MiB). */
  highWaterMark?: number;
  /** Serve a non-loopback address. */
  insecure?: boolean;
  /** `"auto"` (default), `"io_uring"` or `"epoll"`. */
  backend?: 'auto' | 'io_uring' | 'epoll';
  /** Accepted for ferrings compatibility; the reactor decides (see capabilities()). */
  backlog?: number;
  useRecvBundle?: boolean;
  useZeroCopySend?: boolean;
  useRegisteredSendBuffer?: boolean;
  tcpNoDelay?: boolean;
  /** Not implemented: throws ERR_TACHYON_UNSUPPORTED (see zcrxProbe()). */
  useZeroCopyReceive?: boolean;
}

/** One event of a UringTcpServer. */
export interface UringTcpEvent {
  eventType: 'connection' | 'data' | 'close';
  connectionId: number;
  /** The bytes (`data` only). */
  data?: Buffer;
  /** The client's address and port (`connection` only). */
  remoteAddress?: string;
  remotePort?: number;
}

/** The address and counters of a plain TCP server. */
export interface UringServerInfo {
  host: string;
  port: number;
  backend: string;
  acceptedConnections: number;
  rejectedConnections: number;
  activeConnections: number;
  bytesReceived: number;
  bytesSent: number;
  /** Times a connection stopped receiving because its consumer lagged. */
  backpressurePauses: number;
  /** Always 0: receiving pauses instead of dropping. */
  droppedBytes: number;
}

/** A raw TCP server on the io_uring reactor, with explicit connection ids. */
export declare class UringTcpServer implements AsyncDisposable {
  constructor(opts?: UringTcpServerOptions);
  start(onEvent: (event: UringTcpEvent) => void): UringServerInfo;
  startBatch(onEvents: (events: UringTcpEvent[]) => void): UringServerInfo;
  send(connectionId: number, data: Bytes): void;
  sendBatch(sends: Array<{ connectionId: number; data: Bytes }>): void;
  sendAndClose(connectionId: number, data: Bytes): void;
  sendBatchAndClose(sends: Array<{ connectionId: number; data: Bytes }>): void;
  closeConnection(connectionId: number): void;
  destroyConnection(connectionId: number): void;
  info(): UringServerInfo;
  close(): Promise<void>;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options of UringHttpServer: the bind options, and the response it gives every request. */
export interface UringHttpServerOptions extends UringTcpServerOptions {
  /** The response body (default "ok\n"). */
  responseBody?: string | Uint8Array;
  /** The status code (default 200). */
  statusCode?: number;
  /** The content type (default "text/plain; charset=utf-8"). */
  contentType?: string;
}

/**
 * A fixed-response HTTP/1.1 server (keep-alive) written on the reactor thread, with no JS
 * per request: ferrings' benchmark server, not an HTTP framework.
 */
export declare class UringHttpServer implements AsyncDisposable {
  constructor(opts?: UringHttpServerOptions);
  start(): UringServerInfo;
  info(): UringServerInfo;
  close(): Promise<void>;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A TCP echo server on the reactor thread, with no JS per connection or byte. */
export declare class UringTcpEchoServer implements AsyncDisposable {
  constructor(opts?: UringTcpServerOptions);
  start(): UringServerInfo;
  info(): UringServerInfo;
  close(): Promise<void>;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A client connection of createTcpServer: 'data', 'end', 'close' events. */
export declare class TcpConnection extends EventEmitter {
  readonly id: number;
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  readonly remoteFamily: string;
  readonly destroyed: boolean;
  write(data: Bytes, encoding?: BufferEncoding, cb?: (err?: Error) => void): boolean;
  end(data?: Bytes, encoding?: BufferEncoding, cb?: () => void): this;
  destroy(): this;
  pause(): this;
  resume(): this;
  isPaused(): boolean;
  setNoDelay(noDelay?: boolean): this;
  setKeepAlive(enable?: boolean): this;
  on(event: 'data', listener: (data: Buffer) => void): this;
  on(event: 'end' | 'drained', listener: () => void): this;
  on(event: 'close', listener: (hadError: boolean) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
}

/** A net.Server-like server on the io_uring reactor. */
export declare class TcpServer extends EventEmitter implements AsyncDisposable {
  listen(port?: number, host?: string, cb?: (info: UringServerInfo) => void): this;
  listen(port: number, cb?: (info: UringServerInfo) => void): this;
  listen(opts: UringTcpServerOptions, cb?: (info: UringServerInfo) => void): this;
  address(): { address: string; family: string; port: number } | null;
  getConnections(cb?: (err: Error | null, count: number) => void): number;
  info(): UringServerInfo | null;
  close(cb?: () => void): this;
  on(event: 'connection', listener: (connection: TcpConnection) => void): this;
  on(event: 'listening', listener: (info: UringServerInfo) => void): this;
  on(event: 'close', listener: () => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A TCP server on the io_uring reactor (epoll where io_uring is forbidden). */
export declare function createTcpServer(onConnection?: (connection: TcpConnection) => void): TcpServer;

/** What this kernel lets the TCP transport use (ferrings' field names, plus the raw probe). */
export interface Capabilities {
  platform: string;
  backend: 'io_uring' | 'epoll';
  ioUring: boolean;
  ioUringUnavailable: string | null;
  ioUringDisabledSysctl: number | null;
  multishotAccept: boolean;
  multishotRecv: boolean;
  providedBufferRing: boolean;
  recvBundle: boolean;
  recvBundleSupportedByKernel: boolean;
  zeroCopySend: boolean;
  registeredSendBuffer: boolean;
  zeroCopyReceive: boolean;
  opcodes: Record<string, boolean>;
  features: Record<string, boolean>;
}
export declare function capabilities(): Capabilities;

/** Zero-copy receive is out of scope: always `{ supported: false, reason }`. */
export declare function zcrxProbe(opts?: { interfaceName?: string; rxQueue?: number; activeRegistration?: boolean }): {
  supported: false;
  interfaceName: string | null;
  rxQueue: number | null;
  activeRegistration: false;
  reason: string;
};
