/**
 * The management cluster after renewal, on the emulated cluster (1 external etcd, 1 control plane,
 * 1 worker) whose API serves Cluster API v1beta2 only: Machines listed from it; the secret updated
 * through a kubeconfig whose user runs an exec credential plugin, its type kept; etcdadm-controller
 * restarted and rolled out; the commands printed when the API cannot be used, run as printed; and a
 * worker whose inventory name is not its Node's name.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { readClusterFolder } from '../../src/eksa/cluster-spec.js';
import { listMachineNodes } from '../../src/eksa/machines.js';
import { KubeApiError, KubeClient, readKubeconfig } from '../../src/kube/client.js';
import { startLab, type Lab } from '../lab/lab.js';
import { cert, cli, journal, secretPair } from './rotation-state.js';

const PLUGIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'exec-plugin', 'credential-plugin.mjs');
const SECRET = '/api/v1/namespaces/eksa-system/secrets/lab-apiserver-etcd-client';
const DEPLOY = '/apis/apps/v1/namespaces/etcdadm-controller-system/deployments/etcdadm-controller-controller-manager';
const RESTARTED_AT = 'kubectl.kubernetes.io/restartedAt';

interface ApiState {
  resourceVersion: number;
  secrets: Record<string, { type: string; metadata: { resourceVersion: string; annotations?: Record<string, string> }; data: Record<string, string> }>;
}
interface ReplicaSet {
  metadata: { name: string; resourceVersion: string; annotations: Record<string, string> };
  spec: { replicas: number; template: { metadata: { annotations?: Record<string, string> } } };
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * What `kubectl apply -f -` (client-side apply, the default) sends for an object that exists: it
 * GETs the live object, then PATCHes (strategic merge) the fields of the new configuration that
 * differ from it, plus the kubectl.kubernetes.io/last-applied-configuration annotation (the live
 * Secret has none, so there is nothing to delete). An emulation: the lab API has no discovery or
 * OpenAPI documents for a real kubectl. metadata.creationTimestamp (null in `create --dry-run`
 * output) is left out: the API server keeps the stored one on update anyway.
 */
async function kubectlApply(client: KubeClient, yaml: string): Promise<void> {
  const modified = parse(yaml) as { apiVersion: string; kind: string; metadata: Record<string, unknown> & { name: string; namespace: string } };
  delete modified.metadata.creationTimestamp;
  const lastApplied = JSON.stringify(modified);
  modified.metadata.annotations = { ...((modified.metadata.annotations as Record<string, string>) ?? {}), 'kubectl.kubernetes.io/last-applied-configuration': lastApplied };
  const path = `/api/v1/namespaces/${modified.metadata.namespace}/secrets/${modified.metadata.name}`;
  const current = await client.request<Record<string, unknown>>('GET', path);
  const delta = (m: unknown, c: unknown): unknown => {
    if (m && typeof m === 'object' && !Array.isArray(m) && c && typeof c === 'object' && !Array.isArray(c)) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(m)) {
        const d = delta(v, (c as Record<string, unknown>)[k]);
        if (d !== undefined) out[k] = d;
      }
      return Object.keys(out).length > 0 ? out : undefined;
    }
    return JSON.stringify(m) === JSON.stringify(c) ? undefined : m;
  };
  await client.request('PATCH', path, delta(modified, current) ?? {}, 'application/strategic-merge-patch+json');
}

/**
 * `kubectl create secret ... --dry-run=client -o yaml` as printed, run in `cwd`: by kubectl when
 * this machine has it (it needs no server for that), else rendered the way kubectl renders it.
 */
