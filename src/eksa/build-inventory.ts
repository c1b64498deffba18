/**
 * Writes a rotate-certs inventory (docs/inventory.md) from what readClusterFolder found in ./NAME/ and
 * the nodes (from listMachineNodes or the user). The text is meant to be saved as
 * ./NAME/rotate-certs.yaml, so paths inside the folder are written relative to it. Run it through
 * parseInventory before use: that is the one validation of the result.
 */
import { basename, isAbsolute, relative } from 'node:path';
import { Document, isMap, isSeq } from 'yaml';
import type { OsChoice, Role } from '../inventory/types.js';
import { UsageError } from '../util/errors.js';
import { plural } from '../util/wording.js';
import type { ClusterFolder, MachineGroup } from './cluster-spec.js';

export interface NodeInput {
  name: string;
  /** Missing until known: see missingHosts. */
  host?: string;
  role: Role;
  /** Workers: the MachineDeployment (NAME-<worker node group>) that maps the node to its group's OS and user. */
  deploymentName?: string;
}

export interface InventoryOptions {
  /** ssh.knownHostsFile; left out (so ~/.ssh/known_hosts) when not given. */
  knownHostsFile?: string;
  /** The management cluster's kubeconfig to name; default folder.managementKubeconfig ?? folder.kubeconfig. */
  kubeconfig?: string;
  /** The folder the inventory is saved in (paths inside it are written relative); default folder.dir. */
  inventoryDir?: string;
  /** Where the node names and addresses came from, for the header comment. */
  nodesFrom?: string;
  /** The time in the header; default now. */
  now?: Date;
}

export interface BuiltInventory {
  yaml: string;
  /** What did not line up between the spec and the nodes; also written as comments in the header. */
  warnings: string[];
}

/** Where each role's nodes go in the inventory. */
const LIST_KEY: Record<Role, 'etcd' | 'controlPlane' | 'workers'> = { etcd: 'etcd', 'control-plane': 'controlPlane', worker: 'workers' };
const ROLES: Role[] = ['etcd', 'control-plane', 'worker'];

export interface MissingHost {
  name: string;
  role: Role;
  /** The inventory field to fill in, e.g. workers[1].host. */
  field: string;
}

/** Nodes grouped in inventory order (etcd, control plane, workers; input order within a role), each with its field. */
function placed<T extends NodeInput>(nodes: T[]): Array<{ node: T; field: string }> {
  const out: Array<{ node: T; field: string }> = [];
  for (const role of ROLES) {
    nodes.filter((n) => n.role === role).forEach((node, i) => out.push({ node, field: `${LIST_KEY[role]}[${i}]` }));
  }
  return out;
}

/** The nodes that still need an address, with the inventory field each would fill. */
export function missingHosts(nodes: NodeInput[]): MissingHost[] {
  return placed(nodes)
    .filter(({ node }) => !node.host)
    .map(({ node, field }) => ({ name: node.name, role: node.role, field: `${field}.host` }));
}

/** Thrown by buildInventory/inventoryYaml when nodes lack a host: names each inventory field to fill in. */
export class MissingHostsError extends UsageError {
  constructor(
    readonly missing: MissingHost[],
    inventory: string,
  ) {
    super(
      `no address for ${missing.map((m) => `${m.name} (${m.role})`).join(', ')}: set ${missing.map((m) => m.field).join(', ')} in ${inventory}` +
        ' (the Cluster API Machines report none; give the node addresses)',
    );
  }
}

interface Assigned {
  os: OsChoice;
  user: string;
}

/** The most frequent value, the first seen winning ties. */
function mostCommon<T>(values: T[]): T | undefined {
  const counts = new Map<T, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best: T | undefined;
  let bestCount = 0;
  for (const [v, c] of counts) {
    if (c > bestCount) {
      best = v;
      bestCount = c;
    }
  }
  return best;
}

function assign(folder: ClusterFolder, nodes: NodeInput[], warnings: string[]): Map<NodeInput, Assigned> {
  const byRole = (role: Role) => folder.groups.filter((g) => g.role === role);
  const cp = byRole('control-plane')[0];
  const workerGroups = byRole('worker');
  const of = (g: MachineGroup): Assigned => ({ os: g.os, user: g.sshUser });
  const same = (gs: MachineGroup[]) => gs.length > 0 && gs.every((g) => g.os === gs[0]!.os && g.sshUser === gs[0]!.sshUser);
  const out = new Map<NodeInput, Assigned>();
  const perGroup = new Map<MachineGroup, number>();

  for (const n of nodes) {
    let group: MachineGroup | undefined;
    if (n.role === 'worker') {
      group = workerGroups.find((g) => n.deploymentName !== undefined && g.deploymentName === n.deploymentName);
      if (!group && same(workerGroups)) {
        group = workerGroups[0];
        // With one OS and user for every worker group, which group the node is in does not matter.
        if (n.deploymentName && workerGroups.length) warnings.push(`${n.name}: its MachineDeployment ${n.deploymentName} is no worker node group of the spec; using ${group!.machineGroup}'s OS and user, which every worker group shares`);
      }
    } else {
      group = byRole(n.role)[0];
    }
    if (group) {
      out.set(n, of(group));
      perGroup.set(group, (perGroup.get(group) ?? 0) + 1);
      continue;
    }
    // No group to tell the OS: detect it on connect, and log in as the role's (or control plane's) user.
    const fallbackUser = (n.role === 'worker' ? workerGroups[0] : undefined)?.sshUser ?? cp?.sshUser ?? 'ec2-user';
    out.set(n, { os: 'auto', user: fallbackUser });
    const why =
      n.role === 'worker'
        ? workerGroups.length === 0
          ? 'the spec has no worker node groups'
          : n.deploymentName
            ? `its MachineDeployment ${n.deploymentName} is none of the spec's worker node groups (${workerGroups.map((g) => g.deploymentName).join(', ')})`
            : `nothing says which worker node group it is in (${workerGroups.map((g) => g.deploymentName).join(', ')})`
        : n.role === 'etcd'
          ? 'the spec has no externalEtcdConfiguration (stacked etcd)'
          : 'the spec has no control-plane machine config';
    warnings.push(`${n.name} (${n.role}): ${why}; its OS is detected on connect (os: auto) and the SSH user ${fallbackUser} is a guess`);
  }

  if (folder.externalEtcd && !nodes.some((n) => n.role === 'etcd'))
    warnings.push(`the spec has external etcd but no etcd node is listed: etcd certificates would not be rotated; add the etcd nodes under etcd:`);
  for (const g of folder.groups) {
    const have = perGroup.get(g) ?? 0;
    if (g.count !== undefined && have !== g.count)
      warnings.push(`${g.role}${g.workerNodeGroup ? ` group ${g.workerNodeGroup}` : ''}: the spec asks for ${plural(g.count, 'node')}, ${have} ${have === 1 ? 'is' : 'are'} listed`);
  }
  return out;
}

