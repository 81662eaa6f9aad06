'use strict';
// Code generation from schemas/*.tachyon, through the Rust generator in the addon.

const fs = require('node:fs');
const path = require('node:path');
const native = require('./native');

/**
 * Generates the modules of every schema in `schemaDir` into `outDir`. Returns the paths
 * written (with `check`: the paths out of date, writing nothing). A bad schema throws an
 * error whose message names each error's file, line and column.
 */
function generate(schemaDir, outDir, { lang = 'typescript', check = false } = {}) {
  const changed = [];
  for (const { name, text } of native.codegen(schemaDir, lang)) {
    const p = path.join(outDir, name);
    let same = false;
    try {
      same = fs.readFileSync(p, 'utf8') === text;
    } catch {}
    if (same) continue;
    changed.push(p);
    if (!check) {
      fs.mkdirSync(outDir, { recursive: true });
      fs.writeFileSync(p, text);
    }
  }
  return changed;
}

module.exports = { generate };
