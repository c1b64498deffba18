#!/usr/bin/env node
/** The binary: the only place that exits the process. */
import { processIo } from './io.js';
import { runCli } from './program.js';

// First Ctrl-C: stop at the next step boundary, leaving every node restorable and the journal
// ready for --resume. A second one ends the process at once.
let stop = false;
process.on('SIGINT', () => {
  if (stop) process.exit(130);
  stop = true;
  process.stderr.write('\nrotate-certs: stopping at the next safe point (Ctrl-C again to quit now)...\n');
});

// A reader that goes away (rotate --dry-run | head) ends the output quietly, not with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    throw err;
  });
}

// No top-level await: the single executable runs this file bundled as one CommonJS script.
void runCli(process.argv.slice(2), processIo(), {
  stopRequested: () => stop,
  interactive: Boolean(process.stdin.isTTY && process.stdout.isTTY),
}).then((code) => {
  process.exitCode = code;
});
