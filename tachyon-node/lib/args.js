'use strict';
// Argument checks of the public functions: a wrong type is a TypeError, a number out of
// range a RangeError, each naming the parameter and what it takes, as Node's own APIs
// do, with the code the addon gives a bad argument (ERR_TACHYON_INVALID_ARG). Without them a bad
// argument reaches the addon and surfaces napi's "Failed to convert napi value ...".

function shown(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  return `${typeof v} ${String(v)}`;
}

function typeError(name, what, v) {
  const e = new TypeError(`${name} must be ${what}, got ${shown(v)}`);
  e.code = 'ERR_TACHYON_INVALID_ARG';
  return e;
}

/** A string. */
function str(v, name) {
  if (typeof v !== 'string') throw typeError(name, 'a string', v);
  return v;
}

/** An integer in min..=max. */
function int(v, name, min, max) {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw typeError(name, `an integer in ${min}..=${max}`, v);
  if (v < min || v > max) {
    const e = new RangeError(`${name} must be in ${min}..=${max}, got ${v}`);
    e.code = 'ERR_TACHYON_INVALID_ARG';
    throw e;
  }
  return v;
}

/** As int, or undefined when absent (undefined or null). */
function optInt(v, name, min, max) {
  return v === undefined || v === null ? undefined : int(v, name, min, max);
}

const U32 = 0xffffffff;
/** A msg_type: 0..=65535. */
const msgType = (v, name = 'msgType') => int(v, name, 0, 0xffff);
/** A 32-bit unsigned integer (a type id, a size, a count). */
const u32 = (v, name) => int(v, name, 0, U32);
/** A correlation id (an exact integer up to 2^53). */
const id = (v, name = 'correlationId') => int(v, name, 0, Number.MAX_SAFE_INTEGER);

/** A boolean. */
function bool(v, name) {
  if (typeof v !== 'boolean') throw typeError(name, 'a boolean', v);
  return v;
}

/** An options object (or undefined). */
function opts(v, name = 'opts') {
  if (v !== undefined && v !== null && typeof v !== 'object') throw typeError(name, 'an options object', v);
  return v;
}

/**
 * `opts.timeoutMs`: a number of milliseconds, or undefined. (The addon refuses a negative
 * one with ERR_TACHYON_INVALID_ARG.)
 */
function timeoutOf(o) {
  if (opts(o) == null || o.timeoutMs === undefined || o.timeoutMs === null) return undefined;
  const t = o.timeoutMs;
  if (typeof t !== 'number' || Number.isNaN(t)) throw typeError('opts.timeoutMs', 'a number of milliseconds', t);
  return t;
}

module.exports = { str, int, optInt, msgType, u32, id, bool, opts, timeoutOf, typeError };
