/** `plan`, `apply`, `rotate` and `restore`: wiring over plan/compile and apply/engine. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { confirm } from '@inquirer/prompts';
import { Applier, type ApplyResult } from '../apply/engine.js';
import { DEFAULT_TIMEOUTS, type GateTimeouts } from '../apply/gates.js';
import { defaultStateDir, Journal } from '../apply/journal.js';
import { renderRetention, retainAfterRun, type RetentionReport } from '../backups/after-run.js';
import { factsFrom, gatherReport, preflight } from '../apply/preflight.js';
import { plainReporter, type Reporter } from '../apply/reporter.js';
import type { CheckReport } from '../check/run.js';
import { DNS_LABEL, inventoryPathForCluster, loadInventory, parseInventory } from '../inventory/load.js';
import { requireKnownOs, resolveInventoryOs, withDetected } from '../inventory/detect-os.js';
import type { Inventory, InventorySpec, OsName } from '../inventory/types.js';
import { compilePlan, newRunId, planDigest, sha256 } from '../plan/compile.js';
import { etcdExpiredFrom } from '../plan/etcd-recovery.js';
import { kubeletDueFrom } from '../plan/kubelet-due.js';
import { nodeNamesFrom } from '../plan/node-names.js';
import { readPlan, writePlan } from '../plan/file.js';
import { renderPlanText } from '../plan/print.js';
import { planSummary } from '../plan/summary.js';
import type { Plan, Scope } from '../plan/types.js';
import { ProfileSet } from '../profiles/profile.js';
import { listrReporter } from '../ui/listr-reporter.js';
import { loadRotationRunbooks } from '../runbook/runbook.js';
import { PooledConnector } from '../transport/pool.js';
import { SshConnector } from '../transport/ssh.js';
import type { Connector } from '../transport/session.js';
import { errorMessage, ExitCode, RotateCertsError, UsageError } from '../util/errors.js';
import { groupByMessage, plural } from '../util/wording.js';
import type { CliIo } from './io.js';
import { inventorySpecFor } from './cluster-inventory.js';
import { ApplyExit, FlagDefault, PlanExit } from './exit-codes.js';
import { noPrompter, terminalPrompter } from './prompter.js';
import { inventoryFromFlags, type InventoryFlags } from './options.js';
import type { Duration } from '../routine/duration.js';

export interface RotateEnv {
  connector?: Connector;
  timeouts?: Partial<GateTimeouts>;
  /** Ctrl-C: the CLI sets this; apply stops at the next safe point. */
  stopRequested?: () => boolean;
  interactive?: boolean;
}

export interface ScopeFlags {
  only?: Scope['only'];
  nodes?: string;
}

export interface CommonRotateFlags extends InventoryFlags, ScopeFlags {
  stateDir?: string;
  warnDays: number;
  concurrency: number;
}

export { ApplyExit };

export function scopeOf(flags: ScopeFlags): Scope {
  const nodes = flags.nodes
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (flags.nodes !== undefined && nodes?.length === 0) throw new UsageError('--nodes: no node names given (comma-separated names from the inventory)');
  return { ...(flags.only ? { only: flags.only } : {}), ...(nodes && nodes.length > 0 ? { nodes } : {}) };
}

/** What a plan is made for beyond its inventory: found by reading the cluster, absent on --dry-run. */
type PlanReadings = Pick<Plan, 'detected' | 'kubeletDue' | 'etcdExpired' | 'nodeNames'>;

