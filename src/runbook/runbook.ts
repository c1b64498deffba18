/**
 * Phase runbooks (runbooks/<phase>.yaml): what to do on which nodes, in order, naming command
 * keys that each OS profile spells, and built-in gates that observe instead of sleeping.
 * Loading validates the files; a bad one is refused with its file, line and field.
 */
import { join } from 'node:path';
import { isMap, isScalar, isSeq, type Node as YamlNode } from 'yaml';
import { ROLES, type Role } from '../inventory/types.js';
import { InputFileError } from '../util/errors.js';
import { readPackageFile } from '../util/package-files.js';
import { PACKAGE_ROOT } from '../util/package-root.js';
import { arr, bool, fail, lineOf, obj, oneOf, opt, parseYaml, record, req, str, type Ctx, type Validator } from '../util/yaml-schema.js';
import { ACTIONS, actionDeclaration, type Action } from './actions.js';

export const RUNBOOKS_DIR = join(PACKAGE_ROOT, 'runbooks');

// Declared in actions.ts, once each; re-exported for the modules that import them from here.
export { ACTIONS, type Action } from './actions.js';

/** What a step's captured output becomes: named secrets kept in memory only. */
export const CAPTURES = ['etcdClientPair'] as const;
export type Capture = (typeof CAPTURES)[number];

export const TOPOLOGIES = ['external-etcd', 'stacked-etcd'] as const;
export type Topology = (typeof TOPOLOGIES)[number];

/**
 * How a phase picks its nodes beyond its roles: `kubelet-due` takes only the nodes whose kubelet
 * client or serving certificate is expired or inside the warn window (or the nodes named).
 */
export const SELECTS = ['kubelet-due'] as const;
export type Select = (typeof SELECTS)[number];

export type WithValue = string | string[];

/** What a deferred gate waits for in an etcd recovery: every member renewed, or a quorum of them. */
export type DeferUntil = 'all' | 'quorum';
const deferUntil: Validator<DeferUntil> = {
  expects: 'true (every member renewed) or quorum (a majority of members renewed)',
  parse(node, ctx, path) {
    const v = isScalar(node) ? node.value : undefined;
    if (v === true || v === 'all') return 'all';
    if (v === 'quorum') return 'quorum';
    return fail(ctx, node, path, `expected ${this.expects}, got ${JSON.stringify(v ?? null)}`);
  },
};

export interface RunbookStep {
  id: string;
  title: string;
  why?: string;
  run?: string;
  action?: Action;
  with: Record<string, WithValue>;
  when?: Topology;
  capture?: Capture;
  /** read: changes nothing (gates, health checks); mutate: changes the node. */
  effect: 'read' | 'mutate';
  /**
   * A cluster-health gate that cannot pass while etcd members' certificates are expired. `all`
   * (written `true`) needs every member: on the expired members it runs only on the last one
   * renewed. `quorum` needs a majority of members with valid peer certificates: it runs from the
   * member whose renewal makes that majority. In restore steps of expired members, not at all.
   */
  deferWhileEtcdExpired?: DeferUntil;
  /**
   * Restore steps only: runs even after an earlier restore step failed (the others are then
   * skipped). Putting the static pods back, and watching them come up, is never left out.
   */
  always?: true;
  /** Where the step is written, for messages. */
  file: string;
  line?: number;
}

export interface PhaseRunbook {
  phase: string;
  title: string;
  file: string;
  roles: Role[];
  when?: Topology;
  serial: boolean;
  /** Roles whose nodes may go in bounded parallel (--parallel) after the others, one at a time. */
  parallel: Role[];
  targets: 'each' | 'first';
  select?: Select;
  vars: Record<string, string>;
  steps: RunbookStep[];
  restore?: { after: string; steps: RunbookStep[] };
}

const ID = { pattern: /^[a-z][a-z0-9-]{0,40}$/, patternHelp: 'an id: lower-case letters, digits and "-"' };
const withEntry: Validator<WithValue> = {
  expects: 'a string, a number or a list of strings',
  parse(node, ctx, path) {
    if (isSeq(node)) return arr(str()).parse(node, ctx, path);
    if (isScalar(node) && typeof node.value === 'number') return String(node.value);
    return str().parse(node, ctx, path);
  },
};

