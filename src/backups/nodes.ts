/**
 * Backups on the nodes: list them (the OS profile's read-only `listBackups`) and remove the ones a
 * retention chose (`removeBackups`, which checks every path again on the node). Both go through the
 * connector as root scripts on standard input; with a pooled connector, one connection per node.
 */
import type { InventoryNode } from '../inventory/types.js';
import type { ProfileSet } from '../profiles/profile.js';
import { renderScript } from '../runbook/template.js';
import type { Connector, ExecResult } from '../transport/session.js';
import { nodeErrorDetail } from '../util/errors.js';
import { mapLimit } from '../util/limit.js';
import { parseBackupListing, type BackupEntry } from './listing.js';
import { decidePrune, type PruneDecision } from './retention.js';

export type NodeListing = { node: InventoryNode; entries: BackupEntry[] } | { node: InventoryNode; error: string };

/** The listing script for a node: also what `check` appends to its certificate read. */
export function listScript(profiles: ProfileSet, node: InventoryNode): string {
  const profile = profiles.get(node.os);
  return renderScript(profile.commands.listBackups ?? '', profile.vars, {});
}

async function rootExec(connector: Connector, profiles: ProfileSet, node: InventoryNode, script: string): Promise<ExecResult> {
  const session = await connector.connect(node);
  try {
    return await session.exec(profiles.get(node.os).rootShell, { stdin: script });
  } finally {
    await session.close().catch(() => {});
  }
}

function failure(what: string, res: ExecResult): string {
  const first = res.stderr.split('\n').find((l) => l.trim() !== '')?.trim();
  return `${what} as root failed (exit ${res.code ?? res.signal}): ${first || 'no error output'}`;
}

/** Every node's backups, nodes `concurrency` at a time; a node that fails is an error, never a crash. */
export async function listNodeBackups(nodes: readonly InventoryNode[], profiles: ProfileSet, connector: Connector, concurrency: number): Promise<NodeListing[]> {
  return mapLimit(nodes, concurrency, async (node): Promise<NodeListing> => {
    try {
      const res = await rootExec(connector, profiles, node, listScript(profiles, node));
      if (res.code !== 0) return { node, error: failure('listing backups', res) };
      const parsed = parseBackupListing(res.stdout);
      if (!parsed.complete) return { node, error: 'the backup listing was cut short' };
      return { node, entries: parsed.entries };
    } catch (err) {
      return { node, error: nodeErrorDetail(err, node.name) };
    }
  });
}

/** Removes these backups of one node; resolves to the paths removed, or an error naming why none was. */
export async function removeNodeBackups(node: InventoryNode, paths: readonly string[], profiles: ProfileSet, connector: Connector): Promise<{ removed: string[] } | { error: string }> {
  if (paths.length === 0) return { removed: [] };
  const profile = profiles.get(node.os);
  try {
    const res = await rootExec(connector, profiles, node, renderScript(profile.commands.removeBackups ?? '', { ...profile.vars, paths: paths.join('\n') }, {}));
    if (res.code !== 0) return { error: failure('removing backups', res) };
    const removed = new Set(res.stdout.split('\n').flatMap((l) => (l.startsWith('removed ') ? [l.slice('removed '.length)] : [])));
    return { removed: paths.filter((p) => removed.has(p)) };
  } catch (err) {
    return { error: nodeErrorDetail(err, node.name) };
  }
}

/** What a retention did on one node. */
export interface NodePrune {
  node: string;
  decision?: PruneDecision;
  removed: BackupEntry[];
  error?: string;
}

/** Lists, decides and removes on each node: the retention after a run, and `backups --prune --yes`. */
export async function pruneNodes(
  nodes: readonly InventoryNode[],
  opts: { profiles: ProfileSet; connector: Connector; concurrency: number; unfinished: ReadonlySet<string>; keep: number },
): Promise<NodePrune[]> {
  const listings = await listNodeBackups(nodes, opts.profiles, opts.connector, opts.concurrency);
  return mapLimit(listings, opts.concurrency, async (l) => {
    if ('error' in l) return { node: l.node.name, removed: [], error: l.error };
    const decision = decidePrune(l.entries, opts.unfinished, opts.keep);
    return applyDecision(l.node, decision, opts.profiles, opts.connector);
  });
}

/** Removes what a decision chose on its node. */
export async function applyDecision(node: InventoryNode, decision: PruneDecision, profiles: ProfileSet, connector: Connector): Promise<NodePrune> {
  const r = await removeNodeBackups(node, decision.remove.map((e) => e.path), profiles, connector);
  if ('error' in r) return { node: node.name, decision, removed: [], error: r.error };
  const removed = new Set(r.removed);
  return { node: node.name, decision, removed: decision.remove.filter((e) => removed.has(e.path)) };
}
