/**
 * Runs a plan: phase by phase, node by node (one at a time, except a phase's parallel nodes, which
 * go --parallel at once after the others), step by step, journaling each step before and after. A
 * failing step restores the node from its backup and stops the run; among parallel nodes the
 * others finish first. `resume` skips finished nodes and restores, then redoes, a node a previous
 * run left part-way. A step runs a command of the node's OS profile or a built-in action, looked up
 * by name in actions.ts: the engine itself knows no action and no certificate.
 */
import type { PlanNode, PlanPhase, PlanStep, Plan } from '../plan/types.js';
import type { ProfileSet } from '../profiles/profile.js';
import type { Inventory, InventoryNode } from '../inventory/types.js';
import { nodeVars } from '../plan/compile.js';
import type { Action } from '../runbook/actions.js';
import { renderScript } from '../runbook/template.js';
import { endpointRoute, type EndpointRoute } from '../transport/endpoints.js';
import { CommandTimeoutError, type Connector, type NodeSession } from '../transport/session.js';
import { errorMessage, nodeErrorDetail, outputTail } from '../util/errors.js';
import { mapLimit } from '../util/limit.js';
import { CAPTURE_READERS, RUNNERS, type ActionContext, type ActionRunner } from './actions.js';
import { GateError, type CertRead, type GateTimeouts } from './gates.js';
import { pauseEtcdadmHealthCheck } from './etcdadm-pause.js';
import type { ManagementContext } from './management.js';
import { progressOf, type Journal, type JournalEntry } from '../state/journal.js';
import type { Reporter } from './reporter.js';

export interface ApplyDeps {
  inventory: Inventory;
  connector: Connector;
  journal: Journal;
  reporter: Reporter;
  profiles: ProfileSet;
  timeouts: GateTimeouts;
  now(): number;
  sleep(ms: number): Promise<void>;
  /** Checked between steps: Ctrl-C stops at the next safe point. */
  stopRequested(): boolean;
  /** Whether to replace a refused local kubeconfig with the renewed admin.conf. */
  refreshKubeconfig(): Promise<boolean>;
  /** Nodes of a phase's parallel group renewed at once (--parallel). */
  parallel?: number;
  /** Runners that replace built-in ones by name (tests: a fake gate). */
  actions?: Partial<Record<Action, ActionRunner>>;
}

export interface StepFailure {
  phase: string;
  node: string;
  step: string;
  message: string;
  restored: boolean;
}

export interface ApplyResult {
  outcome: 'done' | 'failed' | 'stopped';
  failure?: StepFailure;
  /** Every node that failed: more than one only when parallel nodes failed side by side. */
  failures?: StepFailure[];
  /** Per control-plane node, how long its kube-apiserver did not answer. */
  downtimeMs: Record<string, number>;
  backups: Record<string, string[]>;
}

export class StepError extends Error {}

type NodeOutcome = { kind: 'ok' } | { kind: 'stopped' } | { kind: 'failed'; failure: StepFailure };

export class Applier {
  private sessions = new Map<string, Promise<NodeSession>>();
  private secrets: Record<string, string> = {};
  /** Secrets that belong to one node (its issued kubelet client key), by node name. */
  private nodeSecrets = new Map<string, Record<string, string>>();
  private downtime: Record<string, number> = {};
  /** Endpoint probes and API calls go the way SSH goes (through the jump host when there is one). */
  private readonly route: EndpointRoute;
  private backups: Record<string, string[]> = {};
  private readonly runners: Record<Action, ActionRunner>;

  constructor(
    private readonly plan: Plan,
    private readonly deps: ApplyDeps,
  ) {
    this.route = endpointRoute(deps.inventory.nodes, deps.connector);
    // A test's replacement set to undefined keeps the built-in one rather than erasing it.
    const replaced = Object.entries(deps.actions ?? {}).filter((e): e is [Action, ActionRunner] => e[1] !== undefined);
    this.runners = { ...RUNNERS, ...Object.fromEntries(replaced) };
  }

  private session(name: string): Promise<NodeSession> {
    let s = this.sessions.get(name);
    if (!s) {
      const node = this.deps.inventory.nodes.find((n) => n.name === name) as InventoryNode;
      s = this.deps.connector.connect(node);
      // A failed connection is retried on the next use rather than cached.
      s.catch(() => this.sessions.delete(name));
      this.sessions.set(name, s);
    }
    return s;
  }

