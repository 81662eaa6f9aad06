#!/usr/bin/env node
'use strict';
// npx tachyon-codegen <schemas> -o <out> [--check] [--lang typescript|python]
// Writes <package>.js and <package>.d.ts for every schemas/*.tachyon (no compile step
// for JS users). --check writes nothing and exits 1 when a file is out of date.

const { parseArgs } = require('node:util');
const { generate } = require('../lib/codegen');

function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      out: { type: 'string', short: 'o' },
      lang: { type: 'string', default: 'typescript' },
      check: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || positionals.length !== 1 || !values.out) {
    console.log('usage: tachyon-codegen <schema dir> -o <out dir> [--check] [--lang typescript|python]');
    return values.help ? 0 : 2;
  }
  let changed;
  try {
    changed = generate(positionals[0], values.out, { lang: values.lang, check: values.check });
  } catch (e) {
    console.error(e.message);
    return 1;
  }
  for (const p of changed) console.log(values.check ? `out of date: ${p}` : `wrote ${p}`);
  return values.check && changed.length > 0 ? 1 : 0;
}

process.exitCode = main();