const stepSchema = obj(
  {
    id: req(str(ID)),
    title: req(str()),
    why: opt(str()),
    run: opt(str({ pattern: /^[a-z][A-Za-z0-9-]*$/, patternHelp: 'a command key from the OS profiles' })),
    action: opt(oneOf(ACTIONS)),
    with: opt(record(withEntry, { pattern: /^[a-z][A-Za-z0-9]*$/, patternHelp: 'a variable name' })),
    when: opt(oneOf(TOPOLOGIES)),
    capture: opt(oneOf(CAPTURES)),
    effect: opt(oneOf(['read', 'mutate'] as const)),
    deferWhileEtcdExpired: opt(deferUntil),
    always: opt(bool()),
  },
  'a step: { id, title, run | action }',
);

const schema = obj({
  phase: req(str(ID)),
  title: req(str()),
  roles: req(arr(oneOf(ROLES), { min: 1 })),
  when: opt(oneOf(TOPOLOGIES)),
  serial: opt(bool()),
  parallel: opt(arr(oneOf(ROLES))),
  targets: opt(oneOf(['each', 'first'] as const)),
  select: opt(oneOf(SELECTS)),
  vars: opt(record(str(), { pattern: /^[a-z][A-Za-z0-9]*$/, patternHelp: 'a variable name' })),
  steps: req(arr(stepSchema, { min: 1 })),
  restore: opt(obj({ after: req(str(ID)), steps: req(arr(stepSchema, { min: 1 })) })),
});

function stepsAt(root: YamlNode, path: string[]): YamlNode[] {
  const list = isMap(root) ? root.getIn(path, true) : undefined;
  return isSeq(list) ? (list.items as YamlNode[]) : [];
}

export function parsePhaseRunbook(text: string, file: string): PhaseRunbook {
  const { value, ctx, root } = parseYaml(text, file, schema);
  const toSteps = (raw: typeof value.steps, nodes: YamlNode[], where: string): RunbookStep[] => {
    const seen = new Set<string>();
    return raw.map((s, i) => {
      const node = nodes[i];
      const field = `${where}[${i}]`;
      if ((s.run === undefined) === (s.action === undefined)) fail(ctx, node, field, 'a step needs exactly one of run (a command key) or action (a built-in)');
      if (s.capture && !s.run) fail(ctx, node, `${field}.capture`, 'only a run step can capture output');
      if (s.deferWhileEtcdExpired && s.effect !== 'read' && !(s.action && actionDeclaration(s.action).effect === 'read')) {
        fail(ctx, node, `${field}.deferWhileEtcdExpired`, 'only a read-only step (a gate) can be deferred; add effect: read if it changes nothing');
      }
      if (s.always !== undefined && !where.startsWith('restore')) fail(ctx, node, `${field}.always`, 'only a restore step can be always: a failing step ends the forward steps and starts the restore');
      if (seen.has(s.id)) fail(ctx, node, `${field}.id`, `step id ${s.id} is used twice`);
      seen.add(s.id);
      const line = lineOf(node, ctx);
      return {
        id: s.id,
        title: s.title,
        ...(s.why ? { why: s.why } : {}),
        ...(s.run ? { run: s.run } : {}),
        ...(s.action ? { action: s.action } : {}),
        with: s.with ?? {},
        ...(s.when ? { when: s.when } : {}),
        ...(s.capture ? { capture: s.capture } : {}),
        // Built-in actions only look unless declared otherwise; commands change the node unless the runbook says they only read.
        effect: s.effect ?? (s.action ? actionDeclaration(s.action).effect : 'mutate'),
        ...(s.deferWhileEtcdExpired ? { deferWhileEtcdExpired: s.deferWhileEtcdExpired } : {}),
        ...(s.always ? { always: true as const } : {}),
        file,
        ...(line !== undefined ? { line } : {}),
      };
    });
  };
  const steps = toSteps(value.steps, stepsAt(root, ['steps']), 'steps');
  let restore: PhaseRunbook['restore'];
  if (value.restore) {
    const after = value.restore.after;
    if (!steps.some((s) => s.id === after)) {
      fail(ctx, isMap(root) ? (root.getIn(['restore', 'after'], true) as YamlNode) : undefined, 'restore.after', `no step with id ${after}`, `step ids: ${steps.map((s) => s.id).join(', ')}`);
    }
    restore = { after, steps: toSteps(value.restore.steps, stepsAt(root, ['restore', 'steps']), 'restore.steps') };
    checkRestoreAfter(steps, restore, ctx, root);
  }
  return {
    phase: value.phase,
    title: value.title,
    file,
    roles: value.roles,
    ...(value.when ? { when: value.when } : {}),
    serial: value.serial ?? false,
    parallel: value.parallel ?? [],
    targets: value.targets ?? 'each',
    ...(value.select ? { select: value.select } : {}),
    vars: value.vars ?? {},
    steps,
    ...(restore ? { restore } : {}),
  };
}

