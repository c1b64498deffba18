/**
 * The backup retention: which of a node's backups go. Pure: the node's backups, the runs the
 * journal says did not finish, and N in; what to remove and what stays (and why) out.
 */
import type { BackupEntry } from './listing.js';

/** "the newest run", "the newest 3 runs": what a retention of N keeps. */
export function newestRuns(keep: number): string {
  return keep <= 1 ? 'the newest run' : `the newest ${keep} runs`;
}

/** Why a run's backups stay. */
export type KeptBecause = 'recent' | 'unfinished';

export interface PruneDecision {
  remove: BackupEntry[];
  /** Kept runs, newest first. A run both recent and unfinished is 'recent'. */
  kept: Array<{ runId: string; because: KeptBecause; entries: BackupEntry[] }>;
}

/**
 * Keeps the backups of the node's `keep` newest runs (at least one: the newest is never removed)
 * and of every run that has not finished (`apply --resume` and `restore` may need them); removes
 * the rest, with the copies a restore set aside and half-made ones of those runs.
 */
export function decidePrune(entries: readonly BackupEntry[], unfinished: ReadonlySet<string>, keep: number): PruneDecision {
  const byRun = new Map<string, BackupEntry[]>();
  for (const e of entries) byRun.set(e.runId, [...(byRun.get(e.runId) ?? []), e]);
  // Run ids are UTC start times: sorting them sorts the runs.
  const runs = [...byRun.keys()].sort().reverse();
  const recent = new Set(runs.slice(0, Math.max(1, keep)));
  const decision: PruneDecision = { remove: [], kept: [] };
  for (const runId of runs) {
    const of = byRun.get(runId) ?? [];
    if (recent.has(runId)) decision.kept.push({ runId, because: 'recent', entries: of });
    else if (unfinished.has(runId)) decision.kept.push({ runId, because: 'unfinished', entries: of });
    else decision.remove.push(...of);
  }
  return decision;
}
