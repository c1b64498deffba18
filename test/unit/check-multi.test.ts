/**
 * `check` of several clusters: the merged outputs (parsed back), the exit code, how clusters are
 * named on the command line, and one concurrency budget shared by all clusters.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { multiCheckExitCode, type CertificateEntry, type CheckReport, type ClusterNotChecked, type MultiCheckReport } from '../../src/check/run.js';
import type { CliIo } from '../../src/cli/io.js';
import { runCli } from '../../src/cli/program.js';
import { renderJson, renderMultiCheck, renderMultiTable, renderPrometheus, renderTable } from '../../src/report/check-output.js';
import type { Connector } from '../../src/transport/session.js';
import { parsePrometheus } from '../prometheus.js';

const cert = (over: Partial<CertificateEntry>): CertificateEntry => ({
  node: 'a-cp-1',
  role: 'control-plane',
  source: 'file',
  path: '/etc/kubernetes/pki/apiserver.crt',
  subject: 'CN=kube-apiserver',
  issuer: 'CN=kubernetes',
  serial: '01',
  isCA: false,
  notBefore: '2025-11-26T00:00:00.000Z',
  notAfter: '2026-11-26T00:00:00.000Z',
  daysLeft: 100,
  status: 'ok',
  ...over,
});

const siteA: CheckReport = {
  cluster: 'site-a',
  checkedAt: '2026-11-20T00:00:00.000Z',
  warnDays: 30,
  certificates: [cert({}), cert({ source: 'endpoint', path: undefined, endpoint: '10.0.0.21:6443' })],
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

describe('several clusters on the command line', () => {
  let dir: string;
  /** An inventory of `workers` workers (plus one control-plane node) on loopback addresses nothing serves. */
  const inventory = (cluster: string, net: number, workers = 2) =>
    [
      `cluster: ${cluster}`,
      'ssh: { user: capv, knownHostsFile: known_hosts }',
      'os: ubuntu',
      `controlPlane: [{ name: ${cluster}-cp-1, host: 127.77.${net}.21 }]`,
      `workers: [${Array.from({ length: workers }, (_, i) => `{ name: ${cluster}-md-${i + 1}, host: 127.77.${net}.${31 + i} }`).join(', ')}]`,
      '',
    ].join('\n');

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'rc-multi-'));
    for (const [name, net] of [['site-a', 1], ['site-b', 2]] as const) {
      mkdirSync(join(dir, 'sites', name), { recursive: true });
      writeFileSync(join(dir, 'sites', name, 'rotate-certs.yaml'), inventory(name, net));
    }
    // eksctl's folder, no inventory saved yet; and a folder that is no cluster.
    mkdirSync(join(dir, 'sites', 'site-c'));
    writeFileSync(join(dir, 'sites', 'site-c', 'site-c-eks-a-cluster.yaml'), 'kind: Cluster\n');
    mkdirSync(join(dir, 'sites', 'logs'));
    writeFileSync(join(dir, 'other.yaml'), inventory('other', 3));
    writeFileSync(join(dir, 'broken.yaml'), 'cluster: broken\ncontrolPlane: []\n');
    writeFileSync(join(dir, 'same-name.yaml'), inventory('site-a', 4));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** `check` with a connector whose sessions answer at once with an empty read, counting them. */
  async function run(args: string[], delayMs = 0) {
    let out = '';
    let err = '';
    const io: CliIo = { out: (t) => void (out += t), err: (t) => void (err += t), color: false, env: {}, cwd: dir };
    const connected: string[] = [];
    let open = 0;
    let maxOpen = 0;
    const connector: Connector = {
      connect: async (node) => {
        connected.push(node.name);
        maxOpen = Math.max(maxOpen, ++open);
        await new Promise((r) => setTimeout(r, delayMs));
        return {
          node,
          exec: async () => ({ code: 0, stdout: '@@done\n', stderr: '' }),
          close: async () => void open--,
        };
      },
    };
    const code = await runCli(['check', ...args], io, { connector });
    return { code, out, err, connected, maxOpen };
  }

  it('--dry-run prints every cluster named by --inventory, --cluster and --clusters-dir; a folder without an inventory is named (64)', async () => {
    const r = await run(['-i', 'other.yaml', '--clusters-dir', 'sites', '--dry-run', '--cis']);
    expect(r.connected).toEqual([]);
    expect(r.out.match(/^# ===== cluster \S+/gm)).toEqual(['# ===== cluster other', '# ===== cluster site-a', '# ===== cluster site-b']);
    expect(r.out).toContain('## site-b-md-2 (worker, ubuntu)');
    expect(r.out).toContain('rc_cis_path'); // --cis scripts too
    expect(r.err).toBe(`rotate-certs: cluster site-c not checked: no inventory ${join(dir, 'sites', 'site-c', 'rotate-certs.yaml')} yet: run rotate-certs --cluster site-c in ${join(dir, 'sites')} once and save the inventory it builds (docs/eksa-folder.md)\n`);
    expect(r.code).toBe(64);
    const badName = await run(['-c', 'site-a', 'sites/site-a', '--dry-run']);
    expect(badName.err).toBe('rotate-certs: --cluster "sites/site-a" is not a cluster name (a DNS label)\n');
    expect(badName.code).toBe(64);
  });

  it('one --concurrency budget for all clusters together, and the highest exit code', async () => {
    const r = await run(['--inventory', 'other.yaml', 'sites/site-a/rotate-certs.yaml', 'sites/site-b/rotate-certs.yaml', '-o', 'json', '--concurrency', '3'], 20);
    // Three clusters of three nodes: nine sessions, never more than three open at once.
    expect(r.connected.sort()).toEqual(['other', 'site-a', 'site-b'].flatMap((c) => [`${c}-cp-1`, `${c}-md-1`, `${c}-md-2`]).sort());
    expect(r.maxOpen).toBe(3);
    const parsed = JSON.parse(r.out) as MultiCheckReport;
    expect(parsed.clusters.map((c) => c.cluster)).toEqual(['other', 'site-a', 'site-b']);
    // Nothing serves :2379 or :6443 (stacked etcd) on those loopback addresses: endpoint errors, exit 3.
    for (const c of parsed.clusters) expect((c as CheckReport).errors.map((e) => e.message)).toEqual([expect.stringMatching(/^endpoint 127\.77\.\d\.21:2379: /), expect.stringMatching(/^endpoint 127\.77\.\d\.21:6443: /)]);
    expect(r.code).toBe(3);
  });

  it('an inventory that does not load is one line on stderr and a not-checked entry; the others are checked', async () => {
    const r = await run(['-i', 'broken.yaml', '-c', 'nosuch', '--clusters-dir', 'sites', '-o', 'prometheus']);
    expect(r.err.trim().split('\n')).toEqual([
      expect.stringMatching(/^rotate-certs: cluster broken\.yaml not checked: .*broken\.yaml:2: controlPlane: /),
      `rotate-certs: cluster nosuch not checked: cannot read inventory ${join(dir, 'nosuch', 'rotate-certs.yaml')}: no such file`,
      expect.stringMatching(/^rotate-certs: cluster site-c not checked: no inventory /),
    ]);
    const errors = parsePrometheus(r.out).filter((s) => s.name === 'x509_read_errors');
    expect(errors.map((s) => [s.labels.cluster, s.value])).toEqual([
      ['broken.yaml', 1],
      ['nosuch', 1],
      ['site-a', 2], // :2379 and :6443 refused
      ['site-b', 2],
      ['site-c', 1],
    ]);
    expect(r.connected.filter((n) => n.startsWith('site-a') || n.startsWith('site-b'))).toHaveLength(6);
    expect(r.code).toBe(3);
  });

  it.each([
    [['-i', 'other.yaml', 'same-name.yaml', '--clusters-dir', 'sites'], /cluster site-a is named twice \(same-name\.yaml and site-a\): check each cluster once/],
    [['-i', 'other.yaml', 'other.yaml'], /cluster other is named twice/],
    [['--clusters-dir', 'nosuch'], /cannot read --clusters-dir nosuch: no such folder/],
    [['--clusters-dir', 'other.yaml'], /--clusters-dir other.yaml is not a folder/],
    [['--clusters-dir', 'sites/logs'], /--clusters-dir sites\/logs holds no cluster folder/],
  ])('%j is a usage error (64), nothing contacted', async (args, message) => {
    const r = await run(args);
    expect(r.code).toBe(64);
    expect(r.connected).toEqual([]);
    expect(r.err).toMatch(message);
    expect(r.err.trim().split('\n')).toHaveLength(1);
  });

  it('one --inventory or --cluster keeps the single-cluster output', async () => {
    const missing = await run(['-c', 'other', '-o', 'json']);
    expect(missing.err).toBe(`rotate-certs: cannot read inventory ${join(dir, 'other', 'rotate-certs.yaml')}: no such file\n`);
    expect(missing.code).toBe(64); // one cluster: a bad inventory stays a usage error, as before
    const single = await run(['-i', 'other.yaml', '-o', 'json']);
    expect(Object.keys(JSON.parse(single.out) as object)).toEqual(['cluster', 'checkedAt', 'warnDays', 'certificates', 'errors']);
  });
});
