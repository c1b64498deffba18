import { describe, expect, it } from 'vitest';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { readClusterFolder, type ClusterFolder } from '../../src/eksa/cluster-spec.js';
import { listMachineNodes } from '../../src/eksa/machines.js';
import { buildInventory, inventoryYaml, missingHosts, MissingHostsError, type NodeInput } from '../../src/eksa/build-inventory.js';
import { parseInventory } from '../../src/inventory/load.js';
import { KubeApiError, type KubeClient } from '../../src/kube/client.js';
import { LoadError, UsageError } from '../../src/util/errors.js';
import { loadErr as loadError } from './load-error.js';

const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), '../fixtures/eksa');
const fixture = (kase: string, name: string) => join(FIXTURES, kase, name);
const NOW = new Date('2025-03-04T05:06:07.000Z');
const HOME = '/home/u';


/** A folder in a temp dir holding one spec file (and nothing else). */
function tempFolder(name: string, spec: string): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'rc-eksa-')), name);
  mkdirSync(dir);
  writeFileSync(join(dir, `${name}-eks-a-cluster.yaml`), spec);
  return dir;
}

/** The inventory as rotate-certs reads it, saved where the caller saves it (./NAME/rotate-certs.yaml). */
function reparse(folder: ClusterFolder, text: string) {
  return parseInventory(text, join(folder.dir, 'rotate-certs.yaml'), { home: HOME });
}

