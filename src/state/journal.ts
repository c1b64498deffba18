/**
 * The journal: an append-only JSON-lines file per cluster on the admin machine, written before
 * and after every step, with backup paths. `apply --resume` and `restore` read it. Also the
 * cluster's run lock. Never holds secrets: step output is not journaled.
 */
import { appendFileSync, closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
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

  /** Refuses, as lock() does, while another run holds the lock; takes nothing. Before anything is read, so a second run stops at once. */
  refuseIfLocked(): void {
    this.lock('pre-check');
    this.unlock();
  }

  unlock(): void {
    if (this.locked && existsSync(this.lockFile)) unlinkSync(this.lockFile);
    this.locked = false;
  }

  append(entry: Omit<JournalEntry, 't'>): void {
    this.makeDir();
    // After a line a crash cut off, a new line: joined to it, this entry would be lost with it.
    const after = endsMidLine(this.file) ? '\n' : '';
    appendFileSync(this.file, `${after}${JSON.stringify({ t: new Date().toISOString(), ...entry })}\n`, { mode: 0o600 });
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

  /** Runs the journal holds that never finished (no run-done): --resume may continue them, restore reads them. */
  unfinishedRuns(): Set<string> {
    return unfinishedRuns(this.entries());
  }

  /**
   * The state folder's retention: the plan copies and journal entries of closed runs beyond the
   * `keep` most recent go, never those of an unfinished run, nor of the last run that backed up
   * each node (what `restore --node` reads). Call it holding the lock: the journal is rewritten
   * (to a temporary file, then renamed over it).
   */
  retain(keep: number): StateRetention {
    if (!existsSync(this.dir)) return { runs: [], plans: [] };
    const plans = new Map<string, string>();
    for (const name of readdirSync(this.dir)) {
      const m = /^plan-(.+)\.yaml$/.exec(name);
      if (m) plans.set(m[1] as string, join(this.dir, name));
    }
    const drop = stateRetention(this.entries(), [...plans.keys()], keep);
    if (drop.size === 0) return { runs: [], plans: [] };
    const inJournal = new Set(this.runs());
    if ([...drop].some((r) => inJournal.has(r)) && existsSync(this.file)) {
      const kept = readFileSync(this.file, 'utf8')
        .split('\n')
        .filter((line) => {
          try {
            return line.trim() !== '' && !drop.has((JSON.parse(line) as JournalEntry).runId);
          } catch {
            return false;
          }
        });
      const tmp = `${this.file}.rotate-certs-new`;
      writeFileSync(tmp, kept.length > 0 ? `${kept.join('\n')}\n` : '', { mode: 0o600 });
      renameSync(tmp, this.file);
    }
    const removed: string[] = [];
    for (const runId of drop) {
      const plan = plans.get(runId);
      if (!plan) continue;
      rmSync(plan, { force: true });
      removed.push(plan);
    }
    return { runs: [...drop].filter((r) => inJournal.has(r)).sort(), plans: removed.sort() };
  }
}

/** What the state folder's retention removed: runs whose journal entries went, and plan copies. */
export interface StateRetention {
  runs: string[];
  plans: string[];
}

export function unfinishedRuns(entries: readonly JournalEntry[]): Set<string> {
  const done = new Set(entries.filter((e) => e.event === 'run-done').map((e) => e.runId));
  return new Set(entries.map((e) => e.runId).filter((r) => !done.has(r)));
}

/**
 * Which runs the state folder can forget, given the journal and the runs with a plan copy. Kept:
 * every unfinished run, the last run that backed up each node, and the `keep` (at least one) most
 * recently active of the others; a plan copy without journal entries (a run refused before it
 * started) counts as older than any journaled run. Pure.
 */
export function stateRetention(entries: readonly JournalEntry[], planRuns: readonly string[], keep: number): Set<string> {
  const unfinished = unfinishedRuns(entries);
  const lastSeen = new Map<string, number>();
  const lastBackup = new Map<string, string>();
  entries.forEach((e, i) => {
    lastSeen.set(e.runId, i);
    if (e.node && (e.backups?.length ?? 0) > 0) lastBackup.set(e.node, e.runId);
  });
  const needed = new Set([...unfinished, ...lastBackup.values()]);
  const closed = [...new Set([...lastSeen.keys(), ...planRuns])]
    .filter((r) => !unfinished.has(r))
    // Most recently active first; plan copies the journal never saw last, newest id first.
    .sort((a, b) => (lastSeen.get(b) ?? -1) - (lastSeen.get(a) ?? -1) || b.localeCompare(a));
  const recent = new Set(closed.slice(0, Math.max(1, keep)));
  return new Set(closed.filter((r) => !recent.has(r) && !needed.has(r)));
}

/** Whether the file's last byte is not a newline (a torn last line); false for no file or an empty one. */
function endsMidLine(file: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return false;
  }
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return false;
    const last = Buffer.alloc(1);
    readSync(fd, last, 0, 1, size - 1);
    return last[0] !== 0x0a;
  } finally {
    closeSync(fd);
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
