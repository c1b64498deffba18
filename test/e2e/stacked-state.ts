/**
 * Stacked etcd in the lab, as the tests see it from outside: etcd's quorum sampled from the admin
 * machine while a rotation runs, members and kube-apiservers down at once (from the lab's
 * events.log), and the end state of a rotated stacked control plane (files, serials, CAs, SANs,
 * what :6443 and :2379 serve, the static pods' containers).
 */
import { expect } from 'vitest';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { inspectCertificate } from '../../src/certs/inspect.js';
import { servedCertificate } from '../../src/check/probe.js';
import type { Lab, LabNode } from '../lab/lab.js';
import { cert, duplicateStarts, fileState, kubeconfigCert, runningContainers } from './rotation-state.js';

/** Where a control plane keeps its PKI and kubeconfigs, and its static pods' names. */
export function cpPaths(node: Pick<LabNode, 'os'>) {
  return node.os === 'bottlerocket'
    ? { kubePki: '/var/lib/kubeadm/pki', kubeDir: '/var/lib/kubeadm', manifests: '/etc/kubernetes/static-pods', ext: '' }
    : { kubePki: '/etc/kubernetes/pki', kubeDir: '/etc/kubernetes', manifests: '/etc/kubernetes/manifests', ext: '.yaml' };
}

export const STATIC_PODS = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-vip'];
/** Every leaf `kubeadm certs renew all` renews on a stacked control plane, the four etcd ones included. */
export const STACKED_LEAVES = ['apiserver.crt', 'apiserver-kubelet-client.crt', 'front-proxy-client.crt', 'apiserver-etcd-client.crt', 'etcd/server.crt', 'etcd/peer.crt', 'etcd/healthcheck-client.crt'];
const KUBECONFIGS = ['admin.conf', 'controller-manager.conf', 'scheduler.conf', 'super-admin.conf'];
const CAS = ['ca.crt', 'ca.key', 'front-proxy-ca.crt', 'front-proxy-ca.key', 'etcd/ca.crt', 'etcd/ca.key'];
const ISSUER: Record<string, string> = { 'front-proxy-client.crt': 'front-proxy-ca.crt', 'apiserver-etcd-client.crt': 'etcd/ca.crt', 'etcd/server.crt': 'etcd/ca.crt', 'etcd/peer.crt': 'etcd/ca.crt', 'etcd/healthcheck-client.crt': 'etcd/ca.crt' };

const controlPlanes = (lab: Lab) => lab.nodes.filter((n) => n.role === 'control-plane');

/** node:path -> { serial, SANs } of every leaf a stacked control-plane rotation renews. */
export async function stackedLeaves(lab: Lab): Promise<Record<string, { serial: string; sans: string }>> {
  const out: Record<string, { serial: string; sans: string }> = {};
  for (const n of controlPlanes(lab)) {
    const p = cpPaths(n);
    for (const f of STACKED_LEAVES) {
      const pem = (await n.readFile(`${p.kubePki}/${f}`)).toString('utf8');
      out[`${n.name}:${p.kubePki}/${f}`] = { serial: inspectCertificate(pem).serial, sans: new X509Certificate(pem).subjectAltName ?? '' };
    }
    for (const k of KUBECONFIGS) {
      const path = `${p.kubeDir}/${k}`;
      if ((await n.exec(`test -f ${path}`)).code === 0) out[`${n.name}:${path}`] = { serial: (await kubeconfigCert(n, path)).serial, sans: '' };
    }
  }
  return out;
}

/** etcdctl endpoint health from the admin machine with the lab's observer pair: the endpoints called healthy. */
export function etcdHealthyEndpoints(lab: Lab, timeoutS = 3): Promise<string[]> {
  const o = lab.etcdObserver;
  const args = [`--endpoints=${o.endpoints.join(',')}`, `--cacert=${o.cacert}`, `--cert=${o.cert}`, `--key=${o.key}`, '--dial-timeout=2s', `--command-timeout=${timeoutS}s`, 'endpoint', 'health', '-w', 'json'];
  return new Promise((resolve) => {
    execFile('etcdctl', args, { env: { ...process.env, ETCDCTL_API: '3' }, timeout: (timeoutS + 5) * 1000 }, (_err, stdout) => {
      try {
        resolve((JSON.parse(stdout) as Array<{ endpoint: string; health: boolean }>).filter((h) => h.health).map((h) => h.endpoint));
      } catch {
        resolve([]);
      }
    });
  });
}

export interface QuorumSamples {
  samples: number;
  /** Samples where no member could serve a quorum read: etcd had lost its quorum. */
  withoutQuorum: Array<{ at: string; healthy: string[] }>;
  /** Samples where some but not all members were healthy (a member restarting). */
  degraded: number;
}

/**
 * Samples etcd's health every `everyMs` from the admin machine until stopped. `etcdctl endpoint
 * health` does a linearizable read through each endpoint, which needs a leader and a quorum: a
 * sample in which no endpoint is healthy is one without quorum.
 */
