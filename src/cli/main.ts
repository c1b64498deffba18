#!/usr/bin/env node
/** The binary: the only place that exits the process. */
import { processIo } from './io.js';
import { runCli } from './program.js';

const code = await runCli(process.argv.slice(2), processIo());
process.exitCode = code;
