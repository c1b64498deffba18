/**
 * Compiles runbooks + OS profiles + inventory into a Plan. Pure: the same inputs give the same
 * plan, which is how apply detects a plan edited by hand or made by another version.
 */
import { createHash } from 'node:crypto';
import type { Inventory, InventoryNode, OsName } from '../inventory/types.js';
import type { OsProfile, ProfileSet } from '../profiles/profile.js';
import { ACTION_COMMANDS, ACTION_VARS, type PhaseRunbook, type RunbookStep, type Topology, type WithValue } from '../runbook/runbook.js';
import { renderDisplay, templateNames } from '../runbook/template.js';
import { UsageError } from '../util/errors.js';
import type { Plan, PlanNode, PlanPhase, PlanStep, Scope } from './types.js';

/** A runbook or profile that does not fit together: names the file and line to fix. */
export class CompileError extends UsageError {}

const PLACEHOLDER = /\{\{([A-Za-z][A-Za-z0-9]*)\}\}/g;

/** Replaces {{name}} in a value (not a command): the result is data, quoted later. */
function expand(value: string, vars: Record<string, string>, where: string): string {
  return value.replace(PLACEHOLDER, (_m, name: string) => {
    const v = vars[name];
    if (v === undefined) throw new CompileError(`${where}: unknown variable {{${name}}} (known: ${Object.keys(vars).sort().join(', ')})`);
    return v;
  });
}

function stepWhere(step: RunbookStep): string {
  return `${step.file}${step.line ? `:${step.line}` : ''}: step ${step.id}`;
}

/** Run ids name backup folders: sortable UTC time, no characters a shell cares about. */
export function newRunId(now: Date): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

export function nodeVars(node: InventoryNode, profile: OsProfile, runId: string): Record<string, string> {
  return { ...profile.vars, nodeName: node.name, host: node.host, runId };
}

function compileStep(step: RunbookStep, node: InventoryNode, profile: OsProfile, vars: Record<string, string>, recovery?: Recovery): PlanStep {
  const where = stepWhere(step);
  const resolved: Record<string, WithValue> = {};
  for (const [k, v] of Object.entries(step.with)) {
    resolved[k] = Array.isArray(v) ? v.map((x) => expand(x, vars, where)) : expand(v, vars, where);
  }
  const out: PlanStep = {
    id: step.id,
    title: step.title,
    ...(step.why ? { why: step.why } : {}),
    effect: step.effect,
    with: resolved,
    ...(step.capture ? { capture: step.capture } : {}),
    ...(recovery?.deferred && step.deferWhileEtcdExpired ? { deferred: recovery.deferred } : {}),
    ...(recovery?.retried && step.deferWhileEtcdExpired ? { retried: recovery.retried } : {}),
  };
  const scalars = Object.fromEntries(Object.entries(resolved).filter((e): e is [string, string] => typeof e[1] === 'string'));
  const all = { ...vars, ...scalars };
  const display = (key: string, extra: Record<string, string> = {}): string => {
    const template = profile.commands[key];
    if (template === undefined) {
      throw new CompileError(`${where}: ${profile.file} has no command ${key}, so ${node.name} (${node.os}) cannot run this step`);
    }
    const missing = templateNames(template).vars.filter((n) => all[n] === undefined && extra[n] === undefined);
    if (missing.length > 0) {
      throw new CompileError(`${where}: command ${key} in ${profile.file} uses {{${missing.join('}}, {{')}}}, which neither the step's with nor the profile gives`);
    }
    return renderDisplay(template, { ...all, ...extra });
  };
  if (step.action) {
    const keys = ACTION_COMMANDS[step.action] ?? [];
    return { ...out, action: step.action, ...(keys.length > 0 ? { commands: Object.fromEntries(keys.map((k) => [k, display(k, ACTION_VARS)])) } : {}) };
  }
  const key = step.run as string;
  return { ...out, run: key, command: display(key) };
}

function applies(when: Topology | undefined, inv: Inventory): boolean {
  return when === undefined || when === (inv.externalEtcd ? 'external-etcd' : 'stacked-etcd');
}

