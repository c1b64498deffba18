/**
 * A client for the management cluster's API during a rotation. The inventory's kubeconfig is tried
 * first; when its credentials are expired or refused and the cluster manages itself, the renewed
 * admin.conf of a control-plane node (read into memory) is used instead.
 */
import { X509Certificate } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, renameSync, writeFileSync } from 'node:fs';
import type { Inventory } from '../inventory/types.js';
import { KubeApiError, KubeClient, KubeconfigError, parseKubeconfig, readKubeconfig, type KubeCredentials } from '../kube/client.js';
import type { PlanNode } from '../plan/types.js';
import type { EndpointRoute } from '../transport/endpoints.js';
import type { NodeSession } from '../transport/session.js';
import { errorMessage } from '../util/errors.js';
import { shq } from '../util/shell.js';
import { GateError, type GateTimeouts } from './gates.js';
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
  /** podStartMs bounds waiting for a rollout. */
  timeouts: GateTimeouts;
  now(): number;
  sleep(ms: number): Promise<void>;
  /** How the API is reached: through the jump host when it sits behind it (the nodes' own admin.conf names a node). */
  route?: EndpointRoute;
}

export interface ManagementApi {
  client: KubeClient;
  /** The renewed admin.conf, when it is what answered. */
  adminConf?: string;
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

/** The API answered (any status but an authentication refusal): a 404 is an answer, not an outage. */
const answered = (err: unknown) => err instanceof KubeApiError && err.status !== undefined && err.status !== 401 && err.status !== 403;

/** A client that answers, trying the inventory's kubeconfig and then the node's admin.conf. */
export async function connectApi(ctx: ManagementContext, probePath: string): Promise<ManagementApi> {
  const tried: string[] = [];
  let local: KubeCredentials | undefined;
  if (ctx.inventory.kubeconfig) {
    try {
      local = readKubeconfig(ctx.inventory.kubeconfig);
      const client = new KubeClient(local, undefined, ctx.route);
      await client.request('GET', probePath);
      return { client };
    } catch (err) {
      if (answered(err)) return { client: new KubeClient(local as KubeCredentials, undefined, ctx.route) };
      tried.push(`${ctx.inventory.kubeconfig}: ${err instanceof KubeconfigError || err instanceof KubeApiError ? err.message : errorMessage(err)}${certExpired(local?.cert) ? ' (its client certificate has expired)' : ''}`);
    }
  }
  const adminConf = await readAdminConf(ctx).catch(() => undefined);
  if (adminConf) {
    const admin = parseKubeconfig(adminConf, `admin.conf on ${ctx.node.name}`);
    // admin.conf reaches the management cluster only when the cluster manages itself: same CA.
    const sameCluster = !local || (local.ca !== undefined && local.ca === admin.ca);
    if (sameCluster) {
      const client = new KubeClient(admin, undefined, ctx.route);
      try {
        await client.request('GET', probePath);
        return { client, adminConf };
      } catch (err) {
        if (answered(err)) return { client, adminConf };
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
export async function maybeRefreshKubeconfig(ctx: ManagementContext, adminConf: string): Promise<void> {
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
