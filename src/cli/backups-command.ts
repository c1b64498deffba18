/**
 * `rotate-certs backups`: lists the backups rotate-certs left on each node (read-only), and with
 * --prune removes all but the newest --keep runs' on each node, never an unfinished run's, and
 * applies the same retention to the state folder. Wiring only: the work is in src/backups/.
 */
import { isAbsolute, join } from 'node:path';
import { confirm } from '@inquirer/prompts';
import { defaultStateDir, Journal } from '../apply/journal.js';
import type { BackupEntry } from '../backups/listing.js';
import { applyDecision, listNodeBackups } from '../backups/nodes.js';
import { renderBackups, type BackupsOutputFormat, type BackupsView, type NodeBackupsView } from '../backups/render.js';
import { decidePrune, newestRuns, type PruneDecision } from '../backups/retention.js';
import { detectInventoryOs } from '../inventory/detect-os.js';
import type { InventoryNode } from '../inventory/types.js';
import { ProfileSet } from '../profiles/profile.js';
import { PooledConnector } from '../transport/pool.js';
import type { Connector } from '../transport/session.js';
import { SshConnector } from '../transport/ssh.js';
import { UsageError } from '../util/errors.js';
import { mapLimit } from '../util/limit.js';
import { plural } from '../util/wording.js';
import { BackupsExit, FlagDefault } from './exit-codes.js';
import type { CliIo } from './io.js';
import { inventorySpecFor } from './cluster-inventory.js';
import type { InventoryFlags } from './options.js';

export interface BackupsFlags extends InventoryFlags {
  output: BackupsOutputFormat;
  concurrency: number;
  prune?: boolean;
  /** Only with --prune; FlagDefault.keepBackups when not given. */
  keep?: number;
  yes?: boolean;
  stateDir?: string;
}

export interface BackupsEnv {
  connector?: Connector;
  interactive?: boolean;
  now?: () => Date;
  /** Tests point the OS profiles' paths elsewhere. */
  profiles?: ProfileSet;
}

export async function backupsCommand(flags: BackupsFlags, io: CliIo, env: BackupsEnv = {}): Promise<number> {
  if (flags.keep !== undefined && !flags.prune) throw new UsageError('--keep says how many runs --prune keeps: add --prune, or drop --keep to only list the backups');
  if (flags.prune && !flags.yes && !env.interactive) {
    throw new UsageError('refusing to remove backups without confirmation: pass --yes (no terminal to ask on), or drop --prune to only list them');
  }
  // --cluster as every command resolves it: ./NAME/rotate-certs.yaml, else built from the EKS Anywhere folder.
  const spec = await inventorySpecFor(flags, io);
  const stateDir = flags.stateDir ? (isAbsolute(flags.stateDir) ? flags.stateDir : join(io.cwd, flags.stateDir)) : defaultStateDir(io.env);
  const journal = new Journal(stateDir, spec.cluster);
  const connector = new PooledConnector(env.connector ?? new SshConnector());
  const profiles = env.profiles ?? new ProfileSet();
  try {
    await connector.prepare?.(spec);
    // No run of this machine changes the nodes or the journal while backups are removed.
    if (flags.prune) journal.lock('backups --prune');
    try {
      const { inventory: inv, errors: undetected } = await detectInventoryOs(spec, connector, flags.concurrency);
      const listings = await listNodeBackups(inv.nodes, profiles, connector, flags.concurrency);
      const unfinished = journal.unfinishedRuns();
      const view: BackupsView = {
        cluster: inv.cluster,
        readAt: (env.now?.() ?? new Date()).toISOString(),
        unfinished,
        nodes: [
          ...undetected.map((e) => ({ node: e.node, role: spec.nodes.find((n) => n.name === e.node)?.role ?? 'worker', error: e.message })),
          ...listings.map((l): NodeBackupsView => ('error' in l ? { node: l.node.name, role: l.node.role, error: l.error } : { node: l.node.name, role: l.node.role, entries: l.entries })),
        ],
      };
      // Inventory order, whichever node answered first.
      const order = new Map(spec.nodes.map((n, i) => [n.name, i]));
      view.nodes.sort((a, b) => (order.get(a.node) ?? 0) - (order.get(b.node) ?? 0));
      if (flags.prune) {
        const keep = flags.keep ?? FlagDefault.keepBackups;
        const prune = await pruneListed(inv.nodes, view, { keep, unfinished, profiles, connector, concurrency: flags.concurrency, ask: flags.yes ? undefined : io });
        if (prune === 'declined') {
          io.err('rotate-certs: nothing was removed\n');
          return BackupsExit.done;
        }
        view.prune = { keep, removed: prune, stateDir: journal.dir, state: journal.retain(keep) };
      }
      io.out(renderBackups(view, flags.output));
      return view.nodes.some((n) => n.error || n.pruneError) ? BackupsExit.notRead : BackupsExit.done;
    } finally {
      journal.unlock();
    }
  } finally {
    await connector.close();
  }
}

interface PruneOptions {
  keep: number;
  unfinished: ReadonlySet<string>;
  profiles: ProfileSet;
  connector: Connector;
  concurrency: number;
  /** Ask on this terminal first (no --yes). */
  ask?: CliIo;
}

/**
 * Decides per listed node, asks when there is a terminal and no --yes, then removes over the same
 * connections. The view is updated in place: what is left, and per node what could not be removed.
 */
async function pruneListed(nodes: readonly InventoryNode[], view: BackupsView, opts: PruneOptions): Promise<Array<BackupEntry & { node: string }> | 'declined'> {
  const decisions = new Map<string, PruneDecision>();
  for (const n of view.nodes) if (n.entries) decisions.set(n.node, decidePrune(n.entries, opts.unfinished, opts.keep));
  const doomed = [...decisions].flatMap(([node, d]) => d.remove.map((e) => ({ node, ...e })));
  if (doomed.length > 0 && opts.ask) {
    opts.ask.err(`These ${plural(doomed.length, 'backup')} would be removed (on each node the backups of ${newestRuns(opts.keep)}, and of any unfinished run, stay):\n`);
    for (const e of doomed) opts.ask.err(`  ${e.node}: ${e.path}\n`);
    if (!(await confirm({ message: `Remove them from the nodes of cluster ${view.cluster}?`, default: false }))) return 'declined';
  }
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
