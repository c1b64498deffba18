/**
 * Renewal as a routine, the pure parts: --due-within's durations, the due decision over a check
 * report with a fixed clock, why an unattended run refuses, the order of several clusters, and the
 * outcome as Prometheus text (parsed strictly) and JSON.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JournalEntry } from '../../src/state/journal.js';
import type { CertificateEntry } from '../../src/check/run.js';
import { scopeCandidates } from '../../src/rotation/plan.js';
import { requireKnownOs } from '../../src/profiles/detect-os.js';
import { parseInventory } from '../../src/inventory/load.js';
import { renderRoutineJson, renderRoutinePrometheus, summaryLine, type ClusterRun, type RoutineReport } from '../../src/routine/outcome.js';
import { exitCodeOf, skipReason } from '../../src/routine/due-run.js';
import { caWarnings, decideDue, nothingDueReason, renewedCount, renewingPhase, type DueOptions } from '../../src/routine/due.js';
import { durationDays, parseDuration } from '../../src/routine/duration.js';
import { managementClusterOf, managementFirst } from '../../src/routine/order.js';
import { apiNotReady, recoveryRefused, unfinishedRun, unreadNodes } from '../../src/routine/unattended.js';
import { oneLine } from '../../src/util/wording.js';
import { UsageError } from '../../src/util/errors.js';
import { groupByMessage } from '../../src/util/wording.js';
import { parsePrometheus } from '../prometheus.js';
import { certEntry } from './cert-entry.js';

const DAY = 86_400_000;
const NOW = new Date('2026-06-01T00:00:00.000Z');
const inDays = (d: number) => new Date(NOW.getTime() + d * DAY).toISOString();
const everywhere: DueOptions['inScope'] = () => true;
const within = (days: number, inScope = everywhere): DueOptions => ({ now: NOW, windowMs: days * DAY, inScope });

describe('--due-within durations', () => {
  const parse = parseDuration('--due-within');

  it('takes days and hours', () => {
    expect(parse('30d')).toEqual({ ms: 30 * DAY, text: '30d' });
    expect(parse('12h')).toEqual({ ms: 12 * 3_600_000, text: '12h' });
    expect(durationDays(parse('12h'))).toBe(1);
    expect(durationDays(parse('30d'))).toBe(30);
  });

  it.each([
    ['30', '--due-within expects a number of days or hours, such as 30d or 12h, got "30"'],
    ['30m', '--due-within expects a number of days or hours, such as 30d or 12h, got "30m"'],
    ['1w', '--due-within expects a number of days or hours, such as 30d or 12h, got "1w"'],
    ['-1d', '--due-within expects a number of days or hours, such as 30d or 12h, got "-1d"'],
    ['30 d', '--due-within expects a number of days or hours, such as 30d or 12h, got "30 d"'],
    ['0h', '--due-within must be between 1h and 3650d, got 0h'],
    ['3651d', '--due-within must be between 1h and 3650d, got 3651d'],
  ])('refuses %j with one line naming the flag', (value, message) => {
    expect(() => parse(value)).toThrow(new UsageError(message));
  });
});

describe('the due decision', () => {
  const etcd = (over: Partial<CertificateEntry>) => certEntry({ node: 'lab-etcd-1', role: 'etcd', path: '/etc/etcd/pki/server.crt', ...over });

  it('renews etcd and control-plane leaves, their kubeconfigs and the kubelets of Nodes; never CAs, endpoints or an etcd machine kubelet', () => {
    expect(renewingPhase(etcd({}))).toBe('etcd');
    expect(renewingPhase(certEntry({}))).toBe('control-plane');
    expect(renewingPhase(certEntry({ path: '/etc/kubernetes/pki/etcd/server.crt' }))).toBe('control-plane'); // stacked etcd
    expect(renewingPhase(certEntry({ source: 'kubeconfig', path: '/etc/kubernetes/admin.conf' }))).toBe('control-plane');
    expect(renewingPhase(certEntry({ source: 'kubeconfig', path: '/etc/kubernetes/kubelet.conf' }))).toBe('kubelet');
    expect(renewingPhase(certEntry({ node: 'lab-md-1', role: 'worker', path: '/var/lib/kubelet/pki/kubelet-client-current.pem' }))).toBe('kubelet');
    expect(renewingPhase(certEntry({ node: 'lab-md-1', role: 'worker', path: '/var/lib/kubelet/pki/kubelet.crt[1]', kind: 'kubelet-serving-ca', isCA: true }))).toBe('kubelet');
    expect(renewingPhase(certEntry({ path: '/etc/kubernetes/pki/ca.crt', kind: 'ca', isCA: true }))).toBeUndefined();
    expect(renewingPhase(certEntry({ source: 'endpoint', path: undefined, endpoint: '10.0.0.21:6443' }))).toBeUndefined();
    expect(renewingPhase(etcd({ path: '/var/lib/kubelet/pki/kubelet-client-current.pem' }))).toBeUndefined();
  });

  it('nothing inside the window: nothing due, and the first to fall due with its date', () => {
    const report = {
      certificates: [
        certEntry({ notAfter: inDays(100) }),
        etcd({ notAfter: inDays(45) }),
        // Sooner, but never renewed here: a CA, and what an endpoint serves.
        certEntry({ path: '/etc/kubernetes/pki/front-proxy-ca.crt', kind: 'ca', isCA: true, notAfter: inDays(40) }),
        certEntry({ source: 'endpoint', path: undefined, endpoint: '10.0.0.21:6443', notAfter: inDays(5) }),
      ],
    };
    const d = decideDue(report, within(30));
    expect(d.due).toEqual([]);
    expect(d.next).toMatchObject({ node: 'lab-etcd-1', path: '/etc/etcd/pki/server.crt', notAfter: inDays(45), dueAt: inDays(15) });
    expect(d.cas).toEqual([]);
    expect(nothingDueReason('30d', d.next)).toBe(
      'nothing expires within 30d; the first certificate to fall due is /etc/etcd/pki/server.crt on lab-etcd-1 (expires 2026-07-16 00:00 UTC), due from 2026-06-16 00:00 UTC',
    );
    // The same report with a longer window, or a day closer to its end, is due.
    expect(decideDue(report, within(45)).due.map((c) => c.node)).toEqual(['lab-etcd-1']);
    expect(decideDue(report, { ...within(30), now: new Date(NOW.getTime() + 16 * DAY) }).due).toHaveLength(1);
  });

  it('a CA inside the window is a warning, not a reason to rotate', () => {
    const ca = certEntry({ path: '/etc/kubernetes/pki/ca.crt', kind: 'ca', isCA: true, notAfter: inDays(20) });
    const d = decideDue({ certificates: [certEntry({ notAfter: inDays(300) }), ca, certEntry({ node: 'lab-cp-2', path: '/etc/kubernetes/pki/ca.crt', kind: 'ca', isCA: true, notAfter: inDays(20) })] }, within(30));
    expect(d.due).toEqual([]);
    expect(d.cas).toHaveLength(2);
    expect(groupByMessage(caWarnings(d.cas, '30d'))).toEqual([
      'lab-cp-1 and lab-cp-2: CA /etc/kubernetes/pki/ca.crt expires 2026-06-21 00:00 UTC, within 30d: rotate-certs does not renew CAs and a due run does not rotate for one; plan a CA rotation (docs/routine.md)',
    ]);
  });

  it('expired and not-yet-valid certificates are due; soonest first', () => {
    const d = decideDue(
      {
        certificates: [
          certEntry({ notAfter: inDays(10) }),
          certEntry({ node: 'lab-md-1', role: 'worker', path: '/var/lib/kubelet/pki/kubelet-client-current.pem', notAfter: inDays(-3), status: 'expired' }),
          etcd({ notAfter: inDays(400), status: 'not-yet-valid' }),
          certEntry({ path: '/etc/kubernetes/pki/apiserver-kubelet-client.crt', notAfter: inDays(200) }),
        ],
      },
      within(30),
    );
    expect(d.due.map((c) => `${c.node} ${c.path}`)).toEqual(['lab-md-1 /var/lib/kubelet/pki/kubelet-client-current.pem', 'lab-cp-1 /etc/kubernetes/pki/apiserver.crt', 'lab-etcd-1 /etc/etcd/pki/server.crt']);
    expect(d.next).toBeUndefined();
  });

  it("only what the run's scope renews counts (--only, --nodes), as a plan of that scope would go", () => {
    const inv = requireKnownOs(
      parseInventory(
        [
          'cluster: lab',
          'ssh: { user: capv }',
          'os: ubuntu',
          'etcd: [{ name: lab-etcd-1, host: 10.0.0.11 }]',
          'controlPlane: [{ name: lab-cp-1, host: 10.0.0.21 }]',
          'workers: [{ name: lab-md-1, host: 10.0.0.31 }]',
          '',
        ].join('\n'),
        '/tmp/lab/inventory.yaml',
      ),
      'test',
    );
    const report = {
      certificates: [
        etcd({ notAfter: inDays(5) }),
        certEntry({ notAfter: inDays(200) }),
        certEntry({ node: 'lab-md-1', role: 'worker', path: '/var/lib/kubelet/pki/kubelet-client-current.pem', notAfter: inDays(6) }),
      ],
    };
    const due = (scope: Parameters<typeof scopeCandidates>[1]) => decideDue(report, within(30, scopeCandidates(inv, scope))).due.map((c) => c.node);
    expect(due({})).toEqual(['lab-etcd-1', 'lab-md-1']);
    expect(due({ only: 'control-plane' })).toEqual([]);
    expect(due({ only: 'etcd' })).toEqual(['lab-etcd-1']);
    expect(due({ only: 'workers' })).toEqual(['lab-md-1']);
    expect(due({ nodes: ['lab-cp-1', 'lab-md-1'] })).toEqual(['lab-md-1']);
  });

  it('counts the renewed certificates: changed serials of what a rotation renews', () => {
    const before = { certificates: [certEntry({ serial: 'a1' }), etcd({ serial: 'b1' }), certEntry({ path: '/etc/kubernetes/pki/ca.crt', kind: 'ca', serial: 'c1' })] };
    const after = { certificates: [certEntry({ serial: 'a2' }), etcd({ serial: 'b1' }), certEntry({ path: '/etc/kubernetes/pki/ca.crt', kind: 'ca', serial: 'c2' })] };
    expect(renewedCount(before, after)).toBe(1);
  });
});

describe('unattended: why a due run does not start', () => {
  const entry = (runId: string, event: JournalEntry['event'], over: Partial<JournalEntry> = {}): JournalEntry => ({ t: '2026-06-01T00:00:00Z', runId, event, ...over });

  it('the last run of the cluster did not finish: stopped, failed or cut off', () => {
    expect(unfinishedRun([])).toBeUndefined();
    expect(unfinishedRun([entry('r1', 'run-start'), entry('r1', 'run-done')])).toBeUndefined();
    const stopped = [entry('r1', 'run-start'), entry('r1', 'step-done', { node: 'lab-etcd-1', step: 'backup' }), entry('r1', 'run-stopped', { node: 'lab-etcd-2', phase: 'etcd' })];
    expect(unfinishedRun(stopped)).toBe('the last run of this cluster, r1, stopped before lab-etcd-2 and did not finish: look at its report, then continue it by hand with rotate-certs rotate --resume');
    expect(unfinishedRun([entry('r2', 'run-start'), entry('r2', 'step-failed', { node: 'lab-cp-1', step: 'renew' }), entry('r2', 'restore-done', { node: 'lab-cp-1' })])).toMatch(/, r2, failed at lab-cp-1 renew and did not finish/);
    expect(unfinishedRun([entry('r3', 'run-start'), entry('r3', 'step-start', { node: 'lab-cp-1', step: 'renew' })])).toMatch(/, r3, was cut off and/);
    // A later run that finished supersedes an abandoned one; a resumed run that finished is finished.
    expect(unfinishedRun([...stopped, entry('r4', 'run-start'), entry('r4', 'run-done')])).toBeUndefined();
    expect(unfinishedRun([...stopped, entry('r1', 'run-resume'), entry('r1', 'run-done')])).toBeUndefined();
  });

  it('nodes that did not answer (endpoints aside), an etcd recovery not asked for, an API not ready: one line each', () => {
    expect(unreadNodes([{ node: 'lab-cp-1', message: 'endpoint 10.0.0.21:6443: connection refused' }])).toBeUndefined();
    expect(
      unreadNodes([
        { node: 'lab-md-1', message: 'connection refused by 10.0.0.31:22 (is sshd running?)' },
        { node: 'lab-md-2', message: 'connection refused by 10.0.0.32:22 (is sshd running?)' },
        { node: 'lab-cp-1', message: 'endpoint 10.0.0.21:6443: connection refused' },
      ]),
    ).toBe('2 nodes did not answer, so what is due is not known: lab-md-1: connection refused by 10.0.0.31:22 (is sshd running?); lab-md-2: connection refused by 10.0.0.32:22 (is sshd running?)');
    expect(recoveryRefused([], false)).toBeUndefined();
    expect(recoveryRefused(['lab-etcd-1'], true)).toBeUndefined();
    expect(recoveryRefused(['lab-etcd-1', 'lab-etcd-2'], false)).toBe(
      'etcd members lab-etcd-1 and lab-etcd-2 have expired certificates: an etcd recovery is never started unattended; run it by hand, or add --allow-recovery',
    );
    expect(apiNotReady([{ node: 'lab-cp-1' }])).toBeUndefined();
    expect(apiNotReady([{ node: 'lab-cp-1' }, { node: 'lab-cp-2', problem: '10.0.0.22:6443/readyz: answered 500: [-]etcd failed' }])).toBe('the API is not ready: lab-cp-2: 10.0.0.22:6443/readyz: answered 500: [-]etcd failed');
  });

  it("pre-flight's refusal (etcd not healthy, say) becomes one line", () => {
    const message = 'pre-flight failed, nothing was changed:\n  - etcd is not healthy (checked from lab-etcd-1): 10.0.0.12:2379 is unhealthy\n  - lab-md-1: no room to back up /var/lib/kubelet/pki';
    expect(oneLine(message)).toBe('pre-flight failed: etcd is not healthy (checked from lab-etcd-1): 10.0.0.12:2379 is unhealthy; lab-md-1: no room to back up /var/lib/kubelet/pki');
    expect(oneLine('another rotate-certs run holds the lock for cluster lab (pid 1)')).toBe('another rotate-certs run holds the lock for cluster lab (pid 1)');
  });
});

describe('several clusters', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'rc-routine-order-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** DIR/NAME/rotate-certs.yaml, with eksctl's spec beside it when `spec` is given. */
  const folder = (name: string, spec?: string, kubeconfig?: string) => {
    mkdirSync(join(dir, name), { recursive: true });
    if (spec !== undefined) writeFileSync(join(dir, name, `${name}-eks-a-cluster.yaml`), spec);
    return { cluster: name, file: join(dir, name, 'rotate-certs.yaml'), ...(kubeconfig ? { kubeconfig } : {}) };
  };
  const clusterSpec = (name: string, management?: string) =>
    [
      'apiVersion: anywhere.eks.amazonaws.com/v1alpha1',
      'kind: Cluster',
      `metadata: { name: ${name} }`,
      `spec: { kubernetesVersion: "1.28"${management ? `, managementCluster: { name: ${management} }` : ''} }`,
      '---',
      'kind: VSphereDatacenterConfig',
      `metadata: { name: ${name} }`,
      '',
    ].join('\n');

  it("a workload cluster's management cluster: from its EKS Anywhere spec, else from the inventory's kubeconfig", () => {
    expect(managementClusterOf(folder('edge-1', clusterSpec('edge-1', 'mgmt')))).toBe('mgmt');
    expect(managementClusterOf(folder('mgmt', clusterSpec('mgmt', 'mgmt')))).toBeUndefined();
    expect(managementClusterOf(folder('solo', clusterSpec('solo')))).toBeUndefined();
    // No spec: the kubeconfig eksctl wrote for another cluster, as the guided run's inventory names it.
    expect(managementClusterOf(folder('edge-2', undefined, join(dir, 'mgmt', 'mgmt-eks-a-cluster.kubeconfig')))).toBe('mgmt');
    expect(managementClusterOf(folder('edge-3', undefined, join(dir, 'edge-3', 'edge-3-eks-a-cluster.kubeconfig')))).toBeUndefined();
    expect(managementClusterOf(folder('edge-4', undefined, join(dir, 'admin.kubeconfig')))).toBeUndefined();
    // The spec wins over the kubeconfig's name; an unreadable spec leaves it to the kubeconfig.
    expect(managementClusterOf(folder('edge-5', clusterSpec('edge-5'), join(dir, 'mgmt', 'mgmt-eks-a-cluster.kubeconfig')))).toBeUndefined();
    expect(managementClusterOf(folder('edge-6', 'kind: [unclosed', join(dir, 'mgmt', 'mgmt-eks-a-cluster.kubeconfig')))).toBe('mgmt');
  });

  it('management clusters go before their workload clusters; otherwise the order given', () => {
    const mgmt: Record<string, string> = { 'a-edge': 'z-mgmt', 'b-edge': 'z-mgmt', 'c-edge': 'y-other', 'y-other': 'z-mgmt' };
    const order = (names: string[]) => managementFirst(names, (n) => n, (n) => mgmt[n]);
    expect(order(['a-edge', 'b-edge', 'c-edge', 'solo', 'y-other', 'z-mgmt'])).toEqual(['z-mgmt', 'a-edge', 'b-edge', 'y-other', 'c-edge', 'solo']);
    // A management cluster outside the run puts no constraint.
    expect(order(['c-edge', 'a-edge'])).toEqual(['c-edge', 'a-edge']);
    // A cycle (a misread spec) does not loop: each cluster once.
    expect(managementFirst(['p', 'q'], (n) => n, (n) => (n === 'p' ? 'q' : 'p'))).toEqual(['q', 'p']);
  });

  const run = (cluster: string, outcome: ClusterRun['outcome'], over: Partial<ClusterRun> = {}): ClusterRun => ({
    cluster,
    outcome,
    exitCode: outcome === 'refused' || outcome === 'skipped' ? 4 : outcome === 'failed' ? 1 : 0,
    reason: 'r',
    startedAt: '2026-06-01T00:00:00.000Z',
    endedAt: '2026-06-01T00:01:00.000Z',
    durationSeconds: 60,
    certificatesRenewed: 0,
    ...over,
  });

  it('stops at the first failed rotation; a workload cluster waits for its management cluster', () => {
    expect(skipReason({ label: 'b' }, [run('a', 'refused')], {})).toBeUndefined();
    expect(skipReason({ label: 'b' }, [run('a', 'failed')], {})).toBeUndefined(); // failed before it started: its inventory, say
    expect(skipReason({ label: 'b' }, [run('a', 'failed', { runId: 'r1' })], {})).toBe('not tried: the rotation of a failed or stopped before it, and a due run stops at the first failure');
    expect(skipReason({ label: 'edge', management: 'mgmt' }, [run('mgmt', 'refused')], {})).toBe("not tried: its management cluster mgmt was refused, and it holds this cluster's secrets");
    expect(skipReason({ label: 'edge', management: 'mgmt' }, [run('mgmt', 'nothing_due')], {})).toBeUndefined();
    expect(skipReason({ label: 'b' }, [], { stopRequested: () => true })).toBe('not tried: stopped by Ctrl-C');
    expect(exitCodeOf([run('a', 'rotated'), run('b', 'nothing_due')])).toBe(0);
    expect(exitCodeOf([run('a', 'rotated'), run('b', 'skipped')])).toBe(4);
    expect(exitCodeOf([run('a', 'refused'), run('b', 'failed', { exitCode: 2 }), run('c', 'failed', { exitCode: 1 })])).toBe(2);
  });
});

