'use strict';
// node-ipcbuffer's `IPCBuffer`: Buffers shared between processes, over the core's shared
// buffers (tachyon::SharedBuffer). What it returns is a real Buffer over the mapping, so
// everything a Buffer does works on it:
//   IPCBuffer(length, '*name')            POSIX shared memory by name (no file)
//   IPCBuffer(length, filename)           a file, mapped shared
//   IPCBuffer(length, key)                System V shared memory by numeric key
//   IPCBuffer(length, encoding, target)   the same, with an encoding given (as 003 lists)
// and the plain-Buffer forms: IPCBuffer(length[, encoding]), IPCBuffer(parent, length
// [, encoding][, offset]) (an alias of part of `parent`), IPCBuffer(string[, encoding]).
// A last argument `{ mode, create }` sets a new object's permission bits (0o600 by
// default) and whether a missing one is created. Beyond 003: IPCBuffer.wait/waitAsync
// and IPCBuffer.notify on a 32-bit word, across processes; unlink and flush.
const native = require('./native');
const { fromInfo, withSignal } = require('./errors');

const ENCODINGS = new Set([
  'utf8', 'utf-8', 'ascii', 'binary', 'latin1', 'base64', 'base64url', 'hex', 'ucs2', 'ucs-2', 'utf16le', 'utf-16le',
]);

/** The native handle of each shared Buffer (weak: it lives as long as the Buffer). */
const handles = new WeakMap();

function isOptions(v) {
  return v !== null && typeof v === 'object' && !Buffer.isBuffer(v) && !(v instanceof Uint8Array);
}

/** `*name`, a decimal key, or a path: the three kinds of 003. */
function kindOf(target) {
  if (typeof target === 'number') {
    if (!Number.isInteger(target)) throw new TypeError(`a System V key is an integer, got ${target}`);
    return ['sysv', String(target)];
  }
  if (typeof target !== 'string' || target === '') throw new TypeError('a shared buffer target is "*name", a path or a numeric key');
  if (target.startsWith('*')) return ['posix', target.slice(1)];
  if (/^-?\d+$/.test(target)) return ['sysv', target];
  return ['file', target];
}

function shared(length, target, options = {}) {
  const [kind, name] = kindOf(target);
  const handle = native.NativeSharedBuffer.open(kind, name, length, options.mode, options.create);
  const buf = handle.buffer();
  handles.set(buf, handle);
  return buf;
}

function checkLength(length) {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`length must be a non-negative integer, got ${length}`);
  return length;
}

/**
 * A Buffer, shared between processes when a target is given (see the forms above).
 * Callable with or without `new`.
 */
function IPCBuffer(...args) {
  const options = args.length > 0 && isOptions(args[args.length - 1]) ? args.pop() : {};
  const [a, b, c, d] = args;
  if (Buffer.isBuffer(a) || a instanceof Uint8Array) {
    // An alias: (parent, length[, encoding][, offset]).
    const parent = Buffer.isBuffer(a) ? a : Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    const length = checkLength(b ?? parent.length);
    const offset = typeof c === 'number' ? c : (d ?? 0);
    if (offset + length > parent.length) throw new RangeError('the alias runs past the end of its parent');
    return parent.subarray(offset, offset + length);
  }
  if (typeof a === 'string') {
    // (string[, encoding][, target]): the string's bytes, in a shared buffer if asked.
    const encoding = typeof b === 'string' && ENCODINGS.has(b.toLowerCase()) ? b : 'utf8';
    const target = encoding === b ? c : b;
    const bytes = Buffer.from(a, encoding);
    if (target === undefined) return bytes;
    const buf = shared(bytes.length, target, options);
    bytes.copy(buf);
    return buf;
  }
  if (Array.isArray(a)) return Buffer.from(a);
  const length = checkLength(a);
  // (length), (length, encoding), (length, target), (length, encoding, target).
  let target = b;
  if (typeof b === 'string' && ENCODINGS.has(b.toLowerCase())) target = c;
  if (target === undefined) return Buffer.alloc(length);
  return shared(length, target, options);
}

function handleOf(buf) {
  const h = handles.get(buf);
  if (h === undefined) throw new TypeError('not a shared IPCBuffer (made with a name, path or key)');
  return h;
}

/** Whether `buf` is a shared IPCBuffer. */
IPCBuffer.isShared = (buf) => handles.has(buf);
/** Whether this process created the object behind `buf` (rather than attaching it). */
IPCBuffer.created = (buf) => handleOf(buf).created;
/** Removes the name (POSIX object, file or key); mappings stay. */
IPCBuffer.unlink = (buf) => handleOf(buf).unlink();
/** Writes a file-backed buffer back to its file now (it is also synced when collected). */
IPCBuffer.flush = (buf) => handleOf(buf).flush();
/** Blocks while the 32-bit word at `offset` is `expected`: true once it changes or a notify comes, false after `timeoutMs`. */
IPCBuffer.wait = (buf, offset, expected, timeoutMs) => handleOf(buf).wait(offset, expected >>> 0, timeoutMs);
/** As wait, off the main thread: a Promise of the same boolean (`options.signal` aborts). */
IPCBuffer.waitAsync = async (buf, offset, expected, timeoutMs, options = {}) => {
  const h = handleOf(buf);
  const r = await withSignal(h.waitAsync(offset, expected >>> 0, timeoutMs), options.signal, () => h.close());
  if (typeof r !== 'boolean') throw fromInfo(r);
  return r;
};
/** Wakes up to `count` (default all) waiters on the word at `offset`, in any process. */
IPCBuffer.notify = (buf, offset, count) => handleOf(buf).notify(offset, count);
/** Ends this process's pending waits on `buf` (they return false). */
IPCBuffer.close = (buf) => handleOf(buf).close();

module.exports = { IPCBuffer };
