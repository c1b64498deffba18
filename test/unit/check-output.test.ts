import { describe, expect, it } from 'vitest';
import { checkExitCode, multiCheckExitCode } from '../../src/check/exit-code.js';
import type { CertificateEntry, CheckReport, ClusterNotChecked, MultiCheckReport } from '../../src/check/report.js';
import { ansiPaint, renderJson, renderMultiCheck, renderMultiTable, renderPrometheus, renderTable } from '../../src/report/check-output.js';
import { parsePrometheus } from '../prometheus.js';
import { certEntry } from './cert-entry.js';

const cert = certEntry;

const report: CheckReport = {
  cluster: 'lab',
  checkedAt: '2026-11-20T00:00:00.000Z',
  warnDays: 30,
  certificates: [
    cert({ status: 'expiring', daysLeft: 5 }),
    cert({ path: undefined, source: 'endpoint', endpoint: '10.0.0.21:6443', status: 'expired', daysLeft: -1 }),
    cert({ node: 'lab-etcd-1', role: 'etcd', path: '/etc/etcd/pki/ca.crt', subject: 'CN=etcd-ca', isCA: true, kind: 'ca', daysLeft: 3000 }),
    cert({ path: '/etc/kubernetes/admin.conf', source: 'kubeconfig', subject: 'CN=kubernetes-admin, O="a\\"b"' }),
  ],
  errors: [{ node: 'lab-md-1', message: 'connection refused by 10.0.0.31:22 (is sshd running?)' }],
};

describe('exit codes', () => {
  const with_ = (statuses: CertificateEntry['status'][], errors = 0): CheckReport => ({
    ...report,
    certificates: statuses.map((status) => cert({ status })),
    errors: Array.from({ length: errors }, () => ({ node: 'n', message: 'm' })),
  });
  it('0 ok, 1 expiring, 2 expired or not yet valid, 3 unchecked; the highest applies', () => {
    expect(checkExitCode(with_(['ok']))).toBe(0);
    expect(checkExitCode(with_(['ok', 'expiring']))).toBe(1);
    expect(checkExitCode(with_(['expiring', 'expired']))).toBe(2);
    expect(checkExitCode(with_(['not-yet-valid']))).toBe(2);
    expect(checkExitCode(with_(['expired'], 1))).toBe(3);
    expect(checkExitCode(with_([], 1))).toBe(3);
  });
});

