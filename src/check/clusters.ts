/**
 * Which clusters one `check` covers, and checking them: several `--inventory` files, `--cluster` names and the cluster
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
import type { Clock } from '../certs/expiry.js';
import { loadCisRunbook, type CisRunbook } from './cis.js';
import { detectInventoryOs } from '../profiles/detect-os.js';
import { ProfileSet } from '../profiles/profile.js';
import { loadCheckRunbook, type CheckRunbook } from '../runbook/check-sources.js';
import type { Connector } from '../transport/session.js';
import { limiter, type Limiter } from '../util/limit.js';
import { planCheck, runCheck } from './run.js';
import type { CheckReport, ClusterNotChecked, MultiCheckReport } from './report.js';

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

/** How much of the machine a check may use, and when a certificate counts as expiring. */
export interface CheckOptions {
  warnDays: number;
  concurrency: number;
}

/** What every cluster's plan is made from; loaded (and validated) once, before anything is contacted. */
export interface CheckData {
  profiles: ProfileSet;
  runbook: CheckRunbook;
  cis: CisRunbook | undefined;
}

export function checkData(flags: { cis?: boolean }): CheckData {
  return { profiles: new ProfileSet(), runbook: loadCheckRunbook(), cis: flags.cis ? loadCisRunbook() : undefined };
}

/** One cluster, read-only; `limit` shares the concurrency budget with the other clusters of the run. */
export async function checkCluster(spec: InventorySpec, flags: CheckOptions, connector: Connector, clock: Clock, data: CheckData, limit?: Limiter): Promise<CheckReport> {
  // A problem every node would share (key, known_hosts, jump host) is one error before any contact.
  await connector.prepare?.(spec);
  // A node whose OS cannot be told is reported like an unreachable one; the rest are checked.
  const { inventory: inv, errors } = await detectInventoryOs(spec, connector, limit ?? flags.concurrency);
  const report = await runCheck(inv, planCheck(inv, data.profiles, data.runbook, data.cis), {
    connector,
    clock,
    concurrency: flags.concurrency,
    warnDays: flags.warnDays,
    ...(limit ? { limit, keepConnectorOpen: true } : {}),
  });
  report.errors.unshift(...errors);
  return report;
}

/**
 * Several clusters in one run, read concurrently within one --concurrency budget. A cluster whose
 * inventory cannot be loaded, or whose settings no node could use (its key, known_hosts, jump
 * host), is reported through `notChecked`; the others are still checked.
 */
export async function checkClusters(
  clusters: LoadedCluster[],
  opts: CheckOptions,
  connector: Connector,
  clock: Clock,
  data: CheckData,
  notChecked: (c: LoadedCluster, error: string) => ClusterNotChecked,
): Promise<MultiCheckReport> {
  const limit = limiter(opts.concurrency);
  try {
    return {
      clusters: await Promise.all(
        clusters.map((c) =>
          'spec' in c
            ? checkCluster(c.spec, opts, connector, clock, data, limit).catch((err: unknown) => {
                if (!(err instanceof RotateCertsError)) throw err;
                return notChecked(c, err.message);
              })
            : Promise.resolve(notChecked(c, c.error)),
        ),
      ),
    };
  } finally {
    // Also on an unexpected error: open connections (a shared jump host) must not keep the process alive.
    await connector.close?.();
  }
}