  /**
   * Closes the sessions this Applier opened, not the connector it was given: its owner closes that
   * (a pooled one is still needed after the run, to read the certificates again).
   */
  async close(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(all.map((p) => p.then((s) => s.close(), () => undefined)));
  }

  private journal(entry: Omit<JournalEntry, 't' | 'runId'>): void {
    this.deps.journal.append({ runId: this.plan.runId, ...entry });
  }

  /** Runs one step; returns a one-line summary or throws StepError with the node's own words. */
  private async runStep(node: PlanNode, step: PlanStep, ctx: ActionContext): Promise<string> {
    // Decided when the plan was made, and shown in it: see recoveryOf in compile.ts.
    if (step.deferred) return `deferred: ${step.deferred}`;
    const session = await this.session(node.name);
    if (step.action) {
      // The same context object across a node's steps: endpoint-down leaves downSince for apiserver-ready.
      ctx.session = session;
      // A plan file names its actions itself: one from another version may name none of ours.
      // Own names only: an inherited one (toString) is no action either.
      if (!Object.hasOwn(this.runners, step.action)) throw new GateError(`unknown action ${String(step.action)}`);
      return this.runners[step.action](step, ctx);
    }
    const profile = this.deps.profiles.get(node.os);
    const template = profile.commands[step.run as string] as string;
    const scalars = Object.fromEntries(Object.entries(step.with).filter((e): e is [string, string] => typeof e[1] === 'string'));
    const script = renderScript(template, { ...node.vars, ...scalars }, { ...this.secrets, ...this.secretsOf(node.name) });
    if (step.retried && step.effect === 'read') {
      // As long as a static pod may take to come back: a crashed etcd pod waits out its back-off.
      const until = this.deps.now() + this.deps.timeouts.podStartMs;
      for (;;) {
        try {
          // A fresh session after a dropped connection, not the dead one.
          return await this.execStep(node, step, await this.session(node.name), script);
        } catch (err) {
          if (!(err instanceof StepError) || this.deps.now() >= until) throw err;
          await this.deps.sleep(1000);
        }
      }
    }
    return this.execStep(node, step, session, script);
  }

  private async execStep(node: PlanNode, step: PlanStep, session: NodeSession, script: string): Promise<string> {
    // As with actions: a plan file may name a capture this version does not read (toString is none either).
    if (step.capture !== undefined && !Object.hasOwn(CAPTURE_READERS, step.capture)) throw new StepError(`unknown capture ${String(step.capture)}`);
    let res;
    try {
      res = await session.exec(node.rootShell, { stdin: script });
    } catch (err) {
      if (err instanceof CommandTimeoutError) throw new StepError(`${step.run} ${err.message}`);
      // The connection is gone: the restore that follows connects anew.
      this.sessions.delete(node.name);
      throw new StepError(nodeErrorDetail(err, node.name));
    }
    if (res.code !== 0) {
      const stderr = outputTail(res.stderr, 5, '(no error output)');
      if (res.code === null && !res.signal) {
        this.sessions.delete(node.name);
        throw new StepError(`command ${step.run} lost its SSH connection before it finished: ${stderr}`);
      }
      throw new StepError(`command ${step.run} exited ${res.code ?? `on signal ${res.signal}`}: ${stderr}`);
    }
    if (step.capture) {
      let read;
      try {
        read = CAPTURE_READERS[step.capture](res.stdout, node);
      } catch (err) {
        throw new StepError(errorMessage(err));
      }
      Object.assign(this.secrets, read.secrets);
      return read.summary;
    }
    return res.stdout.trim().split('\n').slice(-1)[0] ?? '';
  }

  private secretsOf(node: string): Record<string, string> {
    let s = this.nodeSecrets.get(node);
    if (!s) {
      s = {};
      this.nodeSecrets.set(node, s);
    }
    return s;
  }

