'use strict';
// Loads the native addon through the loader `napi build --platform` generates
// (../native.js: picks `tachyon.<platform>.node`). TACHYON_NODE_ADDON points at another
// build of the addon instead (a debug build, for instance).
const file = process.env.TACHYON_NODE_ADDON;
let native;
try {
  native = file ? require(file) : require('../native.js');
} catch (e) {
  e.message = `cannot load the tachyon native addon${file ? ` at ${file}` : ''} (build it with \`npm run build\` or \`make node\`): ${e.message}`;
  throw e;
}
module.exports = native;
