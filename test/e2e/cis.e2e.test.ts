/**
 * `rotate-certs check --cis` on the emulated cluster (1 etcd, an Ubuntu and a Bottlerocket control
 * plane, an Ubuntu and a Bottlerocket worker): what a fresh lab deviates on, exactly the deviations made by hand, and no
 * new deviation after a full rotation that also renews both workers' kubelet certificates.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { CisDeviation } from '../../src/check/cis.js';
import type { CheckReport } from '../../src/check/run.js';
import { startLab, type Lab } from '../lab/lab.js';
import { cert, cli } from './rotation-state.js';

const PKI = '/var/lib/kubelet/pki';

/** The static-pod manifests made 0644 (kubeadm, and the lab, write them 0600). */
const MANIFESTS_0644: CisDeviation[] = [
  { node: 'lab-cp-1', path: '/etc/kubernetes/manifests/kube-apiserver.yaml', item: '1.1.1', expected: '0600 or stricter', found: '0644' },
  { node: 'lab-cp-1', path: '/etc/kubernetes/manifests/kube-controller-manager.yaml', item: '1.1.3', expected: '0600 or stricter', found: '0644' },
  { node: 'lab-cp-1', path: '/etc/kubernetes/manifests/kube-scheduler.yaml', item: '1.1.5', expected: '0600 or stricter', found: '0644' },
  // Bottlerocket's static-pods helper writes /etc/kubernetes/static-pods/NAME, no extension.
  { node: 'lab-cp-2', path: '/etc/kubernetes/static-pods/kube-apiserver', item: '1.1.1', expected: '0600 or stricter', found: '0644' },
];

