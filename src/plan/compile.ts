/**
 * Compiles runbooks + OS profiles + inventory into a Plan. Pure: the same inputs give the same
 * plan, which is how apply detects a plan edited by hand or made by another version.
 */
import { createHash } from 'node:crypto';
import type { Inventory, InventoryNode } from '../inventory/types.js';
import type { OsProfile, ProfileSet } from '../profiles/profile.js';
import { actionDeclaration } from '../runbook/actions.js';
import { type DeferUntil, type PhaseRunbook, type RunbookStep, type Topology, type WithValue } from '../runbook/runbook.js';
import { renderDisplay, templateNames } from '../runbook/template.js';
import { UsageError } from '../util/errors.js';
import type { Plan, PlanNode, PlanPhase, PlanReadings, PlanStep, Scope } from './types.js';

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
    ...(step.always ? { always: true as const } : {}),
    ...recoveryOfStep(step, recovery),
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
    // An action's placeholders (<Node name>) stand only where the plan knows no value: a node's real one wins.
    return renderDisplay(template, { ...extra, ...all });
  };
  if (step.action) {
    const { commands: keys = [], vars: own = {} } = actionDeclaration(step.action);
    return { ...out, action: step.action, ...(keys.length > 0 ? { commands: Object.fromEntries(keys.map((k) => [k, display(k, own)])) } : {}) };
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

/** What a plan is compiled from: the inventory, the runbooks and profiles, and what was read of the cluster (PlanReadings, absent on --dry-run). */
export interface CompileInput extends PlanReadings {
  inventory: Inventory;
  inventoryDigest: string;
  runbooks: PhaseRunbook[];
  profiles: ProfileSet;
  runId: string;
  createdAt: string;
  scope: Scope;
}

/** How an etcd recovery changes a node's deferWhileEtcdExpired gates, by what each waits for. */
type Recovery = Partial<Record<DeferUntil, { deferred?: string; retried?: string }>>;

function recoveryOfStep(step: RunbookStep, recovery: Recovery | undefined): Pick<PlanStep, 'deferred' | 'retried'> {
  const r = step.deferWhileEtcdExpired ? recovery?.[step.deferWhileEtcdExpired] : undefined;
  return { ...(r?.deferred ? { deferred: r.deferred } : {}), ...(r?.retried ? { retried: r.retried } : {}) };
}

/**
 * etcd recovery: while members' certificates are expired, etcd has no quorum (or a member that
 * cannot talk), and a member that restarted meanwhile does not even serve clients, so gates that
 * need a healthy cluster can only pass once enough of them are renewed. `members` are the phase's
 * etcd members (external etcd nodes, or the control planes of a stacked etcd); only expired ones
 * among them matter here. Returns the phase's nodes with the expired members first, and per node
 * how its steps and restore steps change: gates that need every member (`all`) are deferred before
 * the last expired member and retried on it while the members elect a leader; gates that need a
 * quorum are deferred before the member whose renewal gives a majority of members valid peer
 * certificates, and retried on it; the restores of expired members defer both (their expired
 * certificates come back).
 */
function recoveryOf(
  rb: PhaseRunbook,
  phaseTargets: InventoryNode[],
  members: InventoryNode[],
  etcdExpired: string[],
): { targets: InventoryNode[]; byNode: Map<string, { steps: Recovery; restore: Recovery }> } {
  const out = new Map<string, { steps: Recovery; restore: Recovery }>();
  const defers = [...rb.steps, ...(rb.restore?.steps ?? [])].some((s) => s.deferWhileEtcdExpired);
  const expiredMembers = etcdExpired.filter((n) => members.some((m) => m.name === n));
  if (!defers || expiredMembers.length === 0) return { targets: phaseTargets, byNode: out };
  // The expired members first: a healthy member renewed before them could not be checked (its
  // gates need the whole cluster), and it is what keeps any quorum there is.
  const expired = (n: InventoryNode) => expiredMembers.includes(n.name);
  const targets = [...phaseTargets.filter(expired), ...phaseTargets.filter((n) => !expired(n))];
  const expiredHere = targets.filter(expired).map((n) => n.name);
  // Also when the scope names only healthy members: renewing them in a degraded cluster is what
  // the health gates exist to prevent.
  const elsewhere = expiredMembers.filter((n) => !expiredHere.includes(n));
  if (elsewhere.length > 0) {
    throw new UsageError(
      `etcd member${elsewhere.length > 1 ? 's' : ''} ${elsewhere.join(', ')} ${elsewhere.length > 1 ? 'have' : 'has'} expired certificates: etcd cannot be healthy until every such member is renewed, so renew them in this run (name them with --nodes as well, or drop --nodes)`,
    );
  }
  const last = expiredHere[expiredHere.length - 1] as string;
  const lastIndex = targets.findIndex((n) => n.name === last);
  // The members with valid peer certificates, plus those renewed so far, must be a majority.
  const majority = Math.floor(members.length / 2) + 1;
  const quorumIndex = Math.max(majority - (members.length - expiredMembers.length), 0) - 1;
  const quorumNode = targets[quorumIndex]?.name;
  const allWaits = `etcd recovery: waits for ${last}, the last member with expired certificates; etcd cannot be healthy before it is renewed, and the health gate there checks every member`;
  const allRetried = 'etcd recovery: retried up to --pod-timeout while the renewed members elect a leader; checks every member';
  const quorumWaits = `etcd recovery: waits for ${quorumNode}, whose renewal gives a majority of the ${members.length} members valid peer certificates; etcd has no quorum before it`;
  const quorumRetried = 'etcd recovery: retried up to --pod-timeout while the renewed members, now a majority, elect a leader';
  const restoreWaits = 'etcd recovery: members with expired certificates remain after this restore, so etcd cannot be healthy';
  targets.forEach((n, i) => {
    if (i > lastIndex) return;
    const steps: Recovery = { all: i < lastIndex ? { deferred: allWaits } : { retried: allRetried } };
    if (i < quorumIndex) steps.quorum = { deferred: quorumWaits };
    else if (i === quorumIndex) steps.quorum = { retried: quorumRetried };
    out.set(n.name, { steps, restore: { all: { deferred: restoreWaits }, quorum: { deferred: restoreWaits } } });
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
    // The phase's etcd members: its own nodes when they are etcd's (external etcd nodes; the control
    // planes when etcd is stacked on them), all of them, whichever the scope names.
    const etcdRole = inv.externalEtcd ? 'etcd' : 'control-plane';
    const members = rb.roles.includes(etcdRole) ? inv.nodes.filter((n) => n.role === etcdRole) : [];
    const recoveries = recoveryOf(rb, targets, members, input.etcdExpired ?? []);
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
