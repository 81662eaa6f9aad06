// Compiled by `tsc --noEmit` in the tests (test/types.test.js) and, down-levelled, run
// for real: `using` must roll back, commit and close through Symbol.dispose.
import {
  Bus, RpcBus, TxSlot, RxSlot, isFull, isPeerDead, isTachyonError, isRpcError,
  startTigaServer, tigaInvokeAsync, createRpcServer, makeTypeId, TachyonRpcError,
  tigaWrite, tigaRead, tigaReadAsync, createTigaNotificationListener, streaming, type TigaReadResult,
  IPCBuffer, createTcpServer, UringTcpServer, capabilities, zcrxProbe, type Capabilities,
} from '../../index';

export function producer(bus: Bus): void {
  {
    using tx = bus.acquireTx(64);
    const slot: TxSlot = tx.bytes();
    slot.write('typed');
    tx.commit(5, makeTypeId(1, 2));
  }
  {
    using tx = bus.acquireTx(64);
    tx.bytes().write('never sent'); // leaving the block rolls back
  }
  try {
    bus.send(Buffer.alloc(8), 0, { timeoutMs: 0 });
  } catch (e) {
    if (!isFull(e)) throw e;
  }
}

export function consumer(bus: Bus): string {
  using rx = bus.acquireRx(undefined, { timeoutMs: 5000 });
  if (rx === null) throw new Error('timed out');
  const data: RxSlot = rx.data();
  // @ts-expect-error a plain Buffer is not an RxSlot: slots only come from guards
  const forged: RxSlot = Buffer.alloc(1);
  void forged;
  return data.toString('utf8', 0, rx.actualSize);
}

export async function asyncSide(bus: Bus, rpc: RpcBus): Promise<number> {
  let n = 0;
  for await (const m of bus) {
    n += m.data.length;
    if (n > 10) break;
  }
  try {
    const reply: Buffer = await rpc.callAsync('ping', 1, { timeoutMs: 1000 });
    n += reply.length;
  } catch (e) {
    if (isRpcError(e)) return e.rpcCode;
    if (isPeerDead(e) || isTachyonError(e)) return -1;
    throw e;
  }
  return n;
}

export async function servers(dir: string): Promise<string> {
  await using tiga = startTigaServer({
    channelName: 'types',
    ipcDirectory: dir,
    onInvoke: async (method, data: string, ctx) => `${method}@${ctx.clientId}:${data}#${ctx.entryId > 0}`,
    onError: (e: unknown, ctx) => console.error(ctx.requestId, e),
  });
  await using rpc = createRpcServer({
    socketPath: `${dir}/types-rpc.sock`,
    handlers: { 1: (data) => data, 2: () => { throw new TachyonRpcError(2, 9, 'no'); } },
  });
  void rpc;
  void tiga;
  return tigaInvokeAsync('types.req.ts', 'types.resp.ts', 'echo', 'hi', { ipcDirectory: dir, timeoutMs: 1000 });
}

export async function channels(dir: string): Promise<number> {
  const written: string = tigaWrite('types.events', 'payload', { ipcDirectory: dir, mediaType: 'text/plain' });
  const r: TigaReadResult = tigaRead('types.events', { ipcDirectory: dir, lastId: 0 });
  using listener = createTigaNotificationListener('types.events', { ipcDirectory: dir, lastId: r.lastId });
  const none: boolean = await listener.waitAsync(10, { signal: AbortSignal.timeout(1000) });
  const later = await tigaReadAsync('types.events', { ipcDirectory: dir, lastId: 0 });
  const media: string | undefined = later.entries[0]?.mediaType;
  return written.length + r.entries.length + (none ? 100 : 0) + (media === 'text/plain' ? 1000 : 0) + r.lost;
}

export function streamingServer(dir: string) {
  return createRpcServer({
    socketPath: `${dir}/types-stream.sock`,
    handlers: {
      5: streaming(async function* (data: Buffer) {
        yield data;
      }),
    },
  });
}

export async function sharedBuffers(name: string): Promise<number> {
  const a: Buffer = IPCBuffer(4096, `*${name}`, { mode: 0o600 });
  const b: Buffer = new IPCBuffer(4096, `*${name}`);
  a.writeUInt32LE(1, 0);
  IPCBuffer.notify(a, 0);
  const woke: boolean = await IPCBuffer.waitAsync(b, 0, 0, 100);
  const plain: Buffer = IPCBuffer(8, 'utf8');
  IPCBuffer.unlink(a);
  return b.readUInt32LE(0) + (woke ? 10 : 0) + plain.length;
}

export async function plainTcp(): Promise<number> {
  const caps: Capabilities = capabilities();
  void zcrxProbe({ interfaceName: 'eth0' }).reason;
  const raw = new UringTcpServer({ port: 0, eventBatchSize: 8 });
  const info = raw.startBatch((events) => {
    for (const e of events) if (e.eventType === 'data' && e.data) raw.sendAndClose(e.connectionId, e.data);
  });
  await raw.close();
  const server = createTcpServer((c) => c.on('data', (d: Buffer) => c.end(d)));
  server.listen({ port: 0 }, (i) => void i.bytesReceived);
  server.close();
  return info.port + (caps.multishotRecv ? 1 : 0);
}
