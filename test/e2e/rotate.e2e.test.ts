/**
 * Rotation on the emulated cluster (3 external etcd, 2 control plane, 1 worker, Ubuntu). Every
 * assertion is about the end state: certificate files and dates, CA bytes, backups, what each
 * endpoint serves, etcd health with the new client certificate, the management secret, and the
 * order in which kube-apiservers went down.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspectCertificate } from '../../src/certs/inspect.js';
import { servedCertificate } from '../../src/check/probe.js';
import { startLab, type Lab } from '../lab/lab.js';
import { cert, cli, clusterState, etcdHealthy, etcdPkiLines, expectRotated, fileState, journal, maxApiserversDown, secretPair, serials } from './rotation-state.js';

describe('rotate on a healthy Ubuntu cluster', () => {
  let lab: Lab;
  let stateDir: string;
  beforeAll(async () => {
    lab = await startLab({ etcd: 3, controlPlane: 2, workers: 1 });
    stateDir = join(lab.dir, 'state');
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('--dry-run and plan change nothing on any node', async () => {
    const before = await clusterState(lab);
    const dry = await cli(['rotate', '-i', lab.inventoryPath, '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.out).toContain('etcdadm join phase certificates http://eks-a-etcd-dumb-url');
    const plan = await cli(['plan', '-i', lab.inventoryPath, '--out', join(lab.dir, 'plan.yaml'), '--state-dir', stateDir]);
    expect(plan.code).toBe(0);
    expect(await clusterState(lab)).toEqual(before);
    expect(readFileSync(join(lab.dir, 'plan.yaml'), 'utf8')).not.toMatch(/PRIVATE KEY/);
  });

  it('rotate --yes renews every leaf, etcd first and one node at a time, and keeps the cluster up', async () => {
    // A kube-vip container an earlier restart left behind on lab-cp-2, and the worker's kubelet
    // client certificate expired (this lab runs kubeadm 1.28).
    const leaked = await lab.leakContainer('lab-cp-2', 'kube-vip', 86400);
    await lab.expireKubelet('lab-md-1', { client: 'expired' });
    const workerBefore = await cert(lab.node('lab-md-1'), '/var/lib/kubelet/pki/kubelet-client-current.pem');
    const before = await serials(lab);
    const beforeState = await clusterState(lab);
    const r = await cli(['rotate', '-i', lab.inventoryPath, '--yes', '--state-dir', stateDir]);
    expect(r.err).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    expect(r.err).toContain(`lab-cp-2 dedupe-before: ok (removed 1 stale container older than the kubelet's: kube-vip ${leaked.slice(0, 13)})`);
    expect(r.out).toContain('finished');
    expect(r.out).toMatch(/kube-apiserver unavailable during its restart:\n {2}lab-cp-1: \d+\.\d s\n {2}lab-cp-2: \d+\.\d s/);
    await expectRotated(lab, before, beforeState);

    // Backups hold the old certificates.
    for (const n of lab.nodes.filter((n) => n.role === 'etcd')) {
      const backup = (await n.exec('ls -d /etc/etcd/pki.rotate-certs-*')).stdout.trim();
      expect((await cert(n, `${backup}/server.crt`)).serial).toBe(before[`${n.name}:/etc/etcd/pki/server.crt`]);
    }
    // etcd nodes one at a time, all before the control plane: each node's steps are contiguous.
    const steps = journal(stateDir).filter((e) => e.event === 'step-done' && (e.phase === 'etcd' || e.phase === 'control-plane'));
    const order = steps.map((e) => e.node).filter((n, i, a) => n !== a[i - 1]);
    expect(order).toEqual(['lab-etcd-1', 'lab-etcd-2', 'lab-etcd-3', 'lab-cp-1', 'lab-cp-2']);
    // The worker's kubelet got a new client certificate from the cluster CA, which it then rotated
    // through a CSR as a real kubelet does; nothing else on it changed.
    const md1 = lab.node('lab-md-1');
    const client = await cert(md1, '/var/lib/kubelet/pki/kubelet-client-current.pem');
    expect(client.serial).not.toBe(workerBefore.serial);
    expect(client.subject).toMatch(/CN=system:node:lab-md-1/);
    expect(client.notAfter.getTime()).toBeGreaterThan(Date.now() + 360 * 86_400_000);
    expect((await md1.readFile('/var/log/kubelet.log')).toString()).toMatch(/client certificate rotated \(CSR approved and issued\)/);
    expect((await md1.exec('systemctl is-active kubelet')).stdout.trim()).toBe('active');
    // Secrets stay out of the journal.
    expect(readFileSync(join(stateDir, 'lab', 'journal.jsonl'), 'utf8')).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/);
  });

  it('every backup the run left is root-only; backups lists them; backups --prune --keep 1 leaves the newest', async () => {
    // What each node holds beside its folders: "MODE TYPE PATH" per backup.
    const onNode = async (n: (typeof lab.nodes)[number]) =>
      (await n.exec("find /etc/etcd /etc/kubernetes /etc/kubernetes/kubelet /var/lib/kubelet -maxdepth 1 -name '*.rotate-certs-*' -printf '%m %y %p\\n' 2>/dev/null | sort")).stdout.trim().split('\n').filter(Boolean);
    for (const n of lab.nodes) {
      const found = await onNode(n);
      expect(found.length, `${n.name} has the run's backups`).toBeGreaterThan(0);
      for (const line of found) expect(line, n.name).toMatch(/^(700 d|600 f) /);
    }
    // An older backup on lab-etcd-1, as a rotate-certs before 0700 backups left it.
    const etcd1 = lab.node('lab-etcd-1');
    const newest = (await etcd1.exec('ls -d /etc/etcd/pki.rotate-certs-*')).stdout.trim();
    const old = '/etc/etcd/pki.rotate-certs-20200101T000000Z';
    await etcd1.exec(`cp -a ${newest} ${old} && chmod 755 ${old}`);
    const before = Object.fromEntries(await Promise.all(lab.nodes.map(async (n) => [n.name, await onNode(n)] as const)));

    const listed = await cli(['backups', '-i', lab.inventoryPath, '-o', 'json', '--state-dir', stateDir]);
    expect(listed.code, listed.err).toBe(0);
    const backups = (JSON.parse(listed.out) as { backups: Array<{ node: string; path: string; mode: string }> }).backups;
    for (const n of lab.nodes) {
      const mine = backups.filter((b) => b.node === n.name).map((b) => `${b.mode.slice(1)} ${b.path}`).sort();
      expect(mine, n.name).toEqual(before[n.name]!.map((l) => l.replace(/^(\d+) [df] /, '$1 ')).sort());
    }
    const checked = await cli(['check', '-i', lab.inventoryPath, '-o', 'json']);
    const perNode = (JSON.parse(checked.out) as { backups: Array<{ node: string; runs: number; oldestRun?: string }> }).backups;
    expect(perNode.find((b) => b.node === 'lab-etcd-1')).toMatchObject({ runs: 2, oldestRun: '20200101T000000Z' });
    expect(perNode.find((b) => b.node === 'lab-md-1')?.runs).toBe(1);

    const pruned = await cli(['backups', '-i', lab.inventoryPath, '--prune', '--keep', '1', '--yes', '--state-dir', stateDir]);
    expect(pruned.code, pruned.err).toBe(0);
    expect(pruned.out).toContain(`lab-etcd-1: removed ${old}`);
    expect((await etcd1.exec(`test -e ${old}`)).code).toBe(1);
    expect((await etcd1.exec(`test -d ${newest}`)).code).toBe(0);
    for (const n of lab.nodes.filter((n) => n.name !== 'lab-etcd-1')) expect(await onNode(n), n.name).toEqual(before[n.name]);
  });

  it('a plan made before the rotation is refused: the certificates changed since', async () => {
    const r = await cli(['apply', join(lab.dir, 'plan.yaml'), '--yes', '--state-dir', stateDir]);
    expect(r.code).toBe(69);
    expect(r.err).toMatch(/changed since the plan was made/);
  });

  it('an edited plan, and a plan without --yes and no terminal, are refused before anything runs', async () => {
    const file = join(lab.dir, 'plan2.yaml');
    expect((await cli(['plan', '-i', lab.inventoryPath, '--out', file, '--state-dir', stateDir])).code).toBe(0);
    expect((await cli(['apply', file, '--state-dir', stateDir])).err).toMatch(/without confirmation/);
    writeFileSync(file, readFileSync(file, 'utf8').replace('kubeadm certs renew all', 'kubeadm certs renew all; touch /tmp/pwned'));
    const r = await cli(['apply', file, '--yes', '--state-dir', stateDir]);
    expect(r.code).toBe(64);
    expect(r.err).toMatch(/digest mismatch/);
  });

  it('restore puts a control-plane node back from the last backup and its apiserver serves the old cert', async () => {
    const node = lab.node('lab-cp-2');
    const backup = (await node.exec('ls -d /etc/kubernetes/pki.rotate-certs-*')).stdout.trim().split('\n')[0]!;
    const old = await cert(node, `${backup}/apiserver.crt`);
    expect((await cli(['restore', '-i', lab.inventoryPath, '--node', 'lab-cp-2', '--state-dir', stateDir])).err).toMatch(/without confirmation/);
    const r = await cli(['restore', '-i', lab.inventoryPath, '--node', 'lab-cp-2', '--yes', '--state-dir', stateDir]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('lab-cp-2: control-plane restored');
    expect((await cert(node, '/etc/kubernetes/pki/apiserver.crt')).serial).toBe(old.serial);
    const served = inspectCertificate(await servedCertificate({ host: node.host, port: 6443, timeoutMs: 3000 }));
    expect(served.serial).toBe(old.serial);
    expect(maxApiserversDown(lab)).toBeLessThanOrEqual(1);
  });

  it('a refused local kubeconfig: the secret goes through the renewed admin.conf, and --refresh-kubeconfig replaces the file', async () => {
    const cp1 = lab.node('lab-cp-1');
    const adminConf = (await cp1.readFile('/etc/kubernetes/admin.conf')).toString('utf8');
    // Same cluster (same CA), but a client certificate the API refuses: one from the etcd CA.
    const etcd1 = lab.node('lab-etcd-1');
    const b64 = async (p: string) => Buffer.from((await etcd1.readFile(p)).toString('utf8')).toString('base64');
    const refused = adminConf
      .replace(/client-certificate-data: \S+/, `client-certificate-data: ${await b64('/etc/etcd/pki/etcdctl-etcd-client.crt')}`)
      .replace(/client-key-data: \S+/, `client-key-data: ${await b64('/etc/etcd/pki/etcdctl-etcd-client.key')}`);
    const kubeconfig = join(lab.dir, 'lab-eks-a-cluster.kubeconfig');
    writeFileSync(kubeconfig, refused, { mode: 0o644 });
    const inv = join(lab.dir, 'with-refused-kubeconfig.yaml');
    writeFileSync(inv, readFileSync(lab.inventoryPath, 'utf8').replace('cluster: lab\n', 'cluster: lab\nkubeconfig: lab-eks-a-cluster.kubeconfig\n'));
    const r = await cli(['rotate', '-i', inv, '--only', 'control-plane', '--yes', '--refresh-kubeconfig', '--state-dir', stateDir]);
    expect(r.err).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/etcd-client-secret: ok \(eksa-system\/lab-apiserver-etcd-client updated through admin\.conf on lab-cp-1 \(type cluster\.x-k8s\.io\/secret kept\)\)/);
    expect(r.err).toMatch(/replaced \S+lab-eks-a-cluster\.kubeconfig with the renewed admin\.conf of lab-cp-1 \(old one kept as \S+\)/);
    // The local kubeconfig is now the renewed admin.conf, written 0600; the refused one is kept.
    expect(readFileSync(kubeconfig, 'utf8')).toBe((await cp1.readFile('/etc/kubernetes/admin.conf')).toString('utf8'));
    expect(execFileSync('stat', ['-c', '%a', kubeconfig], { encoding: 'utf8' }).trim()).toBe('600');
    const kept = execFileSync('bash', ['-c', `ls ${kubeconfig}.rotate-certs-*`], { encoding: 'utf8' }).trim();
    expect(readFileSync(kept, 'utf8')).toBe(refused);
    expect(secretPair(lab).crt.trim()).toBe((await etcd1.readFile('/etc/etcd/pki/apiserver-etcd-client.crt')).toString('utf8').trim());
  });
});

/** Lines of a fileState listing for the files directly in /etc/etcd/pki. */
interface FaultLab {
  lab: Lab;
  stateDir: string;
  before: Record<string, string>;
  beforeState: Record<string, string>;
}

