/**
 * restart-etcdadm-controller: etcdadm-controller builds its etcd health-check client from the
 * <cluster>-apiserver-etcd-client secret once per cluster and keeps it for the life of its pod
 * (aws/etcdadm-controller controllers/healthcheck.go), so after the secret update it goes on with
 * the old, expired pair, calls the members unhealthy and, after 5 failures in a row, may replace
 * one (aws/eks-anywhere issue 9079). It is restarted as `kubectl rollout restart` does it, and
 * waited for as `kubectl rollout status` does.
 */
import { KubeApiError } from '../kube/client.js';
import type { PlanStep } from '../plan/types.js';
import { errorMessage } from '../util/errors.js';
import { GateError, poll } from './gates.js';
import { connectApi, type ManagementApi, type ManagementContext } from './management-api.js';
import { ETCDADM_CONTROLLER, restartCommands } from './manual-commands.js';

export const RESTARTED_AT = 'kubectl.kubernetes.io/restartedAt';

export interface Deployment {
  metadata?: { name?: string; generation?: number; annotations?: Record<string, string> };
  spec?: { replicas?: number; paused?: boolean; template?: { metadata?: { annotations?: Record<string, string> } } };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    availableReplicas?: number;
    conditions?: Array<{ type: string; status?: string; reason?: string; message?: string }>;
  };
}

/**
 * kubectl's DeploymentStatusViewer (kubectl pkg/polymorphichelpers/rollout_status.go): done once
 * the controller observed the generation, every replica is updated, no old one is left and the
 * updated ones are available; a Progressing condition with reason ProgressDeadlineExceeded is an error.
 */
export function deploymentRolloutStatus(d: Deployment): { done: boolean; message: string; error?: string } {
  const name = d.metadata?.name ?? '';
  const st = d.status ?? {};
  if ((d.metadata?.generation ?? 0) <= (st.observedGeneration ?? 0)) {
    const progressing = st.conditions?.find((c) => c.type === 'Progressing');
    if (progressing?.reason === 'ProgressDeadlineExceeded') return { done: false, message: '', error: `deployment "${name}" exceeded its progress deadline` };
    const updated = st.updatedReplicas ?? 0;
    if (d.spec?.replicas !== undefined && updated < d.spec.replicas) return { done: false, message: `Waiting for deployment "${name}" rollout to finish: ${updated} out of ${d.spec.replicas} new replicas have been updated...` };
    if ((st.replicas ?? 0) > updated) return { done: false, message: `Waiting for deployment "${name}" rollout to finish: ${(st.replicas ?? 0) - updated} old replicas are pending termination...` };
    if ((st.availableReplicas ?? 0) < updated) return { done: false, message: `Waiting for deployment "${name}" rollout to finish: ${st.availableReplicas ?? 0} of ${updated} updated replicas are available...` };
    return { done: true, message: `deployment "${name}" successfully rolled out` };
  }
  return { done: false, message: 'Waiting for deployment spec update to be observed...' };
}

/** Go's time.Now().Format(time.RFC3339), in UTC. */
function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

export async function restartEtcdadmController(_step: PlanStep, ctx: ManagementContext): Promise<string> {
  const { namespace, deployment } = ETCDADM_CONTROLLER;
  const path = `/apis/apps/v1/namespaces/${namespace}/deployments/${deployment}`;
  const what = `${namespace}/deployment/${deployment}`;
  const byHand = (why: string) => new GateError(`${why}\n  etcdadm-controller still uses the etcd client pair it read when it started. Restart it by hand:\n    ${restartCommands(ctx.inventory).join('\n    ')}`);
  let api: ManagementApi;
  let current: Deployment;
  try {
    api = await connectApi(ctx, path);
    current = await api.client.request<Deployment>('GET', path);
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) {
      ctx.reporter.info(`${what} not found: not an EKS Anywhere management cluster with external etcd, so there is no etcdadm-controller to restart`);
      ctx.reporter.note?.(`etcdadm-controller not restarted: ${what} does not exist there`);
      return `skipped: ${what} does not exist`;
    }
    throw byHand(errorMessage(err));
  }
  // objectrestarter.go refuses a paused Deployment the same way.
  if (current.spec?.paused) throw byHand(`${what} is paused: can't restart paused deployment (run rollout resume first: kubectl -n ${namespace} rollout resume deployment/${deployment})`);
  const restartedAt = rfc3339(ctx.now());
  let patched: Deployment;
  try {
    patched = await api.client.request<Deployment>('PATCH', path, { spec: { template: { metadata: { annotations: { [RESTARTED_AT]: restartedAt } } } } }, 'application/strategic-merge-patch+json');
  } catch (err) {
    throw byHand(errorMessage(err));
  }
  let outcome: ReturnType<typeof deploymentRolloutStatus>;
  try {
    outcome = deploymentRolloutStatus(patched);
    if (!outcome.done && !outcome.error) {
      outcome = await poll(ctx, ctx.timeouts.podStartMs, `${what} to finish its rollout`, async () => {
        const d = await api.client.request<Deployment>('GET', path);
        const now = deploymentRolloutStatus(d);
        if (now.done || now.error) return now; // an error ends the wait at once, as kubectl's does
        throw new Error(now.message);
      });
    }
  } catch (err) {
    throw byHand(`restarted at ${restartedAt}, but ${errorMessage(err)}`);
  }
  if (outcome.error) throw byHand(`restarted at ${restartedAt}, but ${outcome.error}`);
  ctx.reporter.note?.(`etcdadm-controller restarted at ${restartedAt} and rolled out: it now health-checks etcd with the renewed pair`);
  return `${what} restarted (${RESTARTED_AT}=${restartedAt}) and rolled out through ${api.client.source}: it now uses the renewed secret`;
}
