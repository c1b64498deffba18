/** `rotate-certs backups` output: a table per node, or one JSON document. Pure. */
import type { StateRetention } from '../state/journal.js';
import type { Role } from '../inventory/types.js';
import { columns, groupByMessage, plural } from '../util/wording.js';
import { FlagDefault } from '../util/exit-codes.js';
import { kib, type BackupEntry } from './listing.js';
import { newestRuns } from './retention.js';

export const BACKUPS_OUTPUT_FORMATS = ['table', 'json'] as const;
export type BackupsOutputFormat = (typeof BACKUPS_OUTPUT_FORMATS)[number];

/** One node's backups as listed (after a prune: what is left), or why they could not be read. */
export interface NodeBackupsView {
  node: string;
  role: Role;
  entries?: BackupEntry[];
  /** The listing failed: nothing is known of this node's backups. */
  error?: string;
  /** With --prune: the removal failed; `entries` are still there. */
  pruneError?: string;
}

export interface BackupsView {
  cluster: string;
  readAt: string;
  nodes: NodeBackupsView[];
  /** Runs the journal says did not finish: their backups are never pruned. */
  unfinished: ReadonlySet<string>;
  /** With --prune: N, what went, and what the state folder dropped. */
  prune?: { keep: number; removed: Array<BackupEntry & { node: string }>; state?: StateRetention; stateDir: string };
}

/** "45 min", "9 h", "12 days": how long ago a run started. */
export function age(runAt: string, now: string): string {
  const minutes = Math.max(0, Math.floor((Date.parse(now) - Date.parse(runAt)) / 60_000));
  if (minutes < 60) return `${minutes} min`;
  if (minutes < 48 * 60) return `${Math.floor(minutes / 60)} h`;
  return plural(Math.floor(minutes / 1440), 'day');
}

/** Readable by anyone but root: what a rotate-certs before 0700 backups left. */
const open = (e: BackupEntry) => (parseInt(e.mode, 8) & 0o077) !== 0;

export function renderBackupsJson(v: BackupsView): string {
  const doc = {
    cluster: v.cluster,
    readAt: v.readAt,
    ...(v.prune ? { keep: v.prune.keep } : {}),
    backups: v.nodes.flatMap((n) => (n.entries ?? []).map((e) => ({ node: n.node, ...e, ...(v.unfinished.has(e.runId) ? { unfinishedRun: true } : {}) }))),
    ...(v.prune ? { removed: v.prune.removed, state: v.prune.state ?? { runs: [], plans: [] } } : {}),
    errors: v.nodes.flatMap((n) => [...(n.error ? [{ node: n.node, message: n.error }] : []), ...(n.pruneError ? [{ node: n.node, message: `could not prune: ${n.pruneError}` }] : [])]),
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

export function renderBackupsTable(v: BackupsView): string {
  const out: string[] = [];
  if (v.prune) {
    const { keep, removed, state, stateDir } = v.prune;
    out.push(`Pruned the backups of cluster ${v.cluster} (--keep ${keep}): on each node the backups of ${newestRuns(keep)}, and of any unfinished run, stay.`);
    if (removed.length === 0) out.push('  Nothing to remove.');
    for (const e of removed) out.push(`  ${e.node}: removed ${e.path} (run ${e.runId}, ${age(e.runAt, v.readAt)} old)`);
    const s = state ?? { runs: [], plans: [] };
    out.push(
      s.plans.length + s.runs.length === 0
        ? `State folder ${stateDir}: nothing to remove.`
        : `State folder ${stateDir}: removed ${plural(s.plans.length, 'plan copy', 'plan copies')} and the journal entries of ${plural(s.runs.length, 'older finished run')}.`,
      '',
      'What is left:',
    );
  }
  out.push(`Backups of cluster ${v.cluster}, read at ${v.readAt}`);
  const header = ['RUN', 'AGE', 'SIZE', 'MODE', 'PATH'];
  for (const n of v.nodes) {
    if (n.error) continue;
    const entries = n.entries ?? [];
    if (entries.length === 0) {
      out.push('', `${n.node} (${n.role}): none`);
      continue;
    }
    const rows = entries.map((e) => [`${e.runId}${v.unfinished.has(e.runId) ? ' (unfinished)' : ''}`, age(e.runAt, v.readAt), e.sizeKiB === undefined ? '?' : kib(e.sizeKiB), e.mode, e.path]);
    const row = columns([header, ...rows]);
    const fmt = (cells: string[]) => `  ${row(cells)}`;
    out.push('', `${n.node} (${n.role})`, fmt(header), ...rows.map(fmt));
  }
  const failed = v.nodes.filter((n) => n.error);
  if (failed.length > 0) {
    out.push('', 'Could not read:');
    for (const line of groupByMessage(failed.map((n) => ({ node: n.node, message: n.error as string })))) out.push(`  ${line}`);
  }
  const unpruned = v.nodes.filter((n) => n.pruneError);
  if (unpruned.length > 0) {
    out.push('', 'Could not prune (nothing removed there):');
    for (const line of groupByMessage(unpruned.map((n) => ({ node: n.node, message: n.pruneError as string })))) out.push(`  ${line}`);
  }
  const all = v.nodes.flatMap((n) => n.entries ?? []);
  const runs = new Set(all.map((e) => e.runId));
  const nodes = v.nodes.filter((n) => (n.entries?.length ?? 0) > 0).length;
  out.push('', `Summary: ${plural(all.length, 'backup path')} of ${plural(runs.size, 'run')} on ${plural(nodes, 'node')}, ${kib(all.reduce((s, e) => s + (e.sizeKiB ?? 0), 0))}.`);
  const loose = all.filter(open);
  if (loose.length > 0) {
    out.push(`${plural(loose.length, 'backup is', 'backups are')} readable by users other than root (made before rotate-certs made them 0700): prune them (--prune), or chmod 0700 them.`);
  }
  if (!v.prune && runs.size > 1) out.push(`To keep only the newest N runs' backups on each node, add --prune --keep N (default ${FlagDefault.keepBackups}).`);
  return `${out.join('\n')}\n`;
}

export function renderBackups(v: BackupsView, format: BackupsOutputFormat): string {
  return format === 'json' ? renderBackupsJson(v) : renderBackupsTable(v);
}
