/**
 * runbooks/check.yaml: which certificate files, kubeconfigs and endpoints `check` reads on each
 * node role. Loading validates the file; `sourcesFor` expands it for one node. Pure.
 */
import { join } from 'node:path';
import type { Role } from '../inventory/types.js';
import { ROLES } from '../inventory/types.js';
import { NAME_KEYS, PATH_KEYS, type OsProfile } from '../profiles/profile.js';
import { InputFileError } from '../util/errors.js';
import { readPackageFile } from '../util/package-files.js';
import { PACKAGE_ROOT } from '../util/package-root.js';
import { SAFE_ABS_PATH } from '../util/shell.js';
import { arr, bool, fail, int, obj, oneOf, opt, parseYaml, req, shortOrLong, str, type Validator } from '../util/yaml-schema.js';

const TOPOLOGIES = ['external-etcd', 'stacked-etcd'] as const;
type Topology = (typeof TOPOLOGIES)[number];

const VARS = new Set<string>([...PATH_KEYS, ...NAME_KEYS]);
const pathString = str();
/** An absolute path that may use {{var}} names from the OS profile; unknown names are refused. */
const TEMPLATE_PATH: Validator<string> = {
  expects: `an absolute path, optionally starting with a profile variable such as {{kubePki}}`,
  parse(node, ctx, path) {
    const v = pathString.parse(node, ctx, path);
    for (const [, name] of v.matchAll(/\{\{([^}]*)\}\}/g)) {
      if (!VARS.has(name ?? '')) fail(ctx, node, path, `unknown variable {{${name}}}`, `known: ${[...VARS].join(', ')}`);
    }
    const plain = v.replace(/\{\{[A-Za-z]+\}\}/g, '/x');
    if (!SAFE_ABS_PATH.test(plain)) fail(ctx, node, path, `${JSON.stringify(v)} is not ${this.expects}`, 'use letters, digits, ".", "_", "-" and "/"');
    return v;
  },
};

interface FileEntry {
  path: string;
  optional?: boolean;
  when?: Topology;
}
interface EndpointEntry {
  port: number;
  when?: Topology;
}

const fileEntry = shortOrLong(
  TEMPLATE_PATH,
  obj({ path: req(TEMPLATE_PATH), optional: opt(bool()), when: opt(oneOf(TOPOLOGIES)) }, 'a { path, optional, when } entry'),
  (path): FileEntry => ({ path }),
);
const endpointEntry = shortOrLong(
  int(1, 65535, 'a port number'),
  obj({ port: req(int(1, 65535, 'a port number')), when: opt(oneOf(TOPOLOGIES)) }, 'a { port, when } entry'),
  (port): EndpointEntry => ({ port }),
);

const schema = obj({
  groups: req(
    arr(
      obj({
        roles: req(arr(oneOf(ROLES), { min: 1 })),
        files: opt(arr(fileEntry)),
        kubeconfigs: opt(arr(fileEntry)),
        endpoints: opt(arr(endpointEntry)),
      }),
      { min: 1 },
    ),
  ),
});

export interface CheckRunbook {
  file: string;
  groups: Array<{ roles: Role[]; files: FileEntry[]; kubeconfigs: FileEntry[]; endpoints: EndpointEntry[] }>;
}

export function parseCheckRunbook(text: string, file: string): CheckRunbook {
  const { value } = parseYaml(text, file, schema);
  return {
    file,
    groups: value.groups.map((g) => ({ roles: g.roles, files: g.files ?? [], kubeconfigs: g.kubeconfigs ?? [], endpoints: g.endpoints ?? [] })),
  };
}

export function loadCheckRunbook(file = join(PACKAGE_ROOT, 'runbooks', 'check.yaml')): CheckRunbook {
  let text: string;
  try {
    text = readPackageFile(file);
  } catch {
    throw new InputFileError(`runbook ${file} is missing: reinstall rotate-certs or add the file`);
  }
  return parseCheckRunbook(text, file);
}

export interface FileSource {
  path: string;
  optional: boolean;
}
export interface NodeSources {
  files: FileSource[];
  kubeconfigs: FileSource[];
  ports: number[];
}

function expand(template: string, profile: OsProfile): string {
  return template.replace(/\{\{([A-Za-z]+)\}\}/g, (_m, name: string) => profile.vars[name as keyof OsProfile['vars']]);
}

/** What to read on one node. Duplicates (a path listed by two groups) are read once. */
export function sourcesFor(runbook: CheckRunbook, role: Role, profile: OsProfile, externalEtcd: boolean): NodeSources {
  const topology: Topology = externalEtcd ? 'external-etcd' : 'stacked-etcd';
  const applies = (e: { when?: Topology }) => e.when === undefined || e.when === topology;
  const files = new Map<string, FileSource>();
  const kubeconfigs = new Map<string, FileSource>();
  const ports = new Set<number>();
  for (const g of runbook.groups.filter((g) => g.roles.includes(role))) {
    for (const f of g.files.filter(applies)) {
      const path = expand(f.path, profile);
      files.set(path, { path, optional: f.optional ?? false });
    }
    for (const f of g.kubeconfigs.filter(applies)) {
      const path = expand(f.path, profile);
      kubeconfigs.set(path, { path, optional: f.optional ?? false });
    }
    for (const e of g.endpoints.filter(applies)) ports.add(e.port);
  }
  return { files: [...files.values()], kubeconfigs: [...kubeconfigs.values()], ports: [...ports] };
}
