'use strict';
// Loads the native addon (built from tachyon-node/src by `make node`).
const path = require('node:path');

const file = process.env.TACHYON_NODE_ADDON || path.join(__dirname, '..', 'tachyon.node');
let native;
try {
  native = require(file);
} catch (e) {
  e.message = `cannot load the tachyon native addon at ${file} (build it with \`make node\`): ${e.message}`;
  throw e;
}
module.exports = native;
