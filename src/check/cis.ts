/**
 * `check --cis`: the file posture of the CIS Kubernetes Benchmark as data (runbooks/cis.yaml),
 * validated at load; its expansion into what to stat on one node; and the evaluation of what the
 * node printed (modes, owners, paths: nothing else leaves the node) into deviations. Pure but for
 * reading the runbook file.
 */
import { readPackageFile } from '../util/package-files.js';
import { join } from 'node:path';
import type { Node as YamlNode } from 'yaml';
import { OS_NAMES, ROLES, type OsName, type Role } from '../inventory/types.js';
import { NAME_KEYS, PATH_KEYS, type OsProfile } from '../profiles/profile.js';
import { TOPOLOGIES, type Topology } from '../runbook/runbook.js';
import { InputFileError } from '../util/errors.js';
import { PACKAGE_ROOT } from '../util/package-root.js';
import { arr, bool, fail, obj, oneOf, opt, parseYaml, req, shortOrLong, str, type Ctx, type Validator } from '../util/yaml-schema.js';

const VARS = new Set<string>([...PATH_KEYS, ...NAME_KEYS]);
/** A folder part: letters, digits, ".", "_", "-" and "/". */
const PLAIN_DIR = /^\/[A-Za-z0-9._/-]*$/;
/** A last component: the same, plus the name patterns * and ?. */
const NAME_PART = /^[A-Za-z0-9._*?-]+$/;
const GLOB = /[*?]/;

/** An absolute path with optional {{var}}s and, in its last component only, * or ?. */
const CIS_PATH: Validator<string> = {
  expects: 'an absolute path, optionally starting with a profile variable such as {{kubePki}}, with * or ? only in its last component',
  parse(node, ctx, path) {
    const v = str().parse(node, ctx, path);
    for (const [, name] of v.matchAll(/\{\{([^}]*)\}\}/g)) {
      if (!VARS.has(name ?? '')) fail(ctx, node, path, `unknown variable {{${name}}}`, `known: ${[...VARS].join(', ')}`);
    }
    const plain = v.replace(/\{\{[A-Za-z]+\}\}/g, '/x');
    const slash = plain.lastIndexOf('/');
    const dir = plain.slice(0, slash) || '/';
    const last = plain.slice(slash + 1);
    if (!PLAIN_DIR.test(dir) || (last !== '' && !NAME_PART.test(last)) || !plain.startsWith('/')) {
      fail(ctx, node, path, `${JSON.stringify(v)} is not ${this.expects}`, 'use letters, digits, ".", "_", "-" and "/", and * or ? in the file name');
    }
    if (GLOB.test(v) && /\{\{[A-Za-z]+\}\}[^/]*$/.test(v)) fail(ctx, node, path, `${JSON.stringify(v)}: a name pattern cannot follow a profile variable in the same component`);
    return v;
  },
};

const OCTAL_MODE: Validator<number> = {
  expects: 'an octal mode in quotes, such as "0600"',
  parse(node, ctx, path) {
    const v = str({ pattern: /^0?[0-7]{3}$/, patternHelp: this.expects }).parse(node, ctx, path);
    return parseInt(v, 8);
  },
};
const ITEM = str({ pattern: /^\d+(\.\d+)+$/, patternHelp: 'a CIS item number in quotes, such as "1.1.1"' });
const OWNER = str({ pattern: /^[A-Za-z0-9_][A-Za-z0-9_.-]*:[A-Za-z0-9_][A-Za-z0-9_.-]*$/, patternHelp: 'user:group (names or numeric ids), such as root:root' });

export interface CisPathEntry {
  path: string;
  recursive?: boolean;
  when?: Topology;
  os?: OsName[];
}
export interface CisModeCheck {
  /** The loosest mode allowed: no permission bit beyond it. */
  max: number;
  item: string;
}
export interface CisOwnerCheck {
  /** user:group pairs accepted (names or numeric ids). */
  is: string[];
  item: string;
}
export interface CisRule {
  what: string;
  roles: Role[];
  paths: CisPathEntry[];
  mode?: CisModeCheck;
  owner?: CisOwnerCheck;
}
export interface CisRunbook {
  file: string;
  rules: CisRule[];
}

const pathEntry = shortOrLong(
  CIS_PATH,
  obj({ path: req(CIS_PATH), recursive: opt(bool()), when: opt(oneOf(TOPOLOGIES)), os: opt(arr(oneOf(OS_NAMES), { min: 1 })) }, 'a { path, recursive, when, os } entry'),
  (path): CisPathEntry => ({ path }),
);

const ruleShape = obj(
  {
    what: req(str()),
    roles: req(arr(oneOf(ROLES), { min: 1 })),
    paths: req(arr(pathEntry, { min: 1 })),
    mode: opt(obj({ max: req(OCTAL_MODE), item: req(ITEM) }, 'a { max, item } entry')),
    owner: opt(obj({ is: req(arr(OWNER, { min: 1 })), item: req(ITEM) }, 'a { is, item } entry')),
  },
  'a rule { what, roles, paths, mode, owner }',
);

