/**
 * Which external etcd members cannot be healthy as they stand: one of their leaf certificates has
 * expired or is not yet valid. When these make up the cluster's trouble, the rotation is the way
 * back, and the cluster-health gate can only pass once every one of them is renewed. Pure.
 */
import type { CheckReport } from '../check/run.js';

export function etcdExpiredFrom(report: Pick<CheckReport, 'certificates'>): string[] {
  const expired = new Set<string>();
  for (const c of report.certificates) {
    if (c.role === 'etcd' && c.source === 'file' && !c.isCA && (c.status === 'expired' || c.status === 'not-yet-valid')) expired.add(c.node);
  }
  return [...expired];
}
