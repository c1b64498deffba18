/**
 * Static pods on real-looking control planes (issue 18): one Ubuntu, one Bottlerocket and one RHEL
 * control plane over one external etcd member. What the kubelet runs is told from other containers
 * by its labels, a node found in the duplicate state of aws/eks-anywhere PR 10360 is brought back to
 * one container per static pod, a restore whose waits fail still puts every manifest (and static-pod
 * setting) back, RHEL's sudo secure_path hides nothing the scripts need, and etcdadm-controller's
 * health check is paused for each run and resumed however it ends. Every assertion is about the end
 * state: container records, manifests and settings, what :6443 serves, the EtcdadmCluster.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspectCertificate } from '../../src/certs/inspect.js';
import { servedCertificate } from '../../src/check/probe.js';
import { startLab, type Lab, type LabNode } from '../lab/lab.js';
import { cert, cli, pathsOf } from './rotation-state.js';

interface Record_ {
  id: string;
  state: string;
  metadata: { name: string };
  labels: Record<string, string>;
}

async function containers(node: LabNode): Promise<Record_[]> {
  const r = await node.exec('cat /var/lib/rotate-certs-lab/containers/*.json 2>/dev/null | jq -s -c .');
  return JSON.parse(r.stdout || '[]') as Record_[];
}

/** Running containers of the node's static pods (labelled <pod>-<node> in kube-system), per pod. */
async function staticPodsRunning(node: LabNode): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const c of await containers(node)) {
    const pod = c.labels['io.kubernetes.pod.name'] ?? '';
    if (c.state !== 'CONTAINER_RUNNING' || c.labels['io.kubernetes.pod.namespace'] !== 'kube-system' || !pod.endsWith(`-${node.name}`)) continue;
    out[c.metadata.name] = (out[c.metadata.name] ?? 0) + 1;
  }
  return out;
}

const ONE_EACH = { 'kube-apiserver': 1, 'kube-controller-manager': 1, 'kube-scheduler': 1, 'kube-vip': 1 };

/** Every static pod of the node in place: Ubuntu/RHEL manifests in their folder, Bottlerocket settings enabled. */
async function staticPodsInPlace(node: LabNode): Promise<string[]> {
  if (node.os === 'bottlerocket') {
    const r = await node.exec(`jq -r '.["static-pods"] | to_entries[] | "\\(.key) \\(.value.enabled)"' /var/lib/rotate-certs-lab/settings-kubernetes.json`);
    return r.stdout.trim().split('\n').sort();
  }
  return (await node.exec('ls /etc/kubernetes/manifests')).stdout.trim().split('\n').sort();
}

async function served(node: LabNode) {
  return inspectCertificate(await servedCertificate({ host: node.host, port: 6443, timeoutMs: 3000 }));
}

/** The EtcdadmCluster's annotations after each change the runs made, from the lab API's log. */
function etcdadmAnnotations(lab: Lab): Array<{ t: number; annotations: Record<string, string> }> {
  return readFileSync(join(lab.dir, 'events.log'), 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { t: number; event: string; annotations: Record<string, string> })
    .filter((e) => e.event === 'etcdadmcluster-annotations');
}

function etcdadmClusterNow(lab: Lab): Record<string, string> {
  const state = JSON.parse(readFileSync(join(lab.dir, 'apiserver-state.json'), 'utf8')) as { etcdadmclusters: Record<string, { metadata: { annotations?: Record<string, string> } }> };
  return state.etcdadmclusters['eksa-system/lab-etcd']?.metadata.annotations ?? {};
}

