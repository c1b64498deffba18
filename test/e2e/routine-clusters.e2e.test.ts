/**
 * A due run over a folder of clusters, as a timer runs it (no terminal, --yes): two emulated
 * clusters (one stacked control plane each, leaves ending in 2 days), a workload cluster whose EKS
 * Anywhere spec names the other as its management cluster. The workload sorts first by name; the
 * management cluster is still renewed first, then the workload, and the textfile reports both.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { startLab, type Lab } from '../lab/lab.js';
import { parsePrometheus } from '../prometheus.js';
import { cert, cli, pathsOf } from './rotation-state.js';

/** The lab's inventory as DIR/NAME/rotate-certs.yaml of cluster NAME (its key and known_hosts by absolute path). */
function clusterFolder(dir: string, name: string, lab: Lab): void {
  const inv = parse(readFileSync(lab.inventoryPath, 'utf8')) as { cluster: string; ssh: Record<string, unknown> };
  inv.cluster = name;
  inv.ssh = { ...inv.ssh, identityFile: lab.identityFile, knownHostsFile: lab.knownHostsFile };
  mkdirSync(join(dir, name));
  writeFileSync(join(dir, name, 'rotate-certs.yaml'), stringify(inv));
}

describe('rotate --due-within --clusters-dir: a management cluster before its workload cluster', () => {
  let mgmt: Lab;
  let work: Lab;
  let dir: string;
  beforeAll(async () => {
    [mgmt, work] = await Promise.all([startLab({ etcd: 0, controlPlane: 1, workers: 0, certs: 'expiring' }), startLab({ etcd: 0, controlPlane: 1, workers: 0, certs: 'expiring' })]);
    dir = mkdtempSync(join(tmpdir(), 'rc-routine-clusters-'));
    clusterFolder(dir, 'z-mgmt', mgmt);
    clusterFolder(dir, 'a-work', work);
    // What eksctl anywhere leaves beside a workload cluster: its spec names its management cluster.
    writeFileSync(
      join(dir, 'a-work', 'a-work-eks-a-cluster.yaml'),
      stringify({ apiVersion: 'anywhere.eks.amazonaws.com/v1alpha1', kind: 'Cluster', metadata: { name: 'a-work' }, spec: { managementCluster: { name: 'z-mgmt' } } }),
    );
  });
  afterAll(async () => {
    await Promise.all([mgmt?.down(), work?.down()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('renews z-mgmt, then a-work, and reports both', async () => {
    const file = (lab: Lab) => `${pathsOf(lab.nodes[0]!).kubePki}/apiserver.crt`;
    const before = { mgmt: await cert(mgmt.nodes[0]!, file(mgmt)), work: await cert(work.nodes[0]!, file(work)) };
    const state = join(dir, 'state');
    const textfile = join(dir, 'rotate-certs.prom');
    const r = await cli(['rotate', '--due-within', '30d', '--clusters-dir', dir, '--yes', '--state-dir', state, '--textfile', textfile]);
    expect(r.err).not.toMatch(/FAILED/);
    expect(r.code, r.out + r.err).toBe(0);
    const lines = r.out.split('\n').filter((l) => /^(z-mgmt|a-work): /.test(l));
    expect(lines.map((l) => l.split(':')[0])).toEqual(['z-mgmt', 'a-work']);
    for (const l of lines) expect(l).toMatch(/: rotated: \d+ certificates renewed/);
    // In that order: the workload's run began after the management cluster's had finished.
    const events = (cluster: string) => readFileSync(join(state, cluster, 'journal.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { t: string; event: string });
    const mgmtDone = Date.parse(events('z-mgmt').find((e) => e.event === 'run-done')!.t);
    const workStart = Date.parse(events('a-work').find((e) => e.event === 'run-start')!.t);
    expect(workStart).toBeGreaterThan(mgmtDone);
    expect((await cert(mgmt.nodes[0]!, file(mgmt))).serial).not.toBe(before.mgmt.serial);
    expect((await cert(work.nodes[0]!, file(work))).serial).not.toBe(before.work.serial);
    const outcomes = parsePrometheus(readFileSync(textfile, 'utf8')).filter((s) => s.name === 'rotate_certs_run_outcome' && s.value === 1);
    expect(Object.fromEntries(outcomes.map((s) => [s.labels.cluster, s.labels.outcome]))).toEqual({ 'z-mgmt': 'rotated', 'a-work': 'rotated' });
  });
});
