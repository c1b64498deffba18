/** Which nodes need kubelet steps: those whose kubelet certificates `check` found due. Pure. */
import type { CheckReport } from '../check/run.js';

const KUBELET_FILE = /\/(kubelet-client-current\.pem|kubelet\.crt|kubelet-server-current\.pem)$/;
const KUBELET_KUBECONFIG = /\/(kubelet\.conf|kubelet\/kubeconfig)$/;

/** Nodes with a kubelet client or serving certificate expired, not yet valid, or inside the warn window. */
export function kubeletDueFrom(report: Pick<CheckReport, 'certificates'>): string[] {
  const due = new Set<string>();
  for (const c of report.certificates) {
    if (c.status === 'ok' || !c.path) continue;
    const path = c.path.replace(/\[\d+\]$/, '');
    if ((c.source === 'file' && KUBELET_FILE.test(path)) || (c.source === 'kubeconfig' && KUBELET_KUBECONFIG.test(path))) due.add(c.node);
  }
  return [...due];
}
