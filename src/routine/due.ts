/**
 * Whether a cluster is due for renewal, from what a read of it found. Pure.
 *
 * Only what a rotation renews counts: etcd leaves, control-plane leaves and the client certificates
 * of their kubeconfigs, and the kubelet certificates of control-plane and worker nodes (the same
 * files src/plan/kubelet-due.ts looks at). CAs are never renewed here, so a CA inside the window
 * is a warning, not a reason to rotate; what endpoints serve follows the files.
 */
import type { CertificateEntry, CheckReport } from '../check/run.js';

/** The phase of a rotation that renews a certificate. */
export type RenewingPhase = 'etcd' | 'control-plane' | 'kubelet';

const KUBELET_FILE = /\/(kubelet-client-current\.pem|kubelet\.crt|kubelet-server-current\.pem)$/;
const KUBELET_KUBECONFIG = /\/(kubelet\.conf|kubelet\/kubeconfig)$/;

/** Which phase renews this certificate, or undefined when no rotation does (CAs, endpoints, an etcd machine's kubelet). */
export function renewingPhase(c: CertificateEntry): RenewingPhase | undefined {
  if (c.source === 'endpoint' || c.kind === 'ca' || !c.path) return undefined;
  const path = c.path.replace(/\[\d+\]$/, '');
  const kubelet = c.source === 'file' ? KUBELET_FILE.test(path) : KUBELET_KUBECONFIG.test(path);
  if (kubelet) return c.role === 'etcd' ? undefined : 'kubelet';
  return c.role === 'worker' ? undefined : c.role;
}

/** A certificate a rotation renews, and when it falls inside the window. */
export interface DueCertificate {
  node: string;
  path: string;
  source: CertificateEntry['source'];
  phase: RenewingPhase;
  notAfter: string;
  /** notAfter minus the window: from then on, a due run renews it. */
  dueAt: string;
}

export interface DueDecision {
  /** Renewed certificates inside the window (or expired, or not yet valid), soonest first. Any: rotate. */
  due: DueCertificate[];
  /** When nothing is due: the renewed certificate that falls due first. */
  next?: DueCertificate;
  /** Cluster CAs inside the window: to warn about; rotate-certs cannot renew them. */
  cas: CertificateEntry[];
}

export interface DueOptions {
  now: Date;
  windowMs: number;
  /** Whether this run's scope (--only, --nodes) gives that phase to that node. */
  inScope(phase: RenewingPhase, node: string): boolean;
}

export function decideDue(report: Pick<CheckReport, 'certificates'>, opts: DueOptions): DueDecision {
  const horizon = opts.now.getTime() + opts.windowMs;
  const renewed: DueCertificate[] = [];
  const dueNow = new Set<DueCertificate>();
  for (const c of report.certificates) {
    const phase = renewingPhase(c);
    if (!phase || !opts.inScope(phase, c.node)) continue;
    const notAfter = Date.parse(c.notAfter);
    const d: DueCertificate = { node: c.node, path: c.path as string, source: c.source, phase, notAfter: c.notAfter, dueAt: new Date(notAfter - opts.windowMs).toISOString() };
    renewed.push(d);
    if (notAfter <= horizon || c.status === 'not-yet-valid') dueNow.add(d);
  }
  renewed.sort((a, b) => Date.parse(a.notAfter) - Date.parse(b.notAfter) || a.node.localeCompare(b.node) || a.path.localeCompare(b.path));
  const due = renewed.filter((d) => dueNow.has(d));
  const cas = report.certificates.filter((c) => c.kind === 'ca' && c.source === 'file' && Date.parse(c.notAfter) <= horizon);
  const next = due.length === 0 ? renewed[0] : undefined;
  return { due, ...(next ? { next } : {}), cas };
}

/** The renewed certificate that expires first, as a report read it (after a run: the next to fall due). */
export function nextExpiry(report: Pick<CheckReport, 'certificates'>, opts: DueOptions): DueCertificate | undefined {
  const { due, next } = decideDue(report, opts);
  return due[0] ?? next;
}

/** "2027-03-01 10:00 UTC" */
export function when(iso: string): string {
  return `${iso.slice(0, 16).replace('T', ' ')} UTC`;
}

/** Why a run changed nothing: what falls due first, and when. */
export function nothingDueReason(within: string, next: DueCertificate | undefined): string {
  if (!next) return `no certificate that rotate-certs renews was found in this run's scope`;
  return `nothing expires within ${within}; the first certificate to fall due is ${describe(next)}, due from ${when(next.dueAt)}`;
}

/** "/etc/kubernetes/pki/apiserver.crt on lab-cp-1 (expires 2027-03-01 10:00 UTC)" */
export function describe(d: DueCertificate): string {
  return `${d.path}${d.source === 'kubeconfig' ? ' (embedded)' : ''} on ${d.node} (expires ${when(d.notAfter)})`;
}

/** Certificates a rotation renews whose serial changed between two reads (a node restored from its backup counts none). */
export function renewedCount(before: Pick<CheckReport, 'certificates'>, after: Pick<CheckReport, 'certificates'>): number {
  const key = (c: CertificateEntry) => `${c.node} ${c.source} ${c.path}`;
  const old = new Map(before.certificates.filter((c) => renewingPhase(c)).map((c) => [key(c), c.serial]));
  return after.certificates.filter((c) => renewingPhase(c) && old.has(key(c)) && old.get(key(c)) !== c.serial).length;
}

/** One warning per CA (several nodes holding the same CA file: one line naming them). */
export function caWarnings(cas: CertificateEntry[], within: string): Array<{ node: string; message: string }> {
  return cas.map((c) => ({
    node: c.node,
    message: `CA ${c.path} ${c.status === 'expired' ? 'has expired' : 'expires'} ${when(c.notAfter)}, within ${within}: rotate-certs does not renew CAs and a due run does not rotate for one; plan a CA rotation (docs/routine.md)`,
  }));
}
