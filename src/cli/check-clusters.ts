/**
 * Which clusters one `check` covers: several `--inventory` files, `--cluster` names and the cluster
 * folders of `--clusters-dir`. Reads local files only; contacts nothing.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { DNS_LABEL, inventoryPathForCluster, loadInventory } from '../inventory/load.js';
import type { InventorySpec } from '../inventory/types.js';
import { errorMessage, UsageError } from '../util/errors.js';

export interface ClusterFlags {
  inventory?: string[];
  cluster?: string[];
  clustersDir?: string;
}

export interface ClusterSource {
  /** How the user named it: the --cluster name or folder name, or the --inventory path as given. */
  label: string;
  /** The inventory file, absolute. */
  file: string;
  /** Why it cannot be read, known before reading it (a cluster folder without an inventory). */
  problem?: string;
}

/** A cluster whose inventory loaded, or one that is reported as not checked. */
export type LoadedCluster = { source: ClusterSource; spec: InventorySpec } | { source: ClusterSource; error: string };

/** One source: today's single-cluster output. Several, or --clusters-dir: the multi-cluster output. */
export function isMultiCluster(flags: ClusterFlags): boolean {
  return flags.clustersDir !== undefined || (flags.inventory?.length ?? 0) + (flags.cluster?.length ?? 0) > 1;
}

/** Every source the flags name, in order: --inventory, --cluster, then --clusters-dir by name. */
export function clusterSources(flags: ClusterFlags, cwd: string): ClusterSource[] {
  const abs = (p: string) => (isAbsolute(p) ? p : join(cwd, p));
  const sources: ClusterSource[] = (flags.inventory ?? []).map((f) => ({ label: f, file: abs(f) }));
  for (const name of flags.cluster ?? []) {
    if (!DNS_LABEL.test(name)) throw new UsageError(`--cluster ${JSON.stringify(name)} is not a cluster name (a DNS label)`);
    sources.push({ label: name, file: inventoryPathForCluster(name, cwd) });
  }
  if (flags.clustersDir !== undefined) sources.push(...clusterFolders(flags.clustersDir, abs(flags.clustersDir)));
  if (sources.length === 0) throw new UsageError('no inventory: give --inventory FILE or --cluster NAME (reads ./NAME/rotate-certs.yaml), or --clusters-dir DIR');
  return sources;
}

/**
 * DIR/NAME/ holding rotate-certs.yaml is a cluster, as `--cluster NAME` run in DIR reads it. A folder
 * eksctl left (NAME-eks-a-cluster.yaml) without an inventory yet is a cluster that cannot be
 * checked; any other folder is not a cluster and is skipped.
 */
function clusterFolders(given: string, dir: string): ClusterSource[] {
  let names: string[];
  try {
    if (!statSync(dir).isDirectory()) throw new UsageError(`--clusters-dir ${given} is not a folder`);
    names = readdirSync(dir).filter((n) => !n.startsWith('.'));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`cannot read --clusters-dir ${given}: ${code === 'ENOENT' ? 'no such folder' : code === 'EACCES' ? 'permission denied' : errorMessage(err)}`);
  }
  const sources: ClusterSource[] = [];
  for (const name of names.sort()) {
    const folder = join(dir, name);
    if (!isFolder(folder)) continue;
    const file = inventoryPathForCluster(name, dir);
    if (existsSync(file)) sources.push({ label: name, file });
    else if (existsSync(join(folder, `${name}-eks-a-cluster.yaml`)))
      sources.push({ label: name, file, problem: `no inventory ${file} yet: run rotate-certs --cluster ${name} in ${dir} once and save the inventory it builds (docs/eksa-folder.md)` });
  }
  if (sources.length === 0) throw new UsageError(`--clusters-dir ${given} holds no cluster folder (NAME/rotate-certs.yaml or NAME/NAME-eks-a-cluster.yaml)`);
  return sources;
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Loads every inventory. One that cannot be loaded is kept as an error, so the other clusters are
 * still checked. Two sources naming the same cluster are a usage error: every output is keyed by
 * the cluster name (a Prometheus series would be written twice).
 */
export function loadClusters(sources: ClusterSource[]): LoadedCluster[] {
  const loaded = sources.map((source): LoadedCluster => {
    if (source.problem) return { source, error: source.problem };
    try {
      return { source, spec: loadInventory(source.file) };
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      return { source, error: err.message };
    }
  });
  const seen = new Map<string, string>();
  for (const c of loaded) {
    const name = clusterName(c);
    const before = seen.get(name);
    if (before !== undefined) throw new UsageError(`cluster ${name} is named twice (${before} and ${c.source.label}): check each cluster once`);
    seen.set(name, c.source.label);
  }
  return loaded;
}

/** The cluster's name from its inventory; for one that did not load, the name the user gave it. */
export function clusterName(c: LoadedCluster): string {
  return 'spec' in c ? c.spec.cluster : c.source.label;
}
