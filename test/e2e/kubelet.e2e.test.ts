/**
 * Kubelet certificates on the emulated cluster: expired worker client certificates (Ubuntu and
 * Bottlerocket) and a control-plane kubelet fixed end to end, workers in parallel, one failing
 * worker restored while the others finish. The lab's API computes each Node's Ready condition
 * from the kubelet's own files, so Ready here means the kubelet really uses a good certificate.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeClient, parseKubeconfig } from '../../src/kube/client.js';
import { inspectCertificate } from '../../src/certs/inspect.js';
import type { CheckReport } from '../../src/check/run.js';
import { startLab, type Lab, type LabNode } from '../lab/lab.js';
import { cert, cli, fileState, journal } from './rotation-state.js';

const PKI = '/var/lib/kubelet/pki';
const CONF = { ubuntu: '/etc/kubernetes/kubelet.conf', rhel: '/etc/kubernetes/kubelet.conf', bottlerocket: '/etc/kubernetes/kubelet/kubeconfig' };

describe('kubelet and worker client certificates', () => {
  let lab: Lab;
  let inventory: string;
  let stateDir: string;
  let api: KubeClient;
  let caSubject: string;
  const ready = async (name: string) =>
    (await api.request<{ status: { conditions: Array<{ type: string; status: string; message?: string }> } }>('GET', `/api/v1/nodes/${name}`)).status.conditions.find((c) => c.type === 'Ready');

  /** The kubelet's client certificate is a fresh one for this node from the cluster CA, and the Node is Ready. */
  async function expectFixed(n: LabNode, before: string) {
    const c = await cert(n, `${PKI}/kubelet-client-current.pem`);
    expect(c.serial, `${n.name} new client certificate`).not.toBe(before);
    expect(c.subject).toMatch(new RegExp(`CN=system:node:${n.name}`));
    expect(c.subject).toMatch(/O=system:nodes/);
    expect(c.issuer).toBe(caSubject);
    const days = (c.notAfter.getTime() - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(360);
    expect((await n.exec(`stat -L -c %a ${PKI}/kubelet-client-current.pem`)).stdout.trim()).toBe('600');
    const serving = await cert(n, `${PKI}/kubelet.crt`);
    expect(serving.notAfter.getTime()).toBeGreaterThan(Date.now() + 300 * 86_400_000);
    const conf = (await n.readFile(CONF[n.os])).toString();
    expect(conf).not.toMatch(/client-key-data/); // the runbook's end state: the key lives in the pem only
    expect(conf).toContain(`client-certificate: ${PKI}/kubelet-client-current.pem`);
    expect((await n.exec(`stat -c %a ${CONF[n.os]}`)).stdout.trim()).toBe('600');
    expect((await ready(n.name))?.status, `${n.name} Ready`).toBe('True');
  }

  const clientSerial = async (n: LabNode) => (await cert(n, `${PKI}/kubelet-client-current.pem`)).serial;

  beforeAll(async () => {
    lab = await startLab({
      // kubeadm 1.26: `kubeconfig user` still requires --config there (the other suites run 1.28+).
      kubernetes: '1.26',
      nodes: [
        { name: 'lab-etcd-1', role: 'etcd' },
        { name: 'lab-cp-1', role: 'control-plane' },
        { name: 'lab-cp-2', role: 'control-plane', os: 'bottlerocket' },
        { name: 'lab-md-1', role: 'worker' },
        { name: 'lab-md-2', role: 'worker', os: 'bottlerocket' },
        { name: 'lab-md-3', role: 'worker' },
      ],
    });
    stateDir = join(lab.dir, 'state');
    // The management kubeconfig, so node-ready asks the API: cp-1's admin.conf.
    const kubeconfig = join(lab.dir, 'lab-eks-a-cluster.kubeconfig');
    writeFileSync(kubeconfig, await lab.node('lab-cp-1').readFile('/etc/kubernetes/admin.conf'), { mode: 0o600 });
    inventory = join(lab.dir, 'inventory-kc.yaml');
    writeFileSync(inventory, readFileSync(lab.inventoryPath, 'utf8').replace(/^cluster: lab$/m, 'cluster: lab\nkubeconfig: lab-eks-a-cluster.kubeconfig'));
    api = new KubeClient(parseKubeconfig(readFileSync(kubeconfig, 'utf8'), kubeconfig), 5000);
    caSubject = inspectCertificate(await lab.node('lab-cp-1').readFile('/etc/kubernetes/pki/ca.crt')).subject;
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('kubeadm 1.26 refuses kubeconfig user without --config, as the real one does', async () => {
    const r = await lab.node('lab-cp-1').exec('kubeadm kubeconfig user --org system:nodes --client-name system:node:x');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^required flag\(s\) "config" not set/);
  });

  it('plan finds the due kubelets; rotate --only kubelet fixes them, control planes first, workers in parallel, and touches nothing else', async () => {
    await lab.expireKubelet('lab-md-1', { client: 'expired' });
    await lab.expireKubelet('lab-md-2', { client: 'expired', serving: 'expired' });
    await lab.expireKubelet('lab-cp-2', { client: 'expiring', serving: 'expiring' });
    await lab.expireKubelet('lab-cp-1', { serving: 'expired' }); // Ubuntu control plane: it signs for itself
    expect((await ready('lab-md-1'))?.message).toMatch(/x509: certificate has expired/);
    const before = Object.fromEntries(await Promise.all(['lab-cp-1', 'lab-cp-2', 'lab-md-1', 'lab-md-2'].map(async (n) => [n, await clientSerial(lab.node(n))] as const)));
    const untouched = { 'lab-md-3': await fileState(lab.node('lab-md-3')), 'lab-etcd-1': await fileState(lab.node('lab-etcd-1')) };

    // lab-cp-2's kubelet.crt is the kubelet's bundle (leaf, then its own one-off CA), two days from
    // its end: check shows that CA as the kubelet's, and nothing calls it a CA to rotate.
    const checked = await cli(['check', '-i', inventory, '-o', 'json']);
    const servingCa = (JSON.parse(checked.out) as CheckReport).certificates.find((c) => c.node === 'lab-cp-2' && c.path === `${PKI}/kubelet.crt[1]`);
    expect(servingCa).toMatchObject({ kind: 'kubelet-serving-ca', isCA: true, status: 'expiring', subject: expect.stringMatching(/^CN=lab-cp-2-ca@\d+$/) });
    expect((await cli(['check', '-i', inventory])).out).toMatch(/kubelet\.crt\[1\]\s+lab-cp-2-ca@\d+ \(kubelet's self-signed serving CA\)/);

    const dry = await cli(['rotate', '-i', inventory, '--dry-run', '--only', 'kubelet']);
    expect(dry.code).toBe(0);
    expect(dry.out).toContain('Kubelet certificates were not read (--dry-run)');
    const plan = await cli(['plan', '-i', inventory, '--only', 'kubelet', '--state-dir', stateDir]);
    expect(plan.code).toBe(0);
    expect(plan.out).toContain('Kubelet certificates due (expired or within --warn-days): lab-cp-1, lab-cp-2, lab-md-1, lab-md-2');

    const r = await cli(['rotate', '-i', inventory, '--only', 'kubelet', '--yes', '--state-dir', stateDir, '--parallel', '2']);
    expect(r.err).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    // No "CA ... expires in 2 days ... plan a CA rotation" for the kubelet's own CA; it was remade with its certificate.
    expect(r.err).not.toMatch(/CA \S*kubelet\.crt/);
    expect(r.out).toMatch(new RegExp(`lab-cp-2 ${PKI}/kubelet\\.crt\\[1\\]: \\S+ \\S+ -> \\S+ \\S+\n`));
    for (const n of ['lab-cp-1', 'lab-cp-2', 'lab-md-1', 'lab-md-2']) await expectFixed(lab.node(n), before[n]!);
    // On Ubuntu the kubelet started from an embedded pair and, as the real one does, rotated it at
    // once through a CSR: it runs on a newer certificate than the one rotate-certs issued.
    for (const n of ['lab-cp-1', 'lab-md-1']) expect((await lab.node(n).readFile('/var/log/kubelet.log')).toString(), n).toMatch(/client certificate rotated \(CSR approved and issued\)/);
    for (const [n, state] of Object.entries(untouched)) expect(await fileState(lab.node(n)), `${n} untouched`).toBe(state);
    // The old certificates are in the backups.
    // (kubelet-client-current.pem is an absolute symlink: the backup holds the dated file it named.)
    const md1 = lab.node('lab-md-1');
    const backup = (await md1.exec(`ls -d ${PKI}.rotate-certs-*`)).stdout.trim();
    const dated = (await md1.exec(`basename "$(readlink ${backup}/kubelet-client-current.pem)"`)).stdout.trim();
    expect((await cert(md1, `${backup}/${dated}`)).serial).toBe(before['lab-md-1']);
    // Order: the control-plane nodes one at a time first; then the two workers side by side.
    const steps = journal(stateDir).filter((e) => e.phase === 'kubelet' && (e.event === 'step-start' || e.event === 'step-done'));
    const span = (n: string) => {
      const mine = steps.filter((e) => e.node === n);
      return [Date.parse(mine[0]!.t), Date.parse(mine.at(-1)!.t)] as const;
    };
    expect(span('lab-cp-1')[1]).toBeLessThanOrEqual(span('lab-cp-2')[0]);
    expect(span('lab-cp-2')[1]).toBeLessThanOrEqual(Math.min(span('lab-md-1')[0], span('lab-md-2')[0]));
    expect(span('lab-md-1')[0]).toBeLessThan(span('lab-md-2')[1]);
    expect(span('lab-md-2')[0]).toBeLessThan(span('lab-md-1')[1]);
    // Secrets stay out of the journal and the plan copy.
    expect(readFileSync(join(stateDir, 'lab', 'journal.jsonl'), 'utf8')).not.toMatch(/PRIVATE KEY|client-key-data/);
  });

  it('a failing worker is restored and reported while the others finish (exit 1); --resume then fixes it', async () => {
    for (const n of ['lab-md-1', 'lab-md-2', 'lab-md-3']) await lab.expireKubelet(n, { client: 'expired' });
    const before = Object.fromEntries(await Promise.all(['lab-md-1', 'lab-md-2', 'lab-md-3'].map(async (n) => [n, await clientSerial(lab.node(n))] as const)));
    const md2 = lab.node('lab-md-2');
    const md2State = await fileState(md2);
    await md2.exec('touch /etc/rotate-certs-lab/fail-kubelet-restart');

    const r = await cli(['rotate', '-i', inventory, '--only', 'workers', '--yes', '--state-dir', stateDir]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/Rotation FAILED on lab-md-2, step restart: command kubeletRestart exited 1/);
    expect(r.out).toContain('lab-md-2 was restored from its backup.');
    expect(r.out).toContain('The other workers of that phase finished');
    await expectFixed(lab.node('lab-md-1'), before['lab-md-1']!);
    await expectFixed(lab.node('lab-md-3'), before['lab-md-3']!);
    // lab-md-2 is back as it was (its backups aside), its kubelet running on the old certificate.
    const live = (s: string) => s.split('\n').filter((l) => !/rotate-certs-|replaced-/.test(l)).join('\n');
    expect(live(await fileState(md2))).toBe(live(md2State));
    expect(await clientSerial(md2)).toBe(before['lab-md-2']);
    expect((await md2.exec('systemctl is-active kubelet')).stdout.trim()).toBe('active');

    const planFile = /rotate-certs apply (\S+) --resume/.exec(r.out)?.[1];
    expect(planFile).toBeDefined();
    const resumed = await cli(['apply', planFile!, '--resume', '--yes', '--state-dir', stateDir]);
    expect(resumed.err).not.toMatch(/FAILED/);
    expect(resumed.code).toBe(0);
    await expectFixed(md2, before['lab-md-2']!);
  });
});
