/**
 * Steps against the management cluster's API: the etcd client secret, the etcdadm-controller
 * restart that makes it read the secret again, and the KCP paused check. An API that cannot be
 * reached is a loud failure with the exact manual commands, never a silent skip.
 */
import { kubeadmControlPlanes } from '../kube/capi.js';
import { KubeApiError } from '../kube/client.js';
import type { PlanStep } from '../plan/types.js';
import { errorMessage } from '../util/errors.js';
import { plural } from '../util/wording.js';
import { GateError } from './gates.js';
import { connectApi, maybeRefreshKubeconfig, type ManagementApi, type ManagementContext } from './management-api.js';
import { etcdClientSecretName, secretByHand, SECRET_NAMESPACE as NS } from './manual-commands.js';

export type { ManagementContext } from './management-api.js';

function byHand(ctx: ManagementContext): string {
  return [...secretByHand(ctx.inventory), `or, once the API answers, rerun with: rotate-certs apply PLAN --resume`].join('\n    ');
}

/**
 * A merge patch of .data only: the secret keeps its type (cluster.x-k8s.io/secret, which the API
 * would refuse to change) and everything else etcdadm-controller put there.
 */
export async function updateEtcdClientSecret(_step: PlanStep, ctx: ManagementContext): Promise<string> {
  const cert = ctx.secrets.etcdClientCert;
  const key = ctx.secrets.etcdClientKey;
  const name = etcdClientSecretName(ctx.inventory);
  if (!cert || !key) throw new GateError('the renewed etcd client pair was not read in this run');
  const path = `/api/v1/namespaces/${NS}/secrets/${name}`;
  let api: ManagementApi;
  try {
    api = await connectApi(ctx, path);
  } catch (err) {
    throw new GateError(`${errorMessage(err)}\n  The secret ${NS}/${name} still holds the OLD pair. To fix it by hand:\n    ${byHand(ctx)}`);
  }
  const data = { 'tls.crt': Buffer.from(cert).toString('base64'), 'tls.key': Buffer.from(key).toString('base64') };
  let type: string | undefined;
  try {
    await api.client.request('PATCH', path, { data }, 'application/merge-patch+json');
    const now = await api.client.request<{ type?: string; data?: Record<string, string> }>('GET', path);
    if (now.data?.['tls.crt'] !== data['tls.crt'] || now.data?.['tls.key'] !== data['tls.key']) throw new GateError('the secret does not hold the new pair after the update');
    type = now.type;
  } catch (err) {
    const notFound = err instanceof KubeApiError && err.status === 404;
    throw new GateError(
      `${notFound ? `secret ${NS}/${name} does not exist in the cluster ${api.client.source} reaches (for a workload cluster, give the management cluster's kubeconfig)` : errorMessage(err)}\n  To fix it by hand:\n    ${byHand(ctx)}`,
    );
  }
  if (api.adminConf) await maybeRefreshKubeconfig(ctx, api.adminConf);
  ctx.reporter.note?.(`${NS}/${name} holds the renewed etcd client pair${type ? ` (type ${type} kept)` : ''}`);
  return `${NS}/${name} updated through ${api.client.source}${type ? ` (type ${type} kept)` : ''}`;
}

export async function kcpNotPaused(_step: PlanStep, ctx: ManagementContext): Promise<string> {
  let kcps: { names: string[]; paused: string[] };
  try {
    const api = await connectApi(ctx, `/apis/controlplane.cluster.x-k8s.io/v1beta2/namespaces/${NS}/kubeadmcontrolplanes`);
    kcps = await kubeadmControlPlanes(api.client, NS);
  } catch (err) {
    ctx.reporter.warn(`could not check the KubeadmControlPlane paused annotation: ${errorMessage(err)}. Check by hand: kubectl describe kcp -n ${NS} | grep cluster.x-k8s.io/paused`);
    return 'not checked (API unavailable)';
  }
  if (kcps.paused.length > 0) {
    ctx.reporter.warn(
      `KubeadmControlPlane ${kcps.paused.join(', ')} in ${NS} is PAUSED (cluster.x-k8s.io/paused). This usually means etcd is unhealthy: check the etcdadm-controller-system logs and spec.kubeadmConfigSpec.clusterConfiguration.etcd.external.endpoints (see docs/troubleshooting.md).`,
    );
    return `paused: ${kcps.paused.join(', ')}`;
  }
  return `${plural(kcps.names.length, 'KubeadmControlPlane')}, none paused`;
}
