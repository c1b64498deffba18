/**
 * Reads the folder `eksctl anywhere create cluster` leaves (./NAME/): the cluster spec
 * NAME-eks-a-cluster.yaml (a Cluster plus the machine configs it references), and notes whether the
 * admin kubeconfig and the generated SSH key eks-a-id_rsa are there. Contacts nothing.
 *
 * What rotate-certs needs from the spec: which roles exist (external or stacked etcd, worker node
 * groups), and per machine group the OS family and the SSH user. Node names and addresses are not in
 * the spec: they come from the Cluster API Machines (machines.ts) or from the user.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Document, type Node as YamlNode } from 'yaml';
import { DNS_LABEL } from '../inventory/load.js';
import type { OsName, Role } from '../inventory/types.js';
import { LoadError, UsageError } from '../util/errors.js';

export const EKSA_API_VERSION = 'anywhere.eks.amazonaws.com/v1alpha1';

/** The OS families of EKS Anywhere machine configs that rotate-certs rotates, and their inventory names. */
export const OS_FAMILIES: Readonly<Record<string, OsName>> = { ubuntu: 'ubuntu', redhat: 'rhel', bottlerocket: 'bottlerocket' };

/** EKS Anywhere's osFamily default per machine config kind (its SetDefaults), used only when the spec has none. */
const DEFAULT_OS_FAMILY: Readonly<Record<string, string>> = {
  VSphereMachineConfig: 'bottlerocket',
  TinkerbellMachineConfig: 'bottlerocket',
  SnowMachineConfig: 'bottlerocket',
  NutanixMachineConfig: 'ubuntu',
  CloudStackMachineConfig: 'redhat',
};

/** EKS Anywhere's default SSH user (SetUserDefaults): ec2-user on Bottlerocket; per provider otherwise. */
const DEFAULT_USER: Readonly<Record<string, string>> = {
  VSphereMachineConfig: 'capv',
  CloudStackMachineConfig: 'capc',
  NutanixMachineConfig: 'eksa',
  TinkerbellMachineConfig: 'ec2-user',
  SnowMachineConfig: 'ec2-user',
};

// The inventory's pattern for ssh.user (src/inventory/load.ts); checked here so the error names the spec's line.
const SSH_USER = /^[a-z_][a-z0-9_.-]{0,31}$/;

export const specFileName = (name: string) => `${name}-eks-a-cluster.yaml`;
export const kubeconfigFileName = (name: string) => `${name}-eks-a-cluster.kubeconfig`;
export const IDENTITY_FILE_NAME = 'eks-a-id_rsa';

export interface MachineGroup {
  role: Role;
  /** The machine config's metadata.name. */
  machineGroup: string;
  /** The machine config's kind, e.g. VSphereMachineConfig. */
  machineConfigKind: string;
  /** Workers: the node group's name in the spec (md-0). */
  workerNodeGroup?: string;
  /** Workers: NAME-<node group name>, the MachineDeployment Cluster API makes (its Machines' cluster.x-k8s.io/deployment-name). */
  deploymentName?: string;
  os: OsName;
  sshUser: string;
  /** The count the spec asks for (workers with only autoscaling: its minCount); absent when the spec gives none. */
  count?: number;
}

export interface ClusterFolder {
  /** The cluster's name (NAME). */
  cluster: string;
  /** The folder, absolute. */
  dir: string;
  /** NAME-eks-a-cluster.yaml, absolute. */
  specFile: string;
  /** NAME-eks-a-cluster.kubeconfig, absolute, when the file exists. */
  kubeconfig?: string;
  /** eks-a-id_rsa, absolute, when the file exists (eksctl writes it only when the spec gave no SSH key). */
  identityFile?: string;
  /** spec.managementCluster.name; the cluster itself for a standalone or management cluster. */
  managementCluster: string;
  /**
   * For a workload cluster (managementCluster differs): ../MGMT/MGMT-eks-a-cluster.kubeconfig when it
   * exists. Its Machines and the etcd client secret live in the management cluster, not in this one.
   */
  managementKubeconfig?: string;
  /** spec.datacenterRef.kind, e.g. VSphereDatacenterConfig. */
  provider?: string;
  /** spec.controlPlaneConfiguration.endpoint.host: the control plane's virtual IP, which no node should be addressed by. */
  controlPlaneEndpoint?: string;
  externalEtcd: boolean;
  /** etcd (when external), then the control plane, then each worker node group in spec order. */
  groups: MachineGroup[];
  warnings: string[];
}

