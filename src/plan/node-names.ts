/**
 * The Kubernetes Node name of each node, as its kubelet's current client certificate says
 * (CN system:node:NAME, what NodeRestriction checks), where it differs from the inventory's name.
 * A hand-written inventory may name nodes its own way; a kubelet certificate issued for the
 * inventory's name would leave the Node NotReady. Pure.
 */
import { commonName } from '../certs/dn.js';
import type { CheckReport } from '../check/run.js';
import { NODE_NAME } from '../inventory/load.js';
import type { PlanNode } from './types.js';

const KUBELET_CLIENT = /\/kubelet-client-current\.pem$/;
const PREFIX = 'system:node:';

/** inventory name -> Node name, only for the nodes whose kubelet certificate names another Node. */
export function nodeNamesFrom(report: Pick<CheckReport, 'certificates'>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of report.certificates) {
    if (c.source !== 'file' || !c.path || !KUBELET_CLIENT.test(c.path)) continue;
    const cn = commonName(c.subject) ?? '';
    if (!cn.startsWith(PREFIX)) continue;
    const name = cn.slice(PREFIX.length);
    // The name reaches remote commands and API paths: only a valid node name is taken.
    if (name !== c.node && NODE_NAME.test(name)) out[c.node] = name;
  }
  return out;
}

/** The node's Kubernetes Node name: what the plan read from its kubelet certificate, else its inventory name. */
export function kubeNodeName(node: Pick<PlanNode, 'name' | 'vars'>): string {
  return node.vars.kubeNodeName ?? node.name;
}
