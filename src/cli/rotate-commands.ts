/**
 * `plan`, `apply`, `rotate` and `restore` as the command line sees them: flags, confirmations,
 * dry-run output, what is printed and the exit code. The work is rotation/'s.
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { confirm } from '@inquirer/prompts';
import { Journal } from '../state/journal.js';
import { plainReporter } from '../apply/reporter.js';
import type { CheckReport } from '../check/run.js';
import { inventorySpecFor } from '../eksa/cluster-inventory.js';
import { DNS_LABEL, inventoryPathForCluster } from '../inventory/load.js';
import { requireKnownOs } from '../profiles/detect-os.js';
import type { Inventory } from '../inventory/types.js';
import { planDigest } from '../plan/compile.js';
import { readPlan, writePlan } from '../plan/file.js';
import { renderPlanText } from '../rotation/plan-text.js';
import { scopeOf, type ScopeFlags } from '../plan/scope.js';
import { planSummary } from '../rotation/summary.js';
import type { Plan } from '../plan/types.js';
import { dryRunPlan, planFrom, readCluster, unreadInScope } from '../rotation/plan.js';
import { restoreNode, restoreSource } from '../rotation/restore.js';
import { lastUnfinishedRun } from '../rotation/resume.js';
import { runRotation, type RotationRun } from '../rotation/run.js';
import { printRotation, rotationUi } from '../ui/rotation-ui.js';
import { verifyPlan } from '../rotation/verify.js';
import { PooledConnector } from '../transport/pool.js';
import { SshConnector } from '../transport/ssh.js';
import type { Connector } from '../transport/session.js';
import { ExitCode, RotateCertsError, UsageError } from '../util/errors.js';
import { ApplyExit, PlanExit } from '../util/exit-codes.js';
import { noPrompter, terminalPrompter } from '../util/prompter.js';
import type { Duration } from '../routine/duration.js';
import { groupByMessage, plural } from '../util/wording.js';
import type { CliIo } from './io.js';
import { fromCwd, inventoryFromFlags, rotationOptions, stateDirOf, type ApplyFlags, type InventoryFlags, type RotateEnv } from './options.js';
export type { ApplyFlags, RotateEnv } from './options.js';

export interface CommonRotateFlags extends InventoryFlags, ScopeFlags {
  stateDir?: string;
  warnDays: number;
  concurrency: number;
}

/**
 * The inventory and a plan for it made now, with the scope flags applied. Read-only: nodes with
 * os: auto are detected, and every certificate is read (the plan records them, and kubelet steps
 * go to the nodes whose kubelet certificates are due). A dry run connects to nothing: it refuses
 * os: auto, and gives kubelet steps only to the nodes named with --nodes.
 */
async function freshPlan(flags: CommonRotateFlags & { dryRun?: boolean; yes?: boolean }, io: CliIo, env: RotateEnv, connector: () => Connector): Promise<{ inv: Inventory; plan: Plan; report?: CheckReport }> {
  // Building an inventory from the EKS Anywhere folder may need answers (node addresses); a dry
  // run builds it too (from the management cluster's API, contacting no node).
  const prompter = env.interactive && !flags.yes ? await terminalPrompter() : noPrompter;
  if (flags.dryRun) {
    const inv = requireKnownOs(await inventorySpecFor(flags, io, { prompter }), '--dry-run connects to nothing');
    return { inv, plan: dryRunPlan(inv, scopeOf(flags)) };
  }
  const spec = await inventorySpecFor(flags, io, { prompter });
  // Usage mistakes are refused before any node is contacted.
  for (const n of scopeOf(flags).nodes ?? []) {
    if (!spec.nodes.some((x) => x.name === n)) throw new UsageError(`--nodes: no node named ${n} in ${spec.file}`);
  }
  const reading = await readCluster(spec, connector(), flags);
  return { inv: reading.inv, plan: planFrom(reading, scopeOf(flags)), report: reading.report };
}

function printDryRun(plan: Plan, inv: Inventory, command: string, io: CliIo): number {
  io.out(renderPlanText(plan, { full: true, inventory: inv, header: `# rotate-certs ${command} --dry-run: nothing was contacted. A summary, then every command that would run, in this order.` }));
  return 0;
}

// ---- plan ----

export interface PlanFlags extends CommonRotateFlags {
  out?: string;
  dryRun?: boolean;
}

