#!/usr/bin/env node
// Passes ava's TAP output (`ava --tap`) through unchanged while counting results, then writes
// one line `ava: N passed, M failed[, K skipped]` to the file named by --out (or to stdout).
//
// Counting is done from the test lines themselves, not from ava's closing comments:
//   ok N - title                -> passed
//   ok N - title # SKIP ...     -> skipped
//   not ok N - title # TODO ... -> skipped (a todo test never runs)
//   not ok N - title            -> failed (also hooks, uncaught exceptions, crashed files)
// The TAP closing `# pass` / `# fail` / `# skip` lines are used only if no test line was seen.
import { createInterface } from 'node:readline';
import { writeFileSync } from 'node:fs';

const outIdx = process.argv.indexOf('--out');
const outFile = outIdx > 0 ? process.argv[outIdx + 1] : undefined;

let passed = 0,
  failed = 0,
  skipped = 0,
  seen = 0;
const trailer = { pass: undefined, fail: undefined, skip: undefined };
const ansi = /\x1b\[[0-9;]*[A-Za-z]/g;

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', (raw) => {
  process.stdout.write(raw + '\n');
  const line = raw.replace(ansi, '');
  let m;
  if ((m = /^(not ok|ok)\b(?:\s+\d+)?(.*)$/.exec(line))) {
    seen++;
    const directive = /\s#\s*(SKIP|TODO)\b/i.exec(m[2])?.[1]?.toUpperCase();
    if (m[1] === 'ok') {
      if (directive === 'SKIP') skipped++;
      else passed++;
    } else if (directive === 'TODO') skipped++;
    else failed++;
  } else if ((m = /^# (pass|fail|skip) (\d+)\s*$/.exec(line))) {
    trailer[m[1]] = Number(m[2]);
  }
});
rl.on('close', () => {
  if (seen === 0) {
    passed = trailer.pass ?? 0;
    failed = trailer.fail ?? 0;
    skipped = trailer.skip ?? 0;
  }
  const summary = `ava: ${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`;
  if (outFile) writeFileSync(outFile, summary + '\n');
  else process.stdout.write(summary + '\n');
});
