/**
 * Reading a cluster and making a plan from what was read. Read-only: nodes with os: auto are
 * detected and every certificate is read; nothing is changed and nothing is printed.
 */
import { factsFrom, gatherReport } from '../apply/preflight.js';
import type { CheckReport } from '../check/run.js';
import { resolveInventoryOs } from '../profiles/detect-os.js';
import type { Inventory, InventorySpec, OsName } from '../inventory/types.js';
import { compilePlan, newRunId, sha256 } from '../plan/compile.js';
import { etcdExpiredFrom } from '../plan/etcd-recovery.js';
import { kubeletDueFrom } from '../plan/kubelet-due.js';
import { nodeNamesFrom } from '../plan/node-names.js';
import { readingsOf, type Plan, type PlanReadings, type Scope } from '../plan/types.js';
import { ProfileSet } from '../profiles/profile.js';
import { loadRotationRunbooks } from '../runbook/runbook.js';
import type { Connector } from '../transport/session.js';

/** A plan for `inv` with this version's runbooks and profiles; `readings` are absent when nothing was read (--dry-run). */
export function makePlan(inv: Inventory, scope: Scope, runId: string, createdAt: string, readings: PlanReadings = {}): Plan {
  const plan = compilePlan({
    ...readingsOf(readings),
    inventory: inv,
    inventoryDigest: sha256(inv.text),
    runbooks: loadRotationRunbooks(),
    profiles: new ProfileSet(),
    runId,
    createdAt,
    scope,
  });
  // An inventory nobody saved exists only in this run: the plan (and its copy beside the
  // journal, which --resume and restore read) carries it.
  return inv.unsaved ? { ...plan, inventoryText: inv.text } : plan;
}

/** A plan made now that reads nothing: what a dry run shows (os: auto must be resolved already). */
export function dryRunPlan(inv: Inventory, scope: Scope): Plan {
  const now = new Date();
  return makePlan(inv, scope, newRunId(now), now.toISOString());
}

/** What a read-only look at the cluster found: every node's OS, and every certificate. */
export interface ClusterReading {
  inv: Inventory;
  detected: Record<string, OsName>;
  report: CheckReport;
}

/** Detects os: auto nodes, then reads every certificate. Changes nothing. */
export async function readCluster(spec: InventorySpec, connector: Connector, opts: { warnDays: number; concurrency: number }): Promise<ClusterReading> {
  await connector.prepare?.(spec);
  const { inventory: inv, detected } = await resolveInventoryOs(spec, connector, opts.concurrency);
  const report = await gatherReport(inv, new ProfileSet(), connector, opts.warnDays, opts.concurrency);
  return { inv, detected, report };
}

/** A plan made now from what was read: the certificates are its facts, the due kubelets its kubelet nodes. */
export function planFrom(reading: ClusterReading, scope: Scope): Plan {
  const now = new Date();
  const plan = makePlan(reading.inv, scope, newRunId(now), now.toISOString(), {
    detected: reading.detected,
    kubeletDue: kubeletDueFrom(reading.report),
    etcdExpired: etcdExpiredFrom(reading.report),
    nodeNames: nodeNamesFrom(reading.report),
  });
  return { ...plan, facts: factsFrom(reading.report) };
}

/** Whether the scope could give `phase` to `node`, whatever its dates say (every candidate, as a dry run lists them). */
export function scopeCandidates(inv: Inventory, scope: Scope): (phase: string, node: string) => boolean {
  const candidates = makePlan(inv, scope, 'scope', new Date(0).toISOString());
  const pairs = new Set(candidates.phases.flatMap((p) => p.nodes.map((n) => `${p.phase} ${n.name}`)));
  return (phase, node) => pairs.has(`${phase} ${node}`);
}

/**
 * The read errors of nodes the scope could give steps to (every candidate, as a dry run lists
 * them), endpoints aside: an API that does not answer is often why one rotates, and pre-flight
 * judges endpoints itself.
 */
export function unreadInScope(report: CheckReport, inv: Inventory, scope: Scope): CheckReport['errors'] {
  const candidates = makePlan(inv, scope, 'scope', new Date(0).toISOString());
  const inScope = new Set(candidates.phases.flatMap((p) => p.nodes.map((n) => n.name)));
  return report.errors.filter((e) => inScope.has(e.node) && !e.message.startsWith('endpoint '));
}
