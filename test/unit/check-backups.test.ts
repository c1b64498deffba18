/**
 * `check` reports rotate-certs' backups per node (runs, oldest) in every output format, read by the
 * same root script as the certificates.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { planCheck, runCheck, type CheckReport } from '../../src/check/run.js';
import { renderJson, renderMultiCheck, renderPrometheus, renderTable } from '../../src/report/check-output.js';
import { loadCheckRunbook } from '../../src/runbook/check-sources.js';
import { parsePrometheus } from '../prometheus.js';
import { certEntry } from './cert-entry.js';
import { localConnector, localInventory, localNode, localProfiles } from './local-node.js';

const report: CheckReport = {
  cluster: 'lab',
  checkedAt: '2026-11-20T12:00:00.000Z',
  warnDays: 30,
  certificates: [certEntry({ node: 'lab-cp-1' }), certEntry({ node: 'lab-md-1', role: 'worker', path: '/var/lib/kubelet/pki/kubelet-client-current.pem' })],
  errors: [],
  backups: [
    { node: 'lab-cp-1', runs: 2, paths: 3, sizeKiB: 48, oldestRun: '20261101T000000Z', oldest: '2026-11-01T00:00:00.000Z' },
    { node: 'lab-md-1', runs: 0, paths: 0, sizeKiB: 0 },
  ],
};

describe('check output: backups per node', () => {
  it('the table says under each node how many runs left backups there and how old the oldest is', () => {
    const text = renderTable(report);
    expect(text).toMatch(/lab-cp-1 \(control-plane\)\n.*\n.*apiserver\.crt.*\nBackups: 2 runs \(3 paths, 48 KiB\), the oldest run 20261101T000000Z, 19 days ago\n/);
    expect(text).toMatch(/lab-md-1 \(worker\)\n.*\n.*kubelet-client-current\.pem.*\nBackups: none\n/);
    // Without a listing (an older report, or no node read), no line.
    expect(renderTable({ ...report, backups: undefined })).not.toContain('Backups:');
  });

  it('JSON carries them as "backups", one entry per node read', () => {
    const parsed = JSON.parse(renderJson(report)) as CheckReport;
    expect(Object.keys(parsed)).toEqual(['cluster', 'checkedAt', 'warnDays', 'certificates', 'errors', 'backups']);
    expect(parsed.backups).toEqual(report.backups);
  });

  it('Prometheus: rotate_certs_backups per node, and the oldest run\'s start where there is one', () => {
    const samples = parsePrometheus(renderPrometheus(report));
    expect(samples.filter((s) => s.name === 'rotate_certs_backups').map((s) => [s.labels, s.value])).toEqual([
      [{ cluster: 'lab', node: 'lab-cp-1' }, 2],
      [{ cluster: 'lab', node: 'lab-md-1' }, 0],
    ]);
    expect(samples.filter((s) => s.name === 'rotate_certs_backup_oldest_timestamp_seconds').map((s) => [s.labels, s.value])).toEqual([[{ cluster: 'lab', node: 'lab-cp-1' }, Date.parse('2026-11-01T00:00:00Z') / 1000]]);
    expect(renderPrometheus({ ...report, backups: undefined })).not.toContain('rotate_certs_backup');
  });

  it('several clusters: the backup series once, each sample with its cluster, after x509_read_errors', () => {
    const other: CheckReport = { ...report, cluster: 'site-b', backups: [{ node: 'b-cp-1', runs: 5, paths: 10, sizeKiB: 100, oldestRun: '20260101T000000Z', oldest: '2026-01-01T00:00:00.000Z' }] };
    const text = renderMultiCheck({ clusters: [{ cluster: 'edge', inventory: '/x.yaml', error: 'no such file' }, report, other] }, 'prometheus', false);
    const samples = parsePrometheus(text);
    expect(samples.filter((s) => s.name === 'rotate_certs_backups').map((s) => [s.labels.cluster, s.labels.node, s.value])).toEqual([
      ['lab', 'lab-cp-1', 2],
      ['lab', 'lab-md-1', 0],
      ['site-b', 'b-cp-1', 5],
    ]);
    const names = [...new Set(samples.map((s) => s.name))];
    expect(names.indexOf('rotate_certs_backups')).toBe(names.indexOf('x509_read_errors') + 1);
  });
});

describe('check reads the backups in its one script per node', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rc-check-backups-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('each node read gets its count and oldest run; a node that cannot be read gets none', async () => {
    const root = join(dir, 'node');
    const profiles = localProfiles(dir, { ubuntu: root });
    mkdirSync(join(root, 'var/lib/kubelet/pki.rotate-certs-20261101T000000Z'), { recursive: true, mode: 0o700 });
    mkdirSync(join(root, 'var/lib/kubelet/pki.rotate-certs-20261110T000000Z'), { recursive: true, mode: 0o700 });
    mkdirSync(join(root, 'etc/kubernetes'), { recursive: true });
    writeFileSync(join(root, 'etc/kubernetes/kubelet.conf.rotate-certs-20261110T000000Z'), 'x', { mode: 0o600 });
    const inv = localInventory(join(dir, 'inv.yaml'), [localNode('lab-md-1', 'worker', 'ubuntu'), localNode('lab-md-2', 'worker', 'ubuntu')]);
    const connector = localConnector(new Set(['lab-md-2']));
    const r = await runCheck(inv, planCheck(inv, profiles, loadCheckRunbook()), { connector, clock: { now: () => new Date('2026-11-20T00:00:00Z') }, concurrency: 2, warnDays: 30 });
    expect(connector.scripts).toHaveLength(1);
    expect(r.backups).toEqual([{ node: 'lab-md-1', runs: 2, paths: 3, sizeKiB: expect.any(Number), oldestRun: '20261101T000000Z', oldest: '2026-11-01T00:00:00.000Z' }]);
    // The missing kubelet certificate is still reported: the listing did not replace the read.
    expect(r.errors.map((e) => e.node)).toEqual(['lab-md-1', 'lab-md-2']);
  });
});