export async function planCommand(flags: PlanFlags, io: CliIo, env: RotateEnv = {}): Promise<number> {
  if (flags.out && flags.dryRun) throw new UsageError('--out writes a plan made from what the nodes hold; --dry-run reads nothing. Drop one of them');
  if (flags.out && !existsSync(dirname(fromCwd(io, flags.out)))) throw new UsageError(`--out: the folder ${dirname(fromCwd(io, flags.out))} does not exist`);
  const connector = new PooledConnector(env.connector ?? new SshConnector());
  const { inv, plan: withFacts, report } = await freshPlan(flags, io, env, () => connector).finally(() => connector.close());
  if (!report) return printDryRun(withFacts, inv, 'plan', io);
  const out = flags.out ? fromCwd(io, flags.out) : undefined;
  const unread = unreadInScope(report, inv, withFacts.scope);
  if (out && unread.length > 0) {
    // What was not read cannot be planned for (a due kubelet would be left out), and apply would refuse it.
    for (const line of groupByMessage(unread)) io.err(`rotate-certs: ${line}\n`);
    io.err(`rotate-certs: no plan written to ${out}: ${plural(new Set(unread.map((e) => e.node)).size, 'node')} could not be read; fix the causes above, then plan again\n`);
    return PlanExit.notRead;
  }
  for (const line of groupByMessage(report.errors)) io.err(`warning: ${line}\n`);
  if (out) {
    writePlan(out, withFacts);
    io.out(renderPlanText(withFacts, { full: false, inventory: inv }));
    io.out(`\nPlan written to ${out}. Review it, then: rotate-certs apply ${flags.out}\n`);
  } else {
    io.out(renderPlanText(withFacts, { full: true, inventory: inv }));
  }
  return report.errors.length > 0 ? PlanExit.notRead : PlanExit.done;
}

// ---- apply / rotate ----

export async function confirmStart(plan: Plan, flags: { yes?: boolean }, io: CliIo, env: RotateEnv): Promise<void> {
  if (flags.yes) return;
  if (!env.interactive) throw new UsageError('refusing to change the cluster without confirmation: review the plan and pass --yes (no terminal to ask on)');
  const nodes = plan.phases.reduce((n, p) => n + p.nodes.length, 0);
  const ok = await confirm({ message: `Rotate certificates of cluster ${plan.cluster} (${plural(plan.phases.length, 'phase')}, ${plural(nodes, 'node step')})?`, default: false });
  if (!ok) throw new RotateCertsError('cancelled; nothing was changed', ExitCode.ok);
}

/** Runs a plan already checked against the inventory; prints the report; returns the exit code and what the run did. */
export async function execute(plan: Plan, inv: Inventory, flags: ApplyFlags, io: CliIo, env: RotateEnv): Promise<{ code: number; run: RotationRun }> {
  const run = await runRotation(plan, inv, rotationOptions(flags, io, env), rotationUi({ ...flags, interactive: Boolean(env.interactive) }, io));
  return { code: printRotation(run, io), run };
}

export async function applyCommand(planFile: string, flags: ApplyFlags, io: CliIo, env: RotateEnv = {}): Promise<number> {
  const plan = readPlan(fromCwd(io, planFile));
  const inv = verifyPlan(plan);
  if (!flags.resume) await confirmStart(plan, flags, io, env);
  return (await execute(plan, inv, flags, io, env)).code;
}

/** Renewal as a routine (src/routine/due-run.ts): rotate only what falls due, and report on it. */
export interface DueFlags {
  dueWithin?: Duration;
  allowRecovery?: boolean;
  textfile?: string;
  reportJson?: string;
  clustersDir?: string;
}

export interface RotateFlags extends CommonRotateFlags, ApplyFlags, DueFlags {
  dryRun?: boolean;
}

/** `rotate` as commander parses it: --cluster may be repeated (several clusters, with --due-within). */
export type RotateCliFlags = Omit<RotateFlags, 'cluster'> & { cluster?: string[] };

export async function rotateCli(flags: RotateCliFlags, io: CliIo, env: RotateEnv = {}): Promise<number> {
  const { cluster: clusters = [], ...rest } = flags;
  const due = flags.dueWithin ?? flags.clustersDir ?? flags.textfile ?? flags.reportJson ?? flags.allowRecovery;
  if (due !== undefined || clusters.length > 1) {
    const { dueRotate } = await import('../routine/due-run.js');
    return dueRotate({ ...rest, clusters }, io, {
      ...(env.connector ? { connector: env.connector } : {}),
      ...(env.stopRequested ? { stopRequested: env.stopRequested } : {}),
      interactive: Boolean(env.interactive),
      stateDir: stateDirOf(flags, io),
      prompter: env.interactive && !flags.yes ? await terminalPrompter() : noPrompter,
      confirmStart: (plan) => confirmStart(plan, flags, io, env),
      execute: (plan, inv, more) => execute(plan, inv, { ...flags, ...more }, io, { ...env, ...(more.connector ? { connector: more.connector } : {}) }),
    });
  }
  return rotateCommand({ ...rest, ...(clusters[0] !== undefined ? { cluster: clusters[0] } : {}) }, io, env);
}

