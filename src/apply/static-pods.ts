/**
 * A node's static pods as its container runtime shows them, and the judgements the restart gates
 * make on that view. Pure: the OS profile's `staticPods` command prints the view (pods from the
 * manifests or settings, containers as `crictl ps -a -o json` prints them), this module reads it.
 *
 * Why containers and not only the API port: the kubelet starts a static pod again as soon as its
 * manifest is back, whether or not the old container has gone; one that has not is left running
 * beside the new one (aws/eks-anywhere PR 10360: duplicate kube-apiserver, etcd and kube-vip
 * containers after a 10 s gap on Bottlerocket).
 *
 * Which containers are a static pod's: the kubelet labels each container with its pod's namespace
 * and name (kubernetes pkg/kubelet/kuberuntime labels.go newContainerLabels), and names a static
 * pod `<manifest name>-<node name, lower-cased>` (pkg/kubelet/config/common.go generatePodName);
 * kubeadm's and EKS Anywhere's static pods are in kube-system. A container of the same name in
 * another pod (a kube-vip DaemonSet on a control plane that runs workloads) is not the static pod's.
 * Of a static pod's containers of one name, the newest is the one the kubelet runs; an older one
 * that still runs is stale (EKS Anywhere troubleshooting, "Duplicate containers"), whatever state
 * the newest is in.
 */

export interface PodContainer {
  id: string;
  /** The container's name: for static pods, the pod's (kube-apiserver, etcd, kube-vip...). */
  name: string;
  /** The pod it runs in, from its io.kubernetes.pod.namespace and io.kubernetes.pod.name labels. */
  podNamespace: string;
  podName: string;
  running: boolean;
  /** Nanoseconds since the epoch; orders containers of one pod. */
  createdNs: bigint;
}

export interface StaticPodsView {
  /** Static pods the node has, and whether each is enabled (its manifest in place). */
  pods: Array<{ name: string; enabled: boolean }>;
  containers: PodContainer[];
}

export class StaticPodsOutputError extends Error {}

/** crictl prints nanoseconds as a string; the Bottlerocket listing gives ctr's RFC 3339 time. */
function createdNs(v: unknown): bigint {
  if (typeof v === 'number' && Number.isFinite(v)) return BigInt(Math.trunc(v));
  if (typeof v === 'string' && /^\d+$/.test(v)) return BigInt(v);
  if (typeof v === 'string') {
    const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(v);
    if (m) {
      const ms = Date.parse(`${m[1]}${m[3]}`);
      if (!Number.isNaN(ms)) return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
    }
  }
  throw new StaticPodsOutputError(`a container's creation time ${JSON.stringify(v)} is neither nanoseconds nor an RFC 3339 time`);
}

const POD_NAME = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;

/** Reads the output of a profile's `staticPods` command: `@@pods` lines, then `@@containers` JSON. */
export function parseStaticPods(stdout: string): StaticPodsView {
  const at = stdout.indexOf('@@containers');
  const podsAt = stdout.indexOf('@@pods');
  if (podsAt < 0 || at < podsAt) throw new StaticPodsOutputError('the static pod listing has no @@pods and @@containers sections');
  const pods: StaticPodsView['pods'] = [];
  for (const line of stdout.slice(podsAt + '@@pods'.length, at).split('\n')) {
    const [name, state, ...rest] = line.trim().split(/\s+/);
    if (!name) continue;
    if (!POD_NAME.test(name) || (state !== 'enabled' && state !== 'disabled') || rest.length > 0) throw new StaticPodsOutputError(`unexpected static pod line ${JSON.stringify(line.trim())}`);
    pods.push({ name, enabled: state === 'enabled' });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(stdout.slice(at + '@@containers'.length));
  } catch (err) {
    throw new StaticPodsOutputError(`the container listing is not JSON: ${(err as Error).message}`);
  }
  const list = (doc as { containers?: unknown }).containers;
  if (!Array.isArray(list)) throw new StaticPodsOutputError('the container listing has no "containers" array');
  const containers = list.map((c: { id?: unknown; metadata?: { name?: unknown }; labels?: Record<string, unknown>; state?: unknown; createdAt?: unknown }): PodContainer => {
    if (typeof c.id !== 'string' || !/^[0-9a-f]{12,64}$/.test(c.id)) throw new StaticPodsOutputError(`unexpected container id ${JSON.stringify(c.id)}`);
    const label = (key: string) => (typeof c.labels?.[key] === 'string' ? c.labels[key] : '');
    return {
      id: c.id,
      name: typeof c.metadata?.name === 'string' ? c.metadata.name : '',
      podNamespace: label('io.kubernetes.pod.namespace'),
      podName: label('io.kubernetes.pod.name'),
      running: c.state === 'CONTAINER_RUNNING',
      createdNs: createdNs(c.createdAt),
    };
  });
  return { pods, containers };
}

