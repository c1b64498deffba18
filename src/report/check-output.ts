/** Renders a CheckReport as a table, JSON, or Prometheus text. Pure. */
import { styleText } from 'node:util';
import { commonName } from '../certs/dn.js';
import { KIND_LABEL } from '../certs/kind.js';
import { kib, type NodeBackups } from '../backups/listing.js';
import type { CisDeviation } from '../check/cis.js';
import { checkExitCode, isNotChecked } from '../check/exit-code.js';
import type { CertificateEntry, CheckReport, MultiCheckReport } from '../check/run.js';
import { columns, groupByMessage, plural } from '../util/wording.js';
import { exposition, label, type Family } from './prometheus-text.js';

export const OUTPUT_FORMATS = ['table', 'json', 'prometheus'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export function renderJson(report: CheckReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

type Paint = (style: 'red' | 'yellow' | 'green' | 'bold' | 'dim', text: string) => string;
const noPaint: Paint = (_s, t) => t;
export const ansiPaint: Paint = (s, t) => styleText(s, t);

const where = (c: CertificateEntry) => (c.source === 'endpoint' ? `https://${c.endpoint}` : c.source === 'kubeconfig' ? `${c.path} (embedded)` : (c.path ?? ''));

export function renderTable(report: CheckReport, paint: Paint = noPaint): string {
  const out: string[] = [];
  const header = ['STATUS', 'DAYS', 'EXPIRES', 'CERTIFICATE', 'SUBJECT'];
  const byNode = new Map<string, CertificateEntry[]>();
  for (const c of report.certificates) byNode.set(c.node, [...(byNode.get(c.node) ?? []), c]);
  const rows = report.certificates.map((c) => [c.status, String(c.daysLeft), c.notAfter.slice(0, 10), where(c), `${commonName(c.subject) ?? c.subject}${KIND_LABEL[c.kind]}`]);
  const fmt = columns([header, ...rows]);
  out.push(`Cluster ${report.cluster}: ${plural(report.certificates.length, 'certificate')} checked at ${report.checkedAt} (warn at ${plural(report.warnDays, 'day')})`);
  const cisByNode = new Map<string, CisDeviation[]>();
  for (const d of report.cis ?? []) cisByNode.set(d.node, [...(cisByNode.get(d.node) ?? []), d]);
  const backupsOf = new Map((report.backups ?? []).map((b) => [b.node, b]));
  let i = 0;
  for (const [node, certs] of byNode) {
    const role = certs[0]?.role ?? '';
    out.push('', paint('bold', `${node} (${role})`), paint('dim', fmt(header)));
    for (const c of certs) {
      const line = fmt(rows[i++] ?? []);
      out.push(c.status === 'ok' ? line : paint(c.status === 'expiring' ? 'yellow' : 'red', line));
    }
    const b = backupsOf.get(node);
    if (b) out.push(paint('dim', backupLine(b, report.checkedAt)));
    const devs = cisSection(cisByNode.get(node), paint);
    if (devs.length > 0) out.push('', ...devs);
  }
  // A node whose certificates could not be read may still have backups or deviations to show.
  for (const node of new Set([...backupsOf.keys(), ...cisByNode.keys()])) {
    if (byNode.has(node)) continue;
    const b = backupsOf.get(node);
    out.push('', paint('bold', node), ...(b ? [paint('dim', backupLine(b, report.checkedAt))] : []), ...cisSection(cisByNode.get(node), paint));
  }
  if (report.errors.length > 0) {
    out.push('', paint('bold', 'Could not check:'));
    // The same cause on many nodes is one line naming them; JSON keeps one entry per node.
    for (const line of groupByMessage(report.errors)) out.push(paint('red', `  ${line}`));
  }
  const counts = (s: string) => report.certificates.filter((c) => c.status === s).length;
  out.push('', `Summary: ${counts('ok')} ok, ${counts('expiring')} expiring, ${counts('expired')} expired, ${counts('not-yet-valid')} not yet valid, ${plural(report.errors.length, 'error')}`);
  if (report.cis) {
    const nodes = cisByNode.size;
    out.push(
      report.cis.length === 0
        ? 'File permissions (CIS): no deviations'
        : `File permissions (CIS): ${plural(report.cis.length, 'deviation')} on ${plural(nodes, 'node')}`,
    );
  }
  return `${out.join('\n')}\n`;
}

/** "Backups: 2 runs (3 paths, 48 KiB), the oldest run 20261101T020304Z, 19 days ago", or "Backups: none". */
function backupLine(b: NodeBackups, checkedAt: string): string {
  if (b.runs === 0 || !b.oldest) return 'Backups: none';
  const days = Math.max(0, Math.floor((Date.parse(checkedAt) - Date.parse(b.oldest)) / 86_400_000));
  return `Backups: ${plural(b.runs, 'run')} (${plural(b.paths, 'path')}, ${kib(b.sizeKiB)}), the oldest run ${b.oldestRun}, ${days === 0 ? 'today' : `${plural(days, 'day')} ago`}`;
}

/** A node's "File permissions (CIS)" rows: what was found against what the benchmark item expects. */
function cisSection(devs: CisDeviation[] | undefined, paint: Paint): string[] {
  if (!devs || devs.length === 0) return [];
  const header = ['CIS', 'FOUND', 'EXPECTED', 'PATH'];
  const rows = devs.map((d) => [d.item, d.found, d.expected, d.path]);
  const row = columns([header, ...rows]);
  const fmt = (cells: string[]) => `  ${row(cells)}`;
  return [paint('bold', '  File permissions (CIS)'), paint('dim', fmt(header)), ...rows.map((r) => paint('yellow', fmt(r)))];
}

/** A report's metric families, in the order they are printed; samples of one cluster each. */
function prometheusFamilies(report: CheckReport): Family[] {
  const cluster = `cluster=${label(report.cluster)}`;
  const labelsOf = (c: CertificateEntry) =>
    [
      ['node', c.node],
      ['role', c.role],
      ['source', c.source],
      ['path', c.source === 'endpoint' ? (c.endpoint ?? '') : (c.path ?? '')],
      ['subject_CN', commonName(c.subject) ?? ''],
      ['issuer_CN', commonName(c.issuer) ?? ''],
      ['serial_number', c.serial],
      // leaf, ca (a cluster CA) or kubelet-serving-ca (the kubelet's own, renewed with kubelet.crt).
      ['kind', c.kind],
    ]
      .map(([k, v]) => `,${k}=${label(v ?? '')}`)
      .join('');
  const seconds = (iso: string) => Math.floor(Date.parse(iso) / 1000);
  const perCert = (name: string, help: string, value: (c: CertificateEntry) => number): Family => ({
    name,
    help,
    samples: report.certificates.map((c) => `${name}{${cluster}${labelsOf(c)}} ${value(c)}`),
  });
  const families = [
    perCert('x509_cert_not_after', 'Certificate NotAfter as a Unix timestamp in seconds', (c) => seconds(c.notAfter)),
    perCert('x509_cert_not_before', 'Certificate NotBefore as a Unix timestamp in seconds', (c) => seconds(c.notBefore)),
    perCert('x509_cert_expired', '1 if the certificate has expired, else 0', (c) => (c.status === 'expired' ? 1 : 0)),
    readErrors(report.cluster, report.errors.length),
  ];
  if (report.backups) {
    const node = (b: NodeBackups) => `${cluster},node=${label(b.node)}`;
    families.push(
      {
        name: 'rotate_certs_backups',
        help: 'Runs whose backups rotate-certs left on the node (a run\'s copies count once)',
        samples: report.backups.map((b) => `rotate_certs_backups{${node(b)}} ${b.runs}`),
      },
      {
        name: 'rotate_certs_backup_oldest_timestamp_seconds',
        help: 'Start of the oldest run with a backup on the node, as a Unix timestamp in seconds',
        samples: report.backups.flatMap((b) => (b.oldest ? [`rotate_certs_backup_oldest_timestamp_seconds{${node(b)}} ${Math.floor(Date.parse(b.oldest) / 1000)}`] : [])),
      },
    );
  }
  if (report.cis) {
    families.push(
      {
        name: 'rotate_certs_cis_deviation',
        help: '1 for each file whose mode or owner deviates from a CIS Kubernetes Benchmark item',
        samples: report.cis.map((d) => `rotate_certs_cis_deviation{${cluster},node=${label(d.node)},path=${label(d.path)},item=${label(d.item)}} 1`),
      },
      {
        name: 'rotate_certs_cis_deviations',
        help: 'Files whose mode or owner deviates from the CIS Kubernetes Benchmark, cluster-wide',
        samples: [`rotate_certs_cis_deviations{${cluster}} ${report.cis.length}`],
      },
    );
  }
  return families;
}

function readErrors(cluster: string, count: number): Family {
  return { name: 'x509_read_errors', help: 'Certificates or endpoints that could not be read', samples: [`x509_read_errors{cluster=${label(cluster)}} ${count}`] };
}

/** Metric names of x509-certificate-exporter, so its alert rules and dashboards apply. */
export function renderPrometheus(report: CheckReport): string {
  return exposition(prometheusFamilies(report));
}

/** Several clusters: one Prometheus text, HELP and TYPE once per metric, `cluster` on every sample. */
export function renderMultiPrometheus(multi: MultiCheckReport): string {
  const merged = new Map<string, Family>();
  for (const c of multi.clusters) {
    // A cluster not checked has one series: its read error, so "check failed" alerts fire for it.
    const families = isNotChecked(c) ? [readErrors(c.cluster, 1)] : prometheusFamilies(c);
    for (const f of families) {
      const m = merged.get(f.name);
      if (m) m.samples.push(...f.samples);
      else merged.set(f.name, { ...f, samples: [...f.samples] });
    }
  }
  // x509_read_errors comes after the certificate metrics, as in one cluster's text, even when the first cluster was not checked.
  const order = [
    'x509_cert_not_after',
    'x509_cert_not_before',
    'x509_cert_expired',
    'x509_read_errors',
    'rotate_certs_backups',
    'rotate_certs_backup_oldest_timestamp_seconds',
    'rotate_certs_cis_deviation',
    'rotate_certs_cis_deviations',
  ];
  return exposition([...merged.values()].sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name)));
}

