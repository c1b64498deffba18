/**
 * End-state helpers for the rotation tests: what the nodes hold (files, serials, CA bytes), what
 * their endpoints serve, etcd health with the client certificate on the node, the management
 * secret, and the order in which kube-apiservers went down. Paths follow each node's OS.
 */
import 'reflect-metadata';
import { expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { runCli, type CliEnv } from '../../src/cli/program.js';
import type { CliIo } from '../../src/cli/io.js';
import { inspectCertificate } from '../../src/certs/inspect.js';
import { servedCertificate } from '../../src/check/probe.js';
import type { Lab, LabNode, LabNodeSpec } from '../lab/lab.js';

/**
 * With ROTATE_CERTS_E2E_LOG=DIR, every CLI run's output is also appended to DIR/<test file>.log as it
 * comes, with the time: a test that runs out its timeout shows where the run was.
 */
function liveLog(args: string[]): (stream: string, text: string) => void {
  const dir = process.env.ROTATE_CERTS_E2E_LOG;
  if (!dir) return () => undefined;
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${basename(expect.getState().testPath ?? 'unknown')}.log`);
  appendFileSync(file, `\n${new Date().toISOString()} ## ${expect.getState().currentTestName ?? ''}\n${new Date().toISOString()} $ rotate-certs ${args.join(' ')}\n`);
  return (stream, text) => appendFileSync(file, text.replace(/^(?=.)/gm, `${new Date().toISOString()} ${stream} `));
}

/** The CLI in-process, output captured; `env` is what the binary would pass (Ctrl-C, gate timeouts). */
export async function cli(args: string[], env: CliEnv = {}) {
  let out = '';
  let err = '';
  const log = liveLog(args);
  const io: CliIo = {
    out: (t) => {
      out += t;
      log('out', t);
    },
    err: (t) => {
      err += t;
      log('err', t);
    },
    color: false,
    env: process.env,
    cwd: process.cwd(),
  };
  const code = await runCli(args, io, env);
  return { code, out, err };
}

/** The mixed cluster of the Bottlerocket tests: every OS in the etcd cluster and on the control plane. */
export const MIXED_NODES: LabNodeSpec[] = [
  { name: 'lab-etcd-1', role: 'etcd', os: 'bottlerocket' },
  { name: 'lab-etcd-2', role: 'etcd' },
  { name: 'lab-etcd-3', role: 'etcd', os: 'rhel' },
  { name: 'lab-cp-1', role: 'control-plane' },
  { name: 'lab-cp-2', role: 'control-plane', os: 'bottlerocket' },
  { name: 'lab-md-1', role: 'worker', os: 'bottlerocket' },
];

/**
 * Where a node keeps its PKI, as os-profiles/<os>.yaml says, and the etcd client files its
 * kube-apiserver reads (EKS Anywhere's Bottlerocket templates: server-etcd-client.crt with
 * apiserver-etcd-client.key).
 */
export function pathsOf(node: Pick<LabNode, 'os'>) {
  return node.os === 'bottlerocket'
    ? { etcdPki: '/var/lib/etcd/pki', kubePki: '/var/lib/kubeadm/pki', kubeDir: '/var/lib/kubeadm', pairCrt: 'server-etcd-client.crt', pairKey: 'apiserver-etcd-client.key', staticPods: ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-vip'] }
    : { etcdPki: '/etc/etcd/pki', kubePki: '/etc/kubernetes/pki', kubeDir: '/etc/kubernetes', pairCrt: 'apiserver-etcd-client.crt', pairKey: 'apiserver-etcd-client.key', staticPods: ['kube-apiserver.yaml', 'kube-controller-manager.yaml', 'kube-scheduler.yaml', 'kube-vip.yaml'] };
}

/** The client certificate a kubeconfig embeds. */
export async function kubeconfigCert(node: LabNode, path: string) {
  const text = (await node.readFile(path)).toString('utf8');
  const b64 = /client-certificate-data: (\S+)/.exec(text)?.[1];
  if (!b64) throw new Error(`${node.name}:${path} embeds no client certificate`);
  return inspectCertificate(Buffer.from(b64, 'base64').toString('utf8'));
}

const KUBECONFIGS = ['admin.conf', 'controller-manager.conf', 'scheduler.conf', 'super-admin.conf'];

/** Running containers per name on a node, from the lab runtime's records (what crictl and ctr list). */
export async function runningContainers(node: LabNode): Promise<Record<string, number>> {
  const r = await node.exec(`cat /var/lib/rotate-certs-lab/containers/*.json 2>/dev/null | jq -s -c 'map(select(.state == "CONTAINER_RUNNING") | .metadata.name) | group_by(.) | map({key: .[0], value: length}) | from_entries'`);
  return JSON.parse(r.stdout || '{}') as Record<string, number>;
}

/** Static pods that were started again while their old container still ran, anywhere in the lab. */
export function duplicateStarts(lab: Lab): string[] {
  return readFileSync(join(lab.dir, 'events.log'), 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { node: string; event: string; pod?: string })
    .filter((e) => e.event === 'duplicate-container')
    .map((e) => `${e.node}: ${e.pod}`);
}

const ETCD_LEAVES = ['server.crt', 'peer.crt', 'etcdctl-etcd-client.crt', 'apiserver-etcd-client.crt'];
const CP_LEAVES = ['apiserver.crt', 'apiserver-kubelet-client.crt', 'front-proxy-client.crt'];
const CP_CAS = ['ca.crt', 'ca.key', 'front-proxy-ca.crt', 'front-proxy-ca.key', 'etcd/ca.crt'];

/** sha256 of every file under the folders rotate-certs may touch, as the node sees them. */
export async function fileState(node: LabNode): Promise<string> {
  // /var/lib/etcd itself holds live etcd data on Ubuntu; only its pki folders (and backups) count.
  const r = await node.exec(`find /etc/etcd /etc/kubernetes /var/lib/kubelet /var/lib/kubeadm /var/lib/etcd/pki* \\( -type f -o -type l \\) -print0 2>/dev/null | sort -z | xargs -0 -r sha256sum`);
  return r.stdout;
}

/** The lines of a fileState() that are files directly in /etc/etcd/pki (not its backups). */
export function etcdPkiLines(state: string): string {
  return state.split('\n').filter((l) => / \/etc\/etcd\/pki\/[^/]+$/.test(l)).join('\n');
}

export async function clusterState(lab: Lab): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const n of lab.nodes) out[n.name] = await fileState(n);
  return out;
}