const backupsOf = (s: RunbookStep): string[] => (s.with.backup === undefined ? [] : typeof s.with.backup === 'string' ? [s.with.backup] : s.with.backup);

/**
 * `restore.after` is the step after which a failure or a stop restores the node, and before which
 * it restores nothing. So it must be the last step that makes a backup: every backup a restore step
 * puts back is made by it or a step before it (a stop between two backups would otherwise restore
 * from one not made yet), and the steps up to it only read or make backups (a backup is copied
 * aside, then renamed: a cut-off one changed nothing). A step "makes" a backup when it is the first
 * to name it in `with.backup`; later steps that name it only check that it exists.
 */
function checkRestoreAfter(steps: RunbookStep[], restore: NonNullable<PhaseRunbook['restore']>, ctx: Ctx, root: YamlNode): void {
  const afterIdx = steps.findIndex((s) => s.id === restore.after);
  const afterNode = isMap(root) ? (root.getIn(['restore', 'after'], true) as YamlNode) : undefined;
  const maker = new Map<string, number>();
  steps.forEach((s, i) => backupsOf(s).forEach((b) => maker.has(b) || maker.set(b, i)));
  const makers = [...maker.values()];
  const lastBackup = makers.length > 0 ? steps[Math.max(...makers)] : undefined;
  const setAfter = lastBackup ? `set after: ${lastBackup.id}, the last step that makes a backup` : 'add a backup step and set after: to it';
  const withBackup = (path: string[], i: number) => (isMap(root) ? ((root.getIn([...path, i, 'with', 'backup'], true) ?? root.getIn([...path, i], true)) as YamlNode) : undefined);
  restore.steps.forEach((r, j) => {
    for (const b of backupsOf(r)) {
      const m = maker.get(b);
      if (m === undefined) fail(ctx, withBackup(['restore', 'steps'], j), `restore.steps[${j}].with.backup`, `no step makes the backup ${b} that ${r.id} puts back`, `name it in the with.backup of a backup step up to ${restore.after}`);
      if (m > afterIdx) {
        fail(ctx, afterNode, 'restore.after', `${restore.after} comes before ${steps[m]?.id}, which makes the backup ${b} that ${r.id} puts back: a stop between them would restore from a backup not made yet`, setAfter);
      }
    }
  });
  steps.forEach((s, i) => {
    if (i > afterIdx && backupsOf(s).some((b) => maker.get(b) === i)) {
      fail(ctx, afterNode, 'restore.after', `${restore.after} comes before ${s.id}, which makes a backup: a failure between them would restore the node without it`, setAfter);
    }
    if (i <= afterIdx && s.effect === 'mutate' && !backupsOf(s).some((b) => maker.get(b) === i)) {
      fail(ctx, stepsAt(root, ['steps'])[i], `steps[${i}]`, `${s.id} changes the node before restore.after (${restore.after}), where a failure or a stop restores nothing`, `move it after ${restore.after}, or add effect: read if it only looks`);
    }
  });
  const when = steps[afterIdx]?.when;
  if (when) fail(ctx, afterNode, 'restore.after', `${restore.after} runs only with ${when}: in other clusters the node would never be restored`, 'name a step that runs in every cluster');
}

function readRunbookFile(file: string): string {
  try {
    return readPackageFile(file);
  } catch {
    throw new InputFileError(`runbook ${file} is missing: reinstall rotate-certs or add the file`);
  }
}

const orderSchema = obj({ phases: req(arr(str(ID), { min: 1 })) });

/** runbooks/rotate.yaml and the phase runbooks it names, in order. */
export function loadRotationRunbooks(dir = RUNBOOKS_DIR): PhaseRunbook[] {
  const indexFile = join(dir, 'rotate.yaml');
  const { value } = parseYaml(readRunbookFile(indexFile), indexFile, orderSchema);
  return value.phases.map((name) => {
    const file = join(dir, `${name}.yaml`);
    const rb = parsePhaseRunbook(readRunbookFile(file), file);
    if (rb.phase !== name) throw new InputFileError(`${file}: declares phase: ${rb.phase}, but ${indexFile} names it ${name}`);
    return rb;
  });
}
