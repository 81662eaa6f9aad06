'use strict';
// The core's connection events on `diagnostics_channel`: one channel per event name,
// `tachyon:<name>`. Spans: `tachyon:connect`, `tachyon:accept`, `tachyon:handshake`.
// Events: `tachyon:connected`, `tachyon:accepted`, `tachyon:refused`,
// `tachyon:handshake_failed`, `tachyon:peer_dead`, `tachyon:connect_failed`. Each
// message is `{ kind, name, level, message, ...fields }` (field values are strings).
//
//   const dc = require('node:diagnostics_channel');
//   dc.subscribe('tachyon:accepted', (m) => console.log('client', m.peer_pid));
//
// Nothing is published to a channel without subscribers. The native side hands events
// over through a weak threadsafe function: it never keeps the process alive.
const dc = require('node:diagnostics_channel');
const native = require('./native');

/** The channel names, by event name. */
const CHANNELS = Object.freeze(
  Object.fromEntries(
    ['connect', 'accept', 'handshake', 'connected', 'accepted', 'refused', 'handshake_failed', 'peer_dead', 'connect_failed']
      .map((n) => [n, `tachyon:${n}`]),
  ),
);

const channels = new Map();

function publish(r) {
  let ch = channels.get(r.name);
  if (ch === undefined) {
    ch = dc.channel(`tachyon:${r.name}`);
    channels.set(r.name, ch);
  }
  if (ch.hasSubscribers) {
    ch.publish({ ...r.fields, kind: r.kind, name: r.name, level: r.level, message: r.message });
  }
}

native.forwardEvents(publish);

module.exports = { CHANNELS };
