/** `check`'s exit codes, from its reports. Pure; kept apart so the CLI's help path stays light. */
import type { CheckReport, ClusterNotChecked, MultiCheckReport } from './report.js';

export function isNotChecked(c: CheckReport | ClusterNotChecked): c is ClusterNotChecked {
  return 'error' in c;
}

/**
 * 0 all ok, 1 something expiring or (--cis) a file deviating from the CIS benchmark, 2 something
 * expired or not yet valid, 3 something unchecked. The highest applies.
 */
export function checkExitCode(report: CheckReport): number {
  if (report.errors.length > 0) return 3;
  if (report.certificates.some((c) => c.status === 'expired' || c.status === 'not-yet-valid')) return 2;
  if (report.certificates.some((c) => c.status === 'expiring')) return 1;
  if ((report.cis?.length ?? 0) > 0) return 1;
  return 0;
}

/** Several clusters: the highest of their codes; a cluster that was not checked counts as 3. */
export function multiCheckExitCode(multi: MultiCheckReport): number {
  return Math.max(0, ...multi.clusters.map((c) => (isNotChecked(c) ? 3 : checkExitCode(c))));
}
