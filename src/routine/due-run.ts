/**
 * `rotate --due-within`: renewal as a routine. For each cluster (one; or several with
 * --clusters-dir or a repeated --cluster, management clusters first), read it as `rotate` does;
 * when nothing it renews expires within the window, change nothing and say when the first falls
 * due; otherwise run the usual rotation. Without a terminal it starts only when that is safe
 * (unattended.ts). Then one line per cluster, and the same as Prometheus text and JSON on request.
 */
import { dirname, isAbsolute, join } from 'node:path';
import { Journal, LockHeldError } from '../state/journal.js';
import { clusterName, clusterSources, loadClusters } from '../check/clusters.js';
import { inventorySpecFor } from '../eksa/cluster-inventory.js';
import { ApplyExit, RotateExit } from '../util/exit-codes.js';
import type { Io as CliIo } from '../util/io.js';
import { noPrompter, type Prompter } from '../util/prompter.js';
import { planFrom, readCluster, scopeCandidates } from '../rotation/plan.js';
import type { RotationRun } from '../rotation/run.js';
import { scopeOf, type ScopeFlags } from '../plan/scope.js';
import type { Plan } from '../plan/types.js';
import type { Inventory } from '../inventory/types.js';
import type { Connector } from '../transport/session.js';
import { loadInventory } from '../inventory/load.js';
import type { InventorySpec } from '../inventory/types.js';
import { planDigest } from '../plan/compile.js';
import { renderRoutineJson, renderRoutinePrometheus, summaryLine, type ClusterRun, type RoutineReport, type RunOutcome } from './outcome.js';
import { PooledConnector } from '../transport/pool.js';
import { SshConnector } from '../transport/ssh.js';
import { ExitCode, RotateCertsError, UsageError } from '../util/errors.js';
import { groupByMessage, oneLine, plural } from '../util/wording.js';
import { apiReadiness } from './api-ready.js';
import { requireFolderOf, writeAtomic } from './atomic-write.js';
import { caWarnings, decideDue, describe, nextExpiry, nothingDueReason, renewedCount, when, type DueCertificate, type DueOptions } from './due.js';
import { durationDays, type Duration } from './duration.js';
import { managementClusterOf, managementFirst } from './order.js';
import { apiNotReady, recoveryRefused, unfinishedRun, unreadNodes } from './unattended.js';

/** The flags of `rotate` a due run reads. */
export interface RoutineFlags extends ScopeFlags {
  clusters: string[];
  inventory?: string;
  managementKubeconfig?: string;
  clustersDir?: string;
  dueWithin?: Duration;
  allowRecovery?: boolean;
  textfile?: string;
  reportJson?: string;
  stateDir?: string;
  dryRun?: boolean;
  resume?: boolean;
  yes?: boolean;
  warnDays: number;
  concurrency: number;
}

/**
 * What the command line gives a due run: the state folder, the prompts, and the run itself with
 * its printed report (rotate's own, so a due rotation reads as any other).
 */
export interface DueRunEnv {
  connector?: Connector;
  /** Ctrl-C: the run stops at the next safe point, and the clusters after it are not tried. */
  stopRequested?: () => boolean;
  /** A person at a terminal; otherwise the run is unattended. */
  interactive: boolean;
  stateDir: string;
  /** Answers building an inventory may need (none when unattended). */
  prompter: Prompter;
  /** Asks before changing the cluster, or throws: declined (exit 0) or no terminal. */
  confirmStart(plan: Plan): Promise<void>;
  /** Runs the plan and prints its report, as rotate does. */
  execute(plan: Plan, inv: Inventory, more: { warnDays: number; etcdHealthAlways: boolean; connector: Connector }): Promise<{ code: number; run: RotationRun }>;
}

/** An unattended due run that must not start: nothing was changed. */
class Refusal extends RotateCertsError {
  constructor(reason: string) {
    super(reason, RotateExit.refused);
  }
}

interface Target {
  /** The cluster's name, or how the user named it when its inventory does not load. */
  label: string;
  /** The cluster that manages it, when it is a workload cluster. */
  management?: string;
  load(): Promise<InventorySpec>;
}

interface Context {
  flags: RoutineFlags;
  due: Duration;
  io: CliIo;
  env: DueRunEnv;
  /** No terminal: nobody is there to judge, so every safety condition must hold (unattended.ts). */
  unattended: boolean;
}

/** What a cluster's run found out, kept for its report however it ends. */
interface Known {
  next?: DueCertificate;
  runId?: string;
  renewed?: number;
}