const PHASES_BY_ONLY: Record<NonNullable<Scope['only']>, string[]> = {
  // The secret follows the etcd client pair, which both parts renew or install.
  etcd: ['etcd', 'etcd-client-pair', 'management'],
  'control-plane': ['etcd-client-pair', 'control-plane', 'management'],
  kubelet: ['kubelet'],
  workers: ['kubelet'],
};

export interface CompileInput {
  inventory: Inventory;
  inventoryDigest: string;
  runbooks: PhaseRunbook[];
  profiles: ProfileSet;
  runId: string;
  createdAt: string;
  scope: Scope;
  /** OS found on the inventory's os: auto nodes; recorded in the plan. */
  detected?: Record<string, OsName>;
  /** Nodes whose kubelet certificates are due (from the certificates read); absent on --dry-run, where every candidate is listed with onlyIf. */
  kubeletDue?: string[];
  /** External etcd members whose server or peer certificate expired (from the certificates read). */
  etcdExpired?: string[];
  /** Inventory name -> Node name where the kubelet's client certificate names another Node (node-names.ts). */
  nodeNames?: Record<string, string>;
}

/** How an etcd recovery changes a node's deferWhileEtcdExpired gates. */
interface Recovery {
  deferred?: string;
  retried?: string;
}

/**
 * etcd recovery: while members' certificates are expired, etcd has no quorum (or a member that
 * cannot talk), and a member that restarted meanwhile does not even serve clients, so gates that
 * need a healthy cluster can only pass once the last of them is renewed. Returns the phase's nodes
 * with the expired members first, and per node how its steps and restore steps change: before the
 * last expired member those gates are deferred; on it they are retried while the members elect a
 * leader; their restores defer them (the expired certificates come back).
 */
function recoveryOf(rb: PhaseRunbook, phaseTargets: InventoryNode[], etcdExpired: string[]): { targets: InventoryNode[]; byNode: Map<string, { steps: Recovery; restore: Recovery }> } {
  const out = new Map<string, { steps: Recovery; restore: Recovery }>();
  const defers = [...rb.steps, ...(rb.restore?.steps ?? [])].some((s) => s.deferWhileEtcdExpired);
  if (!defers || etcdExpired.length === 0) return { targets: phaseTargets, byNode: out };
  // The expired members first: a healthy member renewed before them could not be checked (its
  // gates need the whole cluster), and it is what keeps any quorum there is.
  const expired = (n: InventoryNode) => etcdExpired.includes(n.name);
  const targets = [...phaseTargets.filter(expired), ...phaseTargets.filter((n) => !expired(n))];
  const expiredHere = targets.filter((n) => etcdExpired.includes(n.name)).map((n) => n.name);
  // Also when the scope names only healthy members: renewing them in a degraded cluster is what
  // the health gates exist to prevent.
  const elsewhere = etcdExpired.filter((n) => !expiredHere.includes(n));
  if (elsewhere.length > 0) {
    throw new UsageError(
      `etcd member${elsewhere.length > 1 ? 's' : ''} ${elsewhere.join(', ')} ${elsewhere.length > 1 ? 'have' : 'has'} expired certificates: etcd cannot be healthy until every such member is renewed, so renew them in this run (name them with --nodes as well, or drop --nodes)`,
    );
  }
  const last = expiredHere[expiredHere.length - 1] as string;
  const lastIndex = targets.findIndex((n) => n.name === last);
  const restore = { deferred: 'etcd recovery: members with expired certificates remain after this restore, so etcd cannot be healthy' };
  targets.forEach((n, i) => {
    if (i < lastIndex) out.set(n.name, { steps: { deferred: `etcd recovery: waits for ${last}, the last member with expired certificates; etcd cannot be healthy before it is renewed, and the health gate there checks every member` }, restore });
    else if (i === lastIndex) out.set(n.name, { steps: { retried: 'etcd recovery: retried up to --pod-timeout while the renewed members elect a leader; checks every member' }, restore });
  });
  return { targets, byNode: out };
}

