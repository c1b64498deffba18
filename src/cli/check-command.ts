/** `rotate-certs check`: flags, output and exit codes; the work is in check/run.ts and check/clusters.ts. */
import { sshCommandLine } from '../transport/ssh-command-line.js';
import { resolve } from 'node:path';
import { systemClock, type Clock } from '../certs/expiry.js';
import { checkExitCode, multiCheckExitCode } from '../check/exit-code.js';
import type { ClusterNotChecked } from '../check/report.js';
import { planCheck, type NodeCheckPlan } from '../check/run.js';
import { requireKnownOs } from '../profiles/detect-os.js';
import { loadInventory } from '../inventory/load.js';
import type { Inventory, InventorySpec } from '../inventory/types.js';
import { renderCheck, renderMultiCheck, type OutputFormat } from '../report/check-output.js';
import { SshConnector } from '../transport/ssh.js';
import type { Connector } from '../transport/session.js';
import { ExitCode, UsageError } from '../util/errors.js';
import { checkCluster, checkClusters, checkData, clusterName, clusterSources, isMultiCluster, loadClusters, type ClusterFlags, type ClusterSource, type LoadedCluster } from '../check/clusters.js';
import { inventorySpecFor } from '../eksa/cluster-inventory.js';
import type { CliIo } from './io.js';
import { noPrompter, terminalPrompter, type Prompter } from '../util/prompter.js';

export interface CheckFlags extends ClusterFlags {
  /** With --cluster and no rotate-certs.yaml: a workload cluster's management cluster kubeconfig, to list its Machines. */
  managementKubeconfig?: string;
  output: OutputFormat;
  warnDays: number;
  concurrency: number;
  dryRun?: boolean;
  /** Also report file modes and owners that deviate from the CIS Kubernetes Benchmark. */
  cis?: boolean;
}

export interface CheckEnv {
  connector?: Connector;
  clock?: Clock;
  /** A person at a terminal: building an inventory from the EKS Anywhere folder may ask them. */
  interactive?: boolean;
}

export async function checkCommand(flags: CheckFlags, io: CliIo, env: CheckEnv = {}): Promise<number> {
  const sources = clusterSources(flags, io.cwd);
  // Several clusters (a timer feeding node_exporter) ask nothing: a cluster that needs an answer is not checked.
  if (isMultiCluster(flags)) return checkSeveral(await loadClusters(sources, inventoryLoader(flags, io, noPrompter)), flags, io, env);
  const spec = await inventoryLoader(flags, io, env.interactive ? await terminalPrompter() : noPrompter)(sources[0]!);
  const data = checkData(flags);
  if (flags.dryRun) {
    const inv = requireKnownOs(spec, '--dry-run connects to nothing');
    io.out(renderCheckDryRun(planCheck(inv, data.profiles, data.runbook, data.cis)));
    return 0;
  }
  const connector = env.connector ?? new SshConnector();
  const report = await checkCluster(spec, flags, connector, env.clock ?? systemClock, data).catch(async (err: unknown) => {
    await connector.close?.();
    throw err;
  });
  io.out(renderCheck(report, flags.output, io.color));
  return checkExitCode(report);
}

/** An --inventory file as it is; a cluster folder as --cluster NAME resolves everywhere. */
function inventoryLoader(flags: CheckFlags, io: CliIo, prompter: Prompter): (source: ClusterSource) => Promise<InventorySpec> {
  return async (source) => {
    if (!source.cluster) return loadInventory(source.file);
    const { name, cwd } = source.cluster;
    // A relative --management-kubeconfig is the user's, whichever folder the cluster is resolved in.
    const mk = flags.managementKubeconfig ? { managementKubeconfig: resolve(io.cwd, flags.managementKubeconfig) } : {};
    return inventorySpecFor({ cluster: name, ...mk }, { ...io, cwd }, { prompter });
  };
}

/** Several clusters: a cluster not checked is reported (exit 3), the others are checked and rendered together. */
async function checkSeveral(clusters: LoadedCluster[], flags: CheckFlags, io: CliIo, env: CheckEnv): Promise<number> {
  const data = checkData(flags);
  const notChecked = (c: LoadedCluster, error: string): ClusterNotChecked => {
    // JSON and Prometheus keep stdout parseable; the table shows it in place.
    if (flags.output !== 'table' || flags.dryRun) io.err(`rotate-certs: cluster ${clusterName(c)} not checked: ${error}\n`);
    return { cluster: clusterName(c), inventory: c.source.file, error };
  };
  if (flags.dryRun) {
    let failed = false;
    for (const c of clusters) {
      let inv: Inventory;
      try {
        if (!('spec' in c)) throw new UsageError(c.error);
        inv = requireKnownOs(c.spec, '--dry-run connects to nothing');
      } catch (err) {
        if (!(err instanceof UsageError)) throw err;
        notChecked(c, err.message);
        failed = true;
        continue;
      }
      io.out(`# ===== cluster ${inv.cluster} (${inv.file})\n${renderCheckDryRun(planCheck(inv, data.profiles, data.runbook, data.cis))}\n`);
    }
    return failed ? ExitCode.usage : ExitCode.ok;
  }
  const multi = await checkClusters(clusters, flags, env.connector ?? new SshConnector(), env.clock ?? systemClock, data, notChecked);
  io.out(renderMultiCheck(multi, flags.output, io.color));
  return multiCheckExitCode(multi);
}


/** Every command `check` would run, per node; reads and connects to nothing. */
export function renderCheckDryRun(plans: NodeCheckPlan[]): string {
  const cis = plans.some((p) => p.cis);
  const out: string[] = [
    cis
      ? '# rotate-certs check --cis --dry-run: nothing was contacted. Each node gets two root scripts on standard input, over one SSH connection: certificates, then file modes and owners (CIS).'
      : '# rotate-certs check --dry-run: nothing was contacted. Each node gets one root script on standard input.',
  ];
  for (const p of plans) {
    out.push('', `## ${p.node.name} (${p.node.role}, ${p.node.os})`);
    out.push(`${sshCommandLine(p.node)} ${p.rootShell} <<'ROTATE_CERTS'`);
    out.push(p.script.trimEnd(), 'ROTATE_CERTS');
    if (p.cis) out.push('# then file modes and owners (--cis); rotate-certs sends this over the same SSH connection', `${sshCommandLine(p.node)} ${p.rootShell} <<'ROTATE_CERTS'`, p.cis.script.trimEnd(), 'ROTATE_CERTS');
    for (const e of p.endpoints) out.push(`# then read the certificate served at ${e.host}:${e.port} (TLS handshake only)`);
  }
  return `${out.join('\n')}\n`;
}