interface SpecDoc {
  doc: Document.Parsed;
  kind?: string;
  name?: string;
}

interface Ctx {
  /** The file as the user would name it (dir as given + file name). */
  file: string;
  lines: LineCounter;
}

function lineOf(ctx: Ctx, node: unknown): number | undefined {
  const offset = (node as YamlNode | undefined)?.range?.[0];
  return offset === undefined ? undefined : ctx.lines.linePos(offset).line;
}

function nodeAt(doc: Document.Parsed, path: Array<string | number>): YamlNode | undefined {
  // Walk up to the deepest node that exists, so a missing field reports the line of its parent.
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    if (node && typeof node === 'object') return node as YamlNode;
  }
  return undefined;
}

function fail(ctx: Ctx, doc: Document.Parsed | undefined, path: Array<string | number>, field: string, problem: string, fix?: string): never {
  throw new LoadError(ctx.file, doc ? lineOf(ctx, nodeAt(doc, path)) : undefined, field, problem, fix);
}

function scalar(doc: Document.Parsed, path: Array<string | number>): unknown {
  const node = doc.getIn(path, true);
  return isScalar(node) ? node.value : undefined;
}

function str(doc: Document.Parsed, path: Array<string | number>): string | undefined {
  const v = scalar(doc, path);
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function num(doc: Document.Parsed, path: Array<string | number>): number | undefined {
  const v = scalar(doc, path);
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : undefined;
}

const fieldName = (path: Array<string | number>) => path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');

function readSpec(dir: string, name: string): { text: string; file: string } {
  const file = join(dir, specFileName(name));
  try {
    return { text: readFileSync(file, 'utf8'), file };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      const there = existsSync(dir) ? `${dir} has no ${specFileName(name)}` : `there is no folder ${dir}`;
      throw new UsageError(
        `cannot read the cluster spec ${file}: ${there} (run rotate-certs where you ran \`eksctl anywhere create cluster\`, which left ./${name}/${specFileName(name)}, or write an inventory by hand: docs/inventory.md)`,
      );
    }
    const why = code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a folder' : String(code);
    throw new UsageError(`cannot read the cluster spec ${file}: ${why}`);
  }
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/**
 * Reads ./NAME/ as eksctl left it. Every error is a UsageError (exit 64, like an inventory file
 * that cannot be read: docs/bad-input.md): the spec file cannot be read, or a LoadError naming the
 * file, the line and the field, with the fix, when the spec has no Cluster NAME, a machineGroupRef
 * names no machine config, or a machine config has an OS family rotate-certs does not rotate; or
 * the name is not a cluster name.
 */
export function readClusterFolder(dir: string, name: string): ClusterFolder {
  if (!DNS_LABEL.test(name)) throw new UsageError(`${JSON.stringify(name)} is not a cluster name: lower-case letters, digits and "-", at most 63`);
  const { text, file } = readSpec(dir, name);
  const lines = new LineCounter();
  const ctx: Ctx = { file, lines };
  const docs: SpecDoc[] = [];
  for (const doc of parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false })) {
    const first = doc.errors[0];
    if (first) throw new LoadError(file, lines.linePos(first.pos[0]).line, '', `not valid YAML: ${first.message.split('\n')[0]}`);
    if (doc.contents == null) continue; // an empty document between two `---`
    docs.push({ doc, kind: str(doc, ['kind']), name: str(doc, ['metadata', 'name']) });
  }
  if (docs.length === 0) throw new LoadError(file, undefined, '', 'the file is empty', `it should hold the Cluster ${name} and its machine configs`);

  const clusters = docs.filter((d) => d.kind === 'Cluster' && (str(d.doc, ['apiVersion']) ?? EKSA_API_VERSION).startsWith('anywhere.eks.amazonaws.com/'));
  const mine = clusters.filter((d) => d.name === name);
  if (mine.length === 0) {
    const others = clusters.map((d) => d.name ?? '(no name)');
    throw new LoadError(
      file,
      others.length ? lineOf(ctx, nodeAt(clusters[0]!.doc, ['metadata', 'name'])) : undefined,
      others.length ? 'metadata.name' : '',
      `no Cluster named ${JSON.stringify(name)} (kind: Cluster, apiVersion: ${EKSA_API_VERSION})${others.length ? `; the file has ${others.map((o) => JSON.stringify(o)).join(', ')}` : ''}`,
      others.length === 1 ? `use the cluster name ${others[0]}, or the folder of cluster ${name}` : `give the name of the cluster this folder was made for`,
    );
  }
  if (mine.length > 1) fail(ctx, mine[1]!.doc, ['metadata', 'name'], 'metadata.name', `a second Cluster named ${JSON.stringify(name)}`, 'keep one');
  const cluster = mine[0]!.doc;
  const warnings: string[] = [];

  const machineConfigs = docs.filter((d) => d.kind && d.kind.endsWith('MachineConfig'));
  const groupFor = (role: Role, path: Array<string | number>, extra: Partial<MachineGroup>): MachineGroup => {
    const refPath = [...path, 'machineGroupRef'];
    const refName = str(cluster, [...refPath, 'name']);
    const refKind = str(cluster, [...refPath, 'kind']);
    if (!refName) {
      const provider = str(cluster, ['spec', 'datacenterRef', 'kind']);
      fail(
        ctx,
        cluster,
        refPath,
        fieldName([...refPath, 'name']),
        'required field is missing',
        provider === 'DockerDatacenterConfig'
          ? 'a Docker cluster has no machines to reach over SSH; rotate-certs needs SSH to each node'
          : 'name the machine config of these nodes, as the cluster was created with',
      );
    }
    const matches = machineConfigs.filter((d) => d.name === refName && (!refKind || d.kind === refKind));
    if (matches.length === 0) {
      const known = machineConfigs.map((d) => `${d.kind} ${d.name ?? '(no name)'}`);
      fail(
        ctx,
        cluster,
        [...refPath, 'name'],
        fieldName([...refPath, 'name']),
        `names ${refKind ?? 'a machine config'} ${JSON.stringify(refName)}, which is not in the file${known.length ? ` (machine configs in the file: ${known.join(', ')})` : ' (the file has no machine configs)'}`,
        `fix the name, or add the ${refKind ?? 'machine config'} the cluster was created with`,
      );
    }
    if (matches.length > 1) fail(ctx, matches[1]!.doc, ['metadata', 'name'], 'metadata.name', `a second ${matches[1]!.kind} named ${JSON.stringify(refName)}`, 'keep one');
    const mc = matches[0]!;
    const kind = mc.kind!;
    const where = `${kind} ${refName}`;

    let family = str(mc.doc, ['spec', 'osFamily']);
    if (!family) {
      family = DEFAULT_OS_FAMILY[kind];
      if (!family)
        fail(ctx, mc.doc, ['spec', 'osFamily'], `${where}: spec.osFamily`, 'required field is missing', `say ubuntu, redhat or bottlerocket`);
      warnings.push(`${where} gives no spec.osFamily: assuming ${family}, EKS Anywhere's default for ${kind}`);
    }
    const os = OS_FAMILIES[family];
    if (!os)
      fail(
        ctx,
        mc.doc,
        ['spec', 'osFamily'],
        `${where}: spec.osFamily`,
        `${JSON.stringify(family)} is not an OS rotate-certs rotates (ubuntu, redhat, bottlerocket)`,
        `these ${role} nodes cannot be rotated by rotate-certs; if the spec is wrong, fix osFamily, or write the inventory by hand (docs/inventory.md)`,
      );

    let sshUser = str(mc.doc, ['spec', 'users', 0, 'name']);
    if (!sshUser) {
      sshUser = os === 'bottlerocket' ? 'ec2-user' : (DEFAULT_USER[kind] ?? 'ec2-user');
      warnings.push(`${where} gives no spec.users[0].name: assuming ${sshUser}, EKS Anywhere's default for ${family} on ${kind}`);
    } else if (!SSH_USER.test(sshUser)) {
      fail(ctx, mc.doc, ['spec', 'users', 0, 'name'], `${where}: spec.users[0].name`, `${JSON.stringify(sshUser)} is not a user name rotate-certs accepts: lower-case letters, digits, "_", "-" and "."`);
    }
    const users = mc.doc.getIn(['spec', 'users'], true);
    if (isSeq(users) && users.items.length > 1) warnings.push(`${where} lists ${users.items.length} users: rotate-certs logs in as the first, ${sshUser}`);

    return { role, machineGroup: refName, machineConfigKind: kind, ...extra, os, sshUser };
  };

  const groups: MachineGroup[] = [];
  const etcdCfg = cluster.getIn(['spec', 'externalEtcdConfiguration'], true);
  const externalEtcd = isMap(etcdCfg) && etcdCfg.items.length > 0;
  if (externalEtcd) {
    const count = num(cluster, ['spec', 'externalEtcdConfiguration', 'count']);
    groups.push(groupFor('etcd', ['spec', 'externalEtcdConfiguration'], count === undefined ? {} : { count }));
  }
  if (!isMap(cluster.getIn(['spec', 'controlPlaneConfiguration'], true)))
    fail(ctx, cluster, ['spec', 'controlPlaneConfiguration'], 'spec.controlPlaneConfiguration', 'required field is missing', 'the spec eksctl wrote always has one: is this the file it wrote?');
  {
    const count = num(cluster, ['spec', 'controlPlaneConfiguration', 'count']);
    groups.push(groupFor('control-plane', ['spec', 'controlPlaneConfiguration'], count === undefined ? {} : { count }));
  }
  const workers = cluster.getIn(['spec', 'workerNodeGroupConfigurations'], true);
  if (workers != null && !isSeq(workers) && !(isScalar(workers) && workers.value === null))
    fail(ctx, cluster, ['spec', 'workerNodeGroupConfigurations'], 'spec.workerNodeGroupConfigurations', 'expected a list of worker node groups');
  const seenGroups = new Set<string>();
  (isSeq(workers) ? workers.items : []).forEach((_, i) => {
    const path = ['spec', 'workerNodeGroupConfigurations', i];
    const groupName = str(cluster, [...path, 'name']) ?? (i === 0 ? 'md-0' : undefined);
    if (!groupName) fail(ctx, cluster, [...path, 'name'], fieldName([...path, 'name']), 'required field is missing', 'each worker node group after the first needs its name, as the cluster was created with');
    if (seenGroups.has(groupName)) fail(ctx, cluster, [...path, 'name'], fieldName([...path, 'name']), `worker node group ${JSON.stringify(groupName)} is given twice`);
    seenGroups.add(groupName);
    const count = num(cluster, [...path, 'count']) ?? num(cluster, [...path, 'autoscalingConfiguration', 'minCount']);
    groups.push(groupFor('worker', path, { workerNodeGroup: groupName, deploymentName: `${name}-${groupName}`, ...(count === undefined ? {} : { count }) }));
  });

  const absDir = resolve(dir);
  const kubeconfig = join(absDir, kubeconfigFileName(name));
  const identityFile = join(absDir, IDENTITY_FILE_NAME);
  const hasKubeconfig = isFile(kubeconfig);
  const hasIdentity = isFile(identityFile);
  const managementCluster = str(cluster, ['spec', 'managementCluster', 'name']) ?? name;
  let managementKubeconfig: string | undefined;
  if (managementCluster !== name) {
    const candidate = join(dirname(absDir), managementCluster, kubeconfigFileName(managementCluster));
    if (isFile(candidate)) managementKubeconfig = candidate;
    warnings.push(
      `${name} is a workload cluster managed by ${managementCluster}: its Machines and the secret eksa-system/${name}-apiserver-etcd-client live in ${managementCluster}, ` +
        (managementKubeconfig ? `read through ${managementKubeconfig}` : `so give ${managementCluster}'s kubeconfig (${join('..', managementCluster, kubeconfigFileName(managementCluster))} was not found)`),
    );
  } else if (!hasKubeconfig) {
    warnings.push(`${dir} has no ${kubeconfigFileName(name)}: node addresses cannot be read from the cluster's Machines, and the etcd client secret is not updated after a rotation unless a kubeconfig is given`);
  }
  if (!hasIdentity) {
    warnings.push(`${dir} has no ${IDENTITY_FILE_NAME} (eksctl writes it only when the spec gives no SSH key): SSH uses the agent at SSH_AUTH_SOCK unless ssh.identityFile names the private key of the spec's sshAuthorizedKeys`);
  }

  const endpoint = str(cluster, ['spec', 'controlPlaneConfiguration', 'endpoint', 'host']);
  const provider = str(cluster, ['spec', 'datacenterRef', 'kind']);
  return {
    cluster: name,
    dir: absDir,
    specFile: resolve(file),
    ...(hasKubeconfig ? { kubeconfig } : {}),
    ...(hasIdentity ? { identityFile } : {}),
    managementCluster,
    ...(managementKubeconfig ? { managementKubeconfig } : {}),
    ...(provider ? { provider } : {}),
    ...(endpoint ? { controlPlaneEndpoint: endpoint } : {}),
    externalEtcd,
    groups,
    warnings,
  };
}