  /** One context per node and pass (its steps, or its restore): what a step leaves there, the next one reads. */
  private newActionContext(node: PlanNode): ActionContext {
    return {
      // The session is filled in per step.
      session: undefined as unknown as NodeSession,
      node,
      timeouts: this.deps.timeouts,
      snapshot: new Map<string, CertRead | undefined>(),
      run: async (command, vars = {}) => {
        const profile = this.deps.profiles.get(node.os);
        const template = profile.commands[command];
        if (template === undefined) throw new GateError(`${profile.file} has no command ${command}`);
        const session = await this.session(node.name);
        return session.exec(node.rootShell, { stdin: renderScript(template, { ...node.vars, ...vars }, {}) });
      },
      secrets: this.secrets,
      nodeSecrets: this.secretsOf(node.name),
      route: this.route,
      onDowntime: (ms) => {
        this.downtime[node.name] = (this.downtime[node.name] ?? 0) + ms;
      },
      now: this.deps.now,
      sleep: this.deps.sleep,
      inventory: this.deps.inventory,
      profiles: this.deps.profiles,
      runId: this.plan.runId,
      reporter: this.deps.reporter,
      sessionTo: (name) => this.session(name),
      refreshKubeconfig: this.deps.refreshKubeconfig,
    };
  }

  /**
   * Runs a node's restore steps; true when they all passed. Called only once `restore.after`, the
   * runbook's last backup step, finished: every backup a restore step reads exists (the loader
   * checks each runbook for that). After a failed step only the steps marked `always` run: the
   * static pods are started again (and watched) whatever failed before, so a failed restore never
   * leaves a manifest (or a static-pod setting) out, while a restart is not begun on files that
   * could not be put back. The first failure is what the journal and the report keep.
   */
  private async restore(phase: PlanPhase, node: PlanNode): Promise<boolean> {
    if (!node.restore) return false;
    const { reporter } = this.deps;
    this.journal({ event: 'restore-start', phase: phase.phase, node: node.name, backups: node.backups });
    const ctx = this.newActionContext(node);
    let failed: { step: string; message: string } | undefined;
    for (const step of node.restore.steps) {
      if (failed && !step.always) {
        reporter.info(`${node.name}: ${step.id} skipped (the restore already failed at ${failed.step})`);
        continue;
      }
      reporter.stepStart(node.name, step.id, step.title);
      try {
        reporter.stepDone(node.name, step.id, await this.runStep(node, step, ctx));
      } catch (err) {
        const message = errorMessage(err);
        reporter.stepFailed(node.name, step.id, message);
        failed ??= { step: step.id, message };
      }
    }
    if (failed) {
      this.journal({ event: 'restore-failed', phase: phase.phase, node: node.name, step: failed.step, message: failed.message, backups: node.backups });
      return false;
    }
    this.journal({ event: 'restore-done', phase: phase.phase, node: node.name, backups: node.backups });
    return true;
  }

  /**
   * `rotate-certs restore`: puts one node back from the backups this run made, latest phase
   * first. Only phases whose last backup step (`restore.after`) finished are restored: before it,
   * nothing on the node was changed.
   */
  async restoreNode(name: string): Promise<Array<{ phase: string; ok: boolean }>> {
    // A restore restarts members and kube-apiservers too; it also ends a pause a killed run left.
    return this.withEtcdadmPaused(this.touchesEtcd(), () => this.restoreNodePhases(name));
  }

  private async restoreNodePhases(name: string): Promise<Array<{ phase: string; ok: boolean }>> {
    const entries = this.deps.journal.entries(this.plan.runId);
    const out: Array<{ phase: string; ok: boolean }> = [];
    for (const phase of [...this.plan.phases].reverse()) {
      const node = phase.nodes.find((n) => n.name === name);
      const { done } = progressOf(entries, phase.phase, name);
      if (!node?.restore || !done.has(node.restore.after)) continue;
      this.deps.reporter.phase(`Restore ${name}: ${phase.title}`);
      out.push({ phase: phase.phase, ok: await this.restore(phase, node) });
    }
    return out;
  }

  /**
   * The management context as seen from the plan's first control-plane node, whose admin.conf is
   * the API's fallback: its session connects only if the inventory's kubeconfig does not answer.
   */
  private managementContext(): ManagementContext | undefined {
    const node = this.plan.phases.flatMap((p) => p.nodes).find((n) => n.role === 'control-plane') ?? this.inventoryPlanNode('control-plane');
    if (!node) return undefined;
    const inv = this.deps.inventory.nodes.find((n) => n.name === node.name) as InventoryNode;
    const lazy: NodeSession = { node: inv, exec: async (command, opts) => (await this.session(node.name)).exec(command, opts), close: async () => undefined };
    return this.managementContextOf(node, lazy);
  }

