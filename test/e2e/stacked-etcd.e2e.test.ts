/**
 * Stacked etcd end to end (clusters without external etcd; bare metal always): every control plane
 * runs a real etcd 3.4 member as a static pod, started and stopped by the lab's kubelet, and its
 * kube-apiserver is ready only while etcd answers it. Rotating such a control plane restarts an
 * etcd member; the quorum is measured from etcd itself, from the admin machine, while the rotation
 * runs. Two labs: Ubuntu (a kubeadm failure on the second node, restored, resumed), and a mixed
 * one (Bottlerocket and Ubuntu) whose every certificate has expired: recovered, then rotated again
 * as a healthy cluster, which proves the quorum kept on Bottlerocket members too. The order,
 * restore and resume rules themselves are unit tests (test/unit/rotation-run.test.ts).
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { startLab, type Lab, type LabNode } from '../lab/lab.js';
import { cli, clusterState, expectScopeRefused, fileState, runningContainers } from './rotation-state.js';
import { cpPaths, etcdHealthyEndpoints, expectStackedRotated, maxDown, readyz, sampleQuorum, STACKED_LEAVES, stackedLeaves } from './stacked-state.js';

const ETCD_LEAVES = STACKED_LEAVES.filter((f) => f.startsWith('etcd/') || f === 'apiserver-etcd-client.crt');

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Stops or starts a node's etcd static pod as the kubelet sees it (its manifest out of, or back in, the folder). */
async function etcdPod(node: LabNode, on: boolean) {
  const p = cpPaths(node);
  const [from, to] = on ? ['/root', p.manifests] : [p.manifests, '/root'];
  await node.exec(`mv ${from}/etcd${p.ext} ${to}/`);
  if (!on) await until(`${node.name}'s etcd container to go`, async () => ((await runningContainers(node)).etcd ? undefined : true));
}

/**
 * A running container named etcd of another pod on each of these nodes (a workload's, on control
 * planes that run them), created an hour from now: newer than every container the kubelet starts
 * during the run, as one scheduled meanwhile would be, so every stacked-etcd-healthy gate (and
 * pre-flight) meets it as the newest etcd container of its node. It has neither the host's network
 * nor its PKI: etcdctl in it fails. The gates must ask the static pod's container instead.
 */
async function plantWorkloadEtcd(lab: Lab, names: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const n of names) out[n] = await lab.leakContainer(n, 'etcd', -3600, { pod: 'etcd-0', namespace: 'default' });
  return out;
}

/** Each planted container still runs, the same one, untouched by the run; then it goes (the end-state checks count containers by name). */
async function expectPlantedUntouchedThenRemove(lab: Lab, planted: Record<string, string>) {
  for (const [name, id] of Object.entries(planted)) {
    const node = lab.node(name);
    const rec = await node.exec(`jq -c '{state, labels}' /var/lib/rotate-certs-lab/containers/${id}.json`);
    expect(rec.code, `${name}: the workload's etcd container ${id} is still there`).toBe(0);
    expect(JSON.parse(rec.stdout), name).toMatchObject({ state: 'CONTAINER_RUNNING', labels: { 'io.kubernetes.pod.name': 'etcd-0', 'io.kubernetes.pod.namespace': 'default' } });
    if (node.os === 'bottlerocket') expect((await node.exec(`cat /var/log/ctr.log 2>/dev/null | grep -c ${id} || true`)).stdout.trim(), `${name}: ctr removed or killed nothing of it`).toBe('0');
    await node.exec(`rm /var/lib/rotate-certs-lab/containers/${id}.json`);
  }
}

/**
 * A routine rotation whose kubeadm fails on the second control plane: that node is restored with
 * every member healthy, --resume finishes, and etcd's quorum, sampled from the admin side, holds
 * throughout with one member and one kube-apiserver down at a time. A newer workload container
 * named etcd runs on every control plane throughout: every etcd health check asks the static pod's.
 */