export async function dueRotate(flags: RoutineFlags, io: CliIo, env: DueRunEnv): Promise<number> {
  const several = flags.clusters.length > 1 || flags.clustersDir !== undefined;
  const due = flags.dueWithin;
  if (!due) {
    const flag = flags.clustersDir !== undefined ? '--clusters-dir' : several ? '--cluster given more than once' : flags.textfile ? '--textfile' : flags.reportJson ? '--report-json' : '--allow-recovery';
    throw new UsageError(`${flag} is for due runs: add --due-within (such as --due-within 30d)`);
  }
  if (flags.dryRun) throw new UsageError('--due-within reads the cluster to decide what is due; --dry-run reads nothing. Drop one of them');
  if (flags.resume) throw new UsageError('--resume continues the last run whatever is due; drop --due-within');
  if (!several && flags.inventory && flags.clusters.length > 0) throw new UsageError('give --inventory or --cluster, not both');
  if (several && flags.nodes !== undefined) throw new UsageError('--nodes names nodes of one cluster: with several clusters, drop it');
  if (!flags.yes && !env.interactive) throw new UsageError('refusing to change the cluster without confirmation: pass --yes (no terminal to ask on), or --dry-run to see the commands');
  scopeOf(flags);
  const abs = (p: string) => (isAbsolute(p) ? p : join(io.cwd, p));
  const textfile = flags.textfile === undefined ? undefined : abs(flags.textfile);
  const reportJson = flags.reportJson === undefined ? undefined : abs(flags.reportJson);
  if (textfile) requireFolderOf('--textfile', textfile);
  if (reportJson) requireFolderOf('--report-json', reportJson);

  const ctx: Context = { flags, due, io, env, unattended: !env.interactive };
  const targets = several ? await severalTargets(flags, io) : [await oneTarget(flags, io, env)];
  const runs: ClusterRun[] = [];
  let thrown: RotateCertsError | undefined;
  for (const [i, t] of targets.entries()) {
    const skip = skipReason(t, runs, env);
    if (skip) {
      runs.push(report(t.label, new Date(), 'skipped', RotateExit.refused, skip, {}));
      continue;
    }
    if (several) io.err(`\n== cluster ${t.label} (${i + 1} of ${targets.length})\n`);
    const { run, error } = await runCluster(t, ctx);
    runs.push(run);
    thrown = several ? undefined : error;
  }

  const routine: RoutineReport = { dueWithin: due.text, clusters: runs };
  // One cluster whose run ended in an error: runCli prints that error as its one line.
  if (!thrown) {
    // Apart from a rotation's report, when one was printed.
    io.out(`${runs.some((r) => r.runId) ? '\n' : ''}${runs.map(summaryLine).join('\n')}\n`);
    if (several) io.out(`${countsLine(runs)}\n`);
  }
  if (textfile) writeAtomic('--textfile', textfile, renderRoutinePrometheus(routine));
  if (reportJson) writeAtomic('--report-json', reportJson, renderRoutineJson(routine));
  if (thrown) throw thrown;
  return exitCodeOf(runs);
}

/** The first failure's code; else refused when any cluster was refused or skipped (not declined at the prompt); else 0. */
export function exitCodeOf(runs: readonly ClusterRun[]): number {
  const failed = runs.find((r) => r.outcome === 'failed');
  if (failed) return failed.exitCode;
  return runs.some((r) => r.exitCode === RotateExit.refused) ? RotateExit.refused : ApplyExit.done;
}

function countsLine(runs: readonly ClusterRun[]): string {
  const order: RunOutcome[] = ['rotated', 'nothing_due', 'refused', 'failed', 'skipped'];
  const parts = order.flatMap((o) => {
    const names = runs.filter((r) => r.outcome === o).map((r) => r.cluster);
    if (names.length === 0) return [];
    const what = o === 'nothing_due' ? 'nothing due' : o;
    return [`${names.length} ${what}${o === 'rotated' || o === 'nothing_due' ? '' : ` (${names.join(', ')})`}`];
  });
  return `${plural(runs.length, 'cluster')}: ${parts.join(', ')}`;
}

/**
 * Why a cluster is not tried: an earlier rotation failed or was stopped (it may fail the same way
 * here), Ctrl-C, or its management cluster, which holds its secrets, was not renewed or checked.
 */
