'use strict';
// Bus: the SPSC shared-memory bus, with zero-copy guards and async receives.
const native = require('./native');
const arg = require('./args');
const { timeoutOf } = arg;
const { fromInfo, timeoutError, isPeerClosed, isClosed, checkSignal, withSignal } = require('./errors');

/** Turns Buffer | Uint8Array | ArrayBuffer | string into bytes napi accepts. */
function bytesOf(data, what = 'data') {
  if (Buffer.isBuffer(data) || data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (typeof data === 'string') return Buffer.from(data);
  throw new TypeError(`${what} must be a Buffer, Uint8Array, ArrayBuffer or string, got ${typeof data}`);
}


/** A spin count, or undefined for the default. */
const optSpin = (v) => arg.optInt(v, 'spinThreshold', 0, 0xffffffff);

/** The signal of `opts`, checked: throws at once if it is already aborted. */
function signalOf(opts) {
  const signal = opts == null ? undefined : opts.signal;
  checkSignal(signal);
  return signal;
}

/**
 * Runs a native `listenAsync(..., cancel)` under `opts.signal`: an abort cancels the
 * native wait, rejects at once, and closes a bus that still opened meanwhile.
 */
async function listenUnder(opts, start) {
  const signal = signalOf(opts);
  const cancel = signal ? new native.NativeCancel() : undefined;
  const pending = start(cancel);
  if (!signal) return pending;
  try {
    return await withSignal(pending, signal, () => cancel.cancel());
  } catch (e) {
    if (signal.aborted) {
      pending.then((r) => {
        if (typeof r?.close === 'function') r.close();
      });
    }
    throw e;
  }
}

/** Slices a packed batch (one Buffer, sizes, type ids) into messages sharing it. */
function unpack(p) {
  const out = new Array(p.sizes.length);
  let off = 0;
  for (let i = 0; i < out.length; i++) {
    const end = off + p.sizes[i];
    out[i] = { data: p.data.subarray(off, end), typeId: p.typeIds[i] };
    off = end;
  }
  return out;
}

/** A reserved TX slot. Write through bytes(), then commit; leaving `using` rolls back. */
class TxGuard {
  #slot;
  #ab = null;
  #buf = null;

  constructor(slot) {
    this.#slot = slot;
  }

  /** Bytes reserved. */
  get maxSize() {
    return this.#slot.maxSize;
  }

  /** Whether the slot is still held. */
  get open() {
    return this.#slot.open;
  }

  /** The slot as a Buffer over shared memory. Detached (length 0) after commit or rollback. */
  bytes() {
    if (this.#buf === null) {
      this.#ab = this.#slot.buffer();
      this.#buf = Buffer.from(this.#ab);
    }
    return this.#buf;
  }

  /** Publishes `actualSize` bytes as one message and wakes the consumer. */
  commit(actualSize, typeId = 0) {
    this.#slot.commit(this.#ab ?? undefined, actualSize, typeId, true);
  }

  /** Publishes without waking the consumer; `bus.flush()` does it later. */
  commitUnflushed(actualSize, typeId = 0) {
    this.#slot.commit(this.#ab ?? undefined, actualSize, typeId, false);
  }

  /** Gives the slot back unpublished. */
  rollback() {
    this.#slot.rollback(this.#ab ?? undefined);
  }

  [Symbol.dispose]() {
    if (this.#slot.open) this.rollback();
  }
}

/** Received messages held in place; commit (or leave `using`) to release them. */
class RxBatch {
  #slot;
  #abs = null;
  #items = null;

  constructor(slot) {
    this.#slot = slot;
  }

  /** The messages, built once: Buffers over the ring memory the slot handed out. */
  #all() {
    if (this.#items === null) {
      const n = this.#slot.length;
      const l = n ? this.#slot.layout() : new Uint32Array(0);
      this.#abs = n ? this.#slot.buffers() : [];
      const items = new Array(n);
      for (let i = 0; i < n; i++) {
        const k = 4 * i;
        const size = l[k + 2];
        items[i] = { data: Buffer.from(this.#abs[l[k]], l[k + 1], size), typeId: l[k + 3], actualSize: size, size };
      }
      this.#items = items;
    }
    return this.#items;
  }

  /** How many messages. */
  get length() {
    return this.#slot.length;
  }

  /** Whether the messages are still held. */
  get open() {
    return this.#slot.open;
  }

  /** Message `i` (negative counts from the end): data is a Buffer over shared memory. */
  at(i) {
    const n = this.#slot.length;
    const k = i < 0 ? i + n : i;
    if (!Number.isInteger(k) || k < 0 || k >= n) return undefined;
    return this.#all()[k];
  }

  *[Symbol.iterator]() {
    yield* this.#all();
  }

  /** Releases the slots; every Buffer handed out is detached (length 0) afterwards. */
  commit() {
    this.#slot.commit(this.#abs ?? undefined);
  }

  [Symbol.dispose]() {
    this.commit();
  }
}

/** One received message held in place. */
class RxGuard extends RxBatch {
  /** The payload as a Buffer over shared memory (detached after commit). */
  data() {
    return this.at(0).data;
  }

  /** The message's type id. */
  get typeId() {
    return this.at(0).typeId;
  }

  /** The payload size. */
  get actualSize() {
    return this.at(0).actualSize;
  }
}

/**
 * A single-producer, single-consumer shared-memory bus. One process listens, the other
 * connects; one side sends, the other receives.
 */
class Bus {
  #n;
  /** Messages fetched by an async receive but not handed out yet (kept, never lost). */
  #backlog = [];
  /** Aborted receives still pending in the native pump. */
  #orphans = 0;
  #wakeBacklog = null;
  /** Async receives answered at once in a row (the event loop gets a turn every 16). */
  #eager = 0;

  /** @internal */
  constructor(nativeBus) {
    if (!(nativeBus instanceof native.NativeBus)) {
      throw new TypeError('use Bus.listen, Bus.listenAsync or Bus.connect');
    }
    this.#n = nativeBus;
  }

  /** Creates a ring of `capacity` bytes and waits (blocking) for one peer. */
  static listen(socketPath, capacity, opts) {
    return new Bus(native.NativeBus.listen(arg.str(socketPath, 'socketPath'), arg.u32(capacity, 'capacity'), timeoutOf(opts)));
  }

  /** Creates a ring and waits for one peer off the main thread (opts.signal aborts). */
  static async listenAsync(socketPath, capacity, opts) {
    arg.str(socketPath, 'socketPath');
    arg.u32(capacity, 'capacity');
    const r = await listenUnder(opts, (cancel) =>
      native.NativeBus.listenAsync(socketPath, capacity, timeoutOf(opts), cancel));
    if (r instanceof native.NativeBus) return new Bus(r);
    throw fromInfo(r);
  }

  /** Connects to the listener at `socketPath`, waiting at most opts.timeoutMs (10 s). */
  static connect(socketPath, opts) {
    signalOf(opts);
    return new Bus(native.NativeBus.connect(arg.str(socketPath, 'socketPath'), timeoutOf(opts)));
  }

  /** As connect, off the main thread: a Promise of the bus (opts.signal aborts the wait). */
  static async connectAsync(socketPath, opts) {
    arg.str(socketPath, 'socketPath');
    const r = await listenUnder(opts, (cancel) => native.NativeBus.connectAsync(socketPath, timeoutOf(opts), cancel));
    if (r instanceof native.NativeBus) return new Bus(r);
    throw fromInfo(r);
  }

  /** Closes the bus (idempotent). Pending async receives fail with ERR_TACHYON_CLOSED. */
  close() {
    this.#n.close();
  }

  /** Whether close() was called. */
  get closed() {
    return this.#n.closed;
  }

  /**
   * This side's counters, as plain numbers: messages and bytes each way, full-ring
   * waits, sleeps, wakes, timeouts, peer deaths, protocol errors. Never blocks.
   */
  stats() {
    return this.#n.stats();
  }

  /** Ring capacity in bytes. */
  get capacity() {
    return this.#n.capacity;
  }

  /**
   * Sends one message (a copy into the ring). A full ring throws ERR_TACHYON_FULL at
   * once, as upstream's does; opts.timeoutMs waits that long for room instead.
   */
  send(data, typeId = 0, opts) {
    signalOf(opts);
    this.#n.send(bytesOf(data), arg.u32(typeId, 'typeId'), timeoutOf(opts) ?? 0);
  }

  /** Publishes messages committed unflushed. */
  flush() {
    this.#n.flush();
  }

  /** Waits for the next message and returns a heap copy (safe to keep). */
  recv(spinThreshold, opts) {
    signalOf(opts);
    const t = timeoutOf(opts);
    for (;;) {
      try {
        const m = this.#n.recv(optSpin(spinThreshold), t);
        if (m === null) throw timeoutError(t);
        return m;
      } catch (e) {
        if (e.code !== 'ERR_TACHYON_INTERRUPTED') throw e; // EINTR: retry
      }
    }
  }

  /**
   * Reserves `maxSize` bytes for zero-copy writing. A full ring throws ERR_TACHYON_FULL
   * at once; opts.timeoutMs waits that long for room instead.
   */
  acquireTx(maxSize, opts) {
    signalOf(opts);
    return new TxGuard(this.#n.acquireTx(arg.u32(maxSize, 'maxSize'), timeoutOf(opts) ?? 0));
  }

  /** Waits for one message and holds it in place; null on a timeout. */
  acquireRx(spinThreshold, opts) {
    signalOf(opts);
    const slot = this.#n.acquireRx(optSpin(spinThreshold), timeoutOf(opts));
    return slot === null ? null : new RxGuard(slot);
  }

  /** Waits for at least one message, then holds up to `maxMsgs` in place. */
  drainBatch(maxMsgs, spinThreshold, opts) {
    signalOf(opts);
    return new RxBatch(this.#n.drainBatch(arg.u32(maxMsgs, 'maxMsgs'), optSpin(spinThreshold), timeoutOf(opts)));
  }

  /**
   * Receives up to `maxMsgs` (at least one) without blocking the event loop. An abort
   * (opts.signal) rejects at once; messages that arrive for the aborted receive are
   * kept for the next one, never lost.
   */
  async recvManyAsync(maxMsgs, opts) {
    const signal = signalOf(opts);
    if (this.#backlog.length > 0) return this.#backlog.splice(0, maxMsgs);
    // Fast path: messages already in the ring are copied out here, without a trip
    // through the pump thread. After 16 in a row, timers and I/O get a turn first.
    if (this.#eager >= 16) {
      this.#eager = 0;
      await new Promise((resolve) => setImmediate(resolve));
    }
    const ready = this.#n.tryRecvPacked(maxMsgs);
    if (ready !== null) {
      this.#eager++;
      return unpack(ready);
    }
    this.#eager = 0;
    const pending = this.#n.recvAsync(maxMsgs, timeoutOf(opts));
    let r;
    try {
      if (this.#orphans > 0) {
        // An aborted receive may still take the next messages from the ring: whichever
        // settles first, its messages or ours, answers this receive.
        const first = await withSignal(
          Promise.race([pending.then((own) => ({ own })), this.#backlogChanged().then(() => null)]),
          signal,
        );
        if (first === null) {
          this.#orphan(pending);
          if (this.#backlog.length > 0) return this.#backlog.splice(0, maxMsgs);
          return this.recvManyAsync(maxMsgs, opts);
        }
        r = first.own;
      } else {
        r = await withSignal(pending, signal);
      }
    } catch (e) {
      if (signal?.aborted) this.#orphan(pending);
      throw e;
    }
    if (r.sizes !== undefined) return unpack(r);
    throw fromInfo(r);
  }

  /** A receive nobody awaits any more: what it gets goes to the backlog, never lost. */
  #orphan(pending) {
    this.#orphans++;
    const settle = (late) => {
      this.#orphans--;
      if (late?.sizes !== undefined) this.#backlog.push(...unpack(late));
      const wake = this.#wakeBacklog;
      this.#wakeBacklog = null;
      wake?.resolve();
    };
    pending.then(settle, () => settle(undefined));
  }

  /** Resolves when an orphaned receive settles (the backlog may have grown). */
  #backlogChanged() {
    if (this.#wakeBacklog === null) {
      let resolve;
      const promise = new Promise((r) => (resolve = r));
      this.#wakeBacklog = { promise, resolve };
    }
    return this.#wakeBacklog.promise;
  }

  /** Receives the next message (a heap copy) without blocking the event loop. */
  async recvAsync(opts) {
    return (await this.recvManyAsync(1, opts))[0];
  }

  /**
   * Messages as they arrive, without blocking the event loop. Ends when the peer closed
   * its bus (after everything it sent) or this bus is closed; throws ERR_TACHYON_PEER_DEAD
   * if the peer died, and the signal's reason if opts.signal aborts. Messages are
   * fetched in batches of up to `batch`.
   */
  async *messages(opts = {}) {
    const batch = opts.batch ?? 256;
    for (;;) {
      if (this.#backlog.length === 0) {
        let got;
        try {
          got = await this.recvManyAsync(batch, opts);
        } catch (e) {
          if (isPeerClosed(e) || isClosed(e)) return;
          throw e;
        }
        // A message leaves the backlog only when it is handed out, so breaking out of
        // the loop keeps the rest for the next receive.
        this.#backlog.push(...got);
      }
      yield this.#backlog.shift();
    }
  }

  [Symbol.asyncIterator]() {
    return this.messages();
  }

  /** Spin only (true) or spin then sleep (false) while waiting. */
  setPollingMode(spinOnly) {
    this.#n.setPollingMode(Boolean(spinOnly));
  }

  /** Binds the ring's memory to a NUMA node. */
  setNumaNode(node) {
    this.#n.setNumaNode(arg.u32(node, 'node'));
  }

  [Symbol.dispose]() {
    this.close();
  }
}

module.exports = { Bus, TxGuard, RxGuard, RxBatch, bytesOf, timeoutOf, signalOf, listenUnder };