describe('the outcome for monitors', () => {
  const report: RoutineReport = {
    dueWithin: '30d',
    clusters: [
      {
        cluster: 'mgmt',
        outcome: 'rotated',
        exitCode: 0,
        reason: '16 certificates renewed in run 20260601T000000Z',
        startedAt: '2026-06-01T00:00:00.000Z',
        endedAt: '2026-06-01T00:00:52.250Z',
        durationSeconds: 52.25,
        certificatesRenewed: 16,
        runId: '20260601T000000Z',
        nextExpiry: { node: 'mgmt-cp-1', path: '/etc/kubernetes/pki/apiserver.crt', source: 'file', phase: 'control-plane', notAfter: '2027-06-01T00:00:00.000Z', dueAt: '2027-05-02T00:00:00.000Z' },
      },
      { cluster: 'edge "1"', outcome: 'refused', exitCode: 4, reason: 'the API is not ready', startedAt: '2026-06-01T00:00:52.250Z', endedAt: '2026-06-01T00:00:55.000Z', durationSeconds: 2.75, certificatesRenewed: 0 },
    ],
  };

  it('Prometheus text a strict parser reads: one-hot outcome, end time, duration, renewed, next expiry, per cluster', () => {
    const samples = parsePrometheus(renderRoutinePrometheus(report));
    const of = (name: string) => samples.filter((s) => s.name === name).map((s) => [s.labels, s.value]);
    expect(of('rotate_certs_run_outcome').filter(([, v]) => v === 1)).toEqual([
      [{ cluster: 'mgmt', outcome: 'rotated' }, 1],
      [{ cluster: 'edge "1"', outcome: 'refused' }, 1],
    ]);
    expect(of('rotate_certs_run_outcome')).toHaveLength(10);
    expect(of('rotate_certs_run_end_timestamp_seconds')).toEqual([
      [{ cluster: 'mgmt' }, Date.parse('2026-06-01T00:00:52Z') / 1000],
      [{ cluster: 'edge "1"' }, Date.parse('2026-06-01T00:00:55Z') / 1000],
    ]);
    expect(of('rotate_certs_run_duration_seconds')).toEqual([
      [{ cluster: 'mgmt' }, 52.25],
      [{ cluster: 'edge "1"' }, 2.75],
    ]);
    expect(of('rotate_certs_run_certificates_renewed').map(([, v]) => v)).toEqual([16, 0]);
    expect(of('rotate_certs_run_exit_code').map(([, v]) => v)).toEqual([0, 4]);
    // Known only when the cluster was read.
    expect(of('rotate_certs_run_next_expiry_timestamp_seconds')).toEqual([[{ cluster: 'mgmt' }, Date.parse('2027-06-01T00:00:00Z') / 1000]]);
  });

  it('JSON with the same data, and one line per cluster for people', () => {
    expect(JSON.parse(renderRoutineJson(report))).toEqual(report);
    expect(report.clusters.map(summaryLine)).toEqual(['mgmt: rotated: 16 certificates renewed in run 20260601T000000Z', 'edge "1": refused, nothing changed: the API is not ready']);
  });
});
