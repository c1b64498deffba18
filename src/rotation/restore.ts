/** `restore`: a node put back from the backups of the last run that backed it up. */
import { join } from 'node:path';
import { Applier } from '../apply/engine.js';
import type { GateTimeouts } from '../apply/gates.js';
import { Journal } from '../state/journal.js';
import type { Reporter } from '../apply/reporter.js';
import { withDetected } from '../profiles/detect-os.js';
import type { Inventory, InventorySpec } from '../inventory/types.js';
import { readPlan } from '../plan/file.js';
import type { Plan } from '../plan/types.js';
import { ProfileSet } from '../profiles/profile.js';
import type { Connector } from '../transport/session.js';
import { UsageError } from '../util/errors.js';
import { readPlanInventory } from './verify.js';
import { timeoutsOf } from './run.js';

/** What a restore of `node` would put back: the run, its plan and its inventory. */
export interface RestoreSource {
  journal: Journal;
  runId: string;
  plan: Plan;
  inv: Inventory;
}

/**
 * The last run that backed `node` up, from the journal of `cluster`. `spec` is the inventory the
 * user named; without one (an inventory never saved) the run's plan carries it.
 */
export function restoreSource(stateDir: string, cluster: string, node: string, spec?: InventorySpec): RestoreSource {
  if (spec && !spec.nodes.some((n) => n.name === node)) throw new UsageError(`--node: no node named ${node} in ${spec.file}`);
  const journal = new Journal(stateDir, cluster);
  const runId = journal.entries().filter((e) => e.node === node && (e.backups?.length ?? 0) > 0).at(-1)?.runId;
  if (!runId) throw new UsageError(`the journal ${journal.file} records no backup of ${node}; nothing to restore`);
  const plan = readPlan(join(journal.dir, `plan-${runId}.yaml`));
  // The OS the run used for each os: auto node, as recorded in its plan.
  const inv = withDetected(spec ?? readPlanInventory(plan), plan.detected ?? {});
  return { journal, runId, plan, inv };
}

/**
 * Runs the node's restore steps, latest phase first, under the run's lock; one entry per phase
 * whose last backup step finished. Closes the sessions it opened; the caller closes `connector`.
 */
export async function restoreNode(source: RestoreSource, node: string, opts: { connector: Connector; reporter: Reporter; timeouts?: Partial<GateTimeouts> }): Promise<Array<{ phase: string; ok: boolean }>> {
  const { journal, runId, plan, inv } = source;
  await opts.connector.prepare?.(inv);
  journal.lock(runId);
  try {
    const applier = new Applier(plan, {
      inventory: inv,
      connector: opts.connector,
      journal,
      reporter: opts.reporter,
      profiles: new ProfileSet(),
      timeouts: timeoutsOf(opts.timeouts ? { timeouts: opts.timeouts } : {}),
      now: () => Date.now(),
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      stopRequested: () => false,
      refreshKubeconfig: async () => false,
    });
    try {
      return await applier.restoreNode(node);
    } finally {
      await applier.close();
    }
  } finally {
    journal.unlock();
  }
}