describe('renderers', () => {
  it('JSON round-trips with the documented fields', () => {
    const parsed = JSON.parse(renderJson(report)) as CheckReport;
    expect(Object.keys(parsed)).toEqual(['cluster', 'checkedAt', 'warnDays', 'certificates', 'errors']);
    expect(parsed.certificates[1]).toMatchObject({ source: 'endpoint', endpoint: '10.0.0.21:6443', status: 'expired' });
  });

  it('Prometheus text is well-formed exposition with exporter metric names', () => {
    const text = renderPrometheus(report);
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*)\} (-?\d+(?:\.\d+)?)$/;
    const names = new Set<string>();
    for (const line of text.trimEnd().split('\n')) {
      if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
      const m = sample.exec(line);
      expect(m, line).not.toBeNull();
      names.add(m![1]!);
    }
    expect([...names]).toEqual(['x509_cert_not_after', 'x509_cert_not_before', 'x509_cert_expired', 'x509_read_errors']);
    expect(text).toContain(`x509_cert_not_after{cluster="lab",node="lab-cp-1",role="control-plane",source="file",path="/etc/kubernetes/pki/apiserver.crt",subject_CN="kube-apiserver",issuer_CN="kubernetes",serial_number="01",kind="leaf"} ${Date.parse('2026-11-26T00:00:00Z') / 1000}`);
    expect(text).toMatch(/x509_cert_expired\{[^}]*path="10\.0\.0\.21:6443"[^}]*\} 1/);
    expect(text).toContain('x509_read_errors{cluster="lab"} 1');
  });

  it('the table groups by node, names sources, and colours only when asked', () => {
    const plain = renderTable(report);
    expect(plain).not.toMatch(/\x1b\[/);
    const cpAt = plain.indexOf('lab-cp-1 (control-plane)');
    const etcdAt = plain.indexOf('lab-etcd-1 (etcd)');
    expect(cpAt).toBeGreaterThan(-1);
    expect(etcdAt).toBeGreaterThan(cpAt);
    expect(plain).toContain('https://10.0.0.21:6443');
    expect(plain).toContain('/etc/kubernetes/admin.conf (embedded)');
    expect(plain).toContain('etcd-ca (CA)');
    expect(plain).toContain('lab-md-1: connection refused');
    expect(plain).toContain('Summary: 2 ok, 1 expiring, 1 expired, 0 not yet valid, 1 error');
    expect(plain).toContain('Cluster lab: 4 certificates checked at 2026-11-20T00:00:00.000Z (warn at 30 days)');
    const colored = renderTable(report, (s, t) => `<${s}>${t}`);
    expect(colored).toMatch(/<yellow>expiring/);
    expect(colored).toMatch(/<red>expired/);
    expect(typeof ansiPaint('red', 'x')).toBe('string');
  });

  it('the same error on several nodes is one table line naming them; JSON keeps one entry per node', () => {
    const refused = 'ssh authentication as capv failed (the key was not accepted)';
    const nodes = ['lab-etcd-1', 'lab-etcd-2', 'lab-etcd-3', 'lab-cp-1', 'lab-md-1'];
    const many: CheckReport = { ...report, errors: [...nodes.map((node) => ({ node, message: refused })), { node: 'lab-md-2', message: 'connection refused by 10.0.0.32:22 (is sshd running?)' }] };
    const table = renderTable(many);
    expect(table).toContain(`  lab-etcd-1, lab-etcd-2 and 3 more: ${refused}\n  lab-md-2: connection refused`);
    expect(table.split(refused)).toHaveLength(2);
    expect(table).toContain('6 errors');
    expect((JSON.parse(renderJson(many)) as CheckReport).errors).toHaveLength(6);
  });
});

describe('--cis in every format', () => {
  const withCis: CheckReport = {
    ...report,
    cis: [
      { node: 'lab-cp-1', path: '/etc/kubernetes/admin.conf', item: '1.1.13', expected: '0600 or stricter', found: '0644' },
      { node: 'lab-cp-1', path: '/etc/kubernetes/pki/apiserver.crt', item: '1.1.19', expected: 'root:root', found: '1000:root' },
      { node: 'lab-md-1', path: '/var/lib/kubelet/pki/kubelet.key', item: '1.1.21', expected: '0600 or stricter', found: '0644' },
    ],
  };

  it('JSON carries cis: [{node, path, item, expected, found}] only when asked', () => {
    const parsed = JSON.parse(renderJson(withCis)) as CheckReport;
    expect(Object.keys(parsed)).toEqual(['cluster', 'checkedAt', 'warnDays', 'certificates', 'errors', 'cis']);
    expect(parsed.cis?.[0]).toEqual({ node: 'lab-cp-1', path: '/etc/kubernetes/admin.conf', item: '1.1.13', expected: '0600 or stricter', found: '0644' });
    expect(JSON.parse(renderJson({ ...report, cis: [] }))).toMatchObject({ cis: [] });
    expect(Object.keys(JSON.parse(renderJson(report)))).not.toContain('cis');
  });

  it('the table has a "File permissions (CIS)" section under each node with deviations', () => {
    const plain = renderTable(withCis);
    const cp = plain.indexOf('lab-cp-1 (control-plane)');
    const section = plain.indexOf('  File permissions (CIS)', cp);
    const etcd = plain.indexOf('lab-etcd-1 (etcd)');
    expect(section).toBeGreaterThan(cp);
    expect(etcd).toBeGreaterThan(section); // under its node, before the next node
    expect(plain).toMatch(/ {2}CIS +FOUND +EXPECTED +PATH\n/);
    expect(plain).toMatch(/ {2}1\.1\.13 +0644 +0600 or stricter +\/etc\/kubernetes\/admin\.conf\n/);
    expect(plain).toMatch(/ {2}1\.1\.19 +1000:root +root:root +\/etc\/kubernetes\/pki\/apiserver\.crt\n/);
    // lab-md-1 has no certificates in this report (it could not be reached) but its deviations show.
    expect(plain).toMatch(/\nlab-md-1\n {2}File permissions \(CIS\)\n.*\n {2}1\.1\.21 +0644/);
    expect(plain).toContain('File permissions (CIS): 3 deviations on 2 nodes');
    expect(renderTable({ ...report, cis: [] })).toContain('File permissions (CIS): no deviations');
    expect(renderTable(report)).not.toContain('CIS');
    expect(renderTable(withCis, (s, t) => `<${s}>${t}`)).toMatch(/<yellow> {2}1\.1\.13/);
  });

  it('Prometheus: one rotate_certs_cis_deviation sample per deviation, and the count', () => {
    const text = renderPrometheus(withCis);
    expect(text).toContain('# TYPE rotate_certs_cis_deviation gauge');
    expect(text).toContain('rotate_certs_cis_deviation{cluster="lab",node="lab-cp-1",path="/etc/kubernetes/admin.conf",item="1.1.13"} 1');
    expect(text.split('\n').filter((l) => l.startsWith('rotate_certs_cis_deviation{'))).toHaveLength(3);
    expect(text).toContain('rotate_certs_cis_deviations{cluster="lab"} 3');
    expect(renderPrometheus({ ...report, cis: [] })).toContain('rotate_certs_cis_deviations{cluster="lab"} 0');
    expect(renderPrometheus(report)).not.toContain('rotate_certs_cis');
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*)\} (-?\d+(?:\.\d+)?)$/;
    for (const line of text.trimEnd().split('\n')) if (!line.startsWith('#')) expect(line, line).toMatch(sample);
  });

  it('a deviation makes the exit code at least 1; expired and unchecked still win', () => {
    const base: CheckReport = { ...report, certificates: [cert({ status: 'ok' })], errors: [] };
    expect(checkExitCode({ ...base, cis: [] })).toBe(0);
    expect(checkExitCode({ ...base, cis: withCis.cis })).toBe(1);
    expect(checkExitCode({ ...base, certificates: [cert({ status: 'expired' })], cis: withCis.cis })).toBe(2);
    expect(checkExitCode({ ...base, errors: [{ node: 'n', message: 'm' }], cis: withCis.cis })).toBe(3);
  });
});

