/**
 * The retention after a run (--keep-backups N): on each node the run verified, the backups of
 * older runs beyond the newest N go, never the newest and never one of an unfinished run; then the
 * state folder keeps the same N. Never fails the run: what could not be pruned is a warning.
 */
import { progressOf, type Journal, type JournalEntry, type StateRetention } from '../state/journal.js';
import type { Inventory } from '../inventory/types.js';
import type { Plan } from '../plan/types.js';
import type { ProfileSet } from '../profiles/profile.js';
import type { Connector } from '../transport/session.js';
import { errorMessage } from '../util/errors.js';
import { plural } from '../util/wording.js';
import { pruneNodes, type NodePrune } from '../backups/nodes.js';
import { newestRuns } from '../backups/retention.js';

export interface RetentionReport {
  keep: number;
  nodes: NodePrune[];
  state?: StateRetention;
  stateError?: string;
}

export interface AfterRunInput {
  plan: Plan;
  inventory: Inventory;
  /** Held locked by the caller: the journal may be rewritten. */
  journal: Journal;
  connector: Connector;
  profiles: ProfileSet;
  keep: number;
  concurrency: number;
}

export async function retainAfterRun(input: AfterRunInput): Promise<RetentionReport> {
  const { plan, journal, keep } = input;
  let pruned: NodePrune[];
  try {
    const verified = new Set(verifiedNodes(plan, journal.entries(plan.runId)));
    const nodes = input.inventory.nodes.filter((n) => verified.has(n.name));
    pruned = await pruneNodes(nodes, { profiles: input.profiles, connector: input.connector, concurrency: input.concurrency, unfinished: journal.unfinishedRuns(), keep }).catch(
      (err: unknown): NodePrune[] => nodes.map((n) => ({ node: n.name, removed: [], error: errorMessage(err) })),
    );
  } catch (err) {
    // The journal could not be read: nothing is pruned, and the run's own outcome stands.
    return { keep, nodes: [], stateError: errorMessage(err) };
  }
  try {
    return { keep, nodes: pruned, state: journal.retain(keep) };
  } catch (err) {
    return { keep, nodes: pruned, stateError: errorMessage(err) };
  }
}

/** The run report's lines about the retention: only when it removed something or could not. */
export function renderRetention(r: RetentionReport): string {
  const out: string[] = [];
  const removed = r.nodes.filter((n) => n.removed.length > 0);
  if (removed.length > 0) {
    out.push('', `Older backups removed (--keep-backups ${r.keep}: on each node the backups of ${newestRuns(r.keep)}, and of any unfinished run, stay):`);
    for (const n of removed) out.push(`  ${n.node}: ${n.removed.map((e) => e.path).join(', ')}`);
  }
  const failed = r.nodes.filter((n) => n.error);
  if (failed.length > 0) {
    out.push('', 'Older backups could not be pruned (the rotation itself is not affected; rotate-certs backups --prune retries):');
    for (const n of failed) out.push(`  ${n.node}: ${n.error}`);
  }
  if (r.state && (r.state.plans.length > 0 || r.state.runs.length > 0)) {
    out.push('', `State folder: removed ${plural(r.state.plans.length, 'plan copy', 'plan copies')} and the journal entries of ${plural(r.state.runs.length, 'older finished run')}.`);
  }
  if (r.stateError) out.push('', `State folder: could not apply the retention: ${r.stateError}`);
  return out.length > 0 ? `${out.join('\n')}\n` : '';
}

/**
 * The nodes a run verified: every step of each of its phases on that node ran to the end (the
 * gates included), in this attempt or an earlier one of the same run. Only their backups are
 * pruned after the run.
 */
export function verifiedNodes(plan: Pick<Plan, 'phases'>, runEntries: readonly JournalEntry[]): string[] {
  const seen = new Map<string, boolean>();
  for (const phase of plan.phases) {
    for (const node of phase.nodes) {
      const p = progressOf([...runEntries], phase.phase, node.name);
      const ok = node.steps.every((s) => p.done.has(s.id));
      seen.set(node.name, (seen.get(node.name) ?? true) && ok);
    }
  }
  return [...seen].filter(([, ok]) => ok).map(([name]) => name);
}
