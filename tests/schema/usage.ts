// Type-level checks of the generated TypeScript (tsc --strict in `make test`).
import { Bus, RpcBus, createRpcServer } from 'tachyon-rpc';
import { ServiceError, type Description } from 'tachyon-rpc/schema';
import * as quote from '../../examples/generated/ts/quote';
import * as c from './generated/conformance';
import * as feed from './generated/feed';

export async function client(bus: RpcBus): Promise<number> {
  const q = new quote.QuotesClient(bus, { timeoutMs: 1000 });
  const req: quote.QuoteReq = { symbol: 'TCHY', qty: 1, side: quote.Side.SELL };
  const got: quote.Quote = await q.quote(req, { signal: AbortSignal.timeout(500) });
  const raw: Buffer = q.echoSync(Buffer.from('x'));
  const oneway: void = await new c.ConformanceClient(bus).record({ name: 'n', tags: [] });
  void oneway;
  const d: Description = await q.describe();
  const side: quote.Side = 'short'; // a newer peer's value is still a Side
  void side;
  return got.bid + raw.length + d.schema.length;
}

export function server(path: string) {
  return createRpcServer({
    socketPath: path,
    handlers: c.conformanceHandlers({
      mirror: async (v: c.Everything) => ({ ...v, u64v: v.u64v + 1n, i64v: -1n }),
      check: (v) => {
        if (v.text === 'reject') throw new ServiceError(c.ConformanceError.REJECTED, 'no');
        return v.flag;
      },
      record: (leaf: c.Leaf) => void leaf,
      recorded: () => 0n,
    }),
  });
}

export const msgTypes: number[] = [quote.QuotesMsgType.QUOTE, c.ConformanceMsgType.MIRROR, c.ConformanceMsgType.DESCRIBE];

export function topics(bus: Bus, data: Buffer, typeId: number): string {
  c.sendLeaves(bus, { name: 'n', tags: [] }, { timeoutMs: 10 });
  c.sendBlobs(bus, Buffer.from('raw'));
  const m = c.decodeMessage(typeId, data);
  if (m === null) return 'none';
  if (m.topic === 'leaves') return m.value.name;
  const raw: Buffer = m.value;
  return raw.toString('hex');
}

export async function streams(bus: RpcBus): Promise<number> {
  const client = new feed.FeedClient(bus, { timeoutMs: 1000 });
  let last = 0;
  for await (const tick of client.ticks({ symbol: 'T', count: 3 }, { signal: AbortSignal.timeout(500) })) {
    const t: feed.Tick = tick;
    last = t.seq;
  }
  for await (const b of client.bytes_of(Buffer.from('ab'))) last += b.length;
  const raw = bus.stream(Buffer.from('x'), feed.FeedMsgType.BYTES_OF, { timeoutMs: 10 });
  const first: IteratorResult<Buffer, undefined> = await raw.next();
  raw.cancel();
  return last + (first.done ? 0 : first.value.length) + raw.correlationId;
}

export function feedServer(path: string) {
  return createRpcServer({
    socketPath: path,
    handlers: feed.feedHandlers({
      *ticks(sub: feed.Sub) {
        for (let seq = 0; seq < sub.count; seq++) yield { symbol: sub.symbol, seq, price: 0 };
      },
      async *bytes_of(data: Buffer) {
        yield data;
      },
      sent: () => 0n,
    }),
  });
}
