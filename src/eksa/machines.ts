/**
 * Node names, roles and addresses from the Cluster API Machines of an EKS Anywhere cluster, as the
 * management cluster holds them in eksa-system. External etcd machines are Machines (made by the
 * etcdadm controller) but not Kubernetes Nodes, which is why Machines and not Nodes are read.
 */
import { isIP } from 'node:net';
import { NODE_NAME } from '../inventory/load.js';
import type { Role } from '../inventory/types.js';
import { listCapi } from '../kube/capi.js';
import { KubeApiError, type KubeClient } from '../kube/client.js';

export const CLUSTER_NAME_LABEL = 'cluster.x-k8s.io/cluster-name';
export const CONTROL_PLANE_LABEL = 'cluster.x-k8s.io/control-plane';
export const ETCD_CLUSTER_LABEL = 'cluster.x-k8s.io/etcd-cluster';
export const DEPLOYMENT_NAME_LABEL = 'cluster.x-k8s.io/deployment-name';

export interface MachineNode {
  /** status.nodeRef.name (the Kubernetes Node), else the Machine's name (etcd machines have no Node). */
  name: string;
  /** The first usable ExternalIP, else InternalIP; undefined when the Machine reports neither: ask for it. */
  host?: string;
  role: Role;
  /** Workers: the MachineDeployment (NAME-<worker node group>), from cluster.x-k8s.io/deployment-name. */
  deploymentName?: string;
  /** The Machine's own name, when it differs from `name`. */
  machine?: string;
  /** status.phase (Running, Provisioning, ...), when reported. */
  phase?: string;
}

export interface ListMachinesOptions {
  /**
   * Addresses never to use for a node: the control plane's virtual IP (ClusterFolder.controlPlaneEndpoint),
   * which kube-vip puts on whichever control-plane node leads and which providers then report as that
   * Machine's address.
   */
  skipAddresses?: Iterable<string>;
}

interface RawAddress {
  type?: string;
  address?: string;
}
interface RawMachine {
  metadata?: {
    name?: string;
    labels?: Record<string, string>;
    deletionTimestamp?: string;
    ownerReferences?: Array<{ kind?: string }>;
  };
  /** nodeRef: {name} in v1beta2, an ObjectReference (with name) in v1beta1. */
  status?: { nodeRef?: { name?: string }; addresses?: RawAddress[]; phase?: string };
}

const ROLE_ORDER: Record<Role, number> = { etcd: 0, 'control-plane': 1, worker: 2 };

/** Not a node's own address: IPv6 link-local (fe80::/10) and IPv4 link-local (169.254/16). */
function usable(address: string, skip: Set<string>): boolean {
  const a = address.trim();
  if (!a || skip.has(a)) return false;
  const family = isIP(a.replace(/%.*$/, ''));
  if (family === 6) return !/^fe[89ab]/i.test(a);
  if (family === 4) return !a.startsWith('169.254.');
  return false; // host names are Hostname/InternalDNS entries, never ExternalIP/InternalIP
}

function hostOf(addresses: RawAddress[] | undefined, skip: Set<string>): string | undefined {
  const list = addresses ?? [];
  for (const type of ['ExternalIP', 'InternalIP']) {
    const hit = list.find((a) => a.type === type && typeof a.address === 'string' && usable(a.address, skip));
    if (hit) return hit.address!.trim().replace(/%.*$/, '');
  }
  return undefined;
}

function roleOf(m: RawMachine): Role | undefined {
  const labels = m.metadata?.labels ?? {};
  if (CONTROL_PLANE_LABEL in labels) return 'control-plane';
  if (ETCD_CLUSTER_LABEL in labels) return 'etcd';
  if (DEPLOYMENT_NAME_LABEL in labels) return 'worker';
  // Older or hand-made objects: who owns the Machine.
  const owners = (m.metadata?.ownerReferences ?? []).map((o) => o.kind);
  if (owners.includes('KubeadmControlPlane')) return 'control-plane';
  if (owners.includes('EtcdadmCluster')) return 'etcd';
  if (owners.includes('MachineSet')) return 'worker';
  return undefined;
}

/**
 * The Machines of `cluster` (label cluster.x-k8s.io/cluster-name) in `namespace`, as nodes in runbook
 * order (etcd, control plane, workers; by name within a role). Machines being deleted are left out, and
 * so are Machines whose role cannot be told (no control-plane, etcd-cluster or deployment-name label and
 * no known owner). Read with cluster.x-k8s.io/v1beta2, or v1beta1 where the server does not serve it.
 * Throws KubeApiError: unreachable API, an expired or refused client certificate (401), or no
 * Cluster API on that cluster (404 for both versions: is the kubeconfig the management cluster's?).
 */
export async function listMachineNodes(
  client: Pick<KubeClient, 'request'>,
  cluster: string,
  namespace = 'eksa-system',
  opts: ListMachinesOptions = {},
): Promise<MachineNode[]> {
  const rest = `namespaces/${encodeURIComponent(namespace)}/machines?labelSelector=${encodeURIComponent(`${CLUSTER_NAME_LABEL}=${cluster}`)}`;
  let list: { items?: RawMachine[] };
  try {
    list = await listCapi<RawMachine>(client, 'cluster.x-k8s.io', rest);
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404)
      throw new KubeApiError(`${err.message} (no Cluster API Machines here: the kubeconfig should be the management cluster's, whose ${namespace} holds the Machines of ${cluster})`, 404);
    throw err;
  }
  const skip = new Set([...(opts.skipAddresses ?? [])].map((a) => a.trim()));
  const out: MachineNode[] = [];
  for (const m of list.items ?? []) {
    const machine = m.metadata?.name;
    if (!machine) continue;
    // The server filtered by label already; a server that ignores labelSelector must not mix clusters.
    if (m.metadata?.labels?.[CLUSTER_NAME_LABEL] !== cluster) continue;
    if (m.metadata?.deletionTimestamp) continue;
    const role = roleOf(m);
    if (!role) continue;
    const nodeRef = m.status?.nodeRef?.name;
    const name = nodeRef && NODE_NAME.test(nodeRef) ? nodeRef : machine;
    const host = hostOf(m.status?.addresses, skip);
    const deploymentName = role === 'worker' ? m.metadata?.labels?.[DEPLOYMENT_NAME_LABEL] : undefined;
    out.push({
      name,
      ...(host ? { host } : {}),
      role,
      ...(deploymentName ? { deploymentName } : {}),
      ...(machine !== name ? { machine } : {}),
      ...(m.status?.phase ? { phase: m.status.phase } : {}),
    });
  }
  return out.sort((a, b) => ROLE_ORDER[a.role] - ROLE_ORDER[b.role] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