export function buildInventory(folder: ClusterFolder, nodes: NodeInput[], opts: InventoryOptions = {}): BuiltInventory {
  const inventoryDir = opts.inventoryDir ?? folder.dir;
  const inventoryFile = `${inventoryDir}/rotate-certs.yaml`;
  const missing = missingHosts(nodes);
  if (missing.length) throw new MissingHostsError(missing, inventoryFile);
  if (!nodes.some((n) => n.role === 'control-plane')) throw new UsageError(`no control-plane node for cluster ${folder.cluster}: an inventory needs at least one (controlPlane[0].name and .host in ${inventoryFile})`);

  const warnings: string[] = [];
  const assigned = assign(folder, nodes, warnings);
  const order = placed(nodes);
  const os = mostCommon(order.map(({ node }) => assigned.get(node)!.os))!;
  const user = mostCommon(order.map(({ node }) => assigned.get(node)!.user))!;
  const local = (p: string) => {
    const r = relative(inventoryDir, p);
    return r && !r.startsWith('..') && !isAbsolute(r) ? r : p;
  };

  const kubeconfig = opts.kubeconfig ?? folder.managementKubeconfig ?? folder.kubeconfig;
  const ssh: Record<string, unknown> = { user };
  if (folder.identityFile) ssh.identityFile = local(folder.identityFile);
  if (opts.knownHostsFile) ssh.knownHostsFile = local(opts.knownHostsFile);
  ssh.hostKeyPolicy = 'strict';

  const entry = (n: NodeInput) => {
    const a = assigned.get(n)!;
    return {
      name: n.name,
      host: n.host!,
      ...(a.os !== os ? { os: a.os } : {}),
      ...(a.user !== user ? { ssh: { user: a.user } } : {}),
    };
  };
  const inv: Record<string, unknown> = { cluster: folder.cluster };
  if (kubeconfig) inv.kubeconfig = local(kubeconfig);
  inv.ssh = ssh;
  inv.os = os;
  for (const role of ROLES) {
    const list = order.filter(({ node }) => node.role === role).map(({ node }) => entry(node));
    if (list.length || role === 'control-plane') inv[LIST_KEY[role]] = list;
  }

  const doc = new Document(inv);
  for (const key of Object.values(LIST_KEY)) {
    const seq = doc.get(key, true);
    if (isSeq(seq)) for (const item of seq.items) if (isMap(item)) item.flow = true;
  }
  const when = (opts.now ?? new Date()).toISOString();
  const from = [basename(folder.specFile), ...(folder.kubeconfig ? [basename(folder.kubeconfig)] : []), ...(folder.identityFile ? [basename(folder.identityFile)] : [])];
  const header = [
    `rotate-certs inventory of EKS Anywhere cluster ${folder.cluster} (see docs/inventory.md).`,
    `Generated by rotate-certs at ${when} from ${folder.dir}: ${from.join(', ')}.`,
    `Roles, OS and SSH users: the cluster spec's machine configs. Nodes: ${opts.nodesFrom ?? `the cluster's Cluster API Machines (eksa-system of ${folder.managementCluster}) or as entered`}.`,
    `Host keys are checked strictly against ${opts.knownHostsFile ? local(opts.knownHostsFile) : '~/.ssh/known_hosts'}: record them with rotate-certs trust --cluster ${folder.cluster}.`,
    ...(folder.identityFile ? [] : ['No eks-a-id_rsa in the folder: SSH uses the agent at SSH_AUTH_SOCK unless ssh.identityFile is set.']),
    ...warnings.map((w) => `CHECK: ${w}`),
  ];
  doc.commentBefore = header.map((l) => ` ${l}`).join('\n');
  return { yaml: doc.toString({ lineWidth: 0 }), warnings };
}

/**
 * The inventory text for ./NAME/rotate-certs.yaml. Throws MissingHostsError (a UsageError, exit 64)
 * when a node has no host, UsageError when no control-plane node is given.
 */
export function inventoryYaml(folder: ClusterFolder, nodes: NodeInput[], opts: InventoryOptions = {}): string {
  return buildInventory(folder, nodes, opts).yaml;
}
