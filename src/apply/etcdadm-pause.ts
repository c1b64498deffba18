/**
 * Keeps etcdadm-controller's periodic etcd health check from acting while a rotation runs.
 *
 * aws/etcdadm-controller (controllers/periodic_healthcheck.go, healthcheck.go) GETs /health of every
 * external etcd member every 30 s with an HTTP client built once per cluster from the
 * <cluster>-apiserver-etcd-client secret and kept for the life of its pod. After 5 failures in a
 * row of one member (annotation etcdcluster.cluster.x-k8s.io/healthcheck-retries) it removes that
 * member from etcd and deletes its Machine, so a replacement VM comes up, as long as the others keep
 * a quorum. A member that a rotation leaves slow to come back, or a run that outlasts the cached
 * pair, could cost a member. The loop skips an EtcdadmCluster with the cluster.x-k8s.io/paused
 * annotation (annotations.HasPaused: the key alone), and so does its reconcile; healthcheck-retries
 * "0" would also stop the loop, but only from v1.0.13 on, and a bad value there makes one failure
 * enough. eksctl anywhere renew certificates does neither.
 *
 * So: before the first node, the EtcdadmCluster <cluster>-etcd in eksa-system gets the paused
 * annotation and a marker that says rotate-certs put it there; when the run ends, however it ends,
 * both go, and only when the marker is there (a pause someone else set is left alone). The
 * management phase restarts the controller before that, which also drops its cached client and
 * failure counts. A run killed outright leaves the marker, and the next run takes it as its own.
 */
import { KubeApiError } from '../kube/client.js';
import { errorMessage } from '../util/errors.js';
import { shq } from '../util/shell.js';
import { connectApi, type ManagementContext } from './management-api.js';
import { SECRET_NAMESPACE as NS } from './manual-commands.js';

export const PAUSED = 'cluster.x-k8s.io/paused';
/** Says the paused annotation is rotate-certs' own; its value is the run that set it. */
export const PAUSED_BY = 'rotate-certs.eks-anywhere.io/paused-by-run';

interface EtcdadmCluster {
  metadata?: { annotations?: Record<string, string> };
}

export const etcdadmClusterName = (cluster: string): string => `${cluster}-etcd`;
const pathOf = (cluster: string) => `/apis/etcdcluster.cluster.x-k8s.io/v1beta1/namespaces/${NS}/etcdadmclusters/${etcdadmClusterName(cluster)}`;

/** The kubectl line that undoes the pause by hand. */
export function unpauseByHand(ctx: Pick<ManagementContext, 'inventory'>): string {
  const kubeconfig = ctx.inventory.kubeconfig ? ` --kubeconfig ${shq(ctx.inventory.kubeconfig)}` : '';
  return `kubectl${kubeconfig} -n ${NS} annotate etcdadmclusters.etcdcluster.cluster.x-k8s.io ${etcdadmClusterName(ctx.inventory.cluster)} ${PAUSED}- ${PAUSED_BY}-`;
}

export interface HeldPause {
  /** Takes the pause off again (only what this tool set); never throws, says what it did. */
  release(): Promise<void>;
}

/**
 * Pauses the health check; undefined when there is nothing to pause or it cannot be done (said
 * once, with the reason: the rotation goes on, as it must when the API is down).
 */
export async function pauseEtcdadmHealthCheck(ctx: ManagementContext): Promise<HeldPause | undefined> {
  const path = pathOf(ctx.inventory.cluster);
  const what = `${NS}/${etcdadmClusterName(ctx.inventory.cluster)}`;
  try {
    const api = await connectApi(ctx, path);
    const current = await api.client.request<EtcdadmCluster>('GET', path);
    const annotations = current.metadata?.annotations ?? {};
    if (PAUSED in annotations && !(PAUSED_BY in annotations)) {
      ctx.reporter.info(`etcdadm-controller: EtcdadmCluster ${what} is already paused (${PAUSED}), not by rotate-certs: left as it is`);
      return undefined;
    }
    if (!(PAUSED_BY in annotations)) {
      await api.client.request('PATCH', path, { metadata: { annotations: { [PAUSED]: 'true', [PAUSED_BY]: ctx.runId } } }, 'application/merge-patch+json');
    }
    ctx.reporter.info(`etcdadm-controller: paused its etcd health checks for the run (${PAUSED} on EtcdadmCluster ${what}); taken off when the run ends`);
    return {
      release: async () => {
        try {
          const now = await api.client.request<EtcdadmCluster>('GET', path);
          if (!(PAUSED_BY in (now.metadata?.annotations ?? {}))) return;
          await api.client.request('PATCH', path, { metadata: { annotations: { [PAUSED]: null, [PAUSED_BY]: null } } }, 'application/merge-patch+json');
          ctx.reporter.info(`etcdadm-controller: health checks of EtcdadmCluster ${what} resumed (${PAUSED} removed)`);
        } catch (err) {
          ctx.reporter.warn(`etcdadm-controller: could not resume its etcd health checks (${errorMessage(err)}). Run by hand:\n    ${unpauseByHand(ctx)}`);
        }
      },
    };
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) {
      ctx.reporter.info(`etcdadm-controller: no EtcdadmCluster ${what}, nothing to pause`);
      return undefined;
    }
    ctx.reporter.warn(
      `etcdadm-controller: could not pause its etcd health checks (${errorMessage(err).split('\n')[0]}). If it runs, it may replace an etcd member that stays unhealthy for 5 checks in a row (2.5 min).`,
    );
    return undefined;
  }
}
