/**
 * Why an unattended due run must not start: the reasons, each one line, from what was found. Pure.
 * Unattended (no terminal, --yes) a run starts only when every node answered, etcd is healthy (the
 * rotation's own pre-flight asks it), the API is ready, no earlier run of the cluster is unfinished,
 * and it is no etcd recovery unless --allow-recovery asks for one.
 */
import type { JournalEntry } from '../state/journal.js';
import type { CheckError } from '../check/run.js';
import { groupByMessage, nodeList, plural } from '../util/wording.js';

/**
 * The cluster's last run, when the journal has no end for it: stopped, failed, or cut off. A later
 * run that finished supersedes an abandoned one. `resume` is the command that continues it.
 */
export function unfinishedRun(entries: readonly JournalEntry[], resume = 'rotate-certs rotate --resume'): string | undefined {
  const runId = entries.at(-1)?.runId;
  if (!runId) return undefined;
  const run = entries.filter((e) => e.runId === runId);
  if (run.some((e) => e.event === 'run-done')) return undefined;
  const stopped = run.findLast((e) => e.event === 'run-stopped');
  const failed = run.findLast((e) => e.event === 'step-failed');
  const where = (e: JournalEntry) => [e.node, e.step].filter(Boolean).join(' ');
  const how = failed ? `failed at ${where(failed)}` : stopped ? `stopped${stopped.node ? ` before ${where(stopped)}` : ''}` : 'was cut off';
  return `the last run of this cluster, ${runId}, ${how} and did not finish: look at its report, then continue it by hand with ${resume}`;
}

/** Nodes whose certificates could not be read (endpoints aside: the API and etcd checks judge those). */
export function unreadNodes(errors: readonly CheckError[]): string | undefined {
  const unread = errors.filter((e) => !e.message.startsWith('endpoint '));
  if (unread.length === 0) return undefined;
  const nodes = [...new Set(unread.map((e) => e.node))];
  return `${plural(nodes.length, 'node')} did not answer, so what is due is not known: ${groupByMessage(unread).join('; ')}`;
}

/** An etcd recovery (members whose certificates expired) starts unattended only when asked for. */
export function recoveryRefused(etcdExpired: readonly string[], allowRecovery: boolean): string | undefined {
  if (etcdExpired.length === 0 || allowRecovery) return undefined;
  return `etcd member${etcdExpired.length > 1 ? 's' : ''} ${nodeList(etcdExpired)} ${etcdExpired.length > 1 ? 'have' : 'has'} expired certificates: an etcd recovery is never started unattended; run it by hand, or add --allow-recovery`;
}

/** Each control-plane node's /readyz: undefined when it said ok, else why not. */
export function apiNotReady(results: ReadonlyArray<{ node: string; problem?: string }>): string | undefined {
  const bad = results.flatMap((r) => (r.problem ? [{ node: r.node, message: r.problem }] : []));
  if (bad.length === 0) return undefined;
  return `the API is not ready: ${groupByMessage(bad).join('; ')}`;
}