export async function rotateCommand(flags: RotateFlags, io: CliIo, env: RotateEnv = {}): Promise<number> {
  if (flags.resume) return resumeLastRun(flags, io, env);
  if (!flags.dryRun && !flags.yes && !env.interactive) {
    throw new UsageError('refusing to change the cluster without confirmation: pass --yes (no terminal to ask on), or --dry-run to see the commands');
  }
  if (!flags.dryRun) {
    // Refuse a second run before reading anything; runRotation takes the lock for real.
    new Journal(stateDirOf(flags, io), flags.cluster ?? inventoryFromFlags(flags, io.cwd).cluster).refuseIfLocked();
  }
  const pool = new PooledConnector(env.connector ?? new SshConnector());
  try {
    const { inv, plan } = await freshPlan(flags, io, env, () => pool);
    if (flags.dryRun) return printDryRun(plan, inv, 'rotate', io);
    // Look before touching: what is about to happen, in order, before the question.
    if (!flags.yes && env.interactive) io.out(`${planSummary(plan, inv).join('\n')}\n\n`);
    await confirmStart(plan, flags, io, env);
    return (await execute({ ...plan, digest: planDigest(plan) }, inv, flags, io, { ...env, connector: pool })).code;
  } finally {
    await pool.close();
  }
}

/**
 * `rotate --resume`: `apply PLAN --resume` of the cluster's last run, whose plan runRotation kept
 * beside the journal. Refused when that run finished: there is nothing to continue.
 */
async function resumeLastRun(flags: RotateFlags, io: CliIo, env: RotateEnv): Promise<number> {
  if (flags.dryRun) throw new UsageError('--resume continues a run that changes the cluster; --dry-run changes nothing. Drop one of them');
  if (flags.only || flags.nodes !== undefined) throw new UsageError('--resume continues the last run with its own plan, which --only and --nodes cannot change: drop them, or start a new run without --resume');
  const cluster = clusterOf(flags, io);
  const { runId, planFile } = lastUnfinishedRun(stateDirOf(flags, io), cluster);
  io.err(`Resuming run ${runId} of cluster ${cluster}: rotate-certs apply ${planFile} --resume\n`);
  return applyCommand(planFile, { ...flags, resume: true }, io, env);
}

/**
 * The cluster that --inventory or --cluster names, reading no more than needed: --cluster NAME
 * whose inventory a guided run built and did not save is known by its name alone.
 */
function clusterOf(flags: InventoryFlags, io: CliIo): string {
  return unsavedCluster(flags, io) ?? inventoryFromFlags(flags, io.cwd).cluster;
}

/** --cluster NAME with no saved inventory: a guided run's, which its plan carries. */
function unsavedCluster(flags: InventoryFlags, io: CliIo): string | undefined {
  const unsaved = !flags.inventory && flags.cluster && DNS_LABEL.test(flags.cluster) && !existsSync(inventoryPathForCluster(flags.cluster, io.cwd));
  return unsaved ? String(flags.cluster) : undefined;
}

// ---- restore ----

export interface RestoreFlags extends InventoryFlags {
  node: string;
  yes?: boolean;
  stateDir?: string;
}

/** Puts a node back from the backups of the last run that backed it up. */
export async function restoreCommand(flags: RestoreFlags, io: CliIo, env: RotateEnv = {}): Promise<number> {
  const unsaved = unsavedCluster(flags, io);
  const spec = unsaved ? undefined : inventoryFromFlags(flags, io.cwd);
  const source = restoreSource(stateDirOf(flags, io), spec?.cluster ?? String(unsaved), flags.node, spec);
  if (!flags.yes) {
    if (!env.interactive) throw new UsageError(`refusing to restore ${flags.node} without confirmation: pass --yes (no terminal to ask on)`);
    const ok = await confirm({ message: `Put ${flags.node} back from the backups of run ${source.runId}?`, default: false });
    if (!ok) return 0;
  }
  const connector = env.connector ?? new SshConnector();
  // Ours to close (restoreNode closes only its sessions): an open jump-host connection would keep the process alive.
  const done = await restoreNode(source, flags.node, { connector, reporter: plainReporter((l) => io.err(l)), ...(env.timeouts ? { timeouts: env.timeouts } : {}) }).finally(() => connector.close?.());
  if (done.length === 0) {
    io.out(`${flags.node}: run ${source.runId} stopped before its backups of it were all made, so it changed nothing there; nothing restored\n`);
    return 0;
  }
  for (const d of done) io.out(`${flags.node}: ${d.phase} ${d.ok ? 'restored' : 'restore FAILED'}\n`);
  return done.every((d) => d.ok) ? 0 : ApplyExit.failedNotRestored;
}
