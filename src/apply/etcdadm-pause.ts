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
import { oneLine } from '../util/wording.js';
import { connectApi, type ManagementContext } from './management-api.js';
import { etcdadmClusterName, PAUSED, PAUSED_BY, SECRET_NAMESPACE as NS, unpauseByHand } from './manual-commands.js';

export { etcdadmClusterName, PAUSED, PAUSED_BY, unpauseByHand };


interface EtcdadmCluster {
  metadata?: { annotations?: Record<string, string> };
}

const pathOf = (cluster: string) => `/apis/etcdcluster.cluster.x-k8s.io/v1beta1/namespaces/${NS}/etcdadmclusters/${etcdadmClusterName(cluster)}`;


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
  let source = '';
  try {
    const api = await connectApi(ctx, path);
    source = api.adminConf ? `the node's own admin.conf (${api.client.source})` : api.client.source;
    const current = await api.client.request<EtcdadmCluster>('GET', path);
    const annotations = current.metadata?.annotations ?? {};
    if (PAUSED in annotations && !(PAUSED_BY in annotations)) {
      ctx.reporter.info(`etcdadm-controller: EtcdadmCluster ${what} is already paused (${PAUSED}), not by rotate-certs: left as it is`);
      return undefined;
    }
    // Ours from a run that was killed keeps its marker; a marker whose pause someone removed is paused again.
    if (!(PAUSED in annotations) || !(PAUSED_BY in annotations)) {
      await api.client.request('PATCH', path, { metadata: { annotations: { [PAUSED]: 'true', [PAUSED_BY]: annotations[PAUSED_BY] ?? ctx.runId } } }, 'application/merge-patch+json');
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
          ctx.reporter.warn(`etcdadm-controller: could not resume its etcd health checks (${errorMessage(err)}). Run by hand:\n    ${unpauseByHand(ctx.inventory)}`);
        }
      },
    };
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) {
      // Through the node's own admin.conf, a workload cluster answers: its EtcdadmCluster lives in the management cluster.
      if (!ctx.inventory.kubeconfig) {
        ctx.reporter.warn(`etcdadm-controller: no EtcdadmCluster ${what} in the cluster ${source} reaches; if this is a workload cluster, set kubeconfig in the inventory to its management cluster's, so the health checks there can be paused for the run`);
      } else ctx.reporter.info(`etcdadm-controller: no EtcdadmCluster ${what}, nothing to pause`);
      return undefined;
    }
    ctx.reporter.warn(
      `etcdadm-controller: could not pause its etcd health checks (${oneLine(errorMessage(err))}). If it runs, it may replace an etcd member that stays unhealthy for 5 checks in a row (2.5 min).`,
    );
    return undefined;
  }
}