describe('readClusterFolder: what eksctl left in ./NAME/', () => {
  it('vSphere, Ubuntu, external etcd: one group per role, the files that are there, no warnings', () => {
    const dir = fixture('ubuntu-external-etcd', 'prod');
    const f = readClusterFolder(dir, 'prod');
    expect(f).toMatchObject({
      cluster: 'prod',
      dir,
      specFile: join(dir, 'prod-eks-a-cluster.yaml'),
      kubeconfig: join(dir, 'prod-eks-a-cluster.kubeconfig'),
      identityFile: join(dir, 'eks-a-id_rsa'),
      managementCluster: 'prod',
      provider: 'VSphereDatacenterConfig',
      controlPlaneEndpoint: '10.20.0.100',
      externalEtcd: true,
      warnings: [],
    });
    expect(f.managementKubeconfig).toBeUndefined();
    expect(f.groups).toEqual([
      { role: 'etcd', machineGroup: 'prod-etcd', machineConfigKind: 'VSphereMachineConfig', os: 'ubuntu', sshUser: 'capv', count: 3 },
      { role: 'control-plane', machineGroup: 'prod-cp', machineConfigKind: 'VSphereMachineConfig', os: 'ubuntu', sshUser: 'capv', count: 2 },
      { role: 'worker', machineGroup: 'prod', machineConfigKind: 'VSphereMachineConfig', workerNodeGroup: 'md-0', deploymentName: 'prod-md-0', os: 'ubuntu', sshUser: 'capv', count: 2 },
    ]);
  });

  it('a relative folder gives absolute paths', () => {
    const rel = join('test', 'fixtures', 'eksa', 'ubuntu-external-etcd', 'prod');
    const f = readClusterFolder(rel, 'prod');
    expect(f.dir).toBe(resolve(rel));
    expect(f.specFile).toBe(resolve(rel, 'prod-eks-a-cluster.yaml'));
  });

  it('Tinkerbell, Bottlerocket, stacked etcd: no etcd group, ec2-user', () => {
    const f = readClusterFolder(fixture('bottlerocket-stacked', 'edge'), 'edge');
    expect(f.externalEtcd).toBe(false);
    expect(f.provider).toBe('TinkerbellDatacenterConfig');
    expect(f.groups.map((g) => [g.role, g.machineGroup, g.os, g.sshUser, g.deploymentName, g.count])).toEqual([
      ['control-plane', 'edge-cp', 'bottlerocket', 'ec2-user', undefined, 3],
      ['worker', 'edge', 'bottlerocket', 'ec2-user', 'edge-md-0', 1],
    ]);
    expect(f.warnings).toEqual([]);
  });

  it('mixed: Bottlerocket and RHEL worker groups beside Ubuntu; redhat maps to rhel, a missing user gets the EKS-A default', () => {
    const f = readClusterFolder(fixture('mixed', 'mixed'), 'mixed');
    expect(f.groups.map((g) => [g.role, g.machineGroup, g.os, g.sshUser, g.deploymentName ?? null, g.count])).toEqual([
      ['etcd', 'mixed-etcd', 'ubuntu', 'capv', null, 1],
      ['control-plane', 'mixed-cp', 'ubuntu', 'capv', null, 1],
      ['worker', 'mixed-br', 'bottlerocket', 'ec2-user', 'mixed-md-0', 2],
      // count from autoscalingConfiguration.minCount; no users: capv, vSphere's default for redhat
      ['worker', 'mixed-rhel', 'rhel', 'capv', 'mixed-rhel', 1],
    ]);
    expect(f.warnings).toEqual([expect.stringMatching(/VSphereMachineConfig mixed-rhel gives no spec\.users\[0\]\.name: assuming capv/)]);
  });

  it('no eks-a-id_rsa (the spec carried the user\'s own key): no identityFile, a warning about the agent', () => {
    const f = readClusterFolder(fixture('no-key', 'nokey'), 'nokey');
    expect(f.identityFile).toBeUndefined();
    expect(f.kubeconfig).toBeDefined();
    expect(f.warnings).toEqual([expect.stringMatching(/has no eks-a-id_rsa .*SSH_AUTH_SOCK/)]);
  });

  it('no kubeconfig: no kubeconfig, a warning that addresses cannot be read from the Machines', () => {
    const f = readClusterFolder(fixture('no-kubeconfig', 'nokube'), 'nokube');
    expect(f.kubeconfig).toBeUndefined();
    expect(f.identityFile).toBeDefined();
    expect(f.warnings).toEqual([expect.stringMatching(/has no nokube-eks-a-cluster\.kubeconfig: node addresses cannot be read/)]);
  });

  it('a workload cluster points at its management cluster\'s kubeconfig beside it', () => {
    const f = readClusterFolder(fixture('workload', 'w1'), 'w1');
    expect(f.managementCluster).toBe('mgmt');
    expect(f.managementKubeconfig).toBe(join(FIXTURES, 'workload', 'mgmt', 'mgmt-eks-a-cluster.kubeconfig'));
    expect(f.kubeconfig).toBe(join(FIXTURES, 'workload', 'w1', 'w1-eks-a-cluster.kubeconfig'));
    expect(f.warnings).toEqual([expect.stringMatching(/w1 is a workload cluster managed by mgmt: its Machines .* live in mgmt/)]);
  });

  it('a machine config without osFamily gets the provider\'s default, with a warning', () => {
    const spec = readFileSync(join(fixture('ubuntu-external-etcd', 'prod'), 'prod-eks-a-cluster.yaml'), 'utf8').replace(/  osFamily: ubuntu\n/g, '');
    const f = readClusterFolder(tempFolder('prod', spec), 'prod');
    expect(f.groups.map((g) => g.os)).toEqual(['bottlerocket', 'bottlerocket', 'bottlerocket']);
    // The users stay as the spec says; the warnings say what was assumed.
    expect(f.groups.map((g) => g.sshUser)).toEqual(['capv', 'capv', 'capv']);
    expect(f.warnings.filter((w) => /gives no spec\.osFamily: assuming bottlerocket/.test(w))).toHaveLength(3);
  });

  it('Bottlerocket without users defaults to ec2-user on every provider', () => {
    const spec = readFileSync(join(fixture('mixed', 'mixed'), 'mixed-eks-a-cluster.yaml'), 'utf8').replace('  osFamily: redhat\n', '  osFamily: bottlerocket\n');
    const f = readClusterFolder(tempFolder('mixed', spec), 'mixed');
    expect(f.groups.at(-1)).toMatchObject({ os: 'bottlerocket', sshUser: 'ec2-user' });
  });
});

