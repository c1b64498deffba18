/**
 * The management-cluster steps against a small local HTTPS API: the etcdadm-controller restart as
 * `kubectl rollout restart` sends it and `kubectl rollout status` judges it, the skip where there is
 * no such Deployment, and the exact commands printed when the API cannot be used.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deploymentRolloutStatus, restartEtcdadmController, RESTARTED_AT, type Deployment } from '../../src/apply/etcdadm-controller.js';
import { PAUSED, PAUSED_BY, pauseEtcdadmHealthCheck, unpauseByHand } from '../../src/apply/etcdadm-pause.js';
import { updateEtcdClientSecret } from '../../src/apply/management.js';
import type { ManagementContext } from '../../src/apply/management-api.js';
import { restartCommands, secretByHand } from '../../src/apply/manual-commands.js';
import { parseInventory } from '../../src/inventory/load.js';
import type { Inventory } from '../../src/inventory/types.js';
import type { PlanNode, PlanStep } from '../../src/plan/types.js';
import { json, notFoundStatus, startLocalApi, type LocalApi } from './local-api.js';

const DEPLOY = '/apis/apps/v1/namespaces/etcdadm-controller-system/deployments/etcdadm-controller-controller-manager';

function inventory(kubeconfig: string | undefined, etcdOs = 'ubuntu'): Inventory {
  const dir = mkdtempSync(join(tmpdir(), 'rc-mgmt-'));
  const file = join(dir, 'inventory.yaml');
  const text = [
    'cluster: prod',
    ...(kubeconfig ? [`kubeconfig: ${kubeconfig}`] : []),
    'ssh: { user: capv, identityFile: /home/me/prod/eks-a-id_rsa, knownHostsFile: /home/me/prod/known_hosts }',
    'os: ubuntu',
    'etcd:',
    `  - { name: prod-etcd-1, host: 10.0.0.11, os: ${etcdOs}${etcdOs === 'bottlerocket' ? ', ssh: { user: ec2-user }' : ''} }`,
    'controlPlane:',
    '  - { name: prod-cp-1, host: 10.0.0.21 }',
  ].join('\n');
  writeFileSync(file, text);
  return parseInventory(text, file) as Inventory;
}

function context(inv: Inventory, opts: { podStartMs?: number } = {}): ManagementContext & { lines: string[] } {
  const lines: string[] = [];
  const node: PlanNode = { name: 'prod-cp-1', host: '10.0.0.21', role: 'control-plane', os: 'ubuntu', rootShell: 'sudo bash -s', vars: { kubeconfigDir: '/etc/kubernetes' }, steps: [], backups: [] };
  return {
    inventory: inv,
    node,
    // No admin.conf to fall back on: reading it fails.
    session: { node: inv.nodes[1]!, exec: async () => ({ code: 1, stdout: '', stderr: 'no such file' }), close: async () => undefined },
    secrets: {},
    reporter: { phase: () => undefined, stepStart: () => undefined, stepDone: () => undefined, stepFailed: () => undefined, info: (m) => lines.push(`info: ${m}`), warn: (m) => lines.push(`warn: ${m}`), note: (m) => lines.push(`note: ${m}`) },
    runId: '20260101T000000Z',
    refreshKubeconfig: async () => false,
    timeouts: { podStopMs: 1000, podStartMs: opts.podStartMs ?? 5000, endpointMs: 1000, pollMs: 20 },
    now: () => Date.now(),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    lines,
  };
}

const step: PlanStep = { id: 'etcdadm-controller', title: 'restart', effect: 'mutate', with: {}, action: 'restart-etcdadm-controller' };

describe('deploymentRolloutStatus: kubectl rollout status for a Deployment', () => {
  const d = (generation: number, status: Deployment['status'], replicas = 1): Deployment => ({ metadata: { name: 'etcdadm-controller-controller-manager', generation }, spec: { replicas }, status });
  it('waits for the controller to observe the new generation, then for every replica updated, old ones gone, updated ones available', () => {
    expect(deploymentRolloutStatus(d(2, { observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 1 }))).toEqual({ done: false, message: 'Waiting for deployment spec update to be observed...' });
    expect(deploymentRolloutStatus(d(2, { observedGeneration: 2, replicas: 1, updatedReplicas: 0, availableReplicas: 1 })).message).toBe('Waiting for deployment "etcdadm-controller-controller-manager" rollout to finish: 0 out of 1 new replicas have been updated...');
    expect(deploymentRolloutStatus(d(2, { observedGeneration: 2, replicas: 2, updatedReplicas: 1, availableReplicas: 1 })).message).toBe('Waiting for deployment "etcdadm-controller-controller-manager" rollout to finish: 1 old replicas are pending termination...');
    expect(deploymentRolloutStatus(d(2, { observedGeneration: 2, replicas: 1, updatedReplicas: 1, availableReplicas: 0 })).message).toBe('Waiting for deployment "etcdadm-controller-controller-manager" rollout to finish: 0 of 1 updated replicas are available...');
    expect(deploymentRolloutStatus(d(2, { observedGeneration: 2, replicas: 1, updatedReplicas: 1, availableReplicas: 1 }))).toEqual({ done: true, message: 'deployment "etcdadm-controller-controller-manager" successfully rolled out' });
  });
  it('a Progressing condition with ProgressDeadlineExceeded is an error', () => {
    const s = deploymentRolloutStatus(d(2, { observedGeneration: 2, replicas: 2, updatedReplicas: 1, conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' }] }));
    expect(s.error).toBe('deployment "etcdadm-controller-controller-manager" exceeded its progress deadline');
  });
});

describe('restart-etcdadm-controller against an API', () => {
  let api: LocalApi;
  /** The Deployment the server holds; `afterPatch` says how its status evolves per GET after the restart. */
  let deployment: Deployment | undefined;
  let statuses: Array<Deployment['status']> = [];
  beforeAll(async () => {
    api = await startLocalApi((r) => {
      if (!r.path.startsWith(DEPLOY)) return notFoundStatus('the server could not find the requested resource');
      if (!deployment) return notFoundStatus('deployments.apps "etcdadm-controller-controller-manager" not found');
      if (r.method === 'PATCH') {
        const ann = (r.body as { spec: { template: { metadata: { annotations: Record<string, string> } } } }).spec.template.metadata.annotations;
        deployment = { ...deployment, metadata: { ...deployment.metadata, generation: (deployment.metadata?.generation ?? 1) + 1 }, spec: { ...deployment.spec, template: { metadata: { annotations: ann } } } };
        return json(200, deployment);
      }
      const next = statuses.shift();
      if (next) deployment = { ...deployment, status: next };
      return json(200, deployment);
    });
  });
  afterAll(async () => {
    await api?.close();
  });
  const fresh = (extra: Partial<NonNullable<Deployment['spec']>> = {}): Deployment => ({
    metadata: { name: 'etcdadm-controller-controller-manager', generation: 1 },
    spec: { replicas: 1, ...extra },
    status: { observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 1 },
  });

  it('patches the pod template as kubectl rollout restart does and waits until the rollout is complete', async () => {
    deployment = fresh();
    statuses = [
      { observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 1 },
      { observedGeneration: 2, replicas: 2, updatedReplicas: 1, availableReplicas: 1 },
      { observedGeneration: 2, replicas: 1, updatedReplicas: 1, availableReplicas: 1 },
    ];
    api.seen.length = 0;
    const ctx = context(inventory(api.adminKubeconfig()));
    const summary = await restartEtcdadmController(step, ctx);
    const patch = api.seen.find((r) => r.method === 'PATCH');
    expect(patch?.contentType).toBe('application/strategic-merge-patch+json');
    const at = (patch?.body as { spec: { template: { metadata: { annotations: Record<string, string> } } } }).spec.template.metadata.annotations[RESTARTED_AT];
    expect(at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/); // time.RFC3339
    expect(patch?.body).toEqual({ spec: { template: { metadata: { annotations: { [RESTARTED_AT]: at } } } } });
    expect(statuses).toEqual([]); // it waited through every status until the last
    expect(summary).toMatch(/^etcdadm-controller-system\/deployment\/etcdadm-controller-controller-manager restarted \(kubectl\.kubernetes\.io\/restartedAt=\S+\) and rolled out through /);
    expect(ctx.lines).toEqual([`note: etcdadm-controller restarted at ${at} and rolled out: it now health-checks etcd with the renewed pair`]);
  });

  it('a rollout past its progress deadline fails at once, with the commands to look at it', async () => {
    deployment = fresh();
    statuses = [{ observedGeneration: 2, replicas: 2, updatedReplicas: 1, availableReplicas: 1, conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' }] }];
    const started = Date.now();
    await expect(restartEtcdadmController(step, context(inventory(api.adminKubeconfig()), { podStartMs: 60_000 }))).rejects.toThrow(/exceeded its progress deadline\n.*Restart it by hand:\n\s+kubectl .*rollout restart deployment\/etcdadm-controller-controller-manager/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('a rollout that does not finish in time fails, saying what kubectl rollout status would', async () => {
    deployment = fresh();
    statuses = Array.from({ length: 1000 }, () => ({ observedGeneration: 2, replicas: 2, updatedReplicas: 1, availableReplicas: 1 }));
    await expect(restartEtcdadmController(step, context(inventory(api.adminKubeconfig()), { podStartMs: 300 }))).rejects.toThrow(/not within 0 s \(last: Waiting for deployment "etcdadm-controller-controller-manager" rollout to finish: 1 old replicas are pending termination\.\.\.\)/);
  });

  it('a paused Deployment is not restarted (kubectl refuses it too)', async () => {
    deployment = fresh({ paused: true });
    api.seen.length = 0;
    await expect(restartEtcdadmController(step, context(inventory(api.adminKubeconfig())))).rejects.toThrow(/can't restart paused deployment \(run rollout resume first/);
    expect(api.seen.filter((r) => r.method === 'PATCH')).toEqual([]);
  });

  it('no such Deployment (not an EKS Anywhere management cluster with external etcd): skipped, with a line saying why', async () => {
    deployment = undefined;
    const ctx = context(inventory(api.adminKubeconfig()));
    expect(await restartEtcdadmController(step, ctx)).toBe('skipped: etcdadm-controller-system/deployment/etcdadm-controller-controller-manager does not exist');
    expect(ctx.lines).toEqual([
      'info: etcdadm-controller-system/deployment/etcdadm-controller-controller-manager not found: not an EKS Anywhere management cluster with external etcd, so there is no etcdadm-controller to restart',
      'note: etcdadm-controller not restarted: etcdadm-controller-system/deployment/etcdadm-controller-controller-manager does not exist there',
    ]);
  });
});

describe('the API cannot be used: the exact commands to run by hand', () => {
  // A kubeconfig whose server answers nothing (a closed port).
  let dead: string;
  beforeAll(async () => {
    const api = await startLocalApi(() => json(200, {}));
    const file = api.adminKubeconfig();
    const text = (await import('node:fs')).readFileSync(file, 'utf8').replace(api.server, 'https://127.0.0.1:1');
    await api.close();
    dead = join(mkdtempSync(join(tmpdir(), 'rc-dead-')), 'mgmt kubeconfig');
    writeFileSync(dead, text, { mode: 0o600 });
  });

  it('restart-etcdadm-controller fails with kubectl rollout restart and rollout status, with the inventory\'s kubeconfig', async () => {
    const err = await restartEtcdadmController(step, context(inventory(dead))).then(() => undefined, (e: Error) => e);
    expect(err?.message).toContain(`kubectl --kubeconfig '${dead}' -n etcdadm-controller-system rollout restart deployment/etcdadm-controller-controller-manager\n`);
    expect(err?.message).toMatch(new RegExp(`kubectl --kubeconfig '${dead}' -n etcdadm-controller-system rollout status deployment/etcdadm-controller-controller-manager --timeout=5m$`));
    expect(err?.message).toMatch(/connection refused/);
  });

  it('the secret: copy the pair off the etcd node for its OS, kubectl create secret generic with the type kept, then the restart', async () => {
    const ctx = context(inventory(dead));
    ctx.secrets.etcdClientCert = 'CERT';
    ctx.secrets.etcdClientKey = 'KEY';
    const err = await updateEtcdClientSecret({ ...step, action: 'update-etcd-client-secret' }, ctx).then(() => undefined, (e: Error) => e);
    const kc = `--kubeconfig '${dead}'`;
    expect(err?.message).toContain('The secret eksa-system/prod-apiserver-etcd-client still holds the OLD pair. To fix it by hand:');
    expect(err?.message).toContain('ssh -i /home/me/prod/eks-a-id_rsa -o UserKnownHostsFile=/home/me/prod/known_hosts capv@10.0.0.11 sudo cat /etc/etcd/pki/apiserver-etcd-client.crt > apiserver-etcd-client.crt');
    expect(err?.message).toContain(
      `kubectl ${kc} create secret generic prod-apiserver-etcd-client --type=cluster.x-k8s.io/secret --from-file=tls.crt=apiserver-etcd-client.crt --from-file=tls.key=apiserver-etcd-client.key -n eksa-system --dry-run=client -o yaml | kubectl ${kc} apply -f -`,
    );
    expect(err?.message).toContain(restartCommands(ctx.inventory)[0]);
    expect(err?.message).not.toMatch(/create secret tls|KEY\b/);
  });

  it('from a Bottlerocket etcd node the pair is read from /var/lib/etcd/pki through sudo sheltie, the key file kept private', () => {
    const lines = secretByHand(inventory(undefined, 'bottlerocket'));
    expect(lines).toContain(
      "     (umask 077; echo 'cat /var/lib/etcd/pki/apiserver-etcd-client.key' | ssh -i /home/me/prod/eks-a-id_rsa -o UserKnownHostsFile=/home/me/prod/known_hosts ec2-user@10.0.0.11 sudo sheltie > apiserver-etcd-client.key)",
    );
    // Without a kubeconfig in the inventory, kubectl's own default.
    expect(lines.some((l) => l.includes('kubectl create secret generic prod-apiserver-etcd-client --type=cluster.x-k8s.io/secret'))).toBe(true);
  });
});

describe("etcdadm-controller's health check paused for a run", () => {
  const PATH = '/apis/etcdcluster.cluster.x-k8s.io/v1beta1/namespaces/eksa-system/etcdadmclusters/prod-etcd';
  let api: LocalApi;
  /** The EtcdadmCluster's annotations as the server holds them; undefined: no such object. */
  let annotations: Record<string, string> | undefined;
  beforeAll(async () => {
    api = await startLocalApi((r) => {
      if (r.path !== PATH || annotations === undefined) return notFoundStatus('etcdadmclusters.etcdcluster.cluster.x-k8s.io "prod-etcd" not found');
      if (r.method === 'PATCH') {
        // A JSON merge patch of metadata.annotations: null removes a key.
        for (const [k, v] of Object.entries((r.body as { metadata: { annotations: Record<string, string | null> } }).metadata.annotations)) {
          if (v === null) delete annotations[k];
          else annotations[k] = v;
        }
      }
      return json(200, { metadata: { name: 'prod-etcd', annotations } });
    });
  });
  afterAll(async () => {
    await api?.close();
  });

  it('pauses with a marker of its own and takes both off again', async () => {
    annotations = { 'other.io/keep': 'x' };
    const ctx = context(inventory(api.adminKubeconfig()));
    const pause = await pauseEtcdadmHealthCheck(ctx);
    expect(annotations).toEqual({ 'other.io/keep': 'x', [PAUSED]: 'true', [PAUSED_BY]: '20260101T000000Z' });
    expect(api.seen.at(-1)?.contentType).toBe('application/merge-patch+json');
    await pause?.release();
    expect(annotations).toEqual({ 'other.io/keep': 'x' });
    expect(ctx.lines.join('\n')).toMatch(/paused its etcd health checks[\s\S]*health checks of EtcdadmCluster eksa-system\/prod-etcd resumed/);
  });

  it('a pause someone else set is left as it is; a marker an interrupted run left is taken as its own', async () => {
    annotations = { [PAUSED]: 'true' };
    expect(await pauseEtcdadmHealthCheck(context(inventory(api.adminKubeconfig())))).toBeUndefined();
    expect(annotations).toEqual({ [PAUSED]: 'true' });
    annotations = { [PAUSED]: 'true', [PAUSED_BY]: '20251231T000000Z' };
    const pause = await pauseEtcdadmHealthCheck(context(inventory(api.adminKubeconfig())));
    expect(annotations[PAUSED_BY]).toBe('20251231T000000Z');
    await pause?.release();
    expect(annotations).toEqual({});
  });

  it('a marker whose pause someone removed is paused again, keeping the run that set it', async () => {
    annotations = { [PAUSED_BY]: '20251231T000000Z' };
    const pause = await pauseEtcdadmHealthCheck(context(inventory(api.adminKubeconfig())));
    expect(annotations).toEqual({ [PAUSED]: 'true', [PAUSED_BY]: '20251231T000000Z' });
    await pause?.release();
    expect(annotations).toEqual({});
  });

  it("through the node's own admin.conf (no kubeconfig in the inventory) a missing EtcdadmCluster is a warning: a workload cluster's lives in its management cluster", async () => {
    annotations = undefined;
    const ctx = context(inventory(undefined));
    const adminConf = readFileSync(api.adminKubeconfig(), 'utf8');
    ctx.session = { node: ctx.inventory.nodes[1]!, exec: async () => ({ code: 0, stdout: adminConf, stderr: '' }), close: async () => undefined };
    expect(await pauseEtcdadmHealthCheck(ctx)).toBeUndefined();
    expect(ctx.lines.join('\n')).toMatch(/^warn: etcdadm-controller: no EtcdadmCluster eksa-system\/prod-etcd in the cluster the node's own admin.conf .* reaches; if this is a workload cluster, set kubeconfig in the inventory/);
  });

  it('no EtcdadmCluster, or no API: the run goes on, and says so', async () => {
    annotations = undefined;
    const ctx = context(inventory(api.adminKubeconfig()));
    expect(await pauseEtcdadmHealthCheck(ctx)).toBeUndefined();
    expect(ctx.lines).toEqual(['info: etcdadm-controller: no EtcdadmCluster eksa-system/prod-etcd, nothing to pause']);
    const dir = mkdtempSync(join(tmpdir(), 'rc-pause-'));
    const dead = join(dir, 'dead.kubeconfig');
    writeFileSync(dead, readFileSync(api.adminKubeconfig(), 'utf8').replace(api.server, 'https://127.0.0.1:1'));
    const down = context(inventory(dead));
    expect(await pauseEtcdadmHealthCheck(down)).toBeUndefined();
    // The reason is what was tried, on the warning's one line: not connectApi's heading alone.
    expect(down.lines.join('\n')).toMatch(/^warn: etcdadm-controller: could not pause its etcd health checks \(the management cluster's API cannot be used: \S+dead\.kubeconfig: .+\)\. If it runs, it may replace an etcd member/);
    expect(down.lines[0]).not.toContain('\n');
  });

  it('a release that cannot reach the API prints the command that does it by hand', async () => {
    annotations = {};
    const ctx = context(inventory(api.adminKubeconfig()));
    const pause = await pauseEtcdadmHealthCheck(ctx);
    const closed = api;
    await closed.close();
    await pause?.release();
    expect(ctx.lines.at(-1)).toContain(unpauseByHand(ctx.inventory));
    expect(unpauseByHand(ctx.inventory)).toMatch(/^kubectl --kubeconfig \S+ -n eksa-system annotate etcdadmclusters\.etcdcluster\.cluster\.x-k8s\.io prod-etcd cluster\.x-k8s\.io\/paused- rotate-certs\.eks-anywhere\.io\/paused-by-run-$/);
  });
});

describe('the ssh command line of every printed command', () => {
  it("names what rotate-certs uses that ssh would not: the key, a port, a known_hosts that is not ssh's default, accept-new, the jump host", async () => {
    const { sshCommandLine } = await import('../../src/transport/ssh-command-line.js');
    const node = { host: '10.0.0.11', ssh: { user: 'capv', port: 2222, identityFile: '/k/id rsa', knownHostsFile: '/k/known_hosts', hostKeyPolicy: 'accept-new' as const, jumpHost: { user: 'ops', host: 'bastion', port: 22 }, connectTimeoutMs: 1, commandTimeoutMs: 1 } };
    expect(sshCommandLine(node, '/home/me')).toBe("ssh -i '/k/id rsa' -p 2222 -o UserKnownHostsFile=/k/known_hosts -o StrictHostKeyChecking=accept-new -J ops@bastion capv@10.0.0.11");
    const plain = { host: '10.0.0.12', ssh: { ...node.ssh, port: 22, identityFile: undefined, knownHostsFile: '/home/me/.ssh/known_hosts', hostKeyPolicy: 'strict' as const, jumpHost: undefined } };
    expect(sshCommandLine(plain, '/home/me')).toBe('ssh capv@10.0.0.12');
  });
});
