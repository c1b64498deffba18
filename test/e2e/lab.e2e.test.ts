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
import { readyz as readyzOf } from './stacked-state.js';

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
    const running = async () => JSON.parse((await cp.exec('crictl ps -o json')).stdout).containers as Array<{ id: string; metadata: { name: string }; state: string }>;
    const named = <T extends { metadata: { name: string } }>(cs: T[], n: string) => cs.filter((c) => c.metadata.name === n);
    const firstApiserver = named(await running(), 'kube-apiserver');
    expect(firstApiserver).toHaveLength(1);
    // Done right: wait until the old containers are gone, not only the port, then move them back.
    await cp.exec('mkdir -p /root/m && mv /etc/kubernetes/manifests/* /root/m/');
    await until('apiserver to stop', async () => ((await servedCert(cp.host, 6443).catch(() => null)) === null ? true : undefined));
    await until('the static pods\' containers to go', async () => ((await running()).length === 0 ? true : undefined));
    await cp.exec('mv /root/m/* /etc/kubernetes/manifests/');
    const served = await until('apiserver to start', () => servedCert(cp.host, 6443));
    expect(served.serialNumber).toBe(renewed);
    await until('four static pods running', async () => ((await running()).length === 4 ? true : undefined));
    expect(named(await running(), 'kube-apiserver')[0]!.id).not.toBe(firstApiserver[0]!.id);
    const events = () => readFileSync(join(lab.dir, 'events.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { node: string; event: string; pod?: string });
    expect(events().filter((e) => e.node === 'lab-cp-1' && e.event.startsWith('apiserver-')).map((e) => e.event)).toEqual(['apiserver-start', 'apiserver-stop', 'apiserver-start']);
    expect(events().filter((e) => e.event === 'duplicate-container')).toEqual([]);

    // Too early: back as soon as the port closes, as a fixed sleep or a port check would do. The
    // kubelet starts new containers while the old ones still run: duplicates, as AWS saw them.
    const early = await cp.exec(`mv /etc/kubernetes/manifests/* /root/m/
      while (exec 3<>/dev/tcp/${cp.host}/6443) 2>/dev/null; do sleep 0.05; done
      mv /root/m/* /etc/kubernetes/manifests/`);
    expect(early.code, early.stderr).toBe(0);
    await until('apiserver to start', () => servedCert(cp.host, 6443));
    await new Promise((r) => setTimeout(r, 5000)); // longer than any container takes to go
    const after = await running();
    expect(named(after, 'kube-apiserver'), 'two kube-apiserver containers').toHaveLength(2);
    expect(named(after, 'kube-vip'), 'two kube-vip containers').toHaveLength(2);
    expect(events().filter((e) => e.event === 'duplicate-container').map((e) => e.pod).sort()).toEqual(['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-vip']);
    // crictl removes the older ones; the kubelet keeps running the newest.
    for (const n of ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-vip']) {
      const older = (await cp.exec(`crictl ps -q --name '^${n}$' | tail -n +2`)).stdout.trim().split('\n').filter(Boolean);
      expect(older, n).toHaveLength(1);
      expect((await cp.exec(`crictl stop ${older[0]} && crictl rm ${older[0]}`)).code).toBe(0);
    }
    expect(await running()).toHaveLength(4);
    expect((await servedCert(cp.host, 6443)).serialNumber).toBe(renewed);
  });

  it("a kube-apiserver whose etcd key is not its certificate's exits and is restarted until the files match", async () => {
    const cp = lab.node('lab-cp-2');
    const pki = '/etc/kubernetes/pki';
    // The new certificate beside the old key: what installing only one half of the pair leaves.
    await cp.exec(`cp ${pki}/apiserver-etcd-client.key /root/etcd-client.key && cp ${pki}/apiserver-kubelet-client.key ${pki}/apiserver-etcd-client.key && mkdir -p /root/m2 && mv /etc/kubernetes/manifests/kube-apiserver.yaml /root/m2/`);
    await until('apiserver to stop', async () => ((await servedCert(cp.host, 6443).catch(() => null)) === null ? true : undefined));
    await cp.exec('mv /root/m2/kube-apiserver.yaml /etc/kubernetes/manifests/');
    await until('the kube-apiserver to exit', async () => ((await cp.exec("crictl ps -a --name '^kube-apiserver$' --state exited -q")).stdout.trim() ? true : undefined));
    expect(await servedCert(cp.host, 6443).catch(() => null)).toBeNull();
    expect((await cp.readFile('/var/log/kubelet-agent.log')).toString()).toMatch(/tls: private key does not match public key/);
    await cp.exec(`cp /root/etcd-client.key ${pki}/apiserver-etcd-client.key`);
    await until('apiserver to start', () => servedCert(cp.host, 6443), 15_000);
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

    // When it cannot read the cluster's configuration it falls back to a local etcd, and on this
    // external-etcd control plane stops at apiserver-etcd-client, after renewing two certificates.
    const noCluster = await cp.exec('kubeadm certs renew all --kubeconfig /root/none.conf');
    expect(noCluster.code).toBe(1);
    expect(noCluster.stdout.trim().split('\n')).toEqual([
      'certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself renewed',
      'certificate for serving the Kubernetes API renewed',
    ]);
    expect(noCluster.stderr).toMatch(/^Error checking external CA condition for etcd\/ca certificate authority: failure loading key for etcd\/server: couldn't load the private key file \/etc\/kubernetes\/pki\/etcd\/server\.key/);
    // By name, each one checks only its own CA: they all work.
    const byName = await cp.exec('for n in admin.conf apiserver apiserver-kubelet-client controller-manager.conf front-proxy-client scheduler.conf; do kubeadm certs renew $n --kubeconfig /root/none.conf || exit 1; done');
    expect(byName.code, byName.stderr).toBe(0);
    // super-admin.conf is a certificate of kubeadm 1.29 and later; this lab runs 1.28.
    expect((await cp.exec('kubeadm certs renew super-admin.conf')).stderr).toMatch(/^invalid subcommand: "super-admin.conf"/);
  });

  it('etcdadm join phase certificates recreates deleted certs with the same CA, named after the host as it is now', async () => {
    const n = lab.node('lab-etcd-2');
    const r = await n.exec('cd /etc/etcd && cp -r pki pki.bak && rm pki/* && cp pki.bak/ca.* pki && etcdadm join phase certificates http://eks-a-etcd-dumb-url');
    expect(r.code, r.stderr).toBe(0);
    const ca = new X509Certificate(readFileSync(join(lab.caDir, 'etcd-ca.crt')));
    for (const f of ['server', 'peer', 'etcdctl-etcd-client', 'apiserver-etcd-client']) {
      const c = new X509Certificate(await n.readFile(`/etc/etcd/pki/${f}.crt`));
      expect(c.verify(ca.publicKey), f).toBe(true);
    }
    // etcdadm's SANs: the host's name and default-route address (and 127.0.0.1 for the server).
    expect(new X509Certificate(await n.readFile('/etc/etcd/pki/server.crt')).subjectAltName).toBe(`DNS:lab-etcd-2, IP Address:${n.host}, IP Address:127.0.0.1`);
    expect(new X509Certificate(await n.readFile('/etc/etcd/pki/peer.crt')).subjectAltName).toBe(`DNS:lab-etcd-2, IP Address:${n.host}`);
    expect((await n.readFile('/etc/etcd/pki/server.key')).toString()).toMatch(/^-----BEGIN RSA PRIVATE KEY-----/);
    // Run again: it only creates what is missing, so it keeps every pair.
    const again = await n.exec('etcdadm join phase certificates http://eks-a-etcd-dumb-url');
    expect(again.stdout.match(/Using the existing \S+ certificate and key/g)).toHaveLength(5);
    // etcd serves the new server cert on new connections without a restart.
    const fresh = await serial(lab, n.name, '/etc/etcd/pki/server.crt');
    expect((await servedCert(n.host, 2379)).serialNumber).toBe(fresh);
    // One CA file only: refuse.
    const bad = await n.exec('mkdir -p /root/x && mv /etc/etcd/pki/ca.key /root/x/ && rm /etc/etcd/pki/server.crt; etcdadm join phase certificates http://x; c=$?; mv /root/x/ca.key /etc/etcd/pki/; exit $c');
    expect(bad.code).toBe(1);
  });

  it('a kube-apiserver is ready only while etcd answers it: two members frozen, no quorum, not ready', async () => {
    const readyz = () => readyzOf(lab.node('lab-cp-1')).then((r) => `${r.body} ${r.status}`);
    // The tests before restarted it: ready once it has started again.
    await until('/readyz ok', async () => ((await readyz()) === 'ok 200' ? true : undefined), 60_000);
    // The etcd processes the lab started on two members (lab.json: sshd first, then etcd), stopped in place.
    const state = JSON.parse(readFileSync(join(lab.dir, 'lab.json'), 'utf8')) as { nodes: Array<{ name: string; pids: number[] }> };
    const frozen = ['lab-etcd-2', 'lab-etcd-3'].map((n) => state.nodes.find((x) => x.name === n)!.pids[1]!);
    for (const pid of frozen) expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toMatch(/^\/usr\/bin\/etcd\0/);
    try {
      for (const pid of frozen) process.kill(pid, 'SIGSTOP');
      const answer = await until('/readyz to fail', async () => {
        const r = await readyz();
        return r.endsWith(' 500') ? r : undefined;
      }, 20_000);
      // Every endpoint it has, asked with its client pair: the one left has no leader, the others do not answer.
      expect(answer).toMatch(/\[-\]etcd failed: https:\/\/10\.201\.\d+\.11:2379: .*; https:\/\/10\.201\.\d+\.12:2379: .*; https:\/\/10\.201\.\d+\.13:2379: /);
    } finally {
      for (const pid of frozen) process.kill(pid, 'SIGCONT');
    }
    await until('/readyz ok again', async () => ((await readyz()) === 'ok 200' ? true : undefined), 30_000);
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
