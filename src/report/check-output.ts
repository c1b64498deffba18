/** Renders a CheckReport as a table, JSON, or Prometheus text. Pure. */
import { styleText } from 'node:util';
import { commonName } from '../certs/dn.js';
import { KIND_LABEL } from '../certs/kind.js';
import type { CisDeviation } from '../check/cis.js';
import type { CertificateEntry, CheckReport } from '../check/run.js';
import { groupByMessage, plural } from '../util/wording.js';

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
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: string[]) => cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ');
  out.push(`Cluster ${report.cluster}: ${plural(report.certificates.length, 'certificate')} checked at ${report.checkedAt} (warn at ${plural(report.warnDays, 'day')})`);
  const cisByNode = new Map<string, CisDeviation[]>();
  for (const d of report.cis ?? []) cisByNode.set(d.node, [...(cisByNode.get(d.node) ?? []), d]);
  let i = 0;
  for (const [node, certs] of byNode) {
    const role = certs[0]?.role ?? '';
    out.push('', paint('bold', `${node} (${role})`), paint('dim', fmt(header)));
    for (const c of certs) {
      const line = fmt(rows[i++] ?? []);
      out.push(c.status === 'ok' ? line : paint(c.status === 'expiring' ? 'yellow' : 'red', line));
    }
    const devs = cisSection(cisByNode.get(node), paint);
    if (devs.length > 0) out.push('', ...devs);
  }
  // A node whose certificates could not be read may still have deviations to show.
  for (const [node, devs] of cisByNode) {
    if (!byNode.has(node)) out.push('', paint('bold', node), ...cisSection(devs, paint));
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

/** A node's "File permissions (CIS)" rows: what was found against what the benchmark item expects. */
function cisSection(devs: CisDeviation[] | undefined, paint: Paint): string[] {
  if (!devs || devs.length === 0) return [];
  const header = ['CIS', 'FOUND', 'EXPECTED', 'PATH'];
  const rows = devs.map((d) => [d.item, d.found, d.expected, d.path]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: string[]) => `  ${cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ')}`;
  return [paint('bold', '  File permissions (CIS)'), paint('dim', fmt(header)), ...rows.map((r) => paint('yellow', fmt(r)))];
}

function label(v: string): string {
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

/** Metric names of x509-certificate-exporter, so its alert rules and dashboards apply. */
export function renderPrometheus(report: CheckReport): string {
  const labelsOf = (c: CertificateEntry) =>
    [
      ['cluster', report.cluster],
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
      .map(([k, v]) => `${k}=${label(v ?? '')}`)
      .join(',');
  const seconds = (iso: string) => Math.floor(Date.parse(iso) / 1000);
  const metric = (name: string, help: string, value: (c: CertificateEntry) => number) => [
    `# HELP ${name} ${help}`,
    `# TYPE ${name} gauge`,
    ...report.certificates.map((c) => `${name}{${labelsOf(c)}} ${value(c)}`),
  ];
  const lines = [
    ...metric('x509_cert_not_after', 'Certificate NotAfter as a Unix timestamp in seconds', (c) => seconds(c.notAfter)),
    ...metric('x509_cert_not_before', 'Certificate NotBefore as a Unix timestamp in seconds', (c) => seconds(c.notBefore)),
    ...metric('x509_cert_expired', '1 if the certificate has expired, else 0', (c) => (c.status === 'expired' ? 1 : 0)),
    '# HELP x509_read_errors Certificates or endpoints that could not be read',
    '# TYPE x509_read_errors gauge',
    `x509_read_errors{cluster=${label(report.cluster)}} ${report.errors.length}`,
  ];
  if (report.cis) {
    lines.push(
      '# HELP rotate_certs_cis_deviation 1 for each file whose mode or owner deviates from a CIS Kubernetes Benchmark item',
      '# TYPE rotate_certs_cis_deviation gauge',
      ...report.cis.map((d) => `rotate_certs_cis_deviation{cluster=${label(report.cluster)},node=${label(d.node)},path=${label(d.path)},item=${label(d.item)}} 1`),
      '# HELP rotate_certs_cis_deviations Files whose mode or owner deviates from the CIS Kubernetes Benchmark, cluster-wide',
      '# TYPE rotate_certs_cis_deviations gauge',
      `rotate_certs_cis_deviations{cluster=${label(report.cluster)}} ${report.cis.length}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

export function renderCheck(report: CheckReport, format: OutputFormat, color: boolean): string {
  if (format === 'json') return renderJson(report);
  if (format === 'prometheus') return renderPrometheus(report);
  return renderTable(report, color ? ansiPaint : noPaint);
}