describe('static pods on Ubuntu, Bottlerocket and RHEL control planes', () => {
  let lab: Lab;
  let stateDir: string;
  // Short stop waits: a wait that cannot succeed fails in seconds, not minutes.
  const env = { timeouts: { podStopMs: 15_000 } };
  const rotate = (nodes: string, extra: Parameters<typeof cli>[1] = {}) =>
    cli(['rotate', '-i', lab.inventoryPath, '--only', 'control-plane', '--nodes', nodes, '--yes', '--state-dir', stateDir], { ...env, ...extra });
  beforeAll(async () => {
    lab = await startLab({
      nodes: [
        { name: 'lab-etcd-1', role: 'etcd' },
        { name: 'lab-cp-1', role: 'control-plane' },
        { name: 'lab-cp-2', role: 'control-plane', os: 'bottlerocket' },
        { name: 'lab-cp-3', role: 'control-plane', os: 'rhel' },
      ],
    });
    stateDir = join(lab.dir, 'state');
  });
  afterAll(async () => {
    await lab?.down();
  });

  it("a same-named container of another pod is neither waited for nor removed; RHEL's crictl under /usr/local/bin only is found; etcdadm-controller paused for the run", async () => {
    // RHEL's secure_path hides /usr/local/bin from sudo: what the scripts run must still be found.
    const rhel = lab.node('lab-cp-3');
    const hidden = await rhel.exec(`su ${rhel.user} -c 'sudo -n bash -c "command -v crictl"'`);
    expect(hidden.code, 'the RHEL node hides crictl from sudo as RHEL does').not.toBe(0);
    expect((await rhel.exec('command -v crictl')).stdout.trim()).toBe('/usr/local/bin/crictl');

    // A kube-vip DaemonSet's container (Service load balancing on control planes that run workloads).
    const ds = {
      'lab-cp-1': await lab.leakContainer('lab-cp-1', 'kube-vip', 0, { pod: 'kube-vip-ds-7xk2p' }),
      'lab-cp-2': await lab.leakContainer('lab-cp-2', 'kube-vip', 0, { pod: 'kube-vip-ds-9qw4d' }),
    };
    const before = Object.fromEntries(await Promise.all(['lab-cp-1', 'lab-cp-2', 'lab-cp-3'].map(async (n) => [n, await served(lab.node(n))] as const)));
    const r = await rotate('lab-cp-1,lab-cp-2,lab-cp-3');
    expect(r.err).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    for (const [name, id] of Object.entries(ds)) {
      const node = lab.node(name);
      const still = (await containers(node)).find((c) => c.id === id);
      expect(still?.state, `${name}: the DaemonSet's kube-vip container still runs, the same one`).toBe('CONTAINER_RUNNING');
    }
    for (const name of ['lab-cp-1', 'lab-cp-2', 'lab-cp-3']) {
      const node = lab.node(name);
      expect(await staticPodsRunning(node), name).toEqual(ONE_EACH);
      const now = await served(node);
      expect(now.serial, `${name} serves a renewed certificate`).not.toBe(before[name]!.serial);
      expect(now.serial).toBe((await cert(node, `${pathsOf(node).kubePki}/apiserver.crt`)).serial);
    }
    // etcdadm-controller: paused before the first node, resumed at the end, nothing else changed.
    const changes = etcdadmAnnotations(lab);
    expect(changes.map((c) => Object.keys(c.annotations).sort())).toEqual([['cluster.x-k8s.io/paused', 'rotate-certs.eks-anywhere.io/paused-by-run'], []]);
    const firstStep = readFileSync(join(stateDir, 'lab', 'journal.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { t: string; event: string }).find((e) => e.event === 'step-start');
    expect(changes[0]!.t).toBeLessThan(Date.parse(firstStep!.t));
    expect(etcdadmClusterNow(lab)).toEqual({});
  });

  it('the duplicate state (PR 10360): a stale kube-apiserver holds :6443 while the kubelet\'s newer one crash-loops; the rotation leaves one fresh container per static pod', async () => {
    for (const name of ['lab-cp-1', 'lab-cp-2']) {
      const node = lab.node(name);
      const servedBefore = await served(node);
      await lab.forgetContainers(name);
      // Two kube-apiserver containers of the same static pod: the old one runs and serves.
      const apiservers = (await containers(node)).filter((c) => c.metadata.name === 'kube-apiserver' && c.labels['io.kubernetes.pod.name'] === `kube-apiserver-${name}`);
      expect(apiservers.length, name).toBeGreaterThanOrEqual(2);
      expect((await served(node)).serial).toBe(servedBefore.serial);
    }
    const r = await rotate('lab-cp-1,lab-cp-2');
    expect(r.err).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/lab-cp-1 dedupe-before: ok \(removed 4 stale containers older than the kubelet's: /);
    for (const name of ['lab-cp-1', 'lab-cp-2']) {
      const node = lab.node(name);
      expect(await staticPodsRunning(node), name).toEqual(ONE_EACH);
      expect((await served(node)).serial).toBe((await cert(node, `${pathsOf(node).kubePki}/apiserver.crt`)).serial);
    }
  });

  it('a restore whose waits cannot succeed still puts every manifest and static-pod setting back, and the apiserver runs on the old certificates', async () => {
    for (const name of ['lab-cp-1', 'lab-cp-2']) {
      const node = lab.node(name);
      const changesBefore = etcdadmAnnotations(lab).length;
      const inPlace = await staticPodsInPlace(node);
      const before = await served(node);
      // The kube-scheduler's container never finishes stopping: wait-stopped fails, then the
      // restore's own wait-stopped fails the same way.
      await lab.stickContainer(name, 'kube-scheduler', true);
      let r;
      try {
        r = await rotate(name);
      } finally {
        await lab.stickContainer(name, 'kube-scheduler', false);
      }
      expect(r.code, r.err).toBe(2);
      expect(r.err).toMatch(new RegExp(`${name} wait-stopped: FAILED: no container of ${name}'s static pods to run: not within 15 s`));
      expect(r.err).toMatch(new RegExp(`${name} restore-wait-stopped: FAILED`));
      expect(r.err).toMatch(new RegExp(`${name} restore-start: ok`));
      expect(await staticPodsInPlace(node), `${name}: every static pod is back in place`).toEqual(inPlace);
      expect((await served(node)).serial, `${name} serves its old certificate again`).toBe(before.serial);
      expect(await staticPodsRunning(node), name).toEqual(ONE_EACH);
      // A failed run paused etcdadm-controller's health check, and resumed it.
      expect(etcdadmAnnotations(lab).slice(changesBefore).map((c) => Object.keys(c.annotations).length)).toEqual([2, 0]);
      expect(etcdadmClusterNow(lab)).toEqual({});
    }
  });

  it('a restore whose files cannot be put back begins no restart, yet puts the manifests back', async () => {
    const node = lab.node('lab-cp-1');
    const inPlace = await staticPodsInPlace(node);
    const journalFile = join(stateDir, 'lab', 'journal.jsonl');
    const lines = () => readFileSync(journalFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; node?: string; step?: string; runId: string });
    const mark = lines().length;
    await lab.stickContainer('lab-cp-1', 'kube-scheduler', true);
    // Once the PKI folder is backed up, the backup goes away: restore-pki cannot succeed.
    const fault = (async () => {
      const until = Date.now() + 120_000;
      while (!lines().slice(mark).some((e) => e.event === 'step-done' && e.node === 'lab-cp-1' && e.step === 'backup-pki')) {
        if (Date.now() > until) throw new Error('lab-cp-1 was never backed up');
        await new Promise((res) => setTimeout(res, 50));
      }
      const m = await node.exec('mkdir -p /root/held && mv /etc/kubernetes/pki.rotate-certs-* /root/held/');
      expect(m.code, m.stderr).toBe(0);
    })();
    let r;
    try {
      r = await rotate('lab-cp-1');
      await fault;
    } finally {
      await lab.stickContainer('lab-cp-1', 'kube-scheduler', false);
      await node.exec('mv /root/held/* /etc/kubernetes/ && rmdir /root/held');
    }
    expect(r.code, r.err).toBe(2);
    expect(r.err).toMatch(/lab-cp-1 restore-pki: FAILED: command restoreDir exited 1: no backup at/);
    expect(r.err).toMatch(/lab-cp-1: restore-restart skipped \(the restore already failed at restore-pki\)/);
    expect(r.err).not.toMatch(/lab-cp-1 restore-restart: /);
    expect(r.err).toMatch(/lab-cp-1 restore-start: ok/);
    expect(await staticPodsInPlace(node)).toEqual(inPlace);
    expect(await staticPodsRunning(node)).toEqual(ONE_EACH);
    // The renewed files stayed, and the kube-apiserver serves them.
    expect((await served(node)).serial).toBe((await cert(node, '/etc/kubernetes/pki/apiserver.crt')).serial);
  });

  it("etcdadm-controller: resumed after an interrupted run", async () => {
    let calls = 0;
    const changesBefore = etcdadmAnnotations(lab).length;
    const r = await rotate('lab-cp-1', { stopRequested: () => ++calls > 4 });
    expect(r.code).toBe(130);
    expect(etcdadmAnnotations(lab).slice(changesBefore).map((c) => Object.keys(c.annotations).length)).toEqual([2, 0]);
    expect(etcdadmClusterNow(lab)).toEqual({});
  });
});
