/**
 * --help against the code: every default and every exit code a command's help prints is compared
 * with the constant the code uses, so the two cannot drift; every command's help ends with its exit
 * codes and an example; `rotate-certs help COMMAND` prints the same as `COMMAND --help`.
 */
import { describe, expect, it } from 'vitest';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_TIMEOUTS } from '../../src/apply/gates.js';
import { defaultStateDir, LockHeldError } from '../../src/state/journal.js';
import { checkExitCode } from '../../src/check/exit-code.js';
import type { CheckReport } from '../../src/check/run.js';
import { ApplyExit, BackupsExit, CheckExit, FlagDefault, PlanExit, RotateExit, TrustExit } from '../../src/util/exit-codes.js';
import type { CliIo } from '../../src/cli/io.js';
import { runCli } from '../../src/cli/program.js';
import { ExitCode, InputFileError } from '../../src/util/errors.js';
import { certEntry } from './cert-entry.js';

async function run(args: string[]) {
  let out = '';
  let err = '';
  const io: CliIo = { out: (t) => void (out += t), err: (t) => void (err += t), color: false, env: {}, cwd: '/' };
  const code = await runCli(args, io, {});
  return { code, out, err };
}

const COMMANDS = ['check', 'plan', 'apply', 'rotate', 'restore', 'backups', 'inventory', 'trust'] as const;
type Command = (typeof COMMANDS)[number] | 'guided';

const helpOf = async (command: Command) => (await run(command === 'guided' ? ['--help'] : [command, '--help'])).out;

/** The exit codes each command's help must list, from the constants its code returns. */
const rotation = [ApplyExit.done, ApplyExit.failedRestored, ApplyExit.failedNotRestored, ExitCode.usage, ExitCode.noInput, ExitCode.unavailable, ExitCode.tempFail, ApplyExit.stopped];
const rotateCodes = [ApplyExit.done, ApplyExit.failedRestored, ApplyExit.failedNotRestored, RotateExit.refused, ExitCode.usage, ExitCode.noInput, ExitCode.unavailable, ExitCode.tempFail, ApplyExit.stopped];
const EXPECTED_CODES: Record<Command, number[]> = {
  check: [CheckExit.ok, CheckExit.expiring, CheckExit.expired, CheckExit.notChecked, ExitCode.usage, ExitCode.noInput, ExitCode.unavailable],
  plan: [PlanExit.done, PlanExit.notRead, ExitCode.usage, ExitCode.noInput, ExitCode.unavailable],
  apply: rotation,
  rotate: rotateCodes,
  restore: [ExitCode.ok, ApplyExit.failedNotRestored, ExitCode.usage, ExitCode.noInput, ExitCode.unavailable, ExitCode.tempFail],
  backups: [BackupsExit.done, BackupsExit.notRead, ExitCode.usage, ExitCode.noInput, ExitCode.unavailable, ExitCode.tempFail],
  inventory: [ExitCode.ok, ExitCode.usage, TrustExit.stopped],
  trust: [TrustExit.done, ExitCode.usage, TrustExit.refused, TrustExit.stopped],
  guided: rotation,
};

/** The codes listed after "Exit codes:", in order. */
function exitCodes(help: string): number[] {
  const section = help.slice(help.indexOf('\nExit codes:\n'), help.indexOf('\nExamples:\n'));
  return [...section.matchAll(/^ {0,2}(\d{1,3})  \S/gm)].map((m) => Number(m[1]));
}

/** Each option's help (its flags and description, wrapped lines joined), by long flag. */
function optionHelp(help: string): Map<string, string> {
  const start = help.indexOf('\nOptions:\n');
  const options = help.slice(start, help.indexOf('\n\n', start + 1));
  const out = new Map<string, string>();
  let current: string | undefined;
  for (const line of options.split('\n')) {
    const start = /^ {2}(?:-\w, )?(--[\w-]+)/.exec(line);
    if (start?.[1]) {
      current = start[1];
      out.set(current, line.trim());
    } else if (current && /^ {4,}\S/.test(line)) out.set(current, `${out.get(current)} ${line.trim()}`);
  }
  return out;
}

/** Every default an option's help states: commander's "(default: X)" and ours, "(default X)". */
function defaultsIn(text: string): string[] {
  return [...text.matchAll(/\(default:? ([^)]+)\)/g)].map((m) => m[1]!);
}

