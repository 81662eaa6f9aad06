'use strict';
// Every ```js snippet of the README, run for real from the repository root. A
// "// process A" block runs together with the "// process B" block after it.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./helpers');

const README = fs.readFileSync(path.join(h.ROOT, 'README.md'), 'utf8');
const blocks = [...README.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);

const expected = [
  [/65543 hello from B/, /async 2 32/],
  null, // process B: checked through A's output
  [/^42$/m, /true 42 no/],
  [/lookup for c1: AAPL/],
  [/^true 1 event payload text\/plain 0$/m],
  [/^true hello$/m],
  [/^accepted a client, pid \d+$/m, /^1 1$/m],
];

function runSnippet(code) {
  return h.run(process.execPath, ['-e', code], { cwd: h.ROOT });
}

test('the README has the Node snippets this test expects', () => {
  assert.equal(blocks.length, expected.length);
  assert.match(blocks[0], /process A/);
  assert.match(blocks[1], /process B/);
});

blocks.forEach((code, i) => {
  if (/process B/.test(code)) return;
  test(`README js snippet ${i + 1}${/process A/.test(code) ? ' (processes A and B)' : ''}`, async () => {
    fs.rmSync('/tmp/readme-node.sock', { force: true });
    const a = runSnippet(code);
    let b = null;
    if (/process A/.test(code)) {
      while (!fs.existsSync('/tmp/readme-node.sock')) await new Promise((r) => setTimeout(r, 10));
      b = runSnippet(blocks[i + 1]);
    }
    const out = await a.done;
    assert.equal(out.code, 0, out.stdout + out.stderr);
    if (b) {
      const outB = await b.done;
      assert.equal(outB.code, 0, outB.stdout + outB.stderr);
    }
    for (const re of expected[i]) assert.match(out.stdout, re);
  });
});
