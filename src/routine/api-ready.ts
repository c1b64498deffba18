/**
 * Is the API ready: each control-plane node's kube-apiserver asked `GET /readyz`, anonymously, as
 * the rotation's apiserver-ready gate asks it (src/apply/gates.ts), and the way that gate goes
 * (through the jump host when the nodes sit behind one). Read-only.
 */
import { readyz } from '../apply/gates.js';
import type { Inventory } from '../inventory/types.js';
import { endpointRoute } from '../transport/endpoints.js';
import type { Connector } from '../transport/session.js';
import { errorMessage } from '../util/errors.js';

const PORT = 6443;

export async function apiReadiness(inv: Inventory, connector: Connector, timeoutMs = 5000): Promise<Array<{ node: string; problem?: string }>> {
  const route = endpointRoute(inv.nodes, connector);
  return Promise.all(
    inv.nodes
      .filter((n) => n.role === 'control-plane')
      .map(async (n) => {
        try {
          await readyz(n.host, PORT, timeoutMs, await route(n.host, PORT));
          return { node: n.name };
        } catch (err) {
          return { node: n.name, problem: `${n.host.includes(':') ? `[${n.host}]` : n.host}:${PORT}/readyz: ${errorMessage(err)}` };
        }
      }),
  );
}
