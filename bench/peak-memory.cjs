/**
 * Preloaded into each benchmarked process (`node --require bench/peak-memory.cjs ...`, or
 * NODE_OPTIONS="--require ..." for the single executable, which takes no node flags on its
 * command line): when the process ends, it writes its own peak resident memory, VmHWM from
 * /proc/self/status in KiB, to file descriptor 3, which the benchmark opens as a pipe. Once a
 * process has exited its /proc/<pid>/status no longer holds VmHWM, so the process reads it itself,
 * last thing. CommonJS, because the single executable runs --require preloads but not --import.
 * Nothing else is loaded; standard output and the exit code are untouched.
 */
'use strict';
const { readFileSync, writeSync } = require('node:fs');

process.on('exit', () => {
  const kib = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  try {
    writeSync(3, `VmHWM ${kib ?? '?'}\n`);
  } catch {
    // fd 3 is not open: run by hand, not by the benchmark.
  }
});
