/**
 * What a due run (`rotate --due-within`) did, per cluster: one line each for people, and the same
 * as Prometheus text (node_exporter's textfile collector) and JSON for monitors. Pure.
 * Names follow check's Prometheus output (src/report/check-output.ts): gauges, a `cluster` label on
 * every series, times as Unix seconds.
 */
import type { DueCertificate } from './due.js';
import { exposition, label, type Family } from '../report/prometheus-text.js';

export const RUN_OUTCOMES = ['rotated', 'nothing_due', 'refused', 'failed', 'skipped'] as const;
/**
 * rotated: a rotation ran and finished. nothing_due: nothing the tool renews falls within the
 * window; nothing changed. refused: it did not start, nothing changed (a node did not answer, etcd
 * or the API not healthy, an unfinished run, the lock held, a recovery not allowed). failed: it
 * started and failed or was stopped, or the cluster could not be handled at all (its inventory).
 * skipped: not tried, because an earlier cluster failed or its management cluster was not renewed.
 */
export type RunOutcome = (typeof RUN_OUTCOMES)[number];

export interface ClusterRun {
  cluster: string;
  outcome: RunOutcome;
  exitCode: number;
  /** One line: why it was refused, failed or skipped; what was renewed; when it falls due next. */
  reason: string;
  startedAt: string;
  endedAt: string;
  durationSeconds: number;
  certificatesRenewed: number;
  /** The rotation's run id (journal, plan copy), when one started. */
  runId?: string;
  /** The renewed certificate that expires first, as last read (after the rotation, when one ran). */
  nextExpiry?: DueCertificate;
}

export interface RoutineReport {
  /** The window asked for, as given (30d). */
  dueWithin: string;
  clusters: ClusterRun[];
}

/** "lab: rotated: ..." */
export function summaryLine(run: ClusterRun): string {
  const outcome = run.outcome === 'nothing_due' ? 'nothing due' : run.outcome === 'refused' ? 'refused, nothing changed' : run.outcome;
  return `${run.cluster}: ${outcome}: ${run.reason}`;
}

export function renderRoutineJson(report: RoutineReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

/** One text for every cluster of the run: HELP and TYPE once per metric, then each cluster's samples. */
export function renderRoutinePrometheus(report: RoutineReport): string {
  const seconds = (iso: string) => Math.floor(Date.parse(iso) / 1000);
  const per = (name: string, help: string, value: (r: ClusterRun) => number | undefined): Family => ({
    name,
    help,
    samples: report.clusters.flatMap((r) => {
      const v = value(r);
      return v === undefined ? [] : [`${name}{cluster=${label(r.cluster)}} ${v}`];
    }),
  });
  const families: Family[] = [
    {
      name: 'rotate_certs_run_outcome',
      help: `1 for the outcome of the cluster's last due run (rotate --due-within ${report.dueWithin}), 0 for the others`,
      samples: report.clusters.flatMap((r) => RUN_OUTCOMES.map((o) => `rotate_certs_run_outcome{cluster=${label(r.cluster)},outcome=${label(o)}} ${o === r.outcome ? 1 : 0}`)),
    },
    per('rotate_certs_run_exit_code', "The due run's exit code for the cluster (0 rotated or nothing due, 4 refused)", (r) => r.exitCode),
    per('rotate_certs_run_end_timestamp_seconds', 'When the due run of the cluster ended, as a Unix timestamp in seconds', (r) => seconds(r.endedAt)),
    per('rotate_certs_run_duration_seconds', 'How long the due run of the cluster took, in seconds', (r) => Number(r.durationSeconds.toFixed(3))),
    per('rotate_certs_run_certificates_renewed', 'Certificates the due run renewed in the cluster', (r) => r.certificatesRenewed),
    per(
      'rotate_certs_run_next_expiry_timestamp_seconds',
      'NotAfter of the first certificate rotate-certs renews to expire, as the run last read it (after its rotation), as a Unix timestamp in seconds',
      (r) => (r.nextExpiry ? seconds(r.nextExpiry.notAfter) : undefined),
    ),
  ];
  return exposition(families.filter((f) => f.samples.length > 0));
}