function kubectlCreateDryRun(command: string, cwd: string): string {
  if (spawnSync('bash', ['-c', 'command -v kubectl'], { stdio: 'ignore' }).status === 0) return execFileSync('bash', ['-c', command], { cwd, encoding: 'utf8' });
  const args = command.split(/\s+/);
  const name = args[args.indexOf('secret') + 2]!;
  const flag = (f: string) => args.filter((a) => a.startsWith(`--${f}=`)).map((a) => a.slice(f.length + 3));
  const file = (f: string) => readFileSync(join(cwd, f)).toString('base64');
  const tls = args[args.indexOf('secret') + 1] === 'tls';
  const data = tls ? { 'tls.crt': file(flag('cert')[0]!), 'tls.key': file(flag('key')[0]!) } : Object.fromEntries(flag('from-file').map((kv) => [kv.split('=')[0]!, file(kv.split('=')[1]!)]));
  return stringify({ apiVersion: 'v1', data, kind: 'Secret', metadata: { creationTimestamp: null, name, namespace: args[args.indexOf('-n') + 1] }, type: tls ? 'kubernetes.io/tls' : (flag('type')[0] ?? 'Opaque') });
}

describe('the management cluster (Cluster API v1beta2 only) after renewal', () => {
  let lab: Lab;
  let admin: string;
  let api: KubeClient;
  const state = () => JSON.parse(readFileSync(join(lab.dir, 'apiserver-state.json'), 'utf8')) as ApiState;
  /** The lab's inventory with these changes to its text. */
  const inventory = (file: string, edit: (text: string) => string) => {
    const path = join(lab.dir, file);
    writeFileSync(path, edit(readFileSync(lab.inventoryPath, 'utf8')));
    return path;
  };
  const withKubeconfig = (kubeconfig: string) => (text: string) => text.replace(/^cluster: lab$/m, `cluster: lab\nkubeconfig: ${kubeconfig}`);

  beforeAll(async () => {
    lab = await startLab({ etcd: 1, controlPlane: 1, workers: 1, capiVersions: ['v1beta2'] });
    admin = join(lab.dir, 'admin.kubeconfig');
    writeFileSync(admin, await lab.node('lab-cp-1').readFile('/etc/kubernetes/admin.conf'), { mode: 0o600 });
    api = new KubeClient(readKubeconfig(admin), 5000);
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('Machines are listed from an API that serves v1beta2 only (v1beta1: 404 page not found)', async () => {
    const v1beta1 = await api.request('GET', '/apis/cluster.x-k8s.io/v1beta1/namespaces/eksa-system/machines').then(() => undefined, (e: unknown) => e);
    expect(v1beta1).toBeInstanceOf(KubeApiError);
    expect(v1beta1).toMatchObject({ status: 404, message: expect.stringMatching(/404 404 page not found$/) });

    // As `rotate-certs --cluster lab` builds the inventory from the EKS Anywhere folder.
    const folder = readClusterFolder(await lab.writeEksaFolder(mkdtempSync(join(lab.dir, 'admin-'))), 'lab');
    const nodes = await listMachineNodes(new KubeClient(readKubeconfig(folder.kubeconfig!)), 'lab', 'eksa-system', folder.controlPlaneEndpoint ? { skipAddresses: [folder.controlPlaneEndpoint] } : {});
    expect(nodes.map((n) => [n.name, n.role, n.host])).toEqual(lab.nodes.map((n) => [n.name, n.role, n.host]));
    // nodeRef as v1beta2 spells it ({name}) named the control plane's and the worker's Nodes.
    const stored = JSON.parse(readFileSync(join(lab.dir, 'apiserver-state.json'), 'utf8')) as { machines: Record<string, { apiVersion: string; status: { nodeRef?: unknown } }> };
    expect(stored.machines['eksa-system/lab-md-1']).toMatchObject({ apiVersion: 'cluster.x-k8s.io/v1beta2', status: { nodeRef: { name: 'lab-md-1' } } });
  });

  it('a kubeconfig whose user runs an exec plugin updates the secret (type kept), and etcdadm-controller is restarted after it', async () => {
    const log = join(lab.dir, 'plugin.log');
    const kc = parse(readFileSync(admin, 'utf8')) as { users: Array<{ name: string; user: Record<string, unknown> }> };
    kc.users[0]!.user = {
      exec: {
        apiVersion: 'client.authentication.k8s.io/v1',
        command: PLUGIN,
        interactiveMode: 'Never',
        provideClusterInfo: true,
        env: [
          { name: 'PLUGIN_KUBECONFIG', value: admin },
          { name: 'PLUGIN_LOG', value: log },
        ],
      },
    };
    const execKc = join(lab.dir, 'exec.kubeconfig');
    writeFileSync(execKc, stringify(kc), { mode: 0o600 });
    const inv = inventory('inventory-exec.yaml', withKubeconfig('exec.kubeconfig'));
    const stateDir = join(lab.dir, 'state-exec');
    const before = state();
    expect(before.secrets['eksa-system/lab-apiserver-etcd-client']!.type).toBe('cluster.x-k8s.io/secret');

    const r = await cli(['rotate', '-i', inv, '--only', 'etcd', '--yes', '--state-dir', stateDir]);
    expect(r.err).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    // Pre-flight and the last check read the KubeadmControlPlane (v1beta2) through the plugin's credential.
    expect(r.err).toMatch(/KubeadmControlPlane not paused \(1 checked\)/);
    expect(r.err).toMatch(new RegExp(`etcd-client-secret: ok \\(eksa-system/lab-apiserver-etcd-client updated through ${escape(execKc)} \\(type cluster\\.x-k8s\\.io/secret kept\\)\\)`));
    expect(r.err).toMatch(new RegExp(`etcdadm-controller: ok \\(etcdadm-controller-system/deployment/etcdadm-controller-controller-manager restarted \\(${escape(RESTARTED_AT)}=\\S+\\) and rolled out through ${escape(execKc)}`));
    // The final report says so too.
    expect(r.out).toMatch(/\nManagement cluster:\n {2}eksa-system\/lab-apiserver-etcd-client holds the renewed etcd client pair \(type cluster\.x-k8s\.io\/secret kept\)\n {2}etcdadm-controller restarted at \S+ and rolled out: it now health-checks etcd with the renewed pair\n/);

    // The secret: the renewed pair of the etcd node, still of its type.
    const after = state();
    const secret = after.secrets['eksa-system/lab-apiserver-etcd-client']!;
    expect(secret.type).toBe('cluster.x-k8s.io/secret');
    expect(secretPair(lab).crt.trim()).toBe((await lab.node('lab-etcd-1').readFile('/etc/etcd/pki/apiserver-etcd-client.crt')).toString('utf8').trim());

    // The plugin ran as kubectl runs it: told the cluster, not interactive, no standard input.
    const runs = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { info: { apiVersion: string; spec: { interactive: boolean; cluster?: { server: string } } }; stdin: string });
    expect(runs.length).toBeGreaterThanOrEqual(1);
    const server = readKubeconfig(admin).server;
    for (const run of runs) expect(run).toMatchObject({ info: { apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', spec: { interactive: false, cluster: { server } } }, stdin: 'character device' });

    // etcdadm-controller: restarted as kubectl rollout restart does, after the secret, and rolled out.
    const d = await api.request<{ metadata: { generation: number }; spec: { template: { metadata: { annotations?: Record<string, string> } } }; status: Record<string, number> }>('GET', DEPLOY);
    const at = d.spec.template.metadata.annotations?.[RESTARTED_AT];
    expect(at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(d.metadata.generation).toBe(2);
    expect(d.status).toMatchObject({ observedGeneration: 2, replicas: 1, updatedReplicas: 1, availableReplicas: 1 });
    const rs = (await api.request<{ items: ReplicaSet[] }>('GET', '/apis/apps/v1/namespaces/etcdadm-controller-system/replicasets')).items;
    const newest = rs.find((x) => x.spec.template.metadata.annotations?.[RESTARTED_AT] === at);
    expect(newest?.metadata.annotations['deployment.kubernetes.io/revision']).toBe('2');
    expect(newest?.spec.replicas).toBe(1);
    expect(rs.filter((x) => x !== newest).map((x) => x.spec.replicas)).toEqual([0]);
    // The new pod generation came after the secret held the new pair.
    expect(Number(newest?.metadata.resourceVersion)).toBeGreaterThan(Number(secret.metadata.resourceVersion));
    const steps = journal(stateDir).filter((e) => e.phase === 'management' && e.event === 'step-done').map((e) => e.step);
    expect(steps).toEqual(['etcd-client-secret', 'etcdadm-controller', 'kcp-paused']);
  });

  it('the API cannot be used: the printed commands, run as printed, store the pair and keep the type; the old create secret tls shape is refused', async () => {
    // A management kubeconfig for another CA whose server does not answer.
    const otherCa = Buffer.from((await lab.node('lab-etcd-1').readFile('/etc/etcd/pki/ca.crt')).toString('utf8')).toString('base64');
    const dead = join(lab.dir, 'dead.kubeconfig');
    writeFileSync(dead, readFileSync(admin, 'utf8').replace(/server: https:\/\/[^\n]+/, `server: https://${lab.node('lab-cp-1').host}:1`).replace(/certificate-authority-data: \S+/, `certificate-authority-data: ${otherCa}`), { mode: 0o600 });
    const inv = inventory('inventory-dead.yaml', withKubeconfig('dead.kubeconfig'));
    const r = await cli(['rotate', '-i', inv, '--only', 'etcd', '--yes', '--state-dir', join(lab.dir, 'state-dead')]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/Rotation FAILED on lab-cp-1, step etcd-client-secret/);
    expect(r.out).not.toMatch(/PRIVATE KEY|create secret tls/);
    const line = (re: RegExp) => {
      const m = re.exec(r.out);
      expect(m, `${re} in:\n${r.out}`).not.toBeNull();
      return m![1]!;
    };
    const copyCrt = line(/^\s+(ssh .*capv@\S+ sudo cat \/etc\/etcd\/pki\/apiserver-etcd-client\.crt > apiserver-etcd-client\.crt)$/m);
    const copyKey = line(/^\s+(\(umask 077; ssh .*capv@\S+ sudo cat \/etc\/etcd\/pki\/apiserver-etcd-client\.key > apiserver-etcd-client\.key\))$/m);
    const kc = `--kubeconfig ${escape(dead)}`;
    const create = line(new RegExp(`^\\s+(kubectl ${kc} create secret generic lab-apiserver-etcd-client --type=cluster\\.x-k8s\\.io/secret --from-file=tls\\.crt=apiserver-etcd-client\\.crt --from-file=tls\\.key=apiserver-etcd-client\\.key -n eksa-system --dry-run=client -o yaml) \\| kubectl ${kc} apply -f -$`, 'm'));
    line(new RegExp(`^\\s+(kubectl ${kc} -n etcdadm-controller-system rollout restart deployment/etcdadm-controller-controller-manager)$`, 'm'));
    line(new RegExp(`^\\s+(kubectl ${kc} -n etcdadm-controller-system rollout status deployment/etcdadm-controller-controller-manager --timeout=5m)$`, 'm'));

    // Run them: the copy for real over SSH (the lab's key and known hosts), in a fresh folder.
    const work = mkdtempSync(join(lab.dir, 'by-hand-'));
    for (const c of [copyCrt, copyKey]) execFileSync('bash', ['-c', c], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
    const nodeCrt = (await lab.node('lab-etcd-1').readFile('/etc/etcd/pki/apiserver-etcd-client.crt')).toString('utf8');
    expect(readFileSync(join(work, 'apiserver-etcd-client.crt'), 'utf8')).toBe(nodeCrt);
    expect(execFileSync('stat', ['-c', '%a', join(work, 'apiserver-etcd-client.key')], { encoding: 'utf8' }).trim()).toBe('600');
    // Then the secret, once the API answers (the admin kubeconfig stands in for a working management one).
    const before = state().secrets['eksa-system/lab-apiserver-etcd-client']!;
    const yaml = kubectlCreateDryRun(create, work);
    expect(parse(yaml)).toMatchObject({ kind: 'Secret', type: 'cluster.x-k8s.io/secret' });
    await kubectlApply(api, yaml);
    const secret = state().secrets['eksa-system/lab-apiserver-etcd-client']!;
    expect(secret.type).toBe('cluster.x-k8s.io/secret');
    expect(Buffer.from(secret.data['tls.crt']!, 'base64').toString('utf8')).toBe(nodeCrt);
    expect(Buffer.from(secret.data['tls.key']!, 'base64').toString('utf8')).toBe(readFileSync(join(work, 'apiserver-etcd-client.key'), 'utf8'));
    expect(Number(secret.metadata.resourceVersion)).toBeGreaterThan(Number(before.metadata.resourceVersion));
    expect(secret.metadata.annotations?.['kubectl.kubernetes.io/last-applied-configuration']).toContain('"type":"cluster.x-k8s.io/secret"');

    // The command this replaced makes a kubernetes.io/tls Secret: the API refuses the type change.
    const tls = kubectlCreateDryRun('kubectl create secret tls lab-apiserver-etcd-client --cert=apiserver-etcd-client.crt --key=apiserver-etcd-client.key -n eksa-system --dry-run=client -o yaml', work);
    const refused = await kubectlApply(api, tls).then(() => undefined, (e: unknown) => e);
    expect(refused).toMatchObject({ status: 422, message: expect.stringMatching(/Secret "lab-apiserver-etcd-client" is invalid: type: Invalid value: "kubernetes\.io\/tls": field is immutable/) });
    expect(state().secrets['eksa-system/lab-apiserver-etcd-client']!.type).toBe('cluster.x-k8s.io/secret');
  });

  it('a worker whose inventory name is not its Node\'s: the plan says so, the certificate is for the Node, and the Node is Ready', async () => {
    const inv = inventory('inventory-renamed.yaml', (t) => withKubeconfig('admin.kubeconfig')(t.replace(/name: lab-md-1$/m, 'name: worker-a')));
    expect(readFileSync(inv, 'utf8')).toMatch(/name: worker-a$/m);
    await lab.expireKubelet('lab-md-1', { client: 'expired' });
    const ready = async () => (await api.request<{ status: { conditions: Array<{ type: string; status: string; message?: string }> } }>('GET', '/api/v1/nodes/lab-md-1')).status.conditions.find((c) => c.type === 'Ready');
    expect((await ready())?.status).toBe('False');

    const plan = await cli(['plan', '-i', inv, '--only', 'kubelet', '--state-dir', join(lab.dir, 'state-renamed')]);
    expect(plan.code).toBe(0);
    expect(plan.out).toContain('Kubelet certificates due (expired or within --warn-days): worker-a');
    expect(plan.out).toContain("Node name: worker-a's kubelet client certificate is for Node lab-md-1 (CN system:node:lab-md-1), not worker-a");

    const r = await cli(['rotate', '-i', inv, '--only', 'kubelet', '--yes', '--state-dir', join(lab.dir, 'state-renamed')]);
    expect(r.err).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/worker-a issue: ok \(issued CN=system:node:lab-md-1 on lab-cp-1/);
    expect(r.err).toMatch(/worker-a ready: ok \(Node lab-md-1 Ready\)/);
    const c = await cert(lab.node('lab-md-1'), '/var/lib/kubelet/pki/kubelet-client-current.pem');
    expect(c.subject).toMatch(/CN=system:node:lab-md-1\b/);
    expect(c.notAfter.getTime()).toBeGreaterThan(Date.now() + 300 * 86_400_000);
    expect((await ready())?.status).toBe('True');
  });
});