export function skipReason(t: Pick<Target, 'label' | 'management'>, before: readonly ClusterRun[], env: Pick<DueRunEnv, 'stopRequested'>): string | undefined {
  const broken = before.find((r) => r.outcome === 'failed' && r.runId !== undefined);
  if (broken) return `not tried: the rotation of ${broken.cluster} failed or stopped before it, and a due run stops at the first failure`;
  if (env.stopRequested?.()) return 'not tried: stopped by Ctrl-C';
  const mgmt = t.management === undefined ? undefined : before.find((r) => r.cluster === t.management);
  if (mgmt && (mgmt.outcome === 'refused' || mgmt.outcome === 'failed' || mgmt.outcome === 'skipped')) {
    return `not tried: its management cluster ${mgmt.cluster} ${mgmt.outcome === 'failed' ? 'failed' : `was ${mgmt.outcome}`}, and it holds this cluster's secrets`;
  }
  return undefined;
}

async function oneTarget(flags: RoutineFlags, io: CliIo, env: DueRunEnv): Promise<Target> {
  const cluster = flags.clusters[0];
  if (!cluster && !flags.inventory) throw new UsageError('no inventory: give --inventory FILE or --cluster NAME (reads ./NAME/rotate-certs.yaml), or --clusters-dir DIR');
  const inventoryFlags = { ...flags, ...(cluster !== undefined ? { cluster } : {}) };
  // Building the inventory from the EKS Anywhere folder may need answers; unattended, none can be given.
  return { label: cluster ?? String(flags.inventory), load: () => inventorySpecFor(inventoryFlags, io, { prompter: env.prompter }) };
}

/**
 * Several clusters: found and loaded as `check` does (a cluster folder without a saved inventory is
 * built from its EKS Anywhere folder, asking nothing), management clusters first.
 */
async function severalTargets(flags: RoutineFlags, io: CliIo): Promise<Target[]> {
  const sources = clusterSources({ ...(flags.inventory ? { inventory: [flags.inventory] } : {}), cluster: flags.clusters, ...(flags.clustersDir !== undefined ? { clustersDir: flags.clustersDir } : {}) }, io.cwd);
  const loaded = await loadClusters(sources, async (source) =>
    source.cluster ? inventorySpecFor({ cluster: source.cluster.name }, { ...io, cwd: source.cluster.cwd }, { prompter: noPrompter }) : loadInventory(source.file),
  );
  const management = (c: (typeof loaded)[number]) => ('spec' in c ? managementClusterOf(c.spec) : undefined);
  return managementFirst(loaded, clusterName, management).map((c) => {
    const mgmt = management(c);
    return {
      label: clusterName(c),
      ...(mgmt !== undefined ? { management: mgmt } : {}),
      load: async () => {
        if ('spec' in c) return c.spec;
        throw new UsageError(c.error);
      },
    };
  });
}

function report(cluster: string, startedAt: Date, outcome: RunOutcome, exitCode: number, reason: string, known: Known): ClusterRun {
  const endedAt = new Date();
  return {
    cluster,
    outcome,
    exitCode,
    reason,
    startedAt: startedAt.toISOString(),
    endedAt: endedAt.toISOString(),
    durationSeconds: (endedAt.getTime() - startedAt.getTime()) / 1000,
    certificatesRenewed: known.renewed ?? 0,
    ...(known.runId ? { runId: known.runId } : {}),
    ...(known.next ? { nextExpiry: known.next } : {}),
  };
}

/** One cluster, start to end; its errors become its report (and, for the caller of one cluster, the error). */
async function runCluster(t: Target, ctx: Context): Promise<{ run: ClusterRun; error?: RotateCertsError }> {
  const startedAt = new Date();
  const known: Known = {};
  let name = t.label;
  const pool = new PooledConnector(ctx.env.connector ?? new SshConnector());
  try {
    const spec = await t.load();
    name = spec.cluster;
    const done = await dueCluster(spec, pool, ctx, known);
    return { run: report(name, startedAt, done.outcome, done.exitCode, done.reason, known) };
  } catch (err) {
    if (!(err instanceof RotateCertsError)) throw err;
    // Unattended, what could not be reached or was not healthy before anything changed is a refusal.
    const refused = err instanceof Refusal || (ctx.unattended && known.runId === undefined && (err instanceof LockHeldError || err.exitCode === ExitCode.unavailable));
    if (refused) return { run: report(name, startedAt, 'refused', RotateExit.refused, oneLine(err.message), known) };
    // Declined at the prompt: nothing changed, and nothing failed.
    if (err.exitCode === ExitCode.ok) return { run: report(name, startedAt, 'skipped', ExitCode.ok, err.message, known), error: err };
    return { run: report(name, startedAt, 'failed', err.exitCode, oneLine(err.message), known), error: err };
  } finally {
    await pool.close();
  }
}