export function sampleQuorum(lab: Lab, everyMs = 300): { stop(): Promise<QuorumSamples> } {
  const result: QuorumSamples = { samples: 0, withoutQuorum: [], degraded: 0 };
  let running = true;
  const loop = (async () => {
    while (running) {
      const started = Date.now();
      const healthy = await etcdHealthyEndpoints(lab);
      result.samples++;
      if (healthy.length === 0) result.withoutQuorum.push({ at: new Date(started).toISOString(), healthy });
      else if (healthy.length < lab.etcdObserver.endpoints.length) result.degraded++;
      await new Promise((r) => setTimeout(r, Math.max(0, everyMs - (Date.now() - started))));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return result;
    },
  };
}

interface LabEvent {
  t: number;
  node: string;
  event: string;
  stopping?: boolean;
}

function events(lab: Lab, since: number): LabEvent[] {
  return readFileSync(join(lab.dir, 'events.log'), 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LabEvent)
    .filter((e) => e.t >= since)
    .sort((a, b) => a.t - b.t);
}

/**
 * The most etcd members (stacked: their etcd containers' processes) and kube-apiservers down at one
 * instant since `since`: a member is down from its SIGTERM or crash until its next start.
 */
export function maxDown(lab: Lab, since: number): { etcd: number; apiservers: number } {
  const etcd = new Set<string>();
  const api = new Set<string>();
  const max = { etcd: 0, apiservers: 0 };
  for (const e of events(lab, since)) {
    if (e.event === 'etcd-stop' || (e.event === 'etcd-exit' && !e.stopping)) etcd.add(e.node);
    if (e.event === 'etcd-start') etcd.delete(e.node);
    if (e.event === 'apiserver-stop') api.add(e.node);
    if (e.event === 'apiserver-start') api.delete(e.node);
    max.etcd = Math.max(max.etcd, etcd.size);
    max.apiservers = Math.max(max.apiservers, api.size);
  }
  return max;
}

/** GET /readyz of a node's kube-apiserver: status and body. */
export function readyz(node: LabNode): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request({ host: node.host, port: 6443, path: '/readyz', rejectUnauthorized: false, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => resolve({ status: 0, body: e.message }));
    req.end();
  });
}

/**
 * The end state of a rotated stacked control plane: every leaf (the four etcd ones included) and
 * kubeconfig renewed, about a year out, signed by the same CA file and with the same SANs as before
 * (kubeadm keeps them on renewal); CA files byte-identical; :6443 serving the renewed apiserver.crt
 * and ready, :2379 the renewed etcd/server.crt; every static pod (etcd too) back with one running
 * container; no pod started while its old container ran; every member healthy.
 */
export async function expectStackedRotated(lab: Lab, before: Record<string, { serial: string; sans: string }>, beforeState: Record<string, string>) {
  const now = Date.now();
  const after = await stackedLeaves(lab);
  expect(Object.keys(after).sort()).toEqual(Object.keys(before).sort());
  for (const [k, was] of Object.entries(before)) {
    expect(after[k]!.serial, `${k} renewed`).not.toBe(was.serial);
    expect(after[k]!.sans, `${k} keeps its SANs`).toBe(was.sans);
    const [name, path] = k.split(':') as [string, string];
    const n = lab.node(name);
    const c = path.endsWith('.conf') ? await kubeconfigCert(n, path) : await cert(n, path);
    const daysLeft = (c.notAfter.getTime() - now) / 86_400_000;
    expect(daysLeft, `${k} about a year out`).toBeGreaterThan(360);
    expect(daysLeft).toBeLessThan(367);
    if (!path.endsWith('.conf')) {
      const p = cpPaths(n);
      const leaf = path.slice(p.kubePki.length + 1);
      const ca = new X509Certificate(await n.readFile(`${p.kubePki}/${ISSUER[leaf] ?? 'ca.crt'}`));
      expect(new X509Certificate(await n.readFile(path)).verify(ca.publicKey), `${k} signed by its CA`).toBe(true);
    }
  }
  for (const n of controlPlanes(lab)) {
    const p = cpPaths(n);
    const state = await fileState(n);
    const line = (s: string, f: string) => s.split('\n').find((l) => l.endsWith(`  ${p.kubePki}/${f}`));
    for (const f of CAS) {
      expect(line(state, f), `${n.name} ${f} present`).toBeDefined();
      expect(line(state, f), `${n.name} ${f} unchanged`).toBe(line(beforeState[n.name]!, f));
    }
    const served = inspectCertificate(await servedCertificate({ host: n.host, port: 6443, timeoutMs: 3000 }));
    expect(served.fingerprint, `${n.name} :6443 serves the renewed certificate`).toBe((await cert(n, `${p.kubePki}/apiserver.crt`)).fingerprint);
    expect((await readyz(n)).status, `${n.name} ready`).toBe(200);
    const etcdServed = inspectCertificate(await servedCertificate({ host: n.host, port: 2379, timeoutMs: 3000 }));
    expect(etcdServed.fingerprint, `${n.name} :2379 serves the renewed certificate`).toBe((await cert(n, `${p.kubePki}/etcd/server.crt`)).fingerprint);
    const ls = (await n.exec(`ls ${p.manifests}/`)).stdout.split('\n').filter(Boolean).sort();
    expect(ls, `${n.name} static pods back`).toEqual(STATIC_PODS.map((s) => `${s}${p.ext}`));
    expect(await runningContainers(n), `${n.name} containers`).toEqual(Object.fromEntries(STATIC_PODS.map((s) => [s, 1])));
  }
  expect(duplicateStarts(lab), 'no static pod was started while its old container still ran').toEqual([]);
  expect((await etcdHealthyEndpoints(lab)).sort()).toEqual([...lab.etcdObserver.endpoints].sort());
}
