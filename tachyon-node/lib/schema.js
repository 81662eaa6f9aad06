'use strict';
// Runtime of the modules `npx tachyon-codegen` writes from schemas/*.tachyon
// (`require('tachyon-rpc/schema')`). MessagePack through msgpackr, configured to match
// the Rust and Python generators: structs are maps keyed by field name, `undefined`
// is written as nil (msgpackr's default extension would be refused by rmp-serde), and
// 64-bit integers are read as bigint.

const { Packr, Unpackr } = require('msgpackr');
const { TachyonError } = require('./errors');
const { streaming } = require('./server');

const packr = new Packr({ useRecords: false, encodeUndefinedAsNil: true, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'bigint' });

/** An empty payload. */
const EMPTY = Buffer.alloc(0);

/** A value on the wire does not fit the schema (ERR_TACHYON_CODEC). */
class CodecError extends TachyonError {
  constructor(message) {
    super(message, 'ERR_TACHYON_CODEC');
    this.name = 'CodecError';
  }
}

/** The server serves another schema than the client was generated for (ERR_TACHYON_SCHEMA). */
class SchemaMismatchError extends TachyonError {
  constructor(message, serverOnly, clientOnly) {
    super(message, 'ERR_TACHYON_SCHEMA');
    this.name = 'SchemaMismatchError';
    this.serverOnly = serverOnly;
    this.clientOnly = clientOnly;
  }
}

/** Thrown by a handler: the caller gets an error reply with this application `code`. */
class ServiceError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'ServiceError';
    this.rpcCode = code;
  }
}

function fail(path, want, v) {
  const got = v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
  throw new CodecError(`${path}: expected ${want}, got ${got}`);
}

function encode(v) {
  return packr.pack(v);
}

function decode(b) {
  try {
    return unpackr.unpack(b);
  } catch (e) {
    throw new CodecError(`not MessagePack: ${e.message}`);
  }
}

function map(v, path) {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) fail(path, 'a map', v);
}

function int(v, lo, hi, path) {
  if (typeof v === 'bigint') {
    if (v < BigInt(lo) || v > BigInt(hi)) throw new CodecError(`${path}: ${v} is outside ${lo}..=${hi}`);
    return Number(v);
  }
  if (typeof v !== 'number' || !Number.isInteger(v)) fail(path, 'an integer', v);
  if (v < lo || v > hi) throw new CodecError(`${path}: ${v} is outside ${lo}..=${hi}`);
  return v;
}

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

function bigint(v, signed, path) {
  let b;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number' && Number.isInteger(v)) b = BigInt(v);
  else fail(path, 'an integer', v);
  const [lo, hi] = signed ? [I64_MIN, I64_MAX] : [0n, U64_MAX];
  if (b < lo || b > hi) throw new CodecError(`${path}: ${b} is outside ${lo}..=${hi}`);
  return b;
}

function num(v, path) {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  return fail(path, 'a number', v);
}

function bool(v, path) {
  if (typeof v !== 'boolean') fail(path, 'a boolean', v);
  return v;
}

function str(v, path) {
  if (typeof v !== 'string') fail(path, 'a string', v);
  return v;
}

function bytes(v, path) {
  if (!(v instanceof Uint8Array)) fail(path, 'bytes', v);
  return v;
}

function list(v, path, each) {
  if (!Array.isArray(v)) fail(path, 'a list', v);
  return v.map((x, i) => each(x, `${path}[${i}]`));
}

function dict(v, path, each) {
  map(v, path);
  const out = {};
  for (const k of Object.keys(v)) {
    // defineProperty: a "__proto__" key stays a key, never a prototype.
    Object.defineProperty(out, k, { value: each(v[k], `${path}.${k}`), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function listOut(v, each) {
  return Array.from(v, each);
}

function dictOut(v, each) {
  const out = {};
  for (const k of Object.keys(v)) {
    Object.defineProperty(out, k, { value: each(v[k]), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function bytesOut(v) {
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string') return Buffer.from(v);
  throw new CodecError('a raw reply must be a Uint8Array or a string');
}

/** Runs a request reader; a failure becomes the BAD_REQUEST error reply. */
function request(read) {
  try {
    return read();
  } catch (e) {
    e.rpcCode = 4;
    throw e;
  }
}

function options(client, opts) {
  const timeoutMs = opts?.timeoutMs ?? client.timeoutMs;
  return timeoutMs === undefined && opts?.signal === undefined ? opts : { ...opts, timeoutMs };
}

/** A Promise of the reply's bytes. */
function call(client, msgType, payload, opts) {
  return client.bus.callAsync(payload, msgType, options(client, opts));
}

/** The reply's bytes, blocking. */
function invoke(client, msgType, payload, opts) {
  return client.bus.invoke(payload, msgType, options(client, opts));
}

/** A oneway send: no reply comes back (waits for room up to the deadline). */
function notify(client, msgType, payload, opts) {
  client.bus.notify(payload, msgType, options(client, opts));
}

/**
 * A streaming call's items, read with `read` (a schema reader, or identity for raw
 * items). The call starts at the first `next()`; leaving the loop early cancels it.
 */
async function* stream(client, msgType, payload, opts, read) {
  const s = client.bus.stream(payload, msgType, options(client, opts));
  try {
    for await (const item of s) yield read(item);
  } finally {
    s.cancel();
  }
}
function readDescription(v) {
  map(v, 'Description');
  return {
    package: str(v.package, 'Description.package'),
    service: str(v.service, 'Description.service'),
    fingerprint: str(v.fingerprint, 'Description.fingerprint'),
    schema: str(v.schema, 'Description.schema'),
  };
}

/** Throws SchemaMismatchError unless `theirs` (the server's) describes `ours`. */
function verify(theirs, ours) {
  if (theirs.package === ours.package && theirs.service === ours.service && theirs.fingerprint === ours.fingerprint) return;
  const t = theirs.schema.split('\n').filter(Boolean);
  const m = ours.schema.split('\n').filter(Boolean);
  const serverOnly = t.filter((l) => !m.includes(l));
  const clientOnly = m.filter((l) => !t.includes(l));
  const lines = [
    `the server serves ${theirs.package}.${theirs.service} (fingerprint ${theirs.fingerprint}), ` +
      `this client was generated for ${ours.package}.${ours.service} (fingerprint ${ours.fingerprint})`,
    ...serverOnly.map((l) => `  server only: ${l}`),
    ...clientOnly.map((l) => `  client only: ${l}`),
  ];
  throw new SchemaMismatchError(lines.join('\n'), serverOnly, clientOnly);
}

module.exports = {
  EMPTY,
  CodecError,
  SchemaMismatchError,
  ServiceError,
  encode,
  decode,
  map,
  int,
  bigint,
  num,
  bool,
  str,
  bytes,
  list,
  dict,
  listOut,
  dictOut,
  bytesOut,
  request,
  call,
  invoke,
  notify,
  stream,
  streaming,
  readDescription,
  verify,
};
