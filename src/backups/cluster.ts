/** `rotate-certs backups`'s work: every node's backups read into one view, and older runs' backups removed. */
import type { InventoryNode, InventorySpec } from '../inventory/types.js';
import { detectInventoryOs } from '../profiles/detect-os.js';
import type { ProfileSet } from '../profiles/profile.js';
import type { Connector } from '../transport/session.js';
import { mapLimit } from '../util/limit.js';
import type { BackupEntry } from './listing.js';
import { applyDecision, listNodeBackups } from './nodes.js';
import type { BackupsView, NodeBackupsView } from './render.js';
import { decidePrune, type PruneDecision } from './retention.js';

/** Every node's backups, in inventory order; a node that could not be read (or its OS told) carries its error. */
export async function readBackups(
  spec: InventorySpec,
  opts: { connector: Connector; profiles: ProfileSet; concurrency: number; unfinished: ReadonlySet<string>; now: Date },
): Promise<{ inv: Awaited<ReturnType<typeof detectInventoryOs>>['inventory']; view: BackupsView }> {
  const { inventory: inv, errors: undetected } = await detectInventoryOs(spec, opts.connector, opts.concurrency);
  const listings = await listNodeBackups(inv.nodes, opts.profiles, opts.connector, opts.concurrency);
  const view: BackupsView = {
    cluster: inv.cluster,
    readAt: opts.now.toISOString(),
    unfinished: opts.unfinished,
    nodes: [
      ...undetected.map((e) => ({ node: e.node, role: spec.nodes.find((n) => n.name === e.node)?.role ?? 'worker', error: e.message })),
      ...listings.map((l): NodeBackupsView => ('error' in l ? { node: l.node.name, role: l.node.role, error: l.error } : { node: l.node.name, role: l.node.role, entries: l.entries })),
    ],
  };
  // Inventory order, whichever node answered first.
  const order = new Map(spec.nodes.map((n, i) => [n.name, i]));
  view.nodes.sort((a, b) => (order.get(a.node) ?? 0) - (order.get(b.node) ?? 0));
  return { inv, view };
}

export interface PruneOptions {
  keep: number;
  unfinished: ReadonlySet<string>;
  profiles: ProfileSet;
  connector: Connector;
  concurrency: number;
}

/**
 * Decides per listed node, asks `confirm` when given, then removes over the same
 * connections. The view is updated in place: what is left, and per node what could not be removed.
 */
export async function pruneBackups(nodes: readonly InventoryNode[], view: BackupsView, opts: PruneOptions, confirm?: (doomed: Array<BackupEntry & { node: string }>) => Promise<boolean>): Promise<Array<BackupEntry & { node: string }> | 'declined'> {
  const decisions = new Map<string, PruneDecision>();
  for (const n of view.nodes) if (n.entries) decisions.set(n.node, decidePrune(n.entries, opts.unfinished, opts.keep));
  const doomed = [...decisions].flatMap(([node, d]) => d.remove.map((e) => ({ node, ...e })));
  if (doomed.length > 0 && confirm && !(await confirm(doomed))) return 'declined';
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const results = await mapLimit([...decisions], opts.concurrency, async ([name, d]) => applyDecision(byName.get(name) as InventoryNode, d, opts.profiles, opts.connector));
  const removed: Array<BackupEntry & { node: string }> = [];
  for (const r of results) {
    const n = view.nodes.find((v) => v.node === r.node);
    if (!n) continue;
    const gone = new Set(r.removed.map((e) => e.path));
    n.entries = (n.entries ?? []).filter((e) => !gone.has(e.path));
    removed.push(...r.removed.map((e) => ({ node: r.node, ...e })));
    if (r.error) n.pruneError = r.error;
  }
  return removed;
}