describe('readClusterFolder: errors name the file, the line and the fix', () => {
  it('a machineGroupRef that names no machine config', () => {
    const dir = fixture('bad-ref', 'badref');
    const err = loadError(() => readClusterFolder(dir, 'badref'));
    expect(err).toBeInstanceOf(UsageError);
    expect(err.exitCode).toBe(64);
    expect(err.file).toBe(join(dir, 'badref-eks-a-cluster.yaml'));
    expect(err.line).toBe(21);
    expect(err.field).toBe('spec.controlPlaneConfiguration.machineGroupRef.name');
    expect(err.message).toMatch(/badref-eks-a-cluster\.yaml:21: spec\.controlPlaneConfiguration\.machineGroupRef\.name: names VSphereMachineConfig "badref-cp", which is not in the file/);
    expect(err.message).toMatch(/machine configs in the file: VSphereMachineConfig badref-control-plane, VSphereMachineConfig badref-etcd, VSphereMachineConfig badref/);
    expect(err.message).toMatch(/\(fix the name, or add the VSphereMachineConfig the cluster was created with\)$/);
  });

  it('an OS family rotate-certs does not rotate', () => {
    const err = loadError(() => readClusterFolder(fixture('unsupported-os', 'winos'), 'winos'));
    expect(err.line).toBe(63);
    expect(err.field).toBe('TinkerbellMachineConfig winos: spec.osFamily');
    expect(err.message).toMatch(/winos-eks-a-cluster\.yaml:63: .*"windows" is not an OS rotate-certs rotates \(ubuntu, redhat, bottlerocket\) \(.*write the inventory by hand \(docs\/inventory\.md\)\)$/);
  });

  it('no Cluster of that name in the file', () => {
    const err = loadError(() => readClusterFolder(fixture('renamed', 'renamed'), 'renamed'));
    expect(err.line).toBe(4);
    expect(err.message).toMatch(/renamed-eks-a-cluster\.yaml:4: metadata\.name: no Cluster named "renamed" .*the file has "edge-old" \(use the cluster name edge-old, or the folder of cluster renamed\)/);
  });

  it('no spec file: a usage error (64, as a missing inventory file) naming the file and what to do', () => {
    const missing = join(tmpdir(), 'rc-eksa-nowhere', 'ghost');
    expect(() => readClusterFolder(missing, 'ghost')).toThrow(UsageError);
    try {
      readClusterFolder(missing, 'ghost');
    } catch (err) {
      expect((err as UsageError).exitCode).toBe(64);
      expect((err as Error).message).toMatch(/cannot read the cluster spec .*ghost\/ghost-eks-a-cluster\.yaml: there is no folder .*run rotate-certs where you ran `eksctl anywhere create cluster`/);
    }
    const empty = mkdtempSync(join(tmpdir(), 'rc-eksa-'));
    expect(() => readClusterFolder(empty, 'ghost')).toThrow(/has no ghost-eks-a-cluster\.yaml/);
    rmSync(empty, { recursive: true });
  });

  it('YAML that does not parse, with its line', () => {
    const err = loadError(() => readClusterFolder(tempFolder('x', 'apiVersion: anywhere.eks.amazonaws.com/v1alpha1\nkind: Cluster\nmetadata: { name: x\n'), 'x'));
    expect(err.message).toMatch(/x-eks-a-cluster\.yaml:\d+: not valid YAML/);
    expect(err.line).toBeGreaterThan(0);
  });

  it('a Docker cluster has no machine groups: the error says why rotate-certs cannot help', () => {
    const spec = `apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: Cluster
metadata:
  name: dev
spec:
  controlPlaneConfiguration:
    count: 1
  datacenterRef:
    kind: DockerDatacenterConfig
    name: dev
`;
    const err = loadError(() => readClusterFolder(tempFolder('dev', spec), 'dev'));
    expect(err.line).toBe(7); // the controlPlaneConfiguration block that lacks it
    expect(err.message).toMatch(/spec\.controlPlaneConfiguration\.machineGroupRef\.name: required field is missing \(a Docker cluster has no machines to reach over SSH/);
  });

  it('an SSH user the inventory would refuse is refused at its line', () => {
    const spec = readFileSync(join(fixture('mixed', 'mixed'), 'mixed-eks-a-cluster.yaml'), 'utf8').replace('  - name: ec2-user\n', '  - name: "root;id"\n');
    const err = loadError(() => readClusterFolder(tempFolder('mixed', spec), 'mixed'));
    expect(err.field).toBe('VSphereMachineConfig mixed-br: spec.users[0].name');
    expect(err.message).toMatch(/:72: .*"root;id" is not a user name/);
  });

  it('a name that is not a cluster name is refused before any file is read', () => {
    expect(() => readClusterFolder('.', '../etc')).toThrow(UsageError);
  });
});

describe('listMachineNodes: names, roles and addresses from Cluster API Machines', () => {
  const machine = (name: string, labels: Record<string, string>, status: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => ({
    apiVersion: 'cluster.x-k8s.io/v1beta1',
    kind: 'Machine',
    metadata: { name, namespace: 'eksa-system', labels: { 'cluster.x-k8s.io/cluster-name': 'prod', ...labels }, ...extra },
    status,
  });
  const items = [
    machine('prod-md-0-7d9f8-abcde', { 'cluster.x-k8s.io/deployment-name': 'prod-md-0' }, { nodeRef: { name: 'prod-md-0-7d9f8-abcde' }, addresses: [{ type: 'InternalIP', address: '10.20.0.31' }], phase: 'Running' }),
    machine('prod-md-0-7d9f8-fghij', { 'cluster.x-k8s.io/deployment-name': 'prod-md-0' }, { phase: 'Provisioning' }),
    machine('prod-etcd-q2w3e', { 'cluster.x-k8s.io/etcd-cluster': 'prod-etcd' }, { addresses: [{ type: 'ExternalIP', address: '10.20.0.11' }] }),
    machine(
      'prod-x8k2p',
      { 'cluster.x-k8s.io/control-plane': '', 'cluster.x-k8s.io/control-plane-name': 'prod' },
      {
        nodeRef: { name: 'prod-cp-node-1' },
        addresses: [
          { type: 'Hostname', address: 'prod-x8k2p' },
          { type: 'ExternalIP', address: 'fe80::250:56ff:fe8a:1' },
          { type: 'ExternalIP', address: '10.20.0.100' }, // the control plane's virtual IP, held by this node
          { type: 'ExternalIP', address: '10.20.0.21' },
        ],
      },
    ),
    // Another cluster's machine (a server that ignored labelSelector), one being deleted, one with no role.
    { ...machine('other-abc', { 'cluster.x-k8s.io/control-plane': '' }), metadata: { name: 'other-abc', labels: { 'cluster.x-k8s.io/cluster-name': 'other', 'cluster.x-k8s.io/control-plane': '' } } },
    machine('prod-old-zzzzz', { 'cluster.x-k8s.io/control-plane': '' }, { addresses: [{ type: 'ExternalIP', address: '10.20.0.29' }] }, { deletionTimestamp: '2025-01-01T00:00:00Z' }),
    machine('prod-mystery', {}),
    // No deployment-name label, but owned by a MachineSet: a worker.
    machine('prod-md-1-owned', {}, { addresses: [{ type: 'ExternalIP', address: 'fd00::41' }] }, { ownerReferences: [{ kind: 'MachineSet', name: 'prod-md-1-abc' }] }),
  ];

  function fakeClient(answer: (method: string, path: string) => unknown): { client: Pick<KubeClient, 'request'>; calls: string[] } {
    const calls: string[] = [];
    return {
      calls,
      client: {
        request: async <T>(method: string, path: string) => {
          calls.push(`${method} ${path}`);
          return answer(method, path) as T;
        },
      },
    };
  }

  it('asks for the cluster\'s Machines by label and returns them in runbook order', async () => {
    const { client, calls } = fakeClient(() => ({ kind: 'MachineList', items }));
    const nodes = await listMachineNodes(client, 'prod', 'eksa-system', { skipAddresses: ['10.20.0.100'] });
    // Cluster API v1beta2 first (served from v1.11); it answered, so v1beta1 is not asked.
    expect(calls).toEqual(['GET /apis/cluster.x-k8s.io/v1beta2/namespaces/eksa-system/machines?labelSelector=cluster.x-k8s.io%2Fcluster-name%3Dprod']);
    expect(nodes).toEqual([
      { name: 'prod-etcd-q2w3e', host: '10.20.0.11', role: 'etcd' },
      { name: 'prod-cp-node-1', host: '10.20.0.21', role: 'control-plane', machine: 'prod-x8k2p' },
      { name: 'prod-md-0-7d9f8-abcde', host: '10.20.0.31', role: 'worker', deploymentName: 'prod-md-0', phase: 'Running' },
      { name: 'prod-md-0-7d9f8-fghij', role: 'worker', deploymentName: 'prod-md-0', phase: 'Provisioning' },
      { name: 'prod-md-1-owned', host: 'fd00::41', role: 'worker' },
    ]);
  });

  it('without skipAddresses the first usable ExternalIP wins (link-local never)', async () => {
    const { client } = fakeClient(() => ({ items }));
    const cp = (await listMachineNodes(client, 'prod')).find((n) => n.role === 'control-plane');
    expect(cp?.host).toBe('10.20.0.100');
  });

  it('a cluster without Cluster API says the kubeconfig should be the management cluster\'s; other API errors pass through', async () => {
    const notFound = fakeClient(() => {
      throw new KubeApiError('GET /apis/...: 404 the server could not find the requested resource', 404);
    });
    await expect(listMachineNodes(notFound.client, 'prod')).rejects.toThrow(/404 .*the kubeconfig should be the management cluster's, whose eksa-system holds the Machines of prod/);
    // Neither version answered: v1beta2, then v1beta1.
    expect(notFound.calls.map((c) => /\/(v1beta\d)\//.exec(c)?.[1])).toEqual(['v1beta2', 'v1beta1']);
    const expired = fakeClient(() => {
      throw new KubeApiError('GET /apis/...: 401 Unauthorized', 401);
    });
    await expect(listMachineNodes(expired.client, 'prod')).rejects.toMatchObject({ status: 401, unauthorized: true });
    // A refusal is not a missing version: v1beta1 is not tried.
    expect(expired.calls).toHaveLength(1);
  });

  it('an empty list is an empty result', async () => {
    const { client } = fakeClient(() => ({ kind: 'MachineList', items: [] }));
    expect(await listMachineNodes(client, 'prod')).toEqual([]);
  });
});

describe('inventoryYaml: the inventory rotate-certs reads', () => {
  const prodNodes: NodeInput[] = [
    { name: 'prod-etcd-a', host: '10.20.0.11', role: 'etcd' },
    { name: 'prod-etcd-b', host: '10.20.0.12', role: 'etcd' },
    { name: 'prod-etcd-c', host: '10.20.0.13', role: 'etcd' },
    { name: 'prod-cp-a', host: '10.20.0.21', role: 'control-plane' },
    { name: 'prod-cp-b', host: '10.20.0.22', role: 'control-plane' },
    { name: 'prod-md-0-a', host: '10.20.0.31', role: 'worker', deploymentName: 'prod-md-0' },
    { name: 'prod-md-0-b', host: '10.20.0.32', role: 'worker', deploymentName: 'prod-md-0' },
  ];

  it('Ubuntu with external etcd: paths relative to the folder, strict host keys, no per-node overrides', () => {
    const folder = readClusterFolder(fixture('ubuntu-external-etcd', 'prod'), 'prod');
    const text = inventoryYaml(folder, prodNodes, { knownHostsFile: join(folder.dir, 'known_hosts'), now: NOW });
    const raw = parse(text) as Record<string, any>;
    expect(raw).toMatchObject({
      cluster: 'prod',
      kubeconfig: 'prod-eks-a-cluster.kubeconfig',
      ssh: { user: 'capv', identityFile: 'eks-a-id_rsa', knownHostsFile: 'known_hosts', hostKeyPolicy: 'strict' },
      os: 'ubuntu',
    });
    expect(raw.controlPlane[0]).toEqual({ name: 'prod-cp-a', host: '10.20.0.21' });
    expect(text).toMatch(/^  - \{ name: prod-etcd-a, host: 10\.20\.0\.11 \}$/m);
    expect(text.split('\n')[0]).toBe('# rotate-certs inventory of EKS Anywhere cluster prod (see docs/inventory.md).');
    expect(text).toContain(`# Generated by rotate-certs at 2025-03-04T05:06:07.000Z from ${folder.dir}: prod-eks-a-cluster.yaml, prod-eks-a-cluster.kubeconfig, eks-a-id_rsa.`);
    expect(text).not.toMatch(/CHECK:/);

    const inv = reparse(folder, text);
    expect(inv.cluster).toBe('prod');
    expect(inv.kubeconfig).toBe(folder.kubeconfig);
    expect(inv.externalEtcd).toBe(true);
    expect(inv.nodes.map((n) => [n.name, n.role, n.os, n.ssh.user])).toEqual(prodNodes.map((n) => [n.name, n.role, 'ubuntu', 'capv']));
    expect(inv.nodes[0]!.ssh).toMatchObject({ identityFile: folder.identityFile, knownHostsFile: join(folder.dir, 'known_hosts'), hostKeyPolicy: 'strict' });
  });

  it('Bottlerocket with stacked etcd: ec2-user and bottlerocket at the top, no etcd list', () => {
    const folder = readClusterFolder(fixture('bottlerocket-stacked', 'edge'), 'edge');
    const nodes: NodeInput[] = [
      { name: 'edge-cp-1', host: '10.30.0.21', role: 'control-plane' },
      { name: 'edge-cp-2', host: '10.30.0.22', role: 'control-plane' },
      { name: 'edge-cp-3', host: '10.30.0.23', role: 'control-plane' },
      // The caller's nodes may come without deploymentName (typed in): one worker group settles it.
      { name: 'edge-md-1', host: '10.30.0.31', role: 'worker' },
    ];
    const built = buildInventory(folder, nodes, { now: NOW });
    expect(built.warnings).toEqual([]);
    const raw = parse(built.yaml) as Record<string, any>;
    expect(raw.os).toBe('bottlerocket');
    expect(raw.ssh.user).toBe('ec2-user');
    expect(raw.etcd).toBeUndefined();
    expect(raw.ssh.knownHostsFile).toBeUndefined();
    const inv = reparse(folder, built.yaml);
    expect(inv.externalEtcd).toBe(false);
    expect(inv.nodes.every((n) => n.os === 'bottlerocket' && n.ssh.user === 'ec2-user')).toBe(true);
    expect(inv.nodes[0]!.ssh.knownHostsFile).toBe(join(HOME, '.ssh', 'known_hosts'));
  });

  it('mixed: the most common OS and user on top, overrides where a node\'s group differs', () => {
    const folder = readClusterFolder(fixture('mixed', 'mixed'), 'mixed');
    const nodes: NodeInput[] = [
      { name: 'mixed-md-0-a', host: '10.40.0.31', role: 'worker', deploymentName: 'mixed-md-0' },
      { name: 'mixed-md-0-b', host: '10.40.0.32', role: 'worker', deploymentName: 'mixed-md-0' },
      { name: 'mixed-rhel-a', host: '10.40.0.41', role: 'worker', deploymentName: 'mixed-rhel' },
      { name: 'mixed-etcd-a', host: '10.40.0.11', role: 'etcd' },
      { name: 'mixed-cp-a', host: '10.40.0.21', role: 'control-plane' },
    ];
    const text = inventoryYaml(folder, nodes, { now: NOW });
    const raw = parse(text) as Record<string, any>;
    // ubuntu 2 (etcd, cp), bottlerocket 2, rhel 1: the tie goes to the first in runbook order.
    expect(raw.os).toBe('ubuntu');
    expect(raw.ssh.user).toBe('capv');
    expect(raw.workers).toEqual([
      { name: 'mixed-md-0-a', host: '10.40.0.31', os: 'bottlerocket', ssh: { user: 'ec2-user' } },
      { name: 'mixed-md-0-b', host: '10.40.0.32', os: 'bottlerocket', ssh: { user: 'ec2-user' } },
      { name: 'mixed-rhel-a', host: '10.40.0.41', os: 'rhel' },
    ]);
    const inv = reparse(folder, text);
    expect(inv.nodes.map((n) => [n.name, n.role, n.os, n.ssh.user])).toEqual([
      ['mixed-etcd-a', 'etcd', 'ubuntu', 'capv'],
      ['mixed-cp-a', 'control-plane', 'ubuntu', 'capv'],
      ['mixed-md-0-a', 'worker', 'bottlerocket', 'ec2-user'],
      ['mixed-md-0-b', 'worker', 'bottlerocket', 'ec2-user'],
      ['mixed-rhel-a', 'worker', 'rhel', 'capv'],
    ]);
  });

  it('mixed: a worker no group claims is left to OS detection, and the header says so', () => {
    const folder = readClusterFolder(fixture('mixed', 'mixed'), 'mixed');
    const built = buildInventory(
      folder,
      [
        { name: 'mixed-etcd-a', host: '10.40.0.11', role: 'etcd' },
        { name: 'mixed-cp-a', host: '10.40.0.21', role: 'control-plane' },
        { name: 'mixed-md-9-a', host: '10.40.0.51', role: 'worker', deploymentName: 'mixed-md-9' },
        { name: 'mixed-typed', host: '10.40.0.52', role: 'worker' },
      ],
      { now: NOW },
    );
    expect(built.warnings).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^mixed-md-9-a \(worker\): its MachineDeployment mixed-md-9 is none of the spec's worker node groups \(mixed-md-0, mixed-rhel\); its OS is detected on connect \(os: auto\)/),
        expect.stringMatching(/^mixed-typed \(worker\): nothing says which worker node group it is in/),
        'worker group md-0: the spec asks for 2 nodes, 0 are listed',
      ]),
    );
    expect(built.yaml).toMatch(/^# CHECK: mixed-md-9-a \(worker\)/m);
    const inv = reparse(folder, built.yaml);
    expect(inv.nodes.filter((n) => n.role === 'worker').map((n) => [n.os, n.ssh.user])).toEqual([
      ['auto', 'ec2-user'],
      ['auto', 'ec2-user'],
    ]);
  });

  it('no eks-a-id_rsa: no identityFile, and the header says the agent is used', () => {
    const folder = readClusterFolder(fixture('no-key', 'nokey'), 'nokey');
    const text = inventoryYaml(folder, prodNodes.map((n) => ({ ...n, name: n.name.replace('prod', 'nokey'), deploymentName: n.deploymentName?.replace('prod', 'nokey') })), { now: NOW });
    expect(text).toMatch(/^# No eks-a-id_rsa in the folder: SSH uses the agent at SSH_AUTH_SOCK/m);
    const inv = reparse(folder, text);
    expect(inv.nodes[0]!.ssh.identityFile).toBeUndefined();
    expect(inv.kubeconfig).toBe(folder.kubeconfig);
  });

  it('no kubeconfig: no kubeconfig field', () => {
    const folder = readClusterFolder(fixture('no-kubeconfig', 'nokube'), 'nokube');
    const text = inventoryYaml(folder, [{ name: 'nokube-cp-1', host: 'cp1.example.internal', role: 'control-plane' }], { now: NOW });
    expect(parse(text)).not.toHaveProperty('kubeconfig');
    expect(reparse(folder, text).kubeconfig).toBeUndefined();
  });

  it('a workload cluster names its management cluster\'s kubeconfig; paths outside the folder stay absolute', () => {
    const folder = readClusterFolder(fixture('workload', 'w1'), 'w1');
    const knownHosts = join(tmpdir(), 'rc-known-hosts');
    const text = inventoryYaml(folder, [{ name: 'w1-cp-1', host: '10.20.0.21', role: 'control-plane' }], { knownHostsFile: knownHosts, now: NOW });
    const raw = parse(text) as Record<string, any>;
    expect(raw.kubeconfig).toBe(folder.managementKubeconfig);
    expect(raw.ssh.knownHostsFile).toBe(knownHosts);
    const inv = reparse(folder, text);
    expect(inv.kubeconfig).toBe(join(FIXTURES, 'workload', 'mgmt', 'mgmt-eks-a-cluster.kubeconfig'));
    // The caller's --management-kubeconfig wins.
    expect(parse(inventoryYaml(folder, [{ name: 'w1-cp-1', host: '10.20.0.21', role: 'control-plane' }], { kubeconfig: '/etc/mgmt.kubeconfig' })).kubeconfig).toBe('/etc/mgmt.kubeconfig');
  });

  it('IPv6 addresses and host names survive the round trip', () => {
    const folder = readClusterFolder(fixture('bottlerocket-stacked', 'edge'), 'edge');
    const text = inventoryYaml(folder, [
      { name: 'edge-cp-1', host: 'fd00::21', role: 'control-plane' },
      { name: 'edge-md-1', host: 'md1.edge.example.internal', role: 'worker', deploymentName: 'edge-md-0' },
    ]);
    expect(reparse(folder, text).nodes.map((n) => n.host)).toEqual(['fd00::21', 'md1.edge.example.internal']);
  });

  it('the spec and the nodes disagreeing is reported: counts, external etcd without etcd nodes', () => {
    const folder = readClusterFolder(fixture('ubuntu-external-etcd', 'prod'), 'prod');
    const built = buildInventory(folder, [{ name: 'prod-cp-a', host: '10.20.0.21', role: 'control-plane' }]);
    expect(built.warnings).toEqual([
      'the spec has external etcd but no etcd node is listed: etcd certificates would not be rotated; add the etcd nodes under etcd:',
      'etcd: the spec asks for 3 nodes, 0 are listed',
      'control-plane: the spec asks for 2 nodes, 1 is listed',
      'worker group md-0: the spec asks for 2 nodes, 0 are listed',
    ]);
    reparse(folder, built.yaml);
  });

  it('etcd nodes of a stacked-etcd spec: detected OS, the control plane\'s user', () => {
    const folder = readClusterFolder(fixture('bottlerocket-stacked', 'edge'), 'edge');
    const built = buildInventory(folder, [
      { name: 'edge-etcd-1', host: '10.30.0.11', role: 'etcd' },
      { name: 'edge-cp-1', host: '10.30.0.21', role: 'control-plane' },
    ]);
    expect(built.warnings[0]).toMatch(/^edge-etcd-1 \(etcd\): the spec has no externalEtcdConfiguration \(stacked etcd\); its OS is detected on connect/);
    const inv = reparse(folder, built.yaml);
    expect(inv.nodes[0]).toMatchObject({ name: 'edge-etcd-1', os: 'auto', ssh: { user: 'ec2-user' } });
  });

  it('nodes without an address: missingHosts names the fields, inventoryYaml refuses naming them', () => {
    const folder = readClusterFolder(fixture('ubuntu-external-etcd', 'prod'), 'prod');
    const nodes: NodeInput[] = prodNodes.map((n) => (n.name === 'prod-cp-b' || n.name === 'prod-md-0-b' ? { ...n, host: undefined } : n));
    expect(missingHosts(nodes)).toEqual([
      { name: 'prod-cp-b', role: 'control-plane', field: 'controlPlane[1].host' },
      { name: 'prod-md-0-b', role: 'worker', field: 'workers[1].host' },
    ]);
    let err: unknown;
    try {
      inventoryYaml(folder, nodes);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MissingHostsError);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as MissingHostsError).missing.map((m) => m.field)).toEqual(['controlPlane[1].host', 'workers[1].host']);
    expect((err as Error).message).toBe(
      `no address for prod-cp-b (control-plane), prod-md-0-b (worker): set controlPlane[1].host, workers[1].host in ${join(folder.dir, 'rotate-certs.yaml')} (the Cluster API Machines report none; give the node addresses)`,
    );
  });

  it('no control-plane node is refused', () => {
    const folder = readClusterFolder(fixture('ubuntu-external-etcd', 'prod'), 'prod');
    expect(() => inventoryYaml(folder, [{ name: 'prod-etcd-a', host: '10.20.0.11', role: 'etcd' }])).toThrow(/no control-plane node for cluster prod/);
  });

  it('from Machines to a loadable inventory: list, fill the missing address, build, load', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'rc-eksa-')), 'prod');
    cpSync(fixture('ubuntu-external-etcd', 'prod'), dir, { recursive: true });
    const folder = readClusterFolder(dir, 'prod');
    const client = {
      request: async <T>() =>
        ({
          items: [
            { metadata: { name: 'prod-etcd-1', labels: { 'cluster.x-k8s.io/cluster-name': 'prod', 'cluster.x-k8s.io/etcd-cluster': 'prod-etcd' } }, status: { addresses: [{ type: 'ExternalIP', address: '10.20.0.11' }] } },
            { metadata: { name: 'prod-cp-1', labels: { 'cluster.x-k8s.io/cluster-name': 'prod', 'cluster.x-k8s.io/control-plane': '' } }, status: { nodeRef: { name: 'prod-cp-1' }, addresses: [{ type: 'ExternalIP', address: '10.20.0.100' }, { type: 'ExternalIP', address: '10.20.0.21' }] } },
            { metadata: { name: 'prod-md-0-1', labels: { 'cluster.x-k8s.io/cluster-name': 'prod', 'cluster.x-k8s.io/deployment-name': 'prod-md-0' } }, status: {} },
          ],
        }) as T,
    };
    const nodes = await listMachineNodes(client, 'prod', 'eksa-system', { skipAddresses: [folder.controlPlaneEndpoint!] });
    expect(missingHosts(nodes)).toEqual([{ name: 'prod-md-0-1', role: 'worker', field: 'workers[0].host' }]);
    const filled = nodes.map((n) => ({ ...n, host: n.host ?? '10.20.0.31' }));
    const text = inventoryYaml(folder, filled, { now: NOW });
    writeFileSync(join(dir, 'rotate-certs.yaml'), text);
    const inv = reparse(folder, readFileSync(join(dir, 'rotate-certs.yaml'), 'utf8'));
    expect(inv.nodes.map((n) => `${n.role}:${n.name}@${n.host}`)).toEqual(['etcd:prod-etcd-1@10.20.0.11', 'control-plane:prod-cp-1@10.20.0.21', 'worker:prod-md-0-1@10.20.0.31']);
    rmSync(dirname(dir), { recursive: true });
  });
});
