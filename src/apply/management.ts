/**
 * Steps against the management cluster's API: the etcd client secret and the KCP paused check.
 * The inventory's kubeconfig is tried first; when its client certificate is expired or refused
 * and the cluster manages itself, the renewed admin.conf of a control-plane node (read into
 * memory) is used instead. An API that cannot be reached is a loud failure with the exact
 * manual command, never a silent skip.
 */
import { X509Certificate } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Inventory } from '../inventory/types.js';
import { KubeApiError, KubeClient, KubeconfigError, parseKubeconfig, type KubeCredentials } from '../kube/client.js';
import type { PlanNode, PlanStep } from '../plan/types.js';
import type { NodeSession } from '../transport/session.js';
import { errorMessage } from '../util/errors.js';
import { plural } from '../util/wording.js';
import { shq } from '../util/shell.js';
import { GateError } from './gates.js';
import type { Reporter } from './reporter.js';

export interface ManagementContext {
  inventory: Inventory;
  node: PlanNode;
  session: NodeSession;
  secrets: Record<string, string>;
  reporter: Reporter;
  runId: string;
  /** Replace the local kubeconfig with the renewed admin.conf when the old one is refused. */
  refreshKubeconfig: () => Promise<boolean>;
}

const NS = 'eksa-system';

function secretName(inv: Inventory): string {
  return `${inv.cluster}-apiserver-etcd-client`;
}

function manualCommand(ctx: ManagementContext): string {
  const inv = ctx.inventory;
  const etcd = inv.nodes.find((n) => n.role === 'etcd');
  const kc = inv.kubeconfig ? ` --kubeconfig ${shq(inv.kubeconfig)}` : '';
  return [
    `copy the pair from ${etcd?.name ?? 'an etcd node'} (sudo cat /etc/etcd/pki/apiserver-etcd-client.crt and .key, or /var/lib/etcd/pki on Bottlerocket) to apiserver-etcd-client.crt/.key, then run:`,
    `kubectl${kc} -n ${NS} create secret tls ${secretName(inv)} --cert=apiserver-etcd-client.crt --key=apiserver-etcd-client.key --dry-run=client -o yaml | kubectl${kc} apply -f -`,
    `or, once the API answers, rerun with: rotate-certs apply PLAN --resume`,
  ].join('\n    ');
}

async function readAdminConf(ctx: ManagementContext): Promise<string | undefined> {
  const path = ctx.node.vars.kubeconfigDir ? `${ctx.node.vars.kubeconfigDir}/admin.conf` : undefined;
  if (!path) return undefined;
  const res = await ctx.session.exec(ctx.node.rootShell, { stdin: `set -euo pipefail\ncat ${shq(path)}\n` });
  return res.code === 0 ? res.stdout : undefined;
}

function certExpired(pem: string | undefined): boolean {
  if (!pem) return false;
  try {
    return Date.parse(new X509Certificate(pem).validTo) < Date.now();
  } catch {
    return false;
  }
}

/** A client that answers, trying the inventory's kubeconfig and then the node's admin.conf. */
async function connectApi(ctx: ManagementContext, probePath: string): Promise<{ client: KubeClient; adminConf?: string }> {
  const tried: string[] = [];
  let local: KubeCredentials | undefined;
  if (ctx.inventory.kubeconfig) {
    try {
      local = parseKubeconfig(readFileSync(ctx.inventory.kubeconfig, 'utf8'), ctx.inventory.kubeconfig);
      const client = new KubeClient(local);
      await client.request('GET', probePath);
      return { client };
    } catch (err) {
      if (err instanceof KubeApiError && err.status !== undefined && err.status !== 401 && err.status !== 403) {
        // The API answered: a 404 here is an answer, not an outage.
        return { client: new KubeClient(local as KubeCredentials) };
      }
      tried.push(`${ctx.inventory.kubeconfig}: ${err instanceof KubeconfigError || err instanceof KubeApiError ? err.message : errorMessage(err)}${certExpired(local?.cert) ? ' (its client certificate has expired)' : ''}`);
    }
  }
  const adminConf = await readAdminConf(ctx).catch(() => undefined);
  if (adminConf) {
    const admin = parseKubeconfig(adminConf, `admin.conf on ${ctx.node.name}`);
    // admin.conf reaches the management cluster only when the cluster manages itself: same CA.
    const sameCluster = !local || (local.ca !== undefined && local.ca === admin.ca);
    if (sameCluster) {
      const client = new KubeClient(admin);
      try {
        await client.request('GET', probePath);
        return { client, adminConf };
      } catch (err) {
        if (err instanceof KubeApiError && err.status !== undefined && err.status !== 401 && err.status !== 403) return { client, adminConf };
        tried.push(`${admin.source}: ${errorMessage(err)}`);
      }
    } else {
      tried.push(`admin.conf on ${ctx.node.name} belongs to this workload cluster, not the management cluster`);
    }
  }
  if (tried.length === 0) tried.push('the inventory names no kubeconfig (field kubeconfig) and no admin.conf could be read');
  throw new GateError(`the management cluster's API cannot be used:\n    ${tried.join('\n    ')}`);
}

