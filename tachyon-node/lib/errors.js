'use strict';
// Errors: every error this package throws has a `code` starting with ERR_TACHYON_.

/**
 * The class of every error this package throws, sync or async: `e instanceof
 * TachyonError` holds for the native addon's errors too (they carry an ERR_TACHYON_*
 * code), so one check covers both.
 */
class TachyonError extends Error {
  constructor(message, code = 'ERR_TACHYON') {
    super(message);
    this.name = 'TachyonError';
    this.code = code;
  }

  static [Symbol.hasInstance](value) {
    // Native errors are plain Errors with a code; subclasses keep the usual test.
    if (this === TachyonError) return isTachyonError(value);
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }
}

/**
 * Error codes of the structured 0xFFFF reply: the core's table (tachyon::rpc::code), the
 * same names and values as Python's `tachyon.RpcCode`.
 */
const RpcCode = Object.freeze(Object.fromEntries(require('./native').rpcCodes().map((c) => [c.name, c.code])));

/** The remote handler failed: the caller got the 0xFFFF error reply. */
class TachyonRpcError extends TachyonError {
  constructor(msgType, rpcCode, message) {
    super(`rpc error on msg_type ${msgType} (code ${rpcCode}): ${message}`, 'ERR_TACHYON_RPC');
    this.name = 'TachyonRpcError';
    /** The msg_type that failed. */
    this.msgType = msgType;
    /** The error code sent by the server (RpcCode). */
    this.rpcCode = rpcCode;
    /** The server's message. */
    this.rpcMessage = message;
  }
}

const MSG_TYPE_ERROR = 0xffff;

/** Builds the error an async outcome carried. */
function fromInfo(info) {
  return new TachyonError(info.message, info.code);
}

/** Throws TachyonRpcError for an error reply (decoded natively); returns others. */
function checkReply(reply) {
  const e = reply.error;
  if (e != null) throw new TachyonRpcError(e.msgType, e.code, e.message);
  return reply;
}

const hasCode = (e, code) => e != null && typeof e === 'object' && e.code === code;

/** Whether `e` came from tachyon (its code starts with ERR_TACHYON). */
const isTachyonError = (e) =>
  e != null && typeof e === 'object' && typeof e.code === 'string' && e.code.startsWith('ERR_TACHYON');
/** The peer speaks another ABI or bus kind. */
const isAbiMismatch = (e) => hasCode(e, 'ERR_TACHYON_ABI_MISMATCH');
/** The ring had no room (a send with timeoutMs 0, or a reply). */
const isFull = (e) => hasCode(e, 'ERR_TACHYON_FULL');
/** The peer died (its process exited or crashed without closing its bus). */
const isPeerDead = (e) => hasCode(e, 'ERR_TACHYON_PEER_DEAD');
/** The peer closed its bus on purpose; everything it sent was delivered. */
const isPeerClosed = (e) => hasCode(e, 'ERR_TACHYON_PEER_CLOSED');
/** The peer is gone, cleanly or not. */
const isPeerGone = (e) => isPeerDead(e) || isPeerClosed(e);
/** Nobody listens at the socket path (or a server turned this connector away). */
const isConnectError = (e) => hasCode(e, 'ERR_TACHYON_CONNECT') || hasCode(e, 'ERR_TACHYON_REFUSED');
/** The other side runs as a user this side does not trust, or refused this user. */
const isPermissionDenied = (e) => hasCode(e, 'ERR_TACHYON_PERMISSION');
/** A timeout the caller set ran out. */
const isTimeout = (e) => hasCode(e, 'ERR_TACHYON_TIMEOUT');
/** The bus was closed on this side. */
const isClosed = (e) => hasCode(e, 'ERR_TACHYON_CLOSED');
/** The remote handler failed (a TachyonRpcError). */
const isRpcError = (e) => e instanceof TachyonRpcError;

/** Why an aborted operation failed: the signal's reason, or an AbortError. */
function abortReason(signal) {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

/** Throws if `signal` (an AbortSignal, or nullish) is already aborted. */
function checkSignal(signal) {
  if (signal == null) return;
  if (typeof signal.aborted !== 'boolean' || typeof signal.addEventListener !== 'function') {
    throw new TypeError('opts.signal must be an AbortSignal');
  }
  if (signal.aborted) throw abortReason(signal);
}

/**
 * `promise`, or a rejection with the signal's reason as soon as `signal` aborts (then
 * `onAbort()` undoes what the operation holds). Without a signal, `promise` itself.
 */
function withSignal(promise, signal, onAbort) {
  if (signal == null) return promise;
  checkSignal(signal);
  return new Promise((resolve, reject) => {
    const abort = () => {
      try {
        onAbort?.();
      } finally {
        reject(abortReason(signal));
      }
    };
    signal.addEventListener('abort', abort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', abort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', abort);
        reject(e);
      },
    );
  });
}

function timeoutError(ms) {
  return new TachyonError(`timed out after ${ms} ms; the peer may be slow or gone`, 'ERR_TACHYON_TIMEOUT');
}

module.exports = {
  TachyonError,
  TachyonRpcError,
  RpcCode,
  MSG_TYPE_ERROR,
  fromInfo,
  checkReply,
  timeoutError,
  abortReason,
  checkSignal,
  withSignal,
  isTachyonError,
  isAbiMismatch,
  isFull,
  isPeerDead,
  isPeerClosed,
  isPeerGone,
  isConnectError,
  isPermissionDenied,
  isTimeout,
  isClosed,
  isRpcError,
};