export async function cert(node: LabNode, path: string) {
  return inspectCertificate((await node.readFile(path)).toString('utf8'));
}

/** node:path -> serial of every leaf the rotation renews. */
export async function serials(lab: Lab): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const n of lab.nodes) {
    const p = pathsOf(n);
    const files =
      n.role === 'etcd' ? ETCD_LEAVES.map((f) => `${p.etcdPki}/${f}`) : n.role === 'control-plane' ? [...CP_LEAVES, p.pairCrt].map((f) => `${p.kubePki}/${f}`) : [];
    for (const f of files) out[`${n.name}:${f}`] = (await cert(n, f)).serial;
    if (n.role === 'control-plane') {
      for (const k of KUBECONFIGS) {
        const path = `${p.kubeDir}/${k}`;
        if ((await n.exec(`test -f ${path}`)).code === 0) out[`${n.name}:${path}`] = (await kubeconfigCert(n, path)).serial;
      }
    }
  }
  return out;
}

/** etcdctl from the admin machine, with the client certificate the first etcd node holds now. */
export async function etcdHealthy(lab: Lab): Promise<boolean> {
  const etcd = lab.nodes.filter((n) => n.role === 'etcd');
  const tmp = mkdtempSync(join(lab.dir, 'etcdctl-'));
  try {
    for (const f of ['ca.crt', 'etcdctl-etcd-client.crt', 'etcdctl-etcd-client.key']) writeFileSync(join(tmp, f), await etcd[0]!.readFile(`${pathsOf(etcd[0]!).etcdPki}/${f}`), { mode: 0o600 });
    execFileSync('etcdctl', [`--endpoints=${etcd.map((n) => `https://${n.host}:2379`).join(',')}`, `--cacert=${tmp}/ca.crt`, `--cert=${tmp}/etcdctl-etcd-client.crt`, `--key=${tmp}/etcdctl-etcd-client.key`, '--dial-timeout=3s', 'endpoint', 'health'], { env: { ...process.env, ETCDCTL_API: '3' }, stdio: 'pipe' });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

export function secretPair(lab: Lab): { crt: string; key: string } {
  const state = JSON.parse(readFileSync(join(lab.dir, 'apiserver-state.json'), 'utf8')) as { secrets: Record<string, { data: Record<string, string> }> };
  const data = state.secrets['eksa-system/lab-apiserver-etcd-client']!.data;
  return { crt: Buffer.from(data['tls.crt']!, 'base64').toString('utf8'), key: Buffer.from(data['tls.key']!, 'base64').toString('utf8') };
}

/** The most kube-apiservers that were down at one instant. */
export function maxApiserversDown(lab: Lab): number {
  const events = readFileSync(join(lab.dir, 'events.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { t: number; node: string; event: string });
  const down = new Set<string>();
  let max = 0;
  for (const e of events.sort((a, b) => a.t - b.t)) {
    if (e.event === 'apiserver-stop') down.add(e.node);
    if (e.event === 'apiserver-start') down.delete(e.node);
    max = Math.max(max, down.size);
  }
  return max;
}

export function journal(stateDir: string): Array<{ event: string; phase?: string; node?: string; step?: string; t: string }> {
  return readFileSync(join(stateDir, 'lab', 'journal.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

/** `plan --nodes NODES` on a recovery that needs more members than those: refused (64) with `message`, nothing changed. */
export async function expectScopeRefused(lab: Lab, stateDir: string, nodes: string, message: RegExp) {
  const before = await clusterState(lab);
  const r = await cli(['plan', '-i', lab.inventoryPath, '--nodes', nodes, '--state-dir', stateDir]);
  expect(r.code).toBe(64);
  expect(r.err).toMatch(message);
  expect(await clusterState(lab)).toEqual(before);
}

/** The end state every successful rotation must reach. */
export async function expectRotated(lab: Lab, before: Record<string, string>, beforeState: Record<string, string>) {
  const now = Date.now();
  const after = await serials(lab);
  for (const [k, serial] of Object.entries(before)) {
    expect(after[k], `${k} renewed`).not.toBe(serial);
    const [name, path] = k.split(':') as [string, string];
    const c = path.endsWith('.conf') ? await kubeconfigCert(lab.node(name), path) : await cert(lab.node(name), path);
    const daysLeft = (c.notAfter.getTime() - now) / 86_400_000;
    expect(daysLeft, `${k} about a year out`).toBeGreaterThan(360);
    expect(daysLeft).toBeLessThan(367);
  }
  // CA files byte-identical.
  for (const n of lab.nodes.filter((n) => n.role !== 'worker')) {
    const p = pathsOf(n);
    const cas = n.role === 'etcd' ? [`${p.etcdPki}/ca.crt`, `${p.etcdPki}/ca.key`] : CP_CAS.map((f) => `${p.kubePki}/${f}`);
    const now = await fileState(n);
    for (const f of cas) {
      const line = (s: string) => s.split('\n').find((l) => l.endsWith(`  ${f}`));
      expect(line(now), `${n.name} ${f} present`).toBeDefined();
      expect(line(now), `${n.name} ${f} unchanged`).toBe(line(beforeState[n.name]!));
    }
  }
  // Each :6443 serves the renewed apiserver.crt; each :2379 the renewed server.crt; pods back.
  for (const n of lab.nodes.filter((n) => n.role !== 'worker')) {
    const p = pathsOf(n);
    const file = n.role === 'etcd' ? `${p.etcdPki}/server.crt` : `${p.kubePki}/apiserver.crt`;
    const served = inspectCertificate(await servedCertificate({ host: n.host, port: n.role === 'etcd' ? 2379 : 6443, timeoutMs: 3000 }));
    expect(served.fingerprint, `${n.name} serves the renewed cert`).toBe((await cert(n, file)).fingerprint);
    if (n.role === 'control-plane') {
      const ls = (await n.exec('ls /etc/kubernetes/manifests/')).stdout.split('\n').filter(Boolean).sort();
      expect(ls, `${n.name} static pods back`).toEqual(p.staticPods);
      const key = await n.exec(`stat -c %a ${p.kubePki}/${p.pairKey}`);
      expect(key.stdout.trim()).toBe('600');
      // Exactly one running container per static pod: none left behind by a restart too early.
      expect(await runningContainers(n), `${n.name} containers`).toEqual({ 'kube-apiserver': 1, 'kube-controller-manager': 1, 'kube-scheduler': 1, 'kube-vip': 1 });
    }
  }
  expect(duplicateStarts(lab), 'no static pod was started while its old container still ran').toEqual([]);
  expect(await etcdHealthy(lab)).toBe(true);
  // The secret and every control-plane node hold the pair of an etcd node.
  const pair = secretPair(lab);
  const etcdPairs = await Promise.all(lab.nodes.filter((n) => n.role === 'etcd').map(async (n) => (await n.readFile(`${pathsOf(n).etcdPki}/apiserver-etcd-client.crt`)).toString('utf8').trim()));
  expect(etcdPairs).toContain(pair.crt.trim());
  for (const n of lab.nodes.filter((n) => n.role === 'control-plane')) {
    const p = pathsOf(n);
    expect((await n.readFile(`${p.kubePki}/${p.pairCrt}`)).toString('utf8').trim()).toBe(pair.crt.trim());
    expect((await n.readFile(`${p.kubePki}/${p.pairKey}`)).toString('utf8').trim()).toBe(pair.key.trim());
  }
  expect(maxApiserversDown(lab)).toBeLessThanOrEqual(1);
}