const stateDirDefault = '${XDG_STATE_HOME:-~/.local/state}/rotate-certs';

/** Per option, the defaults its help must state, from the constants the code uses. */
const EXPECTED_DEFAULTS: Record<string, string[]> = {
  // commander quotes a string default.
  '--output': [JSON.stringify(FlagDefault.output)],
  '--warn-days': [String(FlagDefault.warnDays)],
  '--concurrency': [String(FlagDefault.concurrency)],
  '--parallel': [String(FlagDefault.parallel)],
  // One value sets both waits; unset, each keeps its own default.
  '--pod-timeout': [String(DEFAULT_TIMEOUTS.podStopMs / 1000), String(DEFAULT_TIMEOUTS.podStartMs / 1000)],
  '--state-dir': [stateDirDefault],
  '--keep-backups': [String(FlagDefault.keepBackups)],
  '--keep': [String(FlagDefault.keepBackups)],
};

describe('--help states the real exit codes and defaults', () => {
  it('the exit-code constants are what the code returns', () => {
    const report = (over: Partial<CheckReport>): CheckReport => ({ cluster: 'lab', checkedAt: '2026-11-20T00:00:00.000Z', warnDays: 30, certificates: [], errors: [], ...over });
    expect(checkExitCode(report({}))).toBe(CheckExit.ok);
    expect(checkExitCode(report({ certificates: [certEntry({ status: 'expiring' })] }))).toBe(CheckExit.expiring);
    expect(checkExitCode(report({ certificates: [certEntry({ status: 'expired' })] }))).toBe(CheckExit.expired);
    expect(checkExitCode(report({ errors: [{ node: 'lab-cp-1', message: 'm' }] }))).toBe(CheckExit.notChecked);
    expect(new LockHeldError('held').exitCode).toBe(ExitCode.tempFail);
    expect(new InputFileError('runbook missing').exitCode).toBe(ExitCode.noInput);
  });

  for (const command of [...COMMANDS, 'guided'] as const) {
    it(`${command}: the exit codes, then examples, end its help`, async () => {
      const help = await helpOf(command);
      expect(exitCodes(help)).toEqual(EXPECTED_CODES[command]);
      const examples = help.slice(help.indexOf('\nExamples:\n') + '\nExamples:\n'.length).trimEnd().split('\n');
      expect(help.indexOf('\nExit codes:\n')).toBeLessThan(help.indexOf('\nExamples:\n'));
      expect(examples.length).toBeGreaterThan(0);
      for (const e of examples) expect(e).toMatch(/^ {2}rotate-certs /);
    });

    it(`${command}: every default it states is the code's`, async () => {
      const options = optionHelp(await helpOf(command));
      const checked: string[] = [];
      for (const [flag, text] of options) {
        const stated = defaultsIn(text);
        if (stated.length === 0) continue;
        checked.push(flag);
        expect(EXPECTED_DEFAULTS[flag], `${command} ${flag} states a default this test does not know: ${text}`).toBeDefined();
        expect(stated, `${command} ${flag}`).toEqual(EXPECTED_DEFAULTS[flag]);
      }
      // inventory states no default: it has only --cluster, --write, --force and the management kubeconfig.
      if (command !== 'inventory') expect(checked.length, 'the options were found').toBeGreaterThan(0);
      if (['apply', 'rotate', 'guided'].includes(command)) expect(checked).toContain('--pod-timeout');
    });
  }

  it("the state folder's default is the one stated", () => {
    expect(defaultStateDir({ XDG_STATE_HOME: '/s' })).toBe('/s/rotate-certs');
    expect(defaultStateDir({})).toBe(join(homedir(), '.local', 'state', 'rotate-certs'));
  });
});

describe('rotate-certs help COMMAND', () => {
  for (const command of COMMANDS) {
    it(`help ${command} prints ${command} --help`, async () => {
      const r = await run(['help', command]);
      expect(r.code).toBe(0);
      expect(r.err).toBe('');
      expect(r.out).toBe(await helpOf(command));
    });
  }

  it('help alone prints the main help; help of no command is a usage error', async () => {
    const r = await run(['help']);
    expect(r.code).toBe(0);
    expect(r.out).toBe(await helpOf('guided'));
    const bad = await run(['help', 'frobnicate']);
    expect(bad.code).toBe(64);
    expect(bad.err).toMatch(/^error: unknown command 'frobnicate'$/m);
  });
});
