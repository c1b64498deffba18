/**
 * Which clusters one `check` covers: several `--inventory` files, `--cluster` names and the cluster
 * folders of `--clusters-dir`. A cluster named by its folder resolves as `--cluster NAME` does
 * everywhere (cluster-inventory.ts): its saved inventory, else one built from the EKS Anywhere
 * folder. Finding the sources reads local files only; loading them may ask the management API.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { specFileName } from '../eksa/cluster-spec.js';
import { DNS_LABEL, inventoryPathForCluster } from '../inventory/load.js';
import type { InventorySpec } from '../inventory/types.js';
import { errorMessage, RotateCertsError, UsageError } from '../util/errors.js';

export interface ClusterFlags {
  inventory?: string[];
  cluster?: string[];
  clustersDir?: string;
}

export interface ClusterSource {
  /** How the user named it: the --cluster name or folder name, or the --inventory path as given. */
  label: string;
  /** The inventory file, absolute; for a cluster folder, where ./NAME/rotate-certs.yaml is or would be saved. */
  file: string;
  /** A cluster folder (--cluster NAME, or one of --clusters-dir): NAME, and the folder NAME is resolved in. */
  cluster?: { name: string; cwd: string };
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
    sources.push({ label: name, file: inventoryPathForCluster(name, cwd), cluster: { name, cwd } });
  }
  if (flags.clustersDir !== undefined) sources.push(...clusterFolders(flags.clustersDir, abs(flags.clustersDir)));
  if (sources.length === 0) throw new UsageError('no inventory: give --inventory FILE or --cluster NAME (reads ./NAME/rotate-certs.yaml), or --clusters-dir DIR');
  return sources;
}

/**
 * DIR/NAME/ holding rotate-certs.yaml or the cluster spec eksctl left (NAME-eks-a-cluster.yaml) is
 * a cluster, as `--cluster NAME` run in DIR reads it; any other folder is skipped.
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
    if (existsSync(file) || existsSync(join(folder, specFileName(name)))) sources.push({ label: name, file, cluster: { name, cwd: dir } });
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
 * Loads every inventory with `load`, all at once (building one may wait on a management API). One
 * that cannot be loaded is kept as an error, so the other clusters are still checked. Two sources
 * naming the same cluster are a usage error: every output is keyed by the cluster name (a
 * Prometheus series would be written twice).
 */
export async function loadClusters(sources: ClusterSource[], load: (source: ClusterSource) => Promise<InventorySpec>): Promise<LoadedCluster[]> {
  const loaded = await Promise.all(
    sources.map(async (source): Promise<LoadedCluster> => {
      try {
        return { source, spec: await load(source) };
      } catch (err) {
        if (!(err instanceof RotateCertsError)) throw err;
        return { source, error: err.message };
      }
    }),
  );
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
