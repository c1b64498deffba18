/** Reads an inventory YAML file into a validated InventorySpec (os may be auto). Contacts nothing. */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { isIP } from 'node:net';
import { isMap, isScalar, isSeq, type Node as YamlNode } from 'yaml';
import { UsageError } from '../util/errors.js';
import { arr, fail, int, obj, oneOf, opt, parseYaml, req, str, type Ctx } from '../util/yaml-schema.js';
import { OS_CHOICES, type InventorySpec, type InventoryNodeSpec, type JumpHost, type Role, type SshSettings } from './types.js';

// Names end up in remote paths and log lines, hosts in connection strings: keep both strict.
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
export const NODE_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const HOSTNAME = /^[A-Za-z0-9]([-A-Za-z0-9.]{0,251}[A-Za-z0-9])?$/;
const SSH_USER = /^[a-z_][a-z0-9_.-]{0,31}$/;
const JUMP_HOST = /^([a-z_][a-z0-9_.-]{0,31})@([A-Za-z0-9.:-]+?|\[[0-9a-fA-F:.]+\])(?::(\d{1,5}))?$/;
// A local path: anything printable but no control characters.
const LOCAL_PATH = /^[^\0-\x1f\x7f]+$/;

const host = str({
  pattern: (v) => isIP(v) !== 0 || HOSTNAME.test(v),
  patternHelp: 'an IP address or a host name (letters, digits, "-" and ".")',
});
const nodeName = str({ pattern: NODE_NAME, patternHelp: 'a node name: lower-case letters, digits, "-" and "."' });
const user = str({ pattern: SSH_USER, patternHelp: 'a user name: lower-case letters, digits, "_", "-" and "."' });
const port = int(1, 65535, 'a port number');
const path = str({ pattern: LOCAL_PATH, patternHelp: 'a file path' });

const nodeSsh = obj({ user: opt(user), port: opt(port), identityFile: opt(path) }, 'a mapping of ssh settings');
const nodeSchema = obj(
  { name: req(nodeName), host: req(host), os: opt(oneOf(OS_CHOICES)), ssh: opt(nodeSsh) },
  'a node: { name, host }',
);

const schema = obj({
  cluster: req(str({ pattern: DNS_LABEL, patternHelp: 'a DNS label: lower-case letters, digits and "-", at most 63' })),
  kubeconfig: opt(path),
  ssh: opt(
    obj({
      user: opt(user),
      port: opt(port),
      identityFile: opt(path),
      knownHostsFile: opt(path),
      hostKeyPolicy: opt(oneOf(['strict', 'accept-new'] as const)),
      jumpHost: opt(str({ pattern: JUMP_HOST, patternHelp: 'user@host or user@host:port' })),
      connectTimeoutSeconds: opt(int(1, 600, 'seconds')),
      commandTimeoutSeconds: opt(int(1, 86400, 'seconds')),
    }),
  ),
  os: opt(oneOf(OS_CHOICES)),
  etcd: opt(arr(nodeSchema)),
  controlPlane: req(arr(nodeSchema, { min: 1 })),
  workers: opt(arr(nodeSchema)),
});

function parseJumpHost(spec: string): JumpHost {
  const m = JUMP_HOST.exec(spec);
  // The schema already matched this pattern; the fallbacks only satisfy the type checker.
  const hostPart = (m?.[2] ?? '').replace(/^\[|\]$/g, '');
  return { user: m?.[1] ?? '', host: hostPart, port: m?.[3] ? Number(m[3]) : 22 };
}

export interface LoadOptions {
  /** Home directory for the default known_hosts; injectable for tests. */
  home?: string;
}