const newestFirst = (a: PodContainer, b: PodContainer) => (a.createdNs === b.createdNs ? 0 : a.createdNs > b.createdNs ? -1 : 1);

/** Static pods are in kube-system (kubeadm's manifests and EKS Anywhere's kube-vip say so). */
export const STATIC_POD_NAMESPACE = 'kube-system';

/** The name the kubelet gives the static pod of a manifest on this node. */
export const staticPodName = (pod: string, nodeName: string): string => `${pod}-${nodeName.toLowerCase()}`;

/**
 * A static pod's containers by container name, each list newest first: the first is the kubelet's,
 * any other is what an earlier restart left behind.
 */
function containersOf(view: StaticPodsView, pod: string, nodeName: string): PodContainer[][] {
  const podName = staticPodName(pod, nodeName);
  const byName = new Map<string, PodContainer[]>();
  for (const c of view.containers) {
    if (c.podNamespace !== STATIC_POD_NAMESPACE || c.podName !== podName) continue;
    byName.set(c.name, [...(byName.get(c.name) ?? []), c]);
  }
  return [...byName.values()].map((cs) => cs.sort(newestFirst));
}

/** The containers the kubelet runs for the node's static pods that still run (after a stop: none may). */
export function stillRunning(view: StaticPodsView, nodeName: string): PodContainer[] {
  return view.pods.flatMap((p) => containersOf(view, p.name, nodeName).flatMap(([current]) => (current?.running ? [current] : [])));
}

/** Enabled static pods whose kubelet containers do not all run yet (or that have none). */
export function notRunning(view: StaticPodsView, nodeName: string): string[] {
  return view.pods
    .filter((p) => {
      if (!p.enabled) return false;
      const groups = containersOf(view, p.name, nodeName);
      return groups.length === 0 || groups.some(([current]) => !current?.running);
    })
    .map((p) => p.name);
}

/**
 * Running containers of a static pod older than the kubelet's (its newest): stale, left by a
 * restart too early. The newest may be crash-looping because a stale one holds its port.
 */
export function staleContainers(view: StaticPodsView, nodeName: string): PodContainer[] {
  return view.pods.flatMap((p) => containersOf(view, p.name, nodeName).flatMap((cs) => cs.slice(1).filter((c) => c.running)));
}

/**
 * Enabled static pods none of whose containers carries the static pod's labels while containers of
 * the same name run in other pods: the node's Kubernetes name is likely not the one assumed, and
 * judging by it would wait on nothing. Empty when every pod is found (or simply has no container).
 */
export function unlabelledStaticPods(view: StaticPodsView, nodeName: string): Array<{ pod: string; seen: string[] }> {
  return view.pods.flatMap((p) => {
    if (!p.enabled || containersOf(view, p.name, nodeName).length > 0) return [];
    const seen = [...new Set(view.containers.filter((c) => c.name === p.name).map((c) => `${c.podNamespace || '?'}/${c.podName || '?'}`))];
    return seen.length > 0 ? [{ pod: p.name, seen }] : [];
  });
}

export const shortId = (id: string): string => id.slice(0, 13);
