/**
 * The journal: an append-only JSON-lines file per cluster on the admin machine, written before
 * and after every step, with backup paths. `apply --resume` and `restore` read it. Also the
 * cluster's run lock. Never holds secrets: step output is not journaled.
 */
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { hostname, homedir } from 'node:os';
import { join } from 'node:path';
import { RotateCertsError, ExitCode, UsageError } from '../util/errors.js';

export type JournalEvent =
  | 'run-start'
  | 'run-resume'
  | 'step-start'
  | 'step-done'
  | 'step-failed'
  | 'restore-start'
  | 'restore-done'
  | 'restore-failed'
  | 'run-stopped'
  | 'run-failed'
  | 'run-done';

export interface JournalEntry {
  t: string;
  runId: string;
  event: JournalEvent;
  phase?: string;
  node?: string;
  step?: string;
  message?: string;
  backups?: string[];
  /** For the plan a run executes: absolute path. */
  plan?: string;
  downtimeMs?: number;
}

/** ${XDG_STATE_HOME:-~/.local/state}/rotate-certs, unless --state-dir says otherwise. */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'rotate-certs');
}

export class LockHeldError extends RotateCertsError {
  constructor(message: string) {
    super(message, ExitCode.tempFail);
  }
}

export class Journal {
  readonly dir: string;
  readonly file: string;
  private lockFile: string;
  private locked = false;

  constructor(stateDir: string, readonly cluster: string) {
    this.dir = join(stateDir, cluster);
    this.file = join(this.dir, 'journal.jsonl');
    this.lockFile = join(this.dir, 'lock');
  }

  /** The state folder, or a usage error naming it when it cannot be one (a file in the way, no permission). */
  private makeDir(): void {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new UsageError(`cannot use ${this.dir} as the state folder (${code === 'ENOTDIR' || code === 'EEXIST' ? 'a file is in the way' : code}): give --state-dir a folder`);
    }
  }

  /** Takes the cluster's lock, or refuses naming who holds it. A dead holder's lock is taken over. */
  lock(runId: string): void {
    this.makeDir();
    const me = { pid: process.pid, host: hostname(), runId, since: new Date().toISOString() };
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(this.lockFile, 'wx', 0o600);
        writeSync(fd, `${JSON.stringify(me)}\n`);
        closeSync(fd);
        this.locked = true;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      let holder: typeof me | undefined;
      try {
        holder = JSON.parse(readFileSync(this.lockFile, 'utf8')) as typeof me;
      } catch {
        holder = undefined;
      }
      if (holder && holder.host === me.host && !alive(holder.pid)) {
        unlinkSync(this.lockFile);
        continue;
      }
      const who = holder ? `pid ${holder.pid} on ${holder.host}, run ${holder.runId}, since ${holder.since}` : 'an unreadable lock';
      throw new LockHeldError(`another rotate-certs run holds the lock for cluster ${this.cluster} (${who}); wait for it, or if it is gone, remove ${this.lockFile}`);
    }
  }

  unlock(): void {
    if (this.locked && existsSync(this.lockFile)) unlinkSync(this.lockFile);
    this.locked = false;
  }

  append(entry: Omit<JournalEntry, 't'>): void {
    this.makeDir();
    appendFileSync(this.file, `${JSON.stringify({ t: new Date().toISOString(), ...entry })}\n`, { mode: 0o600 });
  }

  entries(runId?: string): JournalEntry[] {
    if (!existsSync(this.file)) return [];
    const out: JournalEntry[] = [];
    for (const line of readFileSync(this.file, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        const e = JSON.parse(line) as JournalEntry;
        if (!runId || e.runId === runId) out.push(e);
      } catch {
        // A line cut off by a crash: everything before it still counts.
      }
    }
    return out;
  }

  /** The run ids in the journal, oldest first. */
  runs(): string[] {
    return [...new Set(this.entries().map((e) => e.runId))];
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Per node of a phase, what the journal says happened in one run. */
export interface NodeProgress {
  done: Set<string>;
  /** A step that started and never ended: the run was cut off there. */
  cutOff?: string;
  failed?: string;
  restored: boolean;
}

export function progressOf(entries: JournalEntry[], phase: string, node: string): NodeProgress {
  const p: NodeProgress = { done: new Set(), restored: false };
  let open: string | undefined;
  for (const e of entries) {
    if (e.phase !== phase || e.node !== node) continue;
    if (e.event === 'step-start') {
      open = e.step;
      // Work after a restore makes the node no longer "as restored".
      p.restored = false;
    }
    if (e.event === 'step-done' && e.step) {
      p.done.add(e.step);
      open = undefined;
    }
    if (e.event === 'step-failed') {
      p.failed = e.step;
      p.restored = false;
      open = undefined;
    }
    if (e.event === 'restore-done') p.restored = true;
    if (e.event === 'restore-start') p.restored = false;
  }
  if (open) p.cutOff = open;
  return p;
}
