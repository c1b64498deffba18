/** Shared flag parsing (each bad value a UsageError naming the flag), and the flags commands share. */
import { isAbsolute, join } from 'node:path';
import type { GateTimeouts } from '../apply/gates.js';
import { defaultStateDir } from '../state/journal.js';
import type { RotationOptions } from '../rotation/run.js';
import type { Connector } from '../transport/session.js';
import { UsageError } from '../util/errors.js';
import { FlagDefault } from '../util/exit-codes.js';
import type { CliIo } from './io.js';

export function intFlag(flag: string, min: number, max: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value)) throw new UsageError(`${flag} expects a whole number, got ${JSON.stringify(value)}`);
    const n = Number(value);
    if (n < min || n > max) throw new UsageError(`${flag} must be between ${min} and ${max}, got ${n}`);
    return n;
  };
}

export function choiceFlag<T extends string>(flag: string, choices: readonly T[]) {
  return (value: string): T => {
    if (!(choices as readonly string[]).includes(value)) throw new UsageError(`${flag} must be one of ${choices.join(', ')}, got ${JSON.stringify(value)}`);
    return value as T;
  };
}

export { inventoryFromFlags, type InventoryFlags } from '../inventory/select.js';

export interface RotateEnv {
  connector?: Connector;
  timeouts?: Partial<GateTimeouts>;
  /** Ctrl-C: the CLI sets this; apply stops at the next safe point. */
  stopRequested?: () => boolean;
  interactive?: boolean;
}

export function fromCwd(io: CliIo, path: string): string {
  return isAbsolute(path) ? path : join(io.cwd, path);
}

export function stateDirOf(flags: { stateDir?: string }, io: CliIo): string {
  return flags.stateDir ? fromCwd(io, flags.stateDir) : defaultStateDir(io.env);
}

export interface ApplyFlags {
  yes?: boolean;
  refreshKubeconfig?: boolean;
  resume?: boolean;
  stateDir?: string;
  warnDays: number;
  concurrency: number;
  podTimeout?: number;
  parallel?: number;
  /** --keep-backups: after the run, older runs' backups beyond the newest N go (FlagDefault.keepBackups). */
  keepBackups?: number;
  /** Not a flag: an unattended due run starts only with etcd healthy, whatever the plan renews. */
  etcdHealthAlways?: boolean;
}

/** What a run takes from the flags and the environment. */
export function rotationOptions(flags: ApplyFlags, io: CliIo, env: RotateEnv): RotationOptions {
  return {
    stateDir: stateDirOf(flags, io),
    warnDays: flags.warnDays,
    concurrency: flags.concurrency,
    parallel: flags.parallel ?? FlagDefault.parallel,
    keepBackups: flags.keepBackups ?? FlagDefault.keepBackups,
    ...(flags.resume ? { resume: true } : {}),
    ...(flags.podTimeout ? { podTimeoutSeconds: flags.podTimeout } : {}),
    ...(env.timeouts ? { timeouts: env.timeouts } : {}),
    ...(flags.etcdHealthAlways ? { etcdHealthAlways: true } : {}),
    ...(env.stopRequested ? { stopRequested: env.stopRequested } : {}),
    ...(env.connector ? { connector: env.connector } : {}),
  };
}
