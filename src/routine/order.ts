/**
 * Several clusters in one due run: a management cluster goes before the workload clusters whose
 * secrets it holds (their etcd client secret and Machines live in it, and their rotation updates
 * them through its API). Which cluster manages which is read from local files only:
 *
 * 1. the EKS Anywhere spec beside the inventory, NAME-eks-a-cluster.yaml: its Cluster's
 *    spec.managementCluster.name, when it names another cluster;
 * 2. else the inventory's `kubeconfig`, when its file is eksctl's kubeconfig of another cluster,
 *    MGMT-eks-a-cluster.kubeconfig (what the inventory the guided run builds for a workload names).
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { InventorySpec } from '../inventory/types.js';

/** The cluster that manages this one, when the files say it is a workload cluster; else undefined. */
export function managementClusterOf(spec: Pick<InventorySpec, 'cluster' | 'file' | 'kubeconfig'>): string | undefined {
  const fromSpec = specManagement(join(dirname(spec.file), `${spec.cluster}-eks-a-cluster.yaml`), spec.cluster);
  if (fromSpec !== undefined) return fromSpec === spec.cluster ? undefined : fromSpec;
  const named = spec.kubeconfig ? /^(.+)-eks-a-cluster\.kubeconfig$/.exec(basename(spec.kubeconfig))?.[1] : undefined;
  return named && named !== spec.cluster ? named : undefined;
}

/** spec.managementCluster.name of the Cluster named `cluster`, or undefined when the file does not say. */
function specManagement(file: string, cluster: string): string | undefined {
  if (!existsSync(file)) return undefined;
  try {
    for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
      if (doc.errors.length > 0) return undefined;
      const d = doc.toJS() as { kind?: unknown; metadata?: { name?: unknown }; spec?: { managementCluster?: { name?: unknown } } } | null;
      if (d?.kind !== 'Cluster' || d.metadata?.name !== cluster) continue;
      const name = d.spec?.managementCluster?.name;
      return typeof name === 'string' && name !== '' ? name : cluster;
    }
  } catch {
    // An unreadable spec says nothing about the order; the kubeconfig may.
  }
  return undefined;
}

/**
 * The clusters with each management cluster before its workload clusters, otherwise in the order
 * given. A management cluster not in the list puts no constraint; a cycle (a misread spec) keeps
 * the given order for the clusters in it.
 */
export function managementFirst<T>(items: readonly T[], nameOf: (t: T) => string, managementOf: (t: T) => string | undefined): T[] {
  const byName = new Map(items.map((t) => [nameOf(t), t]));
  const out: T[] = [];
  const placed = new Set<T>();
  const visiting = new Set<T>();
  const visit = (t: T) => {
    if (placed.has(t) || visiting.has(t)) return;
    visiting.add(t);
    const mgmt = managementOf(t);
    const m = mgmt !== undefined && mgmt !== nameOf(t) ? byName.get(mgmt) : undefined;
    if (m) visit(m);
    visiting.delete(t);
    if (!placed.has(t)) {
      placed.add(t);
      out.push(t);
    }
  };
  for (const t of items) visit(t);
  return out;
}
