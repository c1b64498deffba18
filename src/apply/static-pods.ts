/**
 * A node's static pods as its container runtime shows them, and the judgements the restart gates
 * make on that view. Pure: the OS profile's `staticPods` command prints the view (pods from the
 * manifests or settings, containers as `crictl ps -a -o json` prints them), this module reads it.
 *
 * Why containers and not only the API port: the kubelet starts a static pod again as soon as its
 * manifest is back, whether or not the old container has gone; one that has not is left running
 * beside the new one (aws/eks-anywhere PR 10360: duplicate kube-apiserver, etcd and kube-vip
 * containers after a 10 s gap on Bottlerocket).
 */

export interface PodContainer {
  id: string;
  /** The container's name: for static pods, the pod's (kube-apiserver, etcd, kube-vip...). */
  name: string;
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
  const containers = list.map((c: { id?: unknown; metadata?: { name?: unknown }; state?: unknown; createdAt?: unknown }): PodContainer => {
    if (typeof c.id !== 'string' || !/^[0-9a-f]{12,64}$/.test(c.id)) throw new StaticPodsOutputError(`unexpected container id ${JSON.stringify(c.id)}`);
    return { id: c.id, name: typeof c.metadata?.name === 'string' ? c.metadata.name : '', running: c.state === 'CONTAINER_RUNNING', createdNs: createdNs(c.createdAt) };
  });
  return { pods, containers };
}

const newestFirst = (a: PodContainer, b: PodContainer) => (a.createdNs === b.createdNs ? 0 : a.createdNs > b.createdNs ? -1 : 1);

function runningOf(view: StaticPodsView, pod: string): PodContainer[] {
  return view.containers.filter((c) => c.name === pod && c.running).sort(newestFirst);
}

/** Containers of the node's static pods that still run (after the pods were stopped: none may). */
export function stillRunning(view: StaticPodsView): PodContainer[] {
  return view.pods.flatMap((p) => runningOf(view, p.name));
}

/** Enabled static pods with no running container yet. */
export function notRunning(view: StaticPodsView): string[] {
  return view.pods.filter((p) => p.enabled && runningOf(view, p.name).length === 0).map((p) => p.name);
}

/**
 * Running containers of a static pod other than its newest one: what a restart too early left
 * behind. The newest is the one the kubelet runs, as the runbook says of a stale etcd container.
 */
export function duplicates(view: StaticPodsView): PodContainer[] {
  return view.pods.flatMap((p) => runningOf(view, p.name).slice(1));
}

export const shortId = (id: string): string => id.slice(0, 13);