  /** Runs `work` with etcdadm-controller's health check paused when it touches external etcd (see etcdadm-pause.ts). */
  private async withEtcdadmPaused<T>(touchesEtcd: boolean, work: () => Promise<T>): Promise<T> {
    const ctx = touchesEtcd && this.deps.inventory.externalEtcd ? this.managementContext() : undefined;
    const pause = ctx ? await pauseEtcdadmHealthCheck(ctx) : undefined;
    try {
      return await work();
    } finally {
      await pause?.release();
    }
  }

  /** A node the plan does not visit (--only etcd), as a plan would show it, for its admin.conf. */
  private inventoryPlanNode(role: InventoryNode['role']): PlanNode | undefined {
    const node = this.deps.inventory.nodes.find((n) => n.role === role);
    if (!node) return undefined;
    const profile = this.deps.profiles.get(node.os);
    return { name: node.name, host: node.host, role: node.role, os: node.os, rootShell: profile.rootShell, vars: nodeVars(node, profile, this.plan.runId), steps: [], backups: [] };
  }

  private managementContextOf(node: PlanNode, session: NodeSession): ManagementContext {
    return {
      inventory: this.deps.inventory,
      node,
      session,
      secrets: this.secrets,
      reporter: this.deps.reporter,
      runId: this.plan.runId,
      refreshKubeconfig: this.deps.refreshKubeconfig,
      timeouts: this.deps.timeouts,
      now: this.deps.now,
      sleep: this.deps.sleep,
      route: this.route,
    };
  }

  /**
   * etcdadm-controller's health check is paused while etcd members or the kube-apiservers that use
   * them are renewed, and resumed however the run ends (see etcdadm-pause.ts).
   */
  async run(resume: boolean): Promise<ApplyResult> {
    return this.withEtcdadmPaused(this.touchesEtcd(), () => this.runPhases(resume));
  }

  /** Whether the plan renews etcd members or the kube-apiservers that use them. */
  private touchesEtcd(): boolean {
    return this.plan.phases.some((p) => p.phase === 'etcd' || p.phase === 'control-plane');
  }

  private async runPhases(resume: boolean): Promise<ApplyResult> {
    const { reporter } = this.deps;
    const previous = resume ? this.deps.journal.entries(this.plan.runId) : [];
    this.journal({ event: resume ? 'run-resume' : 'run-start' });
    const result = (outcome: ApplyResult['outcome'], failure?: StepFailure, failures?: StepFailure[]): ApplyResult => ({
      outcome,
      ...(failure ? { failure } : {}),
      ...(failures ? { failures } : {}),
      downtimeMs: this.downtime,
      backups: this.backups,
    });

    for (const phase of this.plan.phases) {
      reporter.phase(phase.title);
      const parallel = new Set(phase.parallel ?? []);
      for (const node of phase.nodes.filter((n) => !parallel.has(n.name))) {
        const o = await this.phaseNode(phase, node, previous, resume);
        if (o.kind === 'stopped') return result('stopped');
        if (o.kind === 'failed') return result('failed', o.failure, [o.failure]);
      }
      // Parallel nodes (workers): a failing one is restored and reported; the others carry on.
      const group = phase.nodes.filter((n) => parallel.has(n.name));
      if (group.length > 0) {
        const outcomes = await mapLimit(group, this.deps.parallel ?? 5, (node) => this.phaseNode(phase, node, previous, resume));
        const failures = outcomes.flatMap((o) => (o.kind === 'failed' ? [o.failure] : []));
        if (failures.length > 0) return result('failed', failures[0], failures);
        if (outcomes.some((o) => o.kind === 'stopped')) return result('stopped');
      }
    }
    this.journal({ event: 'run-done' });
    return result('done');
  }