/** adminConf: the renewed admin.conf that just worked, already read from the node. */
async function maybeRefreshKubeconfig(ctx: ManagementContext, adminConf: string): Promise<void> {
  const file = ctx.inventory.kubeconfig;
  if (!file || !existsSync(file)) return;
  if (!(await ctx.refreshKubeconfig())) {
    ctx.reporter.warn(`${file} was refused; the renewed admin.conf of ${ctx.node.name} worked. Rerun with --refresh-kubeconfig, or copy it yourself, to replace it.`);
    return;
  }
  const backup = `${file}.rotate-certs-${ctx.runId}`;
  if (!existsSync(backup)) {
    // The kept copy still holds a client key: owner-only, whatever the original's mode was.
    copyFileSync(file, backup);
    chmodSync(backup, 0o600);
  }
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, adminConf, { mode: 0o600 });
  renameSync(tmp, file);
  ctx.reporter.info(`replaced ${file} with the renewed admin.conf of ${ctx.node.name} (old one kept as ${backup})`);
}

export async function updateEtcdClientSecret(_step: PlanStep, ctx: ManagementContext): Promise<string> {
  const cert = ctx.secrets.etcdClientCert;
  const key = ctx.secrets.etcdClientKey;
  if (!cert || !key) throw new GateError('the renewed etcd client pair was not read in this run');
  const path = `/api/v1/namespaces/${NS}/secrets/${secretName(ctx.inventory)}`;
  let api: { client: KubeClient; adminConf?: string };
  try {
    api = await connectApi(ctx, path);
  } catch (err) {
    throw new GateError(`${errorMessage(err)}\n  The secret ${NS}/${secretName(ctx.inventory)} still holds the OLD pair. To fix it by hand:\n    ${manualCommand(ctx)}`);
  }
  const data = { 'tls.crt': Buffer.from(cert).toString('base64'), 'tls.key': Buffer.from(key).toString('base64') };
  try {
    await api.client.request('PATCH', path, { data }, 'application/merge-patch+json');
    const now = await api.client.request<{ data?: Record<string, string> }>('GET', path);
    if (now.data?.['tls.crt'] !== data['tls.crt'] || now.data?.['tls.key'] !== data['tls.key']) throw new GateError('the secret does not hold the new pair after the update');
  } catch (err) {
    const notFound = err instanceof KubeApiError && err.status === 404;
    throw new GateError(
      `${notFound ? `secret ${NS}/${secretName(ctx.inventory)} does not exist in the cluster ${api.client.source} reaches (for a workload cluster, give the management cluster's kubeconfig)` : errorMessage(err)}\n  To fix it by hand:\n    ${manualCommand(ctx)}`,
    );
  }
  if (api.adminConf) await maybeRefreshKubeconfig(ctx, api.adminConf);
  return `${NS}/${secretName(ctx.inventory)} updated through ${api.client.source}`;
}

export async function kcpNotPaused(_step: PlanStep, ctx: ManagementContext): Promise<string> {
  const path = `/apis/controlplane.cluster.x-k8s.io/v1beta1/namespaces/${NS}/kubeadmcontrolplanes`;
  let list: { items?: Array<{ metadata: { name: string; annotations?: Record<string, string> } }> };
  try {
    const api = await connectApi(ctx, path);
    list = await api.client.request('GET', path);
  } catch (err) {
    ctx.reporter.warn(`could not check the KubeadmControlPlane paused annotation: ${errorMessage(err)}. Check by hand: kubectl describe kcp -n ${NS} | grep cluster.x-k8s.io/paused`);
    return 'not checked (API unavailable)';
  }
  const paused = (list.items ?? []).filter((k) => k.metadata.annotations?.['cluster.x-k8s.io/paused'] !== undefined).map((k) => k.metadata.name);
  if (paused.length > 0) {
    ctx.reporter.warn(
      `KubeadmControlPlane ${paused.join(', ')} in ${NS} is PAUSED (cluster.x-k8s.io/paused). This usually means etcd is unhealthy: check the etcdadm-controller-system logs and spec.kubeadmConfigSpec.clusterConfiguration.etcd.external.endpoints (see docs/troubleshooting.md).`,
    );
    return `paused: ${paused.join(', ')}`;
  }
  return `${plural((list.items ?? []).length, 'KubeadmControlPlane')}, none paused`;
}