describe('check --cis', () => {
  let lab: Lab;
  const check = async (...args: string[]) => {
    const r = await cli(['check', '-i', lab.inventoryPath, '--cis', '-o', 'json', ...args]);
    const report = JSON.parse(r.out) as CheckReport;
    return { code: r.code, report };
  };

  beforeAll(async () => {
    lab = await startLab({
      nodes: [
        { name: 'lab-etcd-1', role: 'etcd' },
        { name: 'lab-cp-1', role: 'control-plane' },
        { name: 'lab-cp-2', role: 'control-plane', os: 'bottlerocket' },
        { name: 'lab-md-1', role: 'worker' },
        { name: 'lab-md-2', role: 'worker', os: 'bottlerocket' },
      ],
    });
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('a fresh lab has no deviation (exit 0); manifests made 0644 are reported in every format, exit 1; without --cis no cis field', async () => {
    const fresh = await check();
    expect(fresh.report.errors).toEqual([]);
    expect(fresh.report.cis).toEqual([]);
    expect(fresh.code).toBe(0);
    await lab.node('lab-cp-1').exec('chmod 0644 /etc/kubernetes/manifests/*.yaml');
    await lab.node('lab-cp-2').exec('chmod 0644 /etc/kubernetes/static-pods/kube-apiserver');
    const { code, report } = await check();
    expect(report.cis).toEqual(MANIFESTS_0644);
    expect(code).toBe(1);

    const plain = await cli(['check', '-i', lab.inventoryPath, '-o', 'json']);
    expect(plain.code).toBe(0);
    expect(JSON.parse(plain.out)).not.toHaveProperty('cis');

    const table = await cli(['check', '-i', lab.inventoryPath, '--cis']);
    expect(table.code).toBe(1);
    expect(table.out).toMatch(/lab-cp-1 \(control-plane\)\n[^]*\n {2}File permissions \(CIS\)\n {2}CIS +FOUND +EXPECTED +PATH\n {2}1\.1\.1 +0644 +0600 or stricter +\/etc\/kubernetes\/manifests\/kube-apiserver\.yaml\n/);
    expect(table.out).toContain('File permissions (CIS): 4 deviations on 2 nodes');

    const prom = await cli(['check', '-i', lab.inventoryPath, '--cis', '-o', 'prometheus']);
    expect(prom.code).toBe(1);
    expect(prom.out).toContain('rotate_certs_cis_deviation{cluster="lab",node="lab-cp-1",path="/etc/kubernetes/manifests/kube-scheduler.yaml",item="1.1.5"} 1');
    expect(prom.out).toContain('rotate_certs_cis_deviations{cluster="lab"} 4');
    await lab.node('lab-cp-1').exec('chmod 0600 /etc/kubernetes/manifests/*.yaml');
    await lab.node('lab-cp-2').exec('chmod 0600 /etc/kubernetes/static-pods/kube-apiserver');
    expect((await check()).report.cis).toEqual([]);
  });

  it('a key and admin.conf made 0644 and a certificate given to uid 1000: exactly those, with their items', async () => {
    const etcd = lab.node('lab-etcd-1');
    const cp = lab.node('lab-cp-1');
    const br = lab.node('lab-md-2');
    const sh = async (n: typeof etcd, script: string) => {
      const r = await n.exec(script);
      expect(r.code, `${n.name}: ${script}: ${r.stderr}`).toBe(0);
      return r.stdout.trim();
    };
    await sh(etcd, 'chmod 0644 /etc/etcd/pki/server.key');
    await sh(cp, 'chmod 0644 /etc/kubernetes/admin.conf');
    await sh(cp, 'chmod 0644 /etc/kubernetes/pki/front-proxy-ca.key');
    await sh(br, `chown 1000 ${PKI}/kubelet.crt`);
    // Whatever the node calls uid 1000 (useradd gave it to the SSH user, or nobody has it).
    const owner = await sh(br, `stat -c %U:%G ${PKI}/kubelet.crt | sed 's/^UNKNOWN:/1000:/'`);
    expect(owner).toMatch(/:root$/);
    try {
      const { code, report } = await check();
      expect(report.errors).toEqual([]);
      expect(report.cis).toEqual([
        { node: 'lab-etcd-1', path: '/etc/etcd/pki/server.key', item: '1.1.21', expected: '0600 or stricter', found: '0644' },
        { node: 'lab-cp-1', path: '/etc/kubernetes/admin.conf', item: '1.1.13', expected: '0600 or stricter', found: '0644' },
        { node: 'lab-cp-1', path: '/etc/kubernetes/pki/front-proxy-ca.key', item: '1.1.21', expected: '0600 or stricter', found: '0644' },
        { node: 'lab-md-2', path: `${PKI}/kubelet.crt`, item: '1.1.19', expected: 'root:root', found: owner },
      ]);
      expect(code).toBe(1);
    } finally {
      await sh(etcd, 'chmod 0600 /etc/etcd/pki/server.key');
      await sh(cp, 'chmod 0600 /etc/kubernetes/admin.conf /etc/kubernetes/pki/front-proxy-ca.key');
      await sh(br, `chown 0 ${PKI}/kubelet.crt`);
    }
    expect((await check()).report.cis).toEqual([]);
  });

  it('rotate --yes (etcd, control plane, and both workers\' kubelets) leaves no new deviation', async () => {
    await lab.expireKubelet('lab-md-1', { client: 'expiring' });
    await lab.expireKubelet('lab-md-2', { client: 'expiring', serving: 'expiring' });
    const before = {
      apiserver: (await cert(lab.node('lab-cp-1'), '/etc/kubernetes/pki/apiserver.crt')).serial,
      etcd: (await cert(lab.node('lab-etcd-1'), '/etc/etcd/pki/server.crt')).serial,
      md1: (await cert(lab.node('lab-md-1'), `${PKI}/kubelet-client-current.pem`)).serial,
      md2: (await cert(lab.node('lab-md-2'), `${PKI}/kubelet-client-current.pem`)).serial,
    };
    const r = await cli(['rotate', '-i', lab.inventoryPath, '--yes', '--state-dir', join(lab.dir, 'state')]);
    expect(r.err).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    // The rotation wrote every kind of file the rules cover.
    expect((await cert(lab.node('lab-cp-1'), '/etc/kubernetes/pki/apiserver.crt')).serial).not.toBe(before.apiserver);
    expect((await cert(lab.node('lab-etcd-1'), '/etc/etcd/pki/server.crt')).serial).not.toBe(before.etcd);
    expect((await cert(lab.node('lab-md-1'), `${PKI}/kubelet-client-current.pem`)).serial).not.toBe(before.md1);
    expect((await cert(lab.node('lab-md-2'), `${PKI}/kubelet-client-current.pem`)).serial).not.toBe(before.md2);

    const { code, report } = await check();
    expect(report.errors).toEqual([]);
    expect(report.certificates.every((c) => c.status === 'ok')).toBe(true);
    expect(report.cis).toEqual([]);
    expect(code).toBe(0);
  });
});