  /** One node of a phase: skipped when done, restored first when a previous run left it part-way. */
  private async phaseNode(phase: PlanPhase, node: PlanNode, previous: JournalEntry[], resume: boolean): Promise<NodeOutcome> {
    const { reporter } = this.deps;
    if (this.deps.stopRequested()) {
      this.journal({ event: 'run-stopped', phase: phase.phase, node: node.name });
      return { kind: 'stopped' };
    }
    reporter.nodeStart?.(phase.phase, node.name);
    const progress = progressOf(previous, phase.phase, node.name);
    const finished = node.steps.every((s) => progress.done.has(s.id)) && !progress.failed && !progress.cutOff;
    if (finished) {
      // Captures live in memory only: read them again, changing nothing.
      for (const step of node.steps.filter((s) => s.capture)) {
        try {
          await this.runStep(node, step, this.newActionContext(node));
        } catch (err) {
          const message = errorMessage(err);
          reporter.stepFailed(node.name, step.id, message);
          reporter.nodeEnd?.(phase.phase, node.name, 'failed', message);
          // A read changed nothing: there is nothing to restore.
          return { kind: 'failed', failure: { phase: phase.phase, node: node.name, step: step.id, message, restored: true } };
        }
      }
      reporter.info(`${node.name}: ${phase.phase} already done in this run, skipped`);
      reporter.nodeEnd?.(phase.phase, node.name, 'skipped');
      return { kind: 'ok' };
    }
    const started = progress.done.size > 0 || progress.cutOff !== undefined || progress.failed !== undefined;
    if (resume && started) {
      const needsRestore = node.restore && progress.done.has(node.restore.after) && !progress.restored;
      if (needsRestore) {
        reporter.info(`${node.name}: the last run left it part-way (${progress.cutOff ? `cut off in ${progress.cutOff}` : progress.failed ? `failed in ${progress.failed}` : 'stopped'}); restoring it before redoing ${phase.phase}`);
        if (!(await this.restore(phase, node))) {
          reporter.nodeEnd?.(phase.phase, node.name, 'failed', 'restore before resuming failed');
          return { kind: 'failed', failure: { phase: phase.phase, node: node.name, step: 'restore', message: 'restore before resuming failed', restored: false } };
        }
      }
    }
    try {
      const failure = await this.runNode(phase, node);
      reporter.nodeEnd?.(phase.phase, node.name, failure ? 'failed' : 'ok', failure?.message);
      return failure ? { kind: 'failed', failure } : { kind: 'ok' };
    } catch (err) {
      if (err instanceof StopRequested) return { kind: 'stopped' };
      throw err;
    }
  }

  private async runNode(phase: PlanPhase, node: PlanNode): Promise<StepFailure | undefined> {
    const { reporter } = this.deps;
    const ctx = this.newActionContext(node);
    const done = new Set<string>();
    for (const step of node.steps) {
      if (this.deps.stopRequested() && done.size > 0) {
        // Between two steps of a node: put it back first rather than leave it half-done (an etcd
        // member with an emptied PKI folder is down). --resume then redoes the node.
        if (node.restore && done.has(node.restore.after)) {
          reporter.warn(`${node.name}: stopping; restoring it from its backup first so it is not left half-done`);
          await this.restore(phase, node);
        } else if (node.restore) {
          // The loader holds every step up to restore.after to reading or backing up.
          reporter.info(`${node.name}: stopping before ${node.restore.after}; nothing was changed yet, so there is nothing to restore`);
        }
        this.journal({ event: 'run-stopped', phase: phase.phase, node: node.name, step: step.id, backups: node.backups });
        throw new StopRequested(node.name, step.id);
      }
      reporter.stepStart(node.name, step.id, step.title);
      this.journal({ event: 'step-start', phase: phase.phase, node: node.name, step: step.id, ...(typeof step.with.backup === 'string' ? { backups: [step.with.backup] } : {}) });
      try {
        const summary = await this.runStep(node, step, ctx);
        done.add(step.id);
        if (typeof step.with.backup === 'string') this.backups[node.name] = [...new Set([...(this.backups[node.name] ?? []), step.with.backup])];
        this.journal({ event: 'step-done', phase: phase.phase, node: node.name, step: step.id });
        reporter.stepDone(node.name, step.id, summary);
      } catch (err) {
        const message = errorMessage(err);
        reporter.stepFailed(node.name, step.id, message);
        this.journal({ event: 'step-failed', phase: phase.phase, node: node.name, step: step.id, message });
        let restored = false;
        if (node.restore && done.has(node.restore.after)) {
          reporter.warn(`${node.name}: ${step.id} failed; restoring the node from its backup`);
          restored = await this.restore(phase, node);
        } else if (step.effect === 'mutate' && node.restore) {
          // Up to restore.after the steps only read or make backups (the loader checks it), and a
          // backup copies aside before it renames: a failed one changed nothing either.
          reporter.info(`${node.name}: ${step.id} failed before anything was changed (the steps up to ${node.restore.after} only read or make backups); no restore needed`);
          restored = true;
        } else {
          restored = true;
        }
        return { phase: phase.phase, node: node.name, step: step.id, message, restored };
      }
    }
    return undefined;
  }
}

export class StopRequested extends Error {
  constructor(
    readonly node: string,
    readonly step: string,
  ) {
    super(`stopped before ${node} ${step}`);
  }
}
