/** Smoke test of the emulated cluster itself (test/lab): what the product's e2e tests rely on. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startLab, type Lab } from '../lab/lab.js';

const pexec = promisify(execFile);

function servedCert(host: string, port: number): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, rejectUnauthorized: false }, () => {
      const raw = s.getPeerCertificate().raw;
      s.destroy();
      resolve(new X509Certificate(raw));
    });
    s.once('error', reject);
  });
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const serial = async (lab: Lab, node: string, path: string) => new X509Certificate(await lab.node(node).readFile(path)).serialNumber;

describe('lab: 3 etcd, 2 control plane, 1 worker', () => {
  let lab: Lab;
  let pids: number[] = [];
  beforeAll(async () => {
    lab = await startLab({ etcd: 3, controlPlane: 2, workers: 1 });
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('writes the inventory and lets ssh in with strict host keys', async () => {
    const inv = readFileSync(lab.inventoryPath, 'utf8');
    expect(inv).toMatch(/^cluster: lab$/m);
    expect(inv).toMatch(/hostKeyPolicy: strict/);
    const etcd1 = lab.node('lab-etcd-1');
    const { stdout } = await pexec('ssh', [
      '-i', lab.identityFile, '-o', `UserKnownHostsFile=${lab.knownHostsFile}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes',
      '-o', 'ConnectTimeout=5', `capv@${etcd1.host}`, 'sudo -n cat /etc/etcd/pki/server.crt',
    ]);
    expect(stdout).toBe((await etcd1.readFile('/etc/etcd/pki/server.crt')).toString());
  });

  it('runs a healthy TLS etcd cluster reachable from the root netns', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rc-lab-test-'));
    try {
      const n = lab.node('lab-etcd-1');
      for (const f of ['ca.crt', 'etcdctl-etcd-client.crt', 'etcdctl-etcd-client.key']) writeFileSync(join(dir, f), await n.readFile(`/etc/etcd/pki/${f}`));
      const { stdout, stderr } = await pexec('etcdctl', [
        `--endpoints=${lab.nodes.filter((x) => x.role === 'etcd').map((x) => `https://${x.host}:2379`).join(',')}`,
        `--cacert=${dir}/ca.crt`, `--cert=${dir}/etcdctl-etcd-client.crt`, `--key=${dir}/etcdctl-etcd-client.key`, 'endpoint', 'health', '--cluster',
      ]);
      expect((stdout + stderr).match(/is healthy/g)).toHaveLength(3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    for (const n of lab.nodes.filter((x) => x.role === 'etcd')) {
      expect((await servedCert(n.host, 2379)).serialNumber).toBe(await serial(lab, n.name, '/etc/etcd/pki/server.crt'));
    }
  });

  it('serves apiserver.crt on :6443, stops with the manifest moved out, re-reads it when moved back', async () => {
    const cp = lab.node('lab-cp-1');
    expect((await servedCert(cp.host, 6443)).serialNumber).toBe(await serial(lab, 'lab-cp-1', '/etc/kubernetes/pki/apiserver.crt'));
    const renew = await cp.exec('kubeadm certs renew all');
    expect(renew.code).toBe(0);
    expect(renew.stdout).toMatch(/certificate for serving the Kubernetes API renewed/);
    const renewed = await serial(lab, 'lab-cp-1', '/etc/kubernetes/pki/apiserver.crt');
    // Still the old cert: the static pod read it at start.
    expect((await servedCert(cp.host, 6443)).serialNumber).not.toBe(renewed);
    await cp.exec('mkdir -p /root/m && mv /etc/kubernetes/manifests/* /root/m/');
    await until('apiserver to stop', async () => ((await servedCert(cp.host, 6443).catch(() => null)) === null ? true : undefined));
    await cp.exec('mv /root/m/* /etc/kubernetes/manifests/');
    const served = await until('apiserver to start', () => servedCert(cp.host, 6443));
    expect(served.serialNumber).toBe(renewed);
    const events = readFileSync(join(lab.dir, 'events.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { node: string; event: string });
    expect(events.filter((e) => e.node === 'lab-cp-1').map((e) => e.event)).toEqual(['apiserver-start', 'apiserver-stop', 'apiserver-start']);
  });

  it('kubeadm certs renew all renews every kubeadm leaf and embedded client cert, not the etcd client pair', async () => {
    const cp = lab.node('lab-cp-2');
    const files = ['apiserver.crt', 'apiserver-kubelet-client.crt', 'front-proxy-client.crt'].map((f) => `/etc/kubernetes/pki/${f}`);
    const before = await Promise.all(files.map((f) => serial(lab, cp.name, f)));
    const etcdClient = await serial(lab, cp.name, '/etc/kubernetes/pki/apiserver-etcd-client.crt');
    const admin = (await cp.readFile('/etc/kubernetes/admin.conf')).toString();
    const kubelet = (await cp.readFile('/etc/kubernetes/kubelet.conf')).toString();
    const r = await cp.exec('kubeadm certs renew all && kubeadm certs check-expiration');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/CERTIFICATE\s+EXPIRES\s+RESIDUAL TIME\s+CERTIFICATE AUTHORITY\s+EXTERNALLY MANAGED/);
    const after = await Promise.all(files.map((f) => serial(lab, cp.name, f)));
    after.forEach((s, i) => expect(s).not.toBe(before[i]));
    expect(await serial(lab, cp.name, '/etc/kubernetes/pki/apiserver-etcd-client.crt')).toBe(etcdClient);
    expect((await cp.readFile('/etc/kubernetes/admin.conf')).toString()).not.toBe(admin);
    expect((await cp.readFile('/etc/kubernetes/kubelet.conf')).toString()).toBe(kubelet);
    // Renewed certs are signed by the lab's CA with the same subject and SANs.
    const ca = new X509Certificate(readFileSync(join(lab.caDir, 'ca.crt')));
    const api = new X509Certificate(await cp.readFile('/etc/kubernetes/pki/apiserver.crt'));
    expect(api.verify(ca.publicKey)).toBe(true);
    expect(api.subjectAltName).toContain(`IP Address:${cp.host}`);
    expect(api.subject).toMatch(/CN=kube-apiserver/);
  });

  it('etcdadm join phase certificates recreates deleted certs with the same CA', async () => {
    const n = lab.node('lab-etcd-2');
    const r = await n.exec('cd /etc/etcd && cp -r pki pki.bak && rm pki/* && cp pki.bak/ca.* pki && etcdadm join phase certificates http://eks-a-etcd-dumb-url');
    expect(r.code, r.stderr).toBe(0);
    const ca = new X509Certificate(readFileSync(join(lab.caDir, 'etcd-ca.crt')));
    for (const f of ['server', 'peer', 'etcdctl-etcd-client', 'apiserver-etcd-client']) {
      const c = new X509Certificate(await n.readFile(`/etc/etcd/pki/${f}.crt`));
      expect(c.verify(ca.publicKey), f).toBe(true);
    }
    // etcd serves the new server cert on new connections without a restart.
    const fresh = await serial(lab, n.name, '/etc/etcd/pki/server.crt');
    expect((await servedCert(n.host, 2379)).serialNumber).toBe(fresh);
    // One CA file only: refuse.
    const bad = await n.exec('mkdir -p /root/x && mv /etc/etcd/pki/ca.key /root/x/ && rm /etc/etcd/pki/server.crt; etcdadm join phase certificates http://x; c=$?; mv /root/x/ca.key /etc/etcd/pki/; exit $c');
    expect(bad.code).toBe(1);
  });

  it('down() removes every namespace and process', async () => {
    const ns = lab.nodes.map((n) => n.netns);
    for (const n of ns) {
      const { stdout } = await pexec('ip', ['netns', 'pids', n]);
      pids.push(...stdout.split(/\s+/).filter(Boolean).map(Number));
    }
    expect(pids.length).toBeGreaterThan(lab.nodes.length);
    await lab.down();
    const { stdout } = await pexec('ip', ['netns', 'list']);
    for (const n of ns) expect(stdout.split('\n').map((l) => l.split(' ')[0])).not.toContain(n);
    const alive = pids.filter((p) => {
      try {
        return !/^\d+ \(.*\) [ZX]/s.test(readFileSync(`/proc/${p}/stat`, 'utf8'));
      } catch {
        return false;
      }
    });
    expect(alive).toEqual([]);
    pids = [];
    await lab.down(); // idempotent
  });
});
