/**
 * Reads of Cluster API objects (Machines, KubeadmControlPlanes) across its API versions. Cluster API
 * serves v1beta2 from v1.11 (its storage version there) and keeps v1beta1 served, deprecated, for a
 * few releases; older management clusters serve only v1beta1. A server that does not serve a group
 * version answers 404 for it (released kube-apiservers with a plain-text "404 page not found"), so
 * v1beta2 is asked first and v1beta1 only after such a 404. The fields rotate-certs reads
 * (metadata, status.addresses, status.nodeRef.name, status.phase, the paused annotation) have the
 * same shape in both, except status.nodeRef, which only v1beta1 spells as a full ObjectReference.
 */
import { KubeApiError, type KubeClient } from './client.js';

export const CAPI_VERSIONS = ['v1beta2', 'v1beta1'] as const;
export type CapiVersion = (typeof CAPI_VERSIONS)[number];

export interface CapiList<T> {
  items: T[];
  /** The version that answered. */
  version: CapiVersion;
}

/**
 * GET /apis/GROUP/VERSION/REST for the first version the server serves. `rest` is the path after the
 * version (namespaces/NS/machines?labelSelector=...). Throws the v1beta1 error when neither answers
 * (a 404 then means no Cluster API there at all), any other error at once.
 */
export async function listCapi<T>(client: Pick<KubeClient, 'request'>, group: 'cluster.x-k8s.io' | 'controlplane.cluster.x-k8s.io', rest: string): Promise<CapiList<T>> {
  const get = async (version: CapiVersion): Promise<CapiList<T>> => ({ items: (await client.request<{ items?: T[] }>('GET', `/apis/${group}/${version}/${rest}`)).items ?? [], version });
  try {
    return await get('v1beta2');
  } catch (err) {
    if (!(err instanceof KubeApiError && err.status === 404)) throw err;
  }
  return get('v1beta1');
}

export interface KubeadmControlPlaneMeta {
  metadata: { name: string; annotations?: Record<string, string> };
}

export const PAUSED_ANNOTATION = 'cluster.x-k8s.io/paused';

/** The KubeadmControlPlanes of a namespace, and the names of those carrying cluster.x-k8s.io/paused. */
export async function kubeadmControlPlanes(client: Pick<KubeClient, 'request'>, namespace: string): Promise<{ names: string[]; paused: string[] }> {
  const { items } = await listCapi<KubeadmControlPlaneMeta>(client, 'controlplane.cluster.x-k8s.io', `namespaces/${encodeURIComponent(namespace)}/kubeadmcontrolplanes`);
  return {
    names: items.map((k) => k.metadata.name),
    paused: items.filter((k) => k.metadata.annotations?.[PAUSED_ANNOTATION] !== undefined).map((k) => k.metadata.name),
  };
}