const siteA: CheckReport = {
  cluster: 'site-a',
  checkedAt: '2026-11-20T00:00:00.000Z',
  warnDays: 30,
  certificates: [cert({ node: 'a-cp-1' }), cert({ node: 'a-cp-1', source: 'endpoint', path: undefined, endpoint: '10.0.0.21:6443' })],
  errors: [],
};
const siteB: CheckReport = {
  cluster: 'site-b',
  checkedAt: '2026-11-20T00:00:01.000Z',
  warnDays: 30,
  certificates: [cert({ node: 'b-cp-1', status: 'expired', daysLeft: -3, serial: '02' }), cert({ node: 'b-md-1', role: 'worker', path: '/var/lib/kubelet/pki/kubelet-client-current.pem', status: 'expiring', daysLeft: 4 })],
  errors: [{ node: 'b-md-2', message: 'connection refused by 10.0.1.32:22 (is sshd running?)' }],
};
const edge: ClusterNotChecked = { cluster: 'edge-3', inventory: '/sites/edge-3/rotate-certs.yaml', error: 'cannot read inventory /sites/edge-3/rotate-certs.yaml: no such file' };
const multi: MultiCheckReport = { clusters: [siteA, siteB, edge] };

describe('several clusters: the merged outputs', () => {
  it('JSON is one document whose clusters are the single-cluster reports, and the not-checked cluster', () => {
    const parsed = JSON.parse(renderMultiCheck(multi, 'json', false)) as MultiCheckReport;
    expect(Object.keys(parsed)).toEqual(['clusters']);
    expect(parsed.clusters).toHaveLength(3);
    expect(parsed.clusters[0]).toEqual(JSON.parse(renderJson(siteA)));
    expect(parsed.clusters[1]).toEqual(JSON.parse(renderJson(siteB)));
    expect(parsed.clusters[2]).toEqual({ cluster: 'edge-3', inventory: '/sites/edge-3/rotate-certs.yaml', error: 'cannot read inventory /sites/edge-3/rotate-certs.yaml: no such file' });
  });

  it('Prometheus is one text: HELP and TYPE once per metric, a cluster label on every sample', () => {
    const text = renderMultiCheck(multi, 'prometheus', false);
    const samples = parsePrometheus(text);
    for (const s of samples) expect(s.labels.cluster, `${s.name} ${JSON.stringify(s.labels)}`).toMatch(/^(site-a|site-b|edge-3)$/);
    // Each checked cluster's samples are exactly those of its single-cluster text.
    for (const r of [siteA, siteB]) expect(samples.filter((s) => s.labels.cluster === r.cluster)).toEqual(parsePrometheus(renderPrometheus(r)));
    expect(samples.filter((s) => s.name === 'x509_read_errors').map((s) => [s.labels.cluster, s.value])).toEqual([
      ['site-a', 0],
      ['site-b', 1],
      ['edge-3', 1],
    ]);
    expect(samples.filter((s) => s.labels.cluster === 'edge-3').map((s) => s.name)).toEqual(['x509_read_errors']);
    expect(samples.find((s) => s.name === 'x509_cert_expired' && s.labels.cluster === 'site-b' && s.labels.node === 'b-cp-1')?.value).toBe(1);
    // Metrics in the single-cluster order, even when the first cluster was not checked.
    const names = (t: string) => [...new Set(parsePrometheus(t).map((s) => s.name))];
    expect(names(renderMultiCheck({ clusters: [edge, siteA] }, 'prometheus', false))).toEqual(['x509_cert_not_after', 'x509_cert_not_before', 'x509_cert_expired', 'x509_read_errors']);
  });

  it('Prometheus with --cis: the deviation metrics once, per cluster samples', () => {
    const withCis = (r: CheckReport, n: number): CheckReport => ({
      ...r,
      cis: Array.from({ length: n }, (_, i) => ({ node: r.certificates[0]!.node, path: `/etc/kubernetes/f${i}.conf`, item: '1.1.13', expected: '0600 or stricter', found: '0644' })),
    });
    const samples = parsePrometheus(renderMultiCheck({ clusters: [withCis(siteA, 0), withCis(siteB, 2), edge] }, 'prometheus', false));
    expect(samples.filter((s) => s.name === 'rotate_certs_cis_deviations').map((s) => [s.labels.cluster, s.value])).toEqual([
      ['site-a', 0],
      ['site-b', 2],
    ]);
    expect(samples.filter((s) => s.name === 'rotate_certs_cis_deviation')).toHaveLength(2);
  });

  it('the table is each cluster\'s table, the not-checked one, and a line naming the outcome of each', () => {
    const text = renderMultiCheck(multi, 'table', false);
    expect(text).toContain(renderTable(siteA));
    expect(text).toContain(renderTable(siteB));
    expect(text.indexOf('Cluster site-a:')).toBeLessThan(text.indexOf('Cluster site-b:'));
    expect(text).toContain('Cluster edge-3: not checked: cannot read inventory /sites/edge-3/rotate-certs.yaml: no such file\n');
    expect(text.endsWith('\n3 clusters: 1 ok, 2 not fully checked (site-b, edge-3)\n')).toBe(true);
    expect(renderMultiCheck({ clusters: [siteA, { ...siteB, errors: [] }] }, 'table', false)).toMatch(/\n2 clusters: 1 ok, 1 expired \(site-b\)\n$/);
    expect(renderMultiTable(multi, (style, t) => `<${style}>${t}`)).toContain('<bold>Cluster edge-3: <red>not checked: ');
  });

  it('the exit code is the highest of the clusters\'; a cluster not checked counts as 3', () => {
    expect(multiCheckExitCode({ clusters: [siteA] })).toBe(0);
    expect(multiCheckExitCode({ clusters: [siteA, { ...siteB, errors: [] }] })).toBe(2);
    expect(multiCheckExitCode({ clusters: [siteA, { ...siteB, errors: [], certificates: [cert({ status: 'expiring' })] }] })).toBe(1);
    expect(multiCheckExitCode({ clusters: [siteA, edge] })).toBe(3);
  });
});