export function parseInventory(text: string, file: string, opts: LoadOptions = {}): InventorySpec {
  const absFile = resolve(file);
  const base = dirname(absFile);
  const { value: raw, ctx, root } = parseYaml(text, file, schema);
  const local = (p: string) => (isAbsolute(p) ? p : join(base, p));
  const sshRaw = raw.ssh ?? {};
  const jump = sshRaw.jumpHost ? parseJumpHost(sshRaw.jumpHost) : undefined;
  if (jump) {
    const at = isMap(root) ? (root.getIn(['ssh', 'jumpHost'], true) as YamlNode) : undefined;
    if (isIP(jump.host) === 0 && !HOSTNAME.test(jump.host))
      fail(ctx, at, 'ssh.jumpHost', `${JSON.stringify(jump.host)} is not a host name or IP address`);
    if (jump.port < 1 || jump.port > 65535) fail(ctx, at, 'ssh.jumpHost', 'port out of range 1-65535');
  }

  requireSshUsers(raw, ctx, root);
  const defaults: SshSettings = {
    // requireSshUsers made sure every node that lacks its own user has this one.
    user: sshRaw.user ?? '',
    port: sshRaw.port ?? 22,
    ...(sshRaw.identityFile ? { identityFile: local(sshRaw.identityFile), identityFileField: 'ssh.identityFile' } : {}),
    knownHostsFile: sshRaw.knownHostsFile ? local(sshRaw.knownHostsFile) : join(opts.home ?? homedir(), '.ssh', 'known_hosts'),
    knownHostsFileSet: Boolean(sshRaw.knownHostsFile),
    hostKeyPolicy: sshRaw.hostKeyPolicy ?? 'strict',
    ...(jump ? { jumpHost: jump } : {}),
    connectTimeoutMs: (sshRaw.connectTimeoutSeconds ?? 10) * 1000,
    commandTimeoutMs: (sshRaw.commandTimeoutSeconds ?? 300) * 1000,
  };

  const defaultOs = raw.os ?? 'ubuntu';
  const nodes: InventoryNodeSpec[] = [];
  const groups: Array<[string, Role, typeof raw.controlPlane | undefined]> = [
    ['etcd', 'etcd', raw.etcd],
    ['controlPlane', 'control-plane', raw.controlPlane],
    ['workers', 'worker', raw.workers],
  ];
  const seenNames = new Map<string, string>();
  const seenHosts = new Map<string, string>();
  for (const [key, role, entries] of groups) {
    (entries ?? []).forEach((n, i) => {
      const field = `${key}[${i}]`;
      const nodeAst = nodeAt(root, key, i);
      const prevName = seenNames.get(n.name);
      if (prevName) fail(ctx, nodeAst, `${field}.name`, `node name ${JSON.stringify(n.name)} is already used by ${prevName}`, 'node names must be unique');
      seenNames.set(n.name, field);
      const hostKey = `${n.host}:${n.ssh?.port ?? defaults.port}`;
      const prevHost = seenHosts.get(hostKey);
      if (prevHost) fail(ctx, nodeAst, `${field}.host`, `host ${n.host} is already used by ${prevHost}`, 'each node needs its own address');
      seenHosts.set(hostKey, field);
      nodes.push({
        name: n.name,
        host: n.host,
        role,
        os: n.os ?? defaultOs,
        ssh: {
          ...defaults,
          ...(n.ssh?.user ? { user: n.ssh.user } : {}),
          ...(n.ssh?.port ? { port: n.ssh.port } : {}),
          ...(n.ssh?.identityFile ? { identityFile: local(n.ssh.identityFile), identityFileField: `${field}.ssh.identityFile` } : {}),
        },
      });
    });
  }

  return {
    cluster: raw.cluster,
    file: absFile,
    text,
    ...(raw.kubeconfig ? { kubeconfig: local(raw.kubeconfig) } : {}),
    externalEtcd: (raw.etcd?.length ?? 0) > 0,
    nodes,
  };
}

/** The node lists of an inventory, in runbook order, with their YAML keys. */
const NODE_LISTS = ['etcd', 'controlPlane', 'workers'] as const;

/**
 * Every node needs an SSH user: ssh.user for all of them, or its own. There is no default on
 * purpose: EKS Anywhere's differs by provider and OS (capv on vSphere, ec2-user on Bottlerocket...),
 * and a guess logs in as the wrong user on every node, which then reads as "the key was not accepted".
 */
function requireSshUsers(raw: { ssh?: { user?: string }; etcd?: RawNode[]; controlPlane: RawNode[]; workers?: RawNode[] }, ctx: Ctx, root: YamlNode): void {
  if (raw.ssh?.user) return;
  const all = NODE_LISTS.flatMap((key) => (raw[key] ?? []).map((n, i) => ({ key, i, user: n.ssh?.user })));
  const without = all.filter((n) => !n.user);
  const first = without[0];
  if (!first) return;
  const example = 'e.g. capv on vSphere, ec2-user on Bottlerocket';
  if (without.length === all.length) {
    // The line of `ssh:` itself, or the top of the file when there is no ssh mapping.
    const ssh = isMap(root) ? root.items.find((p) => isScalar(p.key) && p.key.value === 'ssh')?.key : undefined;
    fail(ctx, (ssh as YamlNode | undefined) ?? root, 'ssh.user', 'required field is missing', `the user to log in as on every node: spec.users[0].name of the cluster's machine configs, ${example}; a node may set its own`);
  }
  fail(ctx, nodeAt(root, first.key, first.i), `${first.key}[${first.i}].ssh.user`, 'required field is missing', `no ssh.user applies to every node: set ssh.user, or one for this node; ${example}`);
}

type RawNode = { ssh?: { user?: string } };

function nodeAt(root: YamlNode, key: string, index: number): YamlNode | undefined {
  if (!isMap(root)) return undefined;
  const list = root.get(key, true);
  if (!isSeq(list)) return undefined;
  return list.items[index] as YamlNode | undefined;
}

export function loadInventory(file: string, opts: LoadOptions = {}): InventorySpec {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a folder' : String(code);
    throw new UsageError(`cannot read inventory ${file}: ${why}`);
  }
  return parseInventory(text, file, opts);
}

/** `--cluster NAME` reads ./NAME/rotate-certs.yaml. */
export function inventoryPathForCluster(cluster: string, cwd = process.cwd()): string {
  return join(cwd, cluster, 'rotate-certs.yaml');
}

export type { Ctx };