async function failOnSecondThenResume(lab: Lab, stateDir: string) {
  const planted = await plantWorkloadEtcd(lab, ['lab-cp-1', 'lab-cp-2', 'lab-cp-3']);
  const before = await stackedLeaves(lab);
  const beforeState = await clusterState(lab);
  const since = Date.now();
  const quorum = sampleQuorum(lab);
  const cp2 = lab.node('lab-cp-2');
  await cp2.exec('mkdir -p /etc/rotate-certs-lab && touch /etc/rotate-certs-lab/fail-kubeadm');
  let resumed;
  try {
    const failed = await cli(['rotate', '-i', lab.inventoryPath, '--yes', '--state-dir', stateDir]);
    expect(failed.code, failed.err).toBe(1);
    expect(failed.err).toMatch(/etcd healthy \(checked from lab-cp-1\)/);
    expect(failed.err).toMatch(/lab-cp-1 etcd-health: ok \(3 members started and healthy/);
    expect(failed.out).toMatch(/Rotation FAILED on lab-cp-2, step renew-all: command kubeadmRenewAll exited 1/);
    // Restored, its member back in a healthy cluster before the run stopped.
    expect(failed.err).toMatch(/lab-cp-2 restore-etcd-health: ok \(3 members started and healthy/);
    expect(failed.out).toMatch(/lab-cp-2 was restored from its backup/);
    // Its PKI folder and kubeconfigs as they were (the backups and the folder the restore replaced stay beside them).
    const mine = new RegExp(` ${cpPaths(cp2).kubeDir.replace(/\//g, '\\/')}\\/(pki\\/.*|[^/]+\\.conf)$`);
    const pki = (s: string) => s.split('\n').filter((l) => mine.test(l)).join('\n');
    expect(pki(beforeState['lab-cp-2']!)).toMatch(/\/pki\/etcd\/server\.crt$/m);
    expect(pki(await fileState(cp2))).toBe(pki(beforeState['lab-cp-2']!));
    expect(await fileState(lab.node('lab-cp-3'))).toBe(beforeState['lab-cp-3']);
    expect(await etcdHealthyEndpoints(lab)).toHaveLength(3);
    const resume = /continue with: (rotate-certs apply (\S+) --resume)/.exec(failed.out);
    expect(resume, failed.out).not.toBeNull();

    await cp2.exec('rm /etc/rotate-certs-lab/fail-kubeadm');
    resumed = await cli(['apply', resume![2]!, '--resume', '--state-dir', stateDir]);
  } finally {
    await cp2.exec('rm -f /etc/rotate-certs-lab/fail-kubeadm');
  }
  const samples = await quorum.stop();
  expect(resumed.err).toMatch(/lab-cp-1: control-plane already done in this run, skipped/);
  expect(resumed.code, resumed.err).toBe(0);
  for (const n of ['lab-cp-2', 'lab-cp-3']) expect(resumed.err).toMatch(new RegExp(`${n} etcd-health: ok \\(3 members started and healthy`));
  await expectPlantedUntouchedThenRemove(lab, planted);
  await expectStackedRotated(lab, before, beforeState);
  // Measured from etcd while it ran: never without quorum, and the sampler did see members restart.
  expect(samples.withoutQuorum).toEqual([]);
  expect(samples.samples).toBeGreaterThan(50);
  expect(samples.degraded).toBeGreaterThan(0);
  expect(maxDown(lab, since)).toEqual({ etcd: 1, apiservers: 1 });
}

describe('stacked etcd on Ubuntu: 3 control planes, each a member; 1 worker', () => {
  let lab: Lab;
  let stateDir: string;
  beforeAll(async () => {
    lab = await startLab({ etcd: 0, controlPlane: 3, workers: 1 });
    stateDir = join(lab.dir, 'state');
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('the lab: a real etcd member per control plane as a static pod; no quorum, no ready API', async () => {
    const cps = lab.nodes.filter((n) => n.role === 'control-plane');
    const cp1 = cps[0]!;
    // Its container as crictl lists it, and etcdctl inside it with the node's healthcheck-client pair.
    for (const n of cps) expect((await runningContainers(n)).etcd, n.name).toBe(1);
    const list = await cp1.exec(
      'crictl exec "$(crictl ps --name "^etcd$" -q)" etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key member list',
    );
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.match(/, started, lab-cp-\d, /g)).toHaveLength(3);
    expect(await etcdHealthyEndpoints(lab)).toHaveLength(3);
    for (const n of cps) expect((await readyz(n)).status).toBe(200);

    // One member down: a quorum is left, the other kube-apiservers stay ready.
    await etcdPod(cps[1]!, false);
    expect(await etcdHealthyEndpoints(lab)).toHaveLength(2);
    expect((await readyz(cp1)).status).toBe(200);
    expect((await readyz(cps[1]!)).body).toMatch(/\[-\]etcd failed: https:\/\/127\.0\.0\.1:2379: .*ECONNREFUSED/);
    // Two down: no quorum, and no kube-apiserver is ready, though its own member runs.
    await etcdPod(cps[2]!, false);
    const alone = await until('cp-1 to answer not ready', async () => {
      const r = await readyz(cp1);
      return r.status === 500 ? r : undefined;
    });
    expect(alone.body).toMatch(/\[-\]etcd failed: https:\/\/127\.0\.0\.1:2379: \/health answered 503/);
    expect(await etcdHealthyEndpoints(lab, 2)).toEqual([]);

    await etcdPod(cps[1]!, true);
    await etcdPod(cps[2]!, true);
    await until('every member healthy', async () => ((await etcdHealthyEndpoints(lab)).length === 3 ? true : undefined));
    for (const n of cps) await until(`${n.name} ready`, async () => ((await readyz(n)).status === 200 ? true : undefined));
  }, 180_000);

  it('check reports every control plane\'s etcd leaves and what its :2379 serves', async () => {
    const r = await cli(['check', '-i', lab.inventoryPath, '-o', 'json']);
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out) as { certificates: Array<{ node: string; source: string; path?: string; endpoint?: string; subject: string; serial: string; status: string }> };
    for (const n of lab.nodes.filter((n) => n.role === 'control-plane')) {
      const mine = report.certificates.filter((c) => c.node === n.name);
      for (const f of ETCD_LEAVES) {
        const c = mine.find((c) => c.path === `/etc/kubernetes/pki/${f}`);
        expect(c, `${n.name} ${f}`).toMatchObject({ source: 'file', status: 'ok' });
      }
      const served = mine.find((c) => c.source === 'endpoint' && c.endpoint === `${n.host}:2379`);
      expect(served, `${n.name} :2379`).toMatchObject({ status: 'ok', serial: mine.find((c) => c.path === '/etc/kubernetes/pki/etcd/server.crt')!.serial });
    }
  });

  it('a member already down: pre-flight refuses (69) before any member is taken down', async () => {
    const cp3 = lab.node('lab-cp-3');
    await etcdPod(cp3, false);
    try {
      const before = await clusterState(lab);
      const r = await cli(['rotate', '-i', lab.inventoryPath, '--yes', '--state-dir', stateDir]);
      expect(r.code, r.err).toBe(69);
      // Asked inside lab-cp-1's etcd container: the member that is down is named.
      expect(r.err).toMatch(new RegExp(`etcd is not healthy \\(checked from lab-cp-1\\): .*https://${cp3.host.replace(/\./g, '\\.')}:2379 is unhealthy`));
      expect(await clusterState(lab)).toEqual(before);
    } finally {
      await etcdPod(cp3, true);
    }
    await until('every member healthy', async () => ((await etcdHealthyEndpoints(lab)).length === 3 ? true : undefined));
  });

  it('rotate: kubeadm fails on the second node, which is restored with etcd whole; --resume finishes; the quorum holds throughout', () => failOnSecondThenResume(lab, stateDir), 900_000);
});

describe('stacked etcd on a mixed cluster (Bottlerocket and Ubuntu control planes) whose every certificate has expired', () => {
  let lab: Lab;
  let stateDir: string;
  beforeAll(async () => {
    lab = await startLab({
      certs: 'expired',
      nodes: [
        { name: 'lab-cp-1', role: 'control-plane', os: 'bottlerocket' },
        { name: 'lab-cp-2', role: 'control-plane' },
        { name: 'lab-cp-3', role: 'control-plane', os: 'bottlerocket' },
        { name: 'lab-md-1', role: 'worker', os: 'bottlerocket' },
      ],
    });
    stateDir = join(lab.dir, 'state');
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('starts broken: the members refuse each other, no quorum, no kube-apiserver ready', async () => {
    expect(await etcdHealthyEndpoints(lab, 2)).toEqual([]);
    for (const n of lab.nodes.filter((n) => n.role === 'control-plane')) {
      expect((await runningContainers(n)).etcd, n.name).toBe(1);
      expect((await readyz(n)).status, n.name).toBe(500);
    }
  });

  it('a scope that leaves an expired member out is refused before anything changes', async () => {
    await expectScopeRefused(lab, stateDir, 'lab-cp-1', /etcd members lab-cp-2, lab-cp-3 have expired certificates: etcd cannot be healthy until every such member is renewed/);
  });

  it('the plan says it is a recovery, and which gates wait for a quorum and which for every member', async () => {
    const r = await cli(['plan', '-i', lab.inventoryPath, '--state-dir', stateDir]);
    expect(r.code).toBe(3); // no member serves clients: those endpoints are unread
    expect(r.out).toContain('etcd members (stacked on the control plane) with expired certificates: lab-cp-1, lab-cp-2, lab-cp-3.');
    // cp-1: etcd-serving, wait-ready, etcd-health; cp-2: etcd-health; every node's restore-wait-ready and restore-etcd-health.
    expect(r.out.match(/\[deferred\]/g)).toHaveLength(10);
    // cp-2 makes the majority: etcd-serving and wait-ready; cp-3, the last: etcd-health.
    expect(r.out.match(/\[retried\]/g)).toHaveLength(3);
    expect(r.out).toMatch(/waits for lab-cp-2, whose renewal gives a majority of the 3 members valid peer certificates/);
  });

  it('rotate --yes recovers it, each node in its own OS spelling, one member down at a time', async () => {
    const before = await stackedLeaves(lab);
    const beforeState = await clusterState(lab);
    const since = Date.now();
    const r = await cli(['rotate', '-i', lab.inventoryPath, '--yes', '--state-dir', stateDir]);
    expect(r.err).toMatch(/etcd is not healthy \(checked from lab-cp-1\), as expected with expired certificates on lab-cp-1, lab-cp-2, lab-cp-3/);
    expect(r.err).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/lab-cp-1 wait-ready: ok \(deferred: etcd recovery: waits for lab-cp-2/);
    expect(r.err).toMatch(/lab-cp-2 wait-ready: ok \(serves serial \S+, \/readyz ok\)/);
    expect(r.err).toMatch(/lab-cp-2 etcd-health: ok \(deferred: etcd recovery: waits for lab-cp-3/);
    expect(r.err).toMatch(/lab-cp-3 etcd-health: ok \(3 members started and healthy/);
    await expectStackedRotated(lab, before, beforeState);
    expect(maxDown(lab, since)).toEqual({ etcd: 1, apiservers: 1 });
    const check = await cli(['check', '-i', lab.inventoryPath, '-o', 'json']);
    const report = JSON.parse(check.out) as { certificates: Array<{ status: string }>; errors: unknown[] };
    expect(report.errors).toEqual([]);
    expect(report.certificates.filter((c) => c.status !== 'ok')).toEqual([]);
  }, 900_000);

  it('a routine rotation of the recovered cluster keeps the quorum throughout, measured from etcd; a newer workload container named etcd is never asked', async () => {
    const planted = await plantWorkloadEtcd(lab, ['lab-cp-1', 'lab-cp-2', 'lab-cp-3']);
    const before = await stackedLeaves(lab);
    const beforeState = await clusterState(lab);
    const since = Date.now();
    const quorum = sampleQuorum(lab);
    const r = await cli(['rotate', '-i', lab.inventoryPath, '--yes', '--state-dir', stateDir]);
    const samples = await quorum.stop();
    expect(r.err).not.toMatch(/FAILED/);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/etcd healthy \(checked from lab-cp-1\)/);
    for (const n of ['lab-cp-1', 'lab-cp-2', 'lab-cp-3']) expect(r.err).toMatch(new RegExp(`${n} etcd-health: ok \\(3 members started and healthy`));
    await expectPlantedUntouchedThenRemove(lab, planted);
    await expectStackedRotated(lab, before, beforeState);
    expect(samples.withoutQuorum).toEqual([]);
    expect(samples.degraded).toBeGreaterThan(0);
    expect(maxDown(lab, since)).toEqual({ etcd: 1, apiservers: 1 });
  }, 900_000);
});
