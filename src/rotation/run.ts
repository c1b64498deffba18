/**
 * Running a plan already checked against its inventory: the lock, the plan copy beside the
 * journal, pre-flight, the run, the backups' retention, and the certificates read again. Prints
 * nothing: progress goes to the reporter the caller gives, and the outcome comes back.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Applier, type ApplyResult } from '../apply/engine.js';
import { DEFAULT_TIMEOUTS, type GateTimeouts } from '../apply/gates.js';
import { Journal } from '../state/journal.js';
import { gatherReport, preflight } from '../apply/preflight.js';
import type { Reporter } from '../apply/reporter.js';
import { retainAfterRun, type RetentionReport } from './retention.js';
import type { CheckReport } from '../check/run.js';
import type { Inventory } from '../inventory/types.js';
import { writePlan } from '../plan/file.js';
import type { Plan } from '../plan/types.js';
import { ProfileSet } from '../profiles/profile.js';
import { PooledConnector } from '../transport/pool.js';
import type { Connector } from '../transport/session.js';
import { SshConnector } from '../transport/ssh.js';
import { errorMessage, UsageError } from '../util/errors.js';
import { FlagDefault } from '../util/exit-codes.js';

/** How a run shows its progress and asks its one question; the command line gives it. */
export interface RotationUi {
  /** Lines before the run (pre-flight). */
  reporter: Reporter;
  /** The reporter for the run's progress, made once pre-flight passed; `finish` ends it and returns warnings to print. */
  progress(plan: Plan): { reporter: Reporter; finish(): Promise<string[]> };
  /** Whether to replace the refused local kubeconfig with the renewed admin.conf. */
  refreshKubeconfig(kubeconfig: string | undefined): Promise<boolean>;
}

export interface RotationOptions {
  /** The folder of the journal and the plan copies. */
  stateDir: string;
  /** Continue the plan's run from its journal instead of starting it. */
  resume?: boolean;
  warnDays: number;
  concurrency: number;
  /** Parallel nodes renewed at once (--parallel). */
  parallel?: number;
  /** Older runs' backups beyond the newest N are removed after the run. */
  keepBackups?: number;
  /** --pod-timeout, in seconds: replaces both static-pod timeouts. */
  podTimeoutSeconds?: number;
  /** Gate timeouts a test shortens. */
  timeouts?: Partial<GateTimeouts>;
  /** An unattended due run starts only with etcd healthy, whatever the plan renews. */
  etcdHealthAlways?: boolean;
  /** Ctrl-C: the run stops at the next safe point. */
  stopRequested?: () => boolean;
  /** One connection per node; a pooled one is reused and left open, another is pooled and closed here. */
  connector?: Connector;
}

/** What a run did, for the report and for a caller that reports on it (a due run's textfile). */
export interface RotationRun {
  plan: Plan;
  result: ApplyResult;
  /** The certificates before (pre-flight) and after the run; `after` is missing when they could not be read again. */
  before?: CheckReport;
  after?: CheckReport;
  /** The management cluster's outcomes the report repeats. */
  notes: string[];
  /** The plan's copy beside the journal, which `apply --resume` takes. */
  planCopy: string;
  retention?: RetentionReport;
  /** Lines for the error stream: progress warnings, and why the before/after table is missing. */
  warnings: string[];
}

export function timeoutsOf(opts: Pick<RotationOptions, 'podTimeoutSeconds' | 'timeouts'>): GateTimeouts {
  const pod = opts.podTimeoutSeconds;
  return { ...DEFAULT_TIMEOUTS, ...(pod ? { podStopMs: pod * 1000, podStartMs: pod * 1000 } : {}), ...opts.timeouts };
}

export async function runRotation(plan: Plan, inv: Inventory, opts: RotationOptions, ui: RotationUi): Promise<RotationRun> {
  // One connection per node for pre-flight, the rotation and the report.
  const given = opts.connector instanceof PooledConnector ? opts.connector : undefined;
  const connector = given ?? new PooledConnector(opts.connector ?? new SshConnector());
  try {
    return await runWith(connector, plan, inv, opts, ui);
  } finally {
    if (!given) await connector.close();
  }
}

async function runWith(connector: PooledConnector, plan: Plan, inv: Inventory, opts: RotationOptions, ui: RotationUi): Promise<RotationRun> {
  await connector.prepare?.(inv);
  const journal = new Journal(opts.stateDir, plan.cluster);
  const planCopy = join(journal.dir, `plan-${plan.runId}.yaml`);
  journal.lock(plan.runId);
  const notes: string[] = [];
  const warnings: string[] = [];
  const profiles = new ProfileSet();
  let result: ApplyResult;
  let before: CheckReport | undefined;
  let retention: RetentionReport | undefined;
  try {
    // Keep the plan beside the journal so --resume and restore work after `rotate` too.
    if (!existsSync(planCopy)) writePlan(planCopy, plan);
    if (opts.resume && !journal.runs().includes(plan.runId)) throw new UsageError(`--resume: the journal ${journal.file} has no run ${plan.runId}; run without --resume`);
    if (!opts.resume && journal.entries(plan.runId).some((e) => e.event === 'run-start')) {
      throw new UsageError(`plan ${plan.runId} was already applied (see ${journal.file}); use --resume to continue it, or make a new plan`);
    }
    before = await preflight({
      plan,
      inventory: inv,
      profiles,
      connector,
      reporter: ui.reporter,
      warnDays: opts.warnDays,
      concurrency: opts.concurrency,
      compareFacts: !opts.resume,
      etcdHealthAlways: opts.etcdHealthAlways ?? false,
    });
    const progress = ui.progress(plan);
    const applier = new Applier(plan, {
      inventory: inv,
      connector,
      journal,
      reporter: { ...progress.reporter, note: (m) => void notes.push(m) },
      profiles,
      timeouts: timeoutsOf(opts),
      now: () => Date.now(),
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      stopRequested: opts.stopRequested ?? (() => false),
      parallel: opts.parallel ?? FlagDefault.parallel,
      refreshKubeconfig: () => ui.refreshKubeconfig(inv.kubeconfig),
    });
    let ended = false;
    try {
      result = await applier.run(Boolean(opts.resume));
      ended = true;
    } finally {
      await applier.close();
      const finished = await progress.finish();
      // An engine that threw returns no run to print them with: they go out now.
      if (ended) warnings.push(...finished);
      else for (const w of finished) ui.reporter.warn(w);
    }
    // Still holding the lock: the retention may rewrite the journal.
    retention = await retainAfterRun({ plan, inventory: inv, journal, connector, profiles, keep: opts.keepBackups ?? FlagDefault.keepBackups, concurrency: opts.concurrency });
  } finally {
    journal.unlock();
  }
  const after = await gatherReport(inv, profiles, connector, opts.warnDays, opts.concurrency).catch((err: unknown) => {
    // The rotation's outcome stands; only the before/after table is missing, and the report says why.
    warnings.push(`the certificates could not be read again after the run, so the report has no before/after table (${errorMessage(err)}); rotate-certs check shows them`);
    return undefined;
  });
  return { plan, result, ...(before ? { before } : {}), ...(after ? { after } : {}), notes, planCopy, ...(retention ? { retention } : {}), warnings };
}