export function compilePlan(input: CompileInput): Plan {
  const { inventory: inv, scope } = input;
  const named = new Set(scope.nodes ?? []);
  for (const n of named) {
    if (!inv.nodes.some((x) => x.name === n)) throw new UsageError(`--nodes: no node named ${n} in ${inv.file}`);
  }
  const phases: PlanPhase[] = [];
  for (const rb of input.runbooks) {
    if (!applies(rb.when, inv)) continue;
    if (scope.only && !PHASES_BY_ONLY[scope.only].includes(rb.phase)) continue;
    let targets = inv.nodes.filter((n) => rb.roles.includes(n.role));
    // A phase that reads from one node picks the first, whichever nodes the user named.
    if (rb.targets === 'first') targets = targets.slice(0, 1);
    else if (named.size > 0) targets = targets.filter((n) => named.has(n.name));
    // Nothing read (--dry-run): every node it could go to, each marked as decided by its dates.
    else if (rb.select === 'kubelet-due' && input.kubeletDue) targets = targets.filter((n) => input.kubeletDue?.includes(n.name));
    const onlyIf = rb.select === 'kubelet-due' && !input.kubeletDue && rb.targets !== 'first' && named.size === 0 ? ('kubelet-due' as const) : undefined;
    if (scope.only === 'workers') targets = targets.filter((n) => n.role === 'worker');
    if (targets.length === 0) continue;
    const recoveries = recoveryOf(rb, targets, input.etcdExpired ?? []);
    const nodes: PlanNode[] = recoveries.targets.map((node) => {
      const recovery = recoveries.byNode.get(node.name);
      const profile = input.profiles.get(node.os);
      const base = nodeVars(node, profile, input.runId);
      // The kubelet steps issue the certificate for, and wait for, the Node the kubelet really is.
      const kubeNodeName = input.nodeNames?.[node.name];
      const vars: Record<string, string> = { ...base, ...(kubeNodeName ? { kubeNodeName } : {}) };
      for (const [k, v] of Object.entries(rb.vars)) vars[k] = expand(v, vars, `${rb.file}: vars.${k}`);
      const steps = rb.steps.filter((s) => applies(s.when, inv)).map((s) => compileStep(s, node, profile, vars, recovery?.steps));
      const restore = rb.restore
        ? { after: rb.restore.after, steps: rb.restore.steps.filter((s) => applies(s.when, inv)).map((s) => compileStep(s, node, profile, vars, recovery?.restore)) }
        : undefined;
      const backups = [...new Set(steps.filter((s) => typeof s.with.backup === 'string').map((s) => s.with.backup as string))];
      return { name: node.name, host: node.host, role: node.role, os: node.os, rootShell: profile.rootShell, vars, steps, ...(restore ? { restore } : {}), backups, ...(onlyIf ? { onlyIf } : {}) };
    });
    const parallel = nodes.filter((n) => rb.parallel.includes(n.role)).map((n) => n.name);
    phases.push({ phase: rb.phase, title: rb.title, serial: rb.serial, ...(parallel.length > 0 ? { parallel } : {}), nodes });
  }
  return {
    kind: 'rotate-certs/plan',
    version: 1,
    cluster: inv.cluster,
    inventory: inv.file,
    inventoryDigest: input.inventoryDigest,
    runId: input.runId,
    createdAt: input.createdAt,
    scope,
    ...(input.detected && Object.keys(input.detected).length > 0 ? { detected: input.detected } : {}),
    ...(input.kubeletDue ? { kubeletDue: input.kubeletDue } : {}),
    ...(input.etcdExpired && input.etcdExpired.length > 0 ? { etcdExpired: input.etcdExpired } : {}),
    ...(input.nodeNames && Object.keys(input.nodeNames).length > 0 ? { nodeNames: input.nodeNames } : {}),
    phases,
  };
}

/** SHA-256 over the plan without its digest, in a stable key order. */
export function planDigest(plan: Plan): string {
  const { digest: _digest, ...rest } = plan;
  return createHash('sha256').update(stableJson(rest)).digest('hex');
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