/** The command that continues the cluster's last run, with the state folder this run used. */
function resumeCommand(spec: InventorySpec, flags: RoutineFlags, stateDir: string): string {
  const state = flags.stateDir ? ` --state-dir ${stateDir}` : '';
  // An inventory built from the EKS Anywhere folder and never saved is found by its name, from the folder above it.
  const which = spec.unsaved ? `--cluster ${spec.cluster}` : `-i ${spec.file}`;
  return `rotate-certs rotate ${which}${state} --resume${spec.unsaved ? ` (in ${dirname(dirname(spec.file))})` : ''}`;
}

async function dueCluster(spec: InventorySpec, pool: PooledConnector, ctx: Context, known: Known): Promise<{ outcome: RunOutcome; exitCode: number; reason: string }> {
  const { flags, due, io, env, unattended } = ctx;
  const scope = scopeOf(flags);
  for (const n of scope.nodes ?? []) {
    if (!spec.nodes.some((x) => x.name === n)) throw new UsageError(`--nodes: no node named ${n} in ${spec.file}`);
  }
  // Refuse a second run before reading anything; execute() takes the lock for real.
  const journal = new Journal(env.stateDir, spec.cluster);
  journal.refuseIfLocked();
  if (unattended) {
    const unfinished = unfinishedRun(journal.entries(), resumeCommand(spec, flags, env.stateDir));
    if (unfinished) throw new Refusal(unfinished);
  }

  // A kubelet certificate inside the window must be one the plan renews.
  const warnDays = Math.max(flags.warnDays, durationDays(due));
  const reading = await readCluster(spec, pool, { warnDays, concurrency: flags.concurrency });
  const unread = unreadNodes(reading.report.errors);
  if (unread) throw unattended ? new Refusal(unread) : new RotateCertsError(`nothing was changed: ${unread}`, ExitCode.unavailable);
  const opts: DueOptions = { now: new Date(), windowMs: due.ms, inScope: scopeCandidates(reading.inv, scope) };
  const decision = decideDue(reading.report, opts);
  known.next = decision.due[0] ?? decision.next;
  for (const line of groupByMessage(caWarnings(decision.cas, due.text))) io.err(`warning: ${line}\n`);
  if (decision.due.length === 0) return { outcome: 'nothing_due', exitCode: ApplyExit.done, reason: nothingDueReason(due.text, decision.next) };

  const plan = planFrom(reading, scope);
  const first = decision.due[0] as DueCertificate;
  io.err(`${spec.cluster}: ${plural(decision.due.length, 'certificate')} due within ${due.text}, the first ${describe(first)}\n`);
  if (unattended) {
    const recovery = recoveryRefused(plan.etcdExpired ?? [], Boolean(flags.allowRecovery));
    if (recovery) throw new Refusal(recovery);
    // With etcd's certificates expired the API cannot be ready: a recovery is what brings it back.
    const api = (plan.etcdExpired ?? []).length === 0 ? apiNotReady(await apiReadiness(reading.inv, pool)) : undefined;
    if (api) throw new Refusal(api);
  }
  await env.confirmStart(plan);

  const { code, run } = await env.execute({ ...plan, digest: planDigest(plan) }, reading.inv, { warnDays, etcdHealthAlways: unattended, connector: pool });
  known.runId = plan.runId;
  known.renewed = run.before && run.after ? renewedCount(run.before, run.after) : 0;
  if (run.after) known.next = nextExpiry(run.after, { ...opts, now: new Date() });
  const resume = resumeCommand(spec, flags, env.stateDir);
  if (code === ApplyExit.done) {
    const next = known.next ? `; the next falls due ${when(known.next.dueAt)}: ${describe(known.next)}` : '';
    return { outcome: 'rotated', exitCode: code, reason: `${plural(known.renewed, 'certificate')} renewed in run ${plan.runId}${next}` };
  }
  const why =
    code === ApplyExit.stopped
      ? `run ${plan.runId} stopped at a safe point; continue it with ${resume}`
      : code === ApplyExit.failedRestored
        ? `run ${plan.runId} failed; the failing node was restored (the report above says why): fix the cause, then ${resume}`
        : `run ${plan.runId} failed and a node could NOT be restored: act now (docs/troubleshooting.md)`;
  return { outcome: 'failed', exitCode: code, reason: why };
}
