/**
 * How this machine reaches a TCP endpoint of the cluster (:6443, :2379, the API a kubeconfig
 * names): directly, or through the inventory's jump host. Admin machines often sit behind a
 * bastion; a probe that goes straight to a node it cannot reach would read "host unreachable" as
 * "the kube-apiserver has stopped", so every probe `check`, the gates, pre-flight and the API
 * calls make goes the way SSH goes.
 *
 * A node's own address goes through its jump host when it has one. Another address (a virtual IP,
 * a management cluster elsewhere) is tried directly first and through the jump host when that fails.
 */
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import type { InventoryNodeSpec } from '../inventory/types.js';
import type { Connector } from './session.js';

/** A stream to host:port, or undefined to connect directly. */
export type EndpointRoute = (host: string, port: number) => Promise<Duplex | undefined>;

/** Direct TCP connect, for telling a reachable address from one behind the bastion. */
export function reachableDirectly(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED')); // refused: reachable, nothing listening
  });
}

export function endpointRoute(
  nodes: InventoryNodeSpec[],
  connector: Connector,
  direct: (host: string, port: number) => Promise<boolean> = (host, port) => reachableDirectly(host, port, 1500),
): EndpointRoute {
  const jumped = nodes.filter((n) => n.ssh.jumpHost);
  const tunnel = connector.tunnel?.bind(connector);
  const known = new Map<string, Promise<boolean>>();
  return async (host, port) => {
    if (!tunnel || jumped.length === 0) return undefined;
    const node = nodes.find((n) => n.host === host);
    if (node) return node.ssh.jumpHost ? tunnel(node, port) : undefined;
    const key = `${host}:${port}`;
    let ok = known.get(key);
    if (!ok) {
      ok = direct(host, port);
      known.set(key, ok);
    }
    if (await ok) return undefined;
    // Not a node, not reachable from here: through the bastion the nodes use.
    const via = jumped[0] as InventoryNodeSpec;
    return tunnel({ ...via, name: `${host}:${port}`, host }, port);
  };
}

/**
 * Whether an endpoint probe's error means this machine has no way to the endpoint (as opposed to
 * the endpoint being closed, or answering badly): then a gate could not tell "stopped" from
 * "unreachable", and pre-flight refuses.
 */
export function unreachable(message: string): boolean {
  if (/refused/i.test(message)) return false;
  return /unreachable|no route to host|cannot reach jump host|cannot open a channel|timed out connecting/i.test(message);
}
