'use strict';
// The channel half of @tiga-ipc/mmap's API: `tigaWrite`, `tigaRead`, `initialized` and
// `createTigaNotificationListener`, over the core's log channels (tachyon::channel):
// named files `<ipcDirectory>/<name>`, bounded, written by any number of processes,
// read by any number, each reader keeping its own `lastId`. A reader that fell behind
// learns how many entries it missed (`lost`); nothing is skipped silently.
const os = require('node:os');
const path = require('node:path');
const native = require('./native');
const { fromInfo, withSignal } = require('./errors');
const { bytesOf, signalOf } = require('./bus');

/** Channels this process has open, by file path (opened once, kept). */
const open = new Map();

function directoryOf(options) {
  const dir = options?.ipcDirectory ?? os.tmpdir();
  if (typeof dir !== 'string' || dir === '') throw new TypeError('ipcDirectory must be a non-empty string');
  return dir;
}

function channel(name, options) {
  if (typeof name !== 'string') throw new TypeError('a channel name must be a string');
  const dir = directoryOf(options);
  const key = path.join(dir, name);
  let ch = open.get(key);
  if (ch === undefined) {
    ch = native.NativeChannel.open(dir, name, options?.capacity);
    open.set(key, ch);
  }
  return ch;
}

function lastIdOf(options) {
  const v = options?.lastId ?? 0;
  if (!Number.isSafeInteger(v) || v < 0) throw new TypeError('lastId must be a non-negative integer');
  return v;
}

function mediaTypeOf(options) {
  const m = options?.mediaType ?? '';
  if (typeof m !== 'string') throw new TypeError('mediaType must be a string');
  return m;
}

function settled(v) {
  if (v !== null && typeof v === 'object' && typeof v.code === 'string' && typeof v.message === 'string' && !('entries' in v)) {
    throw fromInfo(v);
  }
  return v;
}

/** Whether the native addon is loaded and channels can be used (always true here). */
function initialized() {
  return typeof native.NativeChannel?.open === 'function';
}

/**
 * Appends `message` (a Buffer or a string) to channel `name` in `options.ipcDirectory`
 * (created, 0600, if missing; `options.capacity` bytes, 1 MiB by default) with
 * `options.mediaType`. Returns a short result string, `ok:<id>`.
 */
function tigaWrite(name, message, options = {}) {
  const id = channel(name, options).append(mediaTypeOf(options), bytesOf(message, 'message'));
  return `ok:${id}`;
}

/** As tigaWrite, off the main thread. */
async function tigaWriteAsync(name, message, options = {}) {
  const id = settled(await channel(name, options).appendAsync(mediaTypeOf(options), Buffer.from(bytesOf(message, 'message'))));
  return `ok:${id}`;
}

function shape(r) {
  return {
    lastId: r.lastId,
    entries: r.entries.map((e) => (e.mediaType === undefined || e.mediaType === null ? { id: e.id, message: e.message } : e)),
    lost: r.lost,
    abandoned: r.abandoned,
  };
}

/**
 * The entries of channel `name` after `options.lastId` (0: from the oldest kept):
 * `{ lastId, entries: [{ id, message, mediaType }], lost, abandoned }`. Pass the
 * returned `lastId` to the next read. `lost` counts entries overwritten before this
 * reader got to them; `abandoned` those whose writer died mid-append.
 * `options.maxEntries` caps one read (default 4096).
 */
function tigaRead(name, options = {}) {
  return shape(channel(name, options).read(lastIdOf(options), options.maxEntries));
}

/** As tigaRead, off the main thread. */
async function tigaReadAsync(name, options = {}) {
  return shape(settled(await channel(name, options).readAsync(lastIdOf(options), options.maxEntries)));
}

/**
 * A handle that wakes when channel `name` gets entries after its `lastId`, with no
 * polling (a futex word in the mapping, woken by writers). `lastId` starts at
 * `options.lastId`, or the channel's newest id; each wait that returns true moves it
 * to the newest id.
 */
class TigaNotificationListener {
  #ch;
  #closed = false;

  /** @internal */
  constructor(name, options = {}) {
    // A handle of its own: closing it wakes only its own waits.
    const dir = directoryOf(options);
    this.name = name;
    this.ipcDirectory = dir;
    this.#ch = native.NativeChannel.open(dir, name, options.capacity);
    this.lastId = options.lastId === undefined ? this.#ch.lastId() : lastIdOf(options);
  }

  /** Blocks until there are entries after `lastId`: true, or false after `timeoutMs` (or once closed). */
  wait(timeoutMs) {
    if (this.#closed) return false;
    const ready = this.#ch.waitFor(this.lastId, timeoutMs);
    if (ready) this.lastId = this.#ch.lastId();
    return ready;
  }

  /** As wait, without blocking: a Promise of the same boolean. `options.signal` aborts it. */
  async waitAsync(timeoutMs, options = {}) {
    const signal = signalOf(options);
    if (this.#closed) return false;
    const r = settled(await withSignal(this.#ch.waitAsync(this.lastId, timeoutMs), signal, () => this.close()));
    if (r === true) this.lastId = this.#ch.lastId();
    return r;
  }

  /** Ends every pending wait (they return false) and later ones. Idempotent. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#ch.close();
  }

  /** Whether close() was called. */
  get closed() {
    return this.#closed;
  }

  [Symbol.dispose]() {
    this.close();
  }
}

/** `createTigaNotificationListener(name, { ipcDirectory, lastId })`. */
function createTigaNotificationListener(name, options = {}) {
  return new TigaNotificationListener(name, options);
}

module.exports = {
  initialized,
  tigaWrite,
  tigaWriteAsync,
  tigaRead,
  tigaReadAsync,
  createTigaNotificationListener,
  TigaNotificationListener,
};