/** A fresh cluster with its certificates and files recorded, brought down afterwards whatever happens. */
async function withFreshLab(run: (f: FaultLab) => Promise<void>): Promise<void> {
  const lab = await startLab({ etcd: 3, controlPlane: 2, workers: 1 });
  try {
    await run({ lab, stateDir: join(lab.dir, 'state'), before: await serials(lab), beforeState: await clusterState(lab) });
  } finally {
    await lab.down();
  }
}

describe('faults', () => {
  it('etcdadm failing on the second etcd node: restored, stopped, and --resume finishes after the fix', () =>
    withFreshLab(async ({ lab, stateDir, before, beforeState }) => {
      const etcd2 = lab.node('lab-etcd-2');
      await etcd2.exec('mkdir -p /etc/rotate-certs-lab && touch /etc/rotate-certs-lab/fail-etcdadm');
      const file = join(lab.dir, 'plan.yaml');
      expect((await cli(['plan', '-i', lab.inventoryPath, '--out', file, '--state-dir', stateDir])).code).toBe(0);
      const failed = await cli(['apply', file, '--yes', '--state-dir', stateDir]);
      expect(failed.code).toBe(1);
      expect(failed.out).toMatch(/Rotation FAILED on lab-etcd-2, step renew: command etcdadmCertificates exited 1/);
      expect(failed.out).toMatch(/lab-etcd-2 was restored from its backup/);
      // The node is back as it was (its backup aside), etcd healthy, and nothing after it touched.
      expect(etcdPkiLines(await fileState(etcd2))).toBe(etcdPkiLines(beforeState['lab-etcd-2']!));
      expect(await etcdHealthy(lab)).toBe(true);
      for (const n of ['lab-etcd-3', 'lab-cp-1', 'lab-cp-2', 'lab-md-1']) expect(await fileState(lab.node(n)), n).toBe(beforeState[n]);
      expect((await cert(lab.node('lab-etcd-1'), '/etc/etcd/pki/server.crt')).serial).not.toBe(before['lab-etcd-1:/etc/etcd/pki/server.crt']);

      await etcd2.exec('rm /etc/rotate-certs-lab/fail-etcdadm');
      const resumed = await cli(['apply', file, '--resume', '--state-dir', stateDir]);
      expect(resumed.err).toMatch(/lab-etcd-1: etcd already done in this run, skipped/);
      expect(resumed.code, `${resumed.out}\n${resumed.err}`).toBe(0);
      await expectRotated(lab, before, beforeState);
    }));

  it('the secret step with the management API unreachable fails loudly, and --resume completes it', () =>
    withFreshLab(async ({ lab, stateDir, before, beforeState }) => {
      // A management kubeconfig for another cluster's CA whose API does not answer.
      const adminConf = (await lab.node('lab-cp-1').readFile('/etc/kubernetes/admin.conf')).toString('utf8');
      const otherCa = Buffer.from((await lab.node('lab-etcd-1').readFile('/etc/etcd/pki/ca.crt')).toString('utf8')).toString('base64');
      const dead = adminConf.replace(/server: https:\/\/[^\n]+/, `server: https://${lab.node('lab-cp-1').host}:1`).replace(/certificate-authority-data: \S+/, `certificate-authority-data: ${otherCa}`);
      writeFileSync(join(lab.dir, 'mgmt.kubeconfig'), dead, { mode: 0o600 });
      const inv = join(lab.dir, 'with-kubeconfig.yaml');
      writeFileSync(inv, readFileSync(lab.inventoryPath, 'utf8').replace('cluster: lab\n', 'cluster: lab\nkubeconfig: mgmt.kubeconfig\n'));
      const file = join(lab.dir, 'plan.yaml');
      expect((await cli(['plan', '-i', inv, '--out', file, '--state-dir', stateDir])).code).toBe(0);
      const failed = await cli(['apply', file, '--yes', '--state-dir', stateDir]);
      expect(failed.code).toBe(1);
      expect(failed.out).toMatch(/Rotation FAILED on lab-cp-1, step etcd-client-secret/);
      expect(failed.out).toMatch(/still holds the OLD pair/);
      expect(failed.out).toMatch(/kubectl --kubeconfig \S+mgmt\.kubeconfig create secret generic lab-apiserver-etcd-client --type=cluster\.x-k8s\.io\/secret /);
      expect(failed.out).toMatch(/kubectl --kubeconfig \S+mgmt\.kubeconfig -n etcdadm-controller-system rollout restart deployment\/etcdadm-controller-controller-manager/);
      expect(failed.out).not.toMatch(/PRIVATE KEY/);
      expect(secretPair(lab).crt).not.toBe((await lab.node('lab-etcd-1').readFile('/etc/etcd/pki/apiserver-etcd-client.crt')).toString('utf8'));

      // The API is back (a working kubeconfig): resume does only what is left.
      writeFileSync(join(lab.dir, 'mgmt.kubeconfig'), adminConf, { mode: 0o600 });
      const resumed = await cli(['apply', file, '--resume', '--state-dir', stateDir]);
      expect(resumed.code).toBe(0);
      expect(resumed.err).toMatch(/lab-cp-2: control-plane already done in this run, skipped/);
      // With a kubeconfig that answers, the pre-flight also reads the KCP paused state.
      expect(resumed.err).toMatch(/KubeadmControlPlane not paused \(1 checked\)/);
      await expectRotated(lab, before, beforeState);
    }));
});