/** Several clusters: one table per cluster, in the order given, then a line per outcome. */
export function renderMultiTable(multi: MultiCheckReport, paint: Paint = noPaint): string {
  const parts = multi.clusters.map((c) =>
    isNotChecked(c) ? `${paint('bold', `Cluster ${c.cluster}`)}: ${paint('red', `not checked: ${c.error}`)}\n` : renderTable(c, paint),
  );
  const cis = multi.clusters.some((c) => !isNotChecked(c) && c.cis);
  const byCode = new Map<number, string[]>();
  for (const c of multi.clusters) {
    const code = isNotChecked(c) ? 3 : checkExitCode(c);
    byCode.set(code, [...(byCode.get(code) ?? []), c.cluster]);
  }
  const what = ['ok', cis ? 'expiring or deviating from CIS' : 'expiring', 'expired', 'not fully checked'];
  const counts = [0, 1, 2, 3].flatMap((code) => {
    const names = byCode.get(code) ?? [];
    if (names.length === 0) return [];
    return [`${names.length} ${what[code]}${code === 0 ? '' : ` (${names.join(', ')})`}`];
  });
  const n = multi.clusters.length;
  return `${parts.join('\n')}\n${n} cluster${n === 1 ? '' : 's'}: ${counts.join(', ')}\n`;
}

export function renderMultiCheck(multi: MultiCheckReport, format: OutputFormat, color: boolean): string {
  if (format === 'json') return `${JSON.stringify(multi, null, 2)}\n`;
  if (format === 'prometheus') return renderMultiPrometheus(multi);
  return renderMultiTable(multi, color ? ansiPaint : noPaint);
}

export function renderCheck(report: CheckReport, format: OutputFormat, color: boolean): string {
  if (format === 'json') return renderJson(report);
  if (format === 'prometheus') return renderPrometheus(report);
  return renderTable(report, color ? ansiPaint : noPaint);
}