function makePlan(inv: Inventory, scope: Scope, runId: string, createdAt: string, readings: PlanReadings = {}): Plan {
  const plan = compilePlan({
    ...(readings.detected ? { detected: readings.detected } : {}),
    ...(readings.kubeletDue ? { kubeletDue: readings.kubeletDue } : {}),
    ...(readings.etcdExpired ? { etcdExpired: readings.etcdExpired } : {}),
    ...(readings.nodeNames ? { nodeNames: readings.nodeNames } : {}),
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

function fromCwd(io: CliIo, path: string): string {
  return isAbsolute(path) ? path : join(io.cwd, path);
}

export function stateDirOf(flags: { stateDir?: string }, io: CliIo): string {
  return flags.stateDir ? fromCwd(io, flags.stateDir) : defaultStateDir(io.env);
}

/** What a read-only look at the cluster found: every node's OS, and every certificate. */
export interface ClusterReading {
  inv: Inventory;
  detected: Record<string, OsName>;
  report: CheckReport;
}

/** Detects os: auto nodes, then reads every certificate. Changes nothing. */
export async function readCluster(spec: InventorySpec, connector: Connector, flags: { warnDays: number; concurrency: number }): Promise<ClusterReading> {
  await connector.prepare?.(spec);
  const { inventory: inv, detected } = await resolveInventoryOs(spec, connector, flags.concurrency);
  const report = await gatherReport(inv, new ProfileSet(), connector, flags.warnDays, flags.concurrency);
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

/**
 * The inventory and a plan for it made now, with the scope flags applied. Read-only: nodes with
 * os: auto are detected, and every certificate is read (the plan records them, and kubelet steps
 * go to the nodes whose kubelet certificates are due). A dry run connects to nothing: it refuses
 * os: auto, and gives kubelet steps only to the nodes named with --nodes.
 */
async function freshPlan(flags: CommonRotateFlags & { dryRun?: boolean }, io: CliIo, env: RotateEnv, connector: () => Connector): Promise<{ inv: Inventory; plan: Plan; report?: CheckReport }> {
  // Building an inventory from the EKS Anywhere folder may need answers (node addresses); a dry
  // run builds it too (from the management cluster's API, contacting no node).
  const prompter = env.interactive && !(flags as { yes?: boolean }).yes ? await terminalPrompter() : noPrompter;
  if (flags.dryRun) {
    const inv = requireKnownOs(await inventorySpecFor(flags, io, { prompter }), '--dry-run connects to nothing');
    const now = new Date();
    return { inv, plan: makePlan(inv, scopeOf(flags), newRunId(now), now.toISOString()) };
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

function reporterFor(io: CliIo): Reporter {
  return plainReporter((l) => io.err(l));
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

/**
 * The read errors of nodes the scope could give steps to (every candidate, as a dry run lists
 * them), endpoints aside: an API that does not answer is often why one rotates, and pre-flight
 * judges endpoints itself.
 */
function unreadInScope(report: CheckReport, inv: Inventory, scope: Scope): CheckReport['errors'] {
  const candidates = makePlan(inv, scope, 'scope', new Date(0).toISOString());
  const inScope = new Set(candidates.phases.flatMap((p) => p.nodes.map((n) => n.name)));
  return report.errors.filter((e) => inScope.has(e.node) && !e.message.startsWith('endpoint '));
}

/** Whether the scope could give `phase` to `node`, whatever its dates say (every candidate, as a dry run lists them). */
export function scopeCandidates(inv: Inventory, scope: Scope): (phase: string, node: string) => boolean {
  const candidates = makePlan(inv, scope, 'scope', new Date(0).toISOString());
  const pairs = new Set(candidates.phases.flatMap((p) => p.nodes.map((n) => `${p.phase} ${n.name}`)));
  return (phase, node) => pairs.has(`${phase} ${node}`);
}

// ---- apply / rotate ----

export interface ApplyFlags {
  yes?: boolean;
  refreshKubeconfig?: boolean;
  resume?: boolean;
  stateDir?: string;
  warnDays: number;
  concurrency: number;
  podTimeout?: number;
  parallel?: number;
  /** --keep-backups: after the run, older runs' backups beyond the newest N go (FlagDefault.keepBackups). */
  keepBackups?: number;
  /** Not a flag: an unattended due run starts only with etcd healthy, whatever the plan renews. */
  etcdHealthAlways?: boolean;
}

export async function confirmStart(plan: Plan, flags: { yes?: boolean }, io: CliIo, env: RotateEnv): Promise<void> {
  if (flags.yes) return;
  if (!env.interactive) throw new UsageError('refusing to change the cluster without confirmation: review the plan and pass --yes (no terminal to ask on)');
  const nodes = plan.phases.reduce((n, p) => n + p.nodes.length, 0);
  const ok = await confirm({ message: `Rotate certificates of cluster ${plan.cluster} (${plural(plan.phases.length, 'phase')}, ${plural(nodes, 'node step')})?`, default: false });
  if (!ok) throw new RotateCertsError('cancelled; nothing was changed', ExitCode.ok);
}

function timeoutsOf(flags: ApplyFlags, env: RotateEnv): GateTimeouts {
  return {
    ...DEFAULT_TIMEOUTS,
    ...(flags.podTimeout ? { podStopMs: flags.podTimeout * 1000, podStartMs: flags.podTimeout * 1000 } : {}),
    ...env.timeouts,
  };
}

/** What a rotation did, for a caller that reports on it (a due run's textfile): the certificates before and after. */
export interface ExecutedRun {
  result: ApplyResult;
  before?: CheckReport;
  after?: CheckReport;
}

/** Runs a plan already checked against the inventory; prints the report; returns the exit code. */
export async function execute(plan: Plan, inv: Inventory, flags: ApplyFlags, io: CliIo, env: RotateEnv, observe?: (run: ExecutedRun) => void): Promise<number> {
  // One connection per node for pre-flight, the rotation and the report.
  const connector = env.connector instanceof PooledConnector ? env.connector : new PooledConnector(env.connector ?? new SshConnector());
  await connector.prepare?.(inv).catch(async (err: unknown) => {
    await connector.close();
    throw err;
  });
  const journal = new Journal(stateDirOf(flags, io), plan.cluster);
  journal.lock(plan.runId);
  // Keep the plan beside the journal so --resume and restore work after `rotate` too.
  const planCopy = join(journal.dir, `plan-${plan.runId}.yaml`);
  if (!existsSync(planCopy)) writePlan(planCopy, plan);
  const reporter = reporterFor(io);
  const notes: string[] = [];
  const profiles = new ProfileSet();
  let result: ApplyResult | undefined;
  let before: CheckReport | undefined;
  let retention: RetentionReport | undefined;
  try {
    if (flags.resume && !journal.runs().includes(plan.runId)) throw new UsageError(`--resume: the journal ${journal.file} has no run ${plan.runId}; run without --resume`);
    if (!flags.resume && journal.entries(plan.runId).some((e) => e.event === 'run-start')) {
      throw new UsageError(`plan ${plan.runId} was already applied (see ${journal.file}); use --resume to continue it, or make a new plan`);
    }
    before = await preflight({ plan, inventory: inv, profiles, connector, reporter, warnDays: flags.warnDays, concurrency: flags.concurrency, compareFacts: !flags.resume, etcdHealthAlways: flags.etcdHealthAlways ?? false });
    // On a terminal, listr2 shows a task per node; otherwise plain lines fit for CI logs.
    const live = io.color ? listrReporter(plan) : undefined;
    const applier = new Applier(plan, {
      inventory: inv,
      connector,
      journal,
      reporter: { ...(live?.reporter ?? reporter), note: (m) => void notes.push(m) },
      profiles,
      timeouts: timeoutsOf(flags, env),
      now: () => Date.now(),
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      stopRequested: env.stopRequested ?? (() => false),
      parallel: flags.parallel ?? FlagDefault.parallel,
      refreshKubeconfig: async () => {
        if (flags.refreshKubeconfig) return true;
        if (!env.interactive || flags.yes) return false;
        return confirm({ message: `${inv.kubeconfig} was refused; replace it with the renewed admin.conf (the old one is kept)?`, default: true });
      },
    });
    try {
      result = await applier.run(Boolean(flags.resume));
    } finally {
      await applier.close();
      for (const w of (await live?.finish()) ?? []) io.err(`WARNING: ${w}\n`);
    }
    // Still holding the lock: the retention may rewrite the journal.
    retention = await retainAfterRun({ plan, inventory: inv, journal, connector, profiles, keep: flags.keepBackups ?? FlagDefault.keepBackups, concurrency: flags.concurrency });
  } finally {
    journal.unlock();
  }

  const after = await gatherReport(inv, profiles, connector, flags.warnDays, flags.concurrency)
    .catch((err: unknown) => {
      // The rotation's outcome stands; only the before/after table is missing, and the report says why.
      io.err(`WARNING: the certificates could not be read again after the run, so the report has no before/after table (${errorMessage(err)}); rotate-certs check shows them\n`);
      return undefined;
    })
    .finally(() => connector.close());
  io.out(renderReport(plan, result, before, after, planCopy, notes));
  if (retention) io.out(renderRetention(retention));
  observe?.({ result, ...(before ? { before } : {}), ...(after ? { after } : {}) });
  if (result.outcome === 'done') return ApplyExit.done;
  if (result.outcome === 'stopped') return ApplyExit.stopped;
  return (result.failures ?? [result.failure]).every((f) => f?.restored) ? ApplyExit.failedRestored : ApplyExit.failedNotRestored;
}

function renderReport(plan: Plan, result: ApplyResult, before: CheckReport | undefined, after: CheckReport | undefined, planFile: string, notes: string[]): string {
  const out: string[] = [''];
  if (result.outcome === 'done') out.push(`Rotation ${plan.runId} of cluster ${plan.cluster} finished.`);
  else if (result.outcome === 'stopped') out.push(`Stopped at a safe point. Continue with: rotate-certs apply ${planFile} --resume`);
  else {
    const failures = result.failures ?? (result.failure ? [result.failure] : []);
    for (const f of failures) {
      out.push(`Rotation FAILED on ${f.node}, step ${f.step}: ${f.message}`);
      out.push(f.restored ? `${f.node} was restored from its backup.` : `${f.node} could NOT be restored automatically: its backups are listed below; see docs/troubleshooting.md.`);
    }
    const parallel = failures.length > 0 && plan.phases.some((p) => p.parallel?.includes(failures[0]?.node ?? ''));
    out.push(parallel ? 'The other workers of that phase finished; later phases were not run.' : 'Nodes after it were not touched.');
    out.push(`Fix the cause, then continue with: rotate-certs apply ${planFile} --resume`);
  }
  const nodes = new Set(plan.phases.flatMap((p) => p.nodes.map((n) => n.name)));
  if (before && after) {
    out.push('', 'Certificates (old expiry -> new expiry):');
    const key = (c: CheckReport['certificates'][number]) => `${c.node} ${c.path}`;
    const old = new Map(before.certificates.filter((c) => c.source !== 'endpoint').map((c) => [key(c), c]));
    const when = (iso: string) => iso.slice(0, 16).replace('T', ' ');
    for (const c of after.certificates.filter((c) => c.source !== 'endpoint' && nodes.has(c.node) && c.kind !== 'ca')) {
      const was = old.get(key(c));
      const changed = was?.serial !== c.serial;
      out.push(`  ${c.node} ${c.path}${c.source === 'kubeconfig' ? ' (embedded)' : ''}: ${was ? when(was.notAfter) : '?'} -> ${when(c.notAfter)}${changed ? '' : ' (unchanged)'}`);
    }
  }
  if (notes.length > 0) out.push('', 'Management cluster:', ...notes.map((n) => `  ${n}`));
  const backups = Object.entries(result.backups);
  if (backups.length > 0) {
    out.push('', 'Backups on the nodes:');
    for (const [node, paths] of backups) out.push(`  ${node}: ${paths.join(', ')}`);
  }
  const downtime = Object.entries(result.downtimeMs);
  if (downtime.length > 0) {
    out.push('', 'kube-apiserver unavailable during its restart:');
    for (const [node, ms] of downtime) out.push(`  ${node}: ${(ms / 1000).toFixed(1)} s`);
  }
  return `${out.join('\n')}\n`;
}

/** Checks that a plan still matches its inventory and this version's runbooks. */
function verifyPlan(plan: Plan): Inventory {
  const inv = withDetected(readPlanInventory(plan), plan.detected ?? {});
  const again = makePlan(inv, plan.scope, plan.runId, plan.createdAt, plan);
  const expected = planDigest({ ...again, ...(plan.facts ? { facts: plan.facts } : {}) });
  if (expected !== plan.digest) throw new UsageError('the plan does not match what this rotate-certs would run from its inventory and runbooks (made by another version?); make a new plan');
  return inv;
}

/** The plan's inventory: the one it carries, or its file, unchanged since the plan was made. */
function readPlanInventory(plan: Plan): InventorySpec {
  if (plan.inventoryText !== undefined) {
    // The digest check of readPlan covers the text; relative paths resolve from where it was built.
    return { ...parseInventory(plan.inventoryText, plan.inventory), unsaved: true };
  }
  let text: string;
  try {
    text = readFileSync(plan.inventory, 'utf8');
  } catch {
    throw new UsageError(`the plan's inventory ${plan.inventory} cannot be read`);
  }
  if (sha256(text) !== plan.inventoryDigest) throw new UsageError(`the inventory ${plan.inventory} changed since the plan was made; make a new plan`);
  const inv = loadInventory(plan.inventory);
  if (inv.cluster !== plan.cluster) throw new UsageError(`the plan is for cluster ${plan.cluster} but ${plan.inventory} describes ${inv.cluster}`);
  return inv;
}

export async function applyCommand(planFile: string, flags: ApplyFlags, io: CliIo, env: RotateEnv = {}): Promise<number> {
  const plan = readPlan(fromCwd(io, planFile));
  const inv = verifyPlan(plan);
  if (!flags.resume) await confirmStart(plan, flags, io, env);
  return execute(plan, inv, flags, io, env);
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
  if (due !== undefined || clusters.length > 1) return (await import('../routine/due-run.js')).dueRotate({ ...rest, clusters }, io, env);
  return rotateCommand({ ...rest, ...(clusters[0] !== undefined ? { cluster: clusters[0] } : {}) }, io, env);
}

export async function rotateCommand(flags: RotateFlags, io: CliIo, env: RotateEnv = {}): Promise<number> {
  if (flags.resume) return resumeLastRun(flags, io, env);
  if (!flags.dryRun && !flags.yes && !env.interactive) {
    throw new UsageError('refusing to change the cluster without confirmation: pass --yes (no terminal to ask on), or --dry-run to see the commands');
  }
  if (!flags.dryRun) {
    // Refuse a second run before reading anything; execute() takes the lock for real.
    new Journal(stateDirOf(flags, io), flags.cluster ?? inventoryFromFlags(flags, io.cwd).cluster).refuseIfLocked();
  }
  const pool = new PooledConnector(env.connector ?? new SshConnector());
  try {
    const { inv, plan } = await freshPlan(flags, io, env, () => pool);
    if (flags.dryRun) return printDryRun(plan, inv, 'rotate', io);
    // Look before touching: what is about to happen, in order, before the question.
    if (!flags.yes && env.interactive) io.out(`${planSummary(plan, inv).join('\n')}\n\n`);
    await confirmStart(plan, flags, io, env);
    return await execute({ ...plan, digest: planDigest(plan) }, inv, flags, io, { ...env, connector: pool });
  } finally {
    await pool.close();
  }
}

/**
 * `rotate --resume`: `apply PLAN --resume` of the cluster's last run, whose plan execute() kept
 * beside the journal. Refused when that run finished: there is nothing to continue.
 */
async function resumeLastRun(flags: RotateFlags, io: CliIo, env: RotateEnv): Promise<number> {
  if (flags.dryRun) throw new UsageError('--resume continues a run that changes the cluster; --dry-run changes nothing. Drop one of them');
  if (flags.only || flags.nodes !== undefined) throw new UsageError('--resume continues the last run with its own plan, which --only and --nodes cannot change: drop them, or start a new run without --resume');
  const journal = new Journal(stateDirOf(flags, io), clusterOf(flags, io));
  const runId = journal.entries().at(-1)?.runId;
  if (!runId) throw new UsageError(`--resume: the journal ${journal.file} holds no run of cluster ${journal.cluster}; nothing to resume: run without --resume`);
  if (journal.entries(runId).some((e) => e.event === 'run-done')) {
    throw new UsageError(`--resume: the last run of cluster ${journal.cluster}, ${runId}, finished (see ${journal.file}); nothing to resume: run without --resume`);
  }
  const planFile = join(journal.dir, `plan-${runId}.yaml`);
  io.err(`Resuming run ${runId} of cluster ${journal.cluster}: rotate-certs apply ${planFile} --resume\n`);
  return applyCommand(planFile, { ...flags, resume: true }, io, env);
}

/**
 * The cluster that --inventory or --cluster names, reading no more than needed: --cluster NAME
 * whose inventory a guided run built and did not save is known by its name alone.
 */
function clusterOf(flags: InventoryFlags, io: CliIo): string {
  const unsaved = !flags.inventory && flags.cluster && DNS_LABEL.test(flags.cluster) && !existsSync(inventoryPathForCluster(flags.cluster, io.cwd));
  return unsaved ? String(flags.cluster) : inventoryFromFlags(flags, io.cwd).cluster;
}

// ---- restore ----

export interface RestoreFlags extends InventoryFlags {
  node: string;
  yes?: boolean;
  stateDir?: string;
}

/** Puts a node back from the backups of the last run that backed it up. */
export async function restoreCommand(flags: RestoreFlags, io: CliIo, env: RotateEnv = {}): Promise<number> {
  // --cluster NAME whose inventory a guided run built and did not save: the run's plan carries it.
  const unsaved = !flags.inventory && flags.cluster && DNS_LABEL.test(flags.cluster) && !existsSync(inventoryPathForCluster(flags.cluster, io.cwd));
  const spec = unsaved ? undefined : inventoryFromFlags(flags, io.cwd);
  if (spec && !spec.nodes.some((n) => n.name === flags.node)) throw new UsageError(`--node: no node named ${flags.node} in ${spec.file}`);
  const journal = new Journal(stateDirOf(flags, io), spec?.cluster ?? String(flags.cluster));
  const runId = journal.entries().filter((e) => e.node === flags.node && (e.backups?.length ?? 0) > 0).at(-1)?.runId;
  if (!runId) throw new UsageError(`the journal ${journal.file} records no backup of ${flags.node}; nothing to restore`);
  const plan = readPlan(join(journal.dir, `plan-${runId}.yaml`));
  // The OS the run used for each os: auto node, as recorded in its plan.
  const inv = withDetected(spec ?? readPlanInventory(plan), plan.detected ?? {});
  if (!flags.yes) {
    if (!env.interactive) throw new UsageError(`refusing to restore ${flags.node} without confirmation: pass --yes (no terminal to ask on)`);
    const ok = await confirm({ message: `Put ${flags.node} back from the backups of run ${runId}?`, default: false });
    if (!ok) return 0;
  }
  const connector = env.connector ?? new SshConnector();
  await connector.prepare?.(inv);
  journal.lock(runId);
  const applier = new Applier(plan, {
    inventory: inv,
    connector,
    journal,
    reporter: reporterFor(io),
    profiles: new ProfileSet(),
    timeouts: { ...DEFAULT_TIMEOUTS, ...env.timeouts },
    now: () => Date.now(),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    stopRequested: () => false,
    refreshKubeconfig: async () => false,
  });
  try {
    const done = await applier.restoreNode(flags.node);
    if (done.length === 0) {
      io.out(`${flags.node}: run ${runId} made no backup of it that finished; nothing restored\n`);
      return 0;
    }
    for (const d of done) io.out(`${flags.node}: ${d.phase} ${d.ok ? 'restored' : 'restore FAILED'}\n`);
    return done.every((d) => d.ok) ? 0 : ApplyExit.failedNotRestored;
  } finally {
    await applier.close();
    journal.unlock();
  }
}
