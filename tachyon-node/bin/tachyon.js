#!/usr/bin/env node
'use strict';
// npx tachyon <doctor|inspect|top|bench|call> [...]: the `tachyon` command, run in this
// process by the native addon (the same code as the Rust binary and `python -m tachyon`).
const native = require('../lib/native');

process.exitCode = native.cliMain(['tachyon', ...process.argv.slice(2)]);