/** A rule must check something. */
const rule: Validator<CisRule> = {
  expects: ruleShape.expects,
  parse(node: YamlNode | null | undefined, ctx: Ctx, path: string): CisRule {
    const r = ruleShape.parse(node, ctx, path);
    if (!r.mode && !r.owner) fail(ctx, node, path, 'checks nothing', 'give mode: { max, item }, owner: { is, item } or both');
    return r;
  },
};

const schema = obj({ rules: req(arr(rule, { min: 1 })) });

export function parseCisRunbook(text: string, file: string): CisRunbook {
  return { file, rules: parseYaml(text, file, schema).value.rules };
}

export function loadCisRunbook(file = join(PACKAGE_ROOT, 'runbooks', 'cis.yaml')): CisRunbook {
  let text: string;
  try {
    text = readPackageFile(file);
  } catch {
    throw new InputFileError(`runbook ${file} is missing: reinstall rotate-certs or add the file`);
  }
  return parseCisRunbook(text, file);
}

/** One thing to stat on a node, with the checks its results get. */
export interface CisProbe {
  /** The path itself, or the folder a pattern is matched in. */
  path: string;
  /** A file-name pattern (find -name), matched on the node. */
  pattern?: string;
  /** The folder and everything below it; with a pattern, matching files at any depth. */
  recursive: boolean;
  mode?: CisModeCheck;
  owner?: CisOwnerCheck;
}

function expand(template: string, profile: OsProfile): string {
  return template.replace(/\{\{([A-Za-z]+)\}\}/g, (_m, name: string) => profile.vars[name as keyof OsProfile['vars']]);
}

/** What to stat on one node of this role and OS, in rule order. */
export function cisProbesFor(runbook: CisRunbook, role: Role, profile: OsProfile, externalEtcd: boolean): CisProbe[] {
  const topology: Topology = externalEtcd ? 'external-etcd' : 'stacked-etcd';
  const probes: CisProbe[] = [];
  for (const r of runbook.rules.filter((r) => r.roles.includes(role))) {
    for (const e of r.paths) {
      if (e.when !== undefined && e.when !== topology) continue;
      if (e.os !== undefined && !e.os.includes(profile.os)) continue;
      const full = expand(e.path, profile).replace(/(.)\/+$/, '$1');
      const slash = full.lastIndexOf('/');
      const last = full.slice(slash + 1);
      const probe: CisProbe = GLOB.test(last) ? { path: full.slice(0, slash) || '/', pattern: last, recursive: e.recursive ?? false } : { path: full, recursive: e.recursive ?? false };
      if (r.mode) probe.mode = r.mode;
      if (r.owner) probe.owner = r.owner;
      probes.push(probe);
    }
  }
  return probes;
}

/** What the node printed for one file: its mode bits and owner, by id and by name. */
export interface CisStat {
  probe: number;
  mode: number;
  uid: string;
  gid: string;
  user: string;
  group: string;
  path: string;
}

export interface CisDeviation {
  node: string;
  path: string;
  /** The CIS Kubernetes Benchmark item the rule comes from, such as "1.1.21". */
  item: string;
  expected: string;
  found: string;
}

export function octal(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}

/** user:group as the node names them; a number where the node has no name for the id. */
function ownerOf(s: CisStat): string {
  const known = (name: string, id: string) => (name === '' || name === 'UNKNOWN' ? id : name);
  return `${known(s.user, s.uid)}:${known(s.group, s.gid)}`;
}

function ownerMatches(s: CisStat, expected: string): boolean {
  const [u, g] = expected.split(':') as [string, string];
  return (u === s.user || u === s.uid) && (g === s.group || g === s.gid);
}

/** Every rule a file breaks, once per path and item, ordered by path then item. */
export function evaluateCis(node: string, probes: CisProbe[], stats: CisStat[]): CisDeviation[] {
  const out = new Map<string, CisDeviation>();
  const add = (d: CisDeviation) => {
    const key = `${d.path}\u0000${d.item}`;
    if (!out.has(key)) out.set(key, d);
  };
  for (const s of stats) {
    const p = probes[s.probe];
    if (!p) continue;
    if (p.mode && (s.mode & ~p.mode.max & 0o7777) !== 0) {
      add({ node, path: s.path, item: p.mode.item, expected: `${octal(p.mode.max)} or stricter`, found: octal(s.mode) });
    }
    if (p.owner && !p.owner.is.some((o) => ownerMatches(s, o))) {
      add({ node, path: s.path, item: p.owner.item, expected: p.owner.is.join(' or '), found: ownerOf(s) });
    }
  }
  return [...out.values()].sort((a, b) => a.path.localeCompare(b.path) || compareItems(a.item, b.item));
}

/** "1.1.2" before "1.1.10". */
export function compareItems(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? -1) - (pb[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}
