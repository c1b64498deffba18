/**
 * The inventory built from the folder `eksctl anywhere create cluster` leaves, against the emulated
 * cluster: the spec says roles, OS and users, the management cluster's Machines say names and
 * addresses, and `check` then reads every node with the result.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readClusterFolder, type ClusterFolder } from '../../src/eksa/cluster-spec.js';
import { listMachineNodes, type MachineNode } from '../../src/eksa/machines.js';
import { inventoryYaml, missingHosts } from '../../src/eksa/build-inventory.js';
import { loadInventory, parseInventory } from '../../src/inventory/load.js';
import { KubeClient, parseKubeconfig } from '../../src/kube/client.js';
import type { CheckReport } from '../../src/check/run.js';
import { startLab, type Lab } from '../lab/lab.js';
import { cli } from './rotation-state.js';

describe('an inventory from ./lab/ as eksctl left it (Ubuntu etcd and control plane, Ubuntu and Bottlerocket workers)', () => {
  let lab: Lab;
  let dir: string;
  let folder: ClusterFolder;
  let client: KubeClient;
  let nodes: MachineNode[];
  beforeAll(async () => {
    lab = await startLab({
      nodes: [
        { name: 'lab-etcd-1', role: 'etcd' },
        { name: 'lab-cp-1', role: 'control-plane' },
        { name: 'lab-md-1', role: 'worker' },
        { name: 'lab-md-2', role: 'worker', os: 'bottlerocket' },
      ],
    });
    dir = await lab.writeEksaFolder(mkdtempSync(join(lab.dir, 'admin-')));
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('the folder holds the spec, a 0600 kubeconfig and key; the spec reads as the lab is', () => {
    expect(dir.endsWith('/lab')).toBe(true);
    for (const f of ['lab-eks-a-cluster.kubeconfig', 'eks-a-id_rsa']) expect(statSync(join(dir, f)).mode & 0o777, f).toBe(0o600);
    folder = readClusterFolder(dir, 'lab');
    expect(folder.warnings).toEqual([]);
    expect(folder).toMatchObject({ cluster: 'lab', externalEtcd: true, kubeconfig: join(dir, 'lab-eks-a-cluster.kubeconfig'), identityFile: join(dir, 'eks-a-id_rsa'), provider: 'VSphereDatacenterConfig' });
    expect(folder.groups.map((g) => [g.role, g.os, g.sshUser, g.deploymentName ?? null, g.count])).toEqual([
      ['etcd', 'ubuntu', 'capv', null, 1],
      ['control-plane', 'ubuntu', 'capv', null, 1],
      ['worker', 'ubuntu', 'capv', 'lab-md-0', 1],
      ['worker', 'bottlerocket', 'ec2-user', 'lab-md-1', 1],
    ]);
  });

  it('the Machines, read with the folder\'s kubeconfig, give every node its name, role and address', async () => {
    client = new KubeClient(parseKubeconfig(readFileSync(folder.kubeconfig!, 'utf8'), folder.kubeconfig!));
    nodes = await listMachineNodes(client, 'lab', 'eksa-system', { skipAddresses: folder.controlPlaneEndpoint ? [folder.controlPlaneEndpoint] : [] });
    expect(nodes.map((n) => [n.name, n.role, n.host, n.deploymentName ?? null])).toEqual(lab.nodes.map((n) => [n.name, n.role, n.host, n.name === 'lab-md-1' ? 'lab-md-0' : n.name === 'lab-md-2' ? 'lab-md-1' : null]));
    expect(missingHosts(nodes)).toEqual([]);
    // The emulated API server filters by label itself, as the real one does.
    const other = await client.request<{ items: unknown[] }>('GET', '/apis/cluster.x-k8s.io/v1beta1/namespaces/eksa-system/machines?labelSelector=cluster.x-k8s.io%2Fcluster-name%3Dother');
    expect(other.items).toEqual([]);
    const cps = await client.request<{ items: Array<{ metadata: { name: string } }> }>('GET', '/apis/cluster.x-k8s.io/v1beta1/namespaces/eksa-system/machines?labelSelector=cluster.x-k8s.io%2Fcluster-name%3Dlab,cluster.x-k8s.io%2Fcontrol-plane');
    expect(cps.items.map((m) => m.metadata.name)).toEqual(['lab-cp-1']);
  });

  it('the built inventory says what the lab\'s own says, and check reads every node with it', async () => {
    const text = inventoryYaml(folder, nodes, { knownHostsFile: lab.knownHostsFile });
    const file = join(dir, 'rotate-certs.yaml');
    writeFileSync(file, text);
    const built = parseInventory(text, file);
    const own = loadInventory(lab.inventoryPath);
    const view = (inv: typeof own) => inv.nodes.map((n) => ({ name: n.name, host: n.host, role: n.role, os: n.os, user: n.ssh.user, hostKeyPolicy: n.ssh.hostKeyPolicy, knownHosts: n.ssh.knownHostsFile }));
    expect(view(built)).toEqual(view(own));
    expect(built.kubeconfig).toBe(folder.kubeconfig);
    expect(built.nodes[0]!.ssh.identityFile).toBe(join(dir, 'eks-a-id_rsa'));

    const r = await cli(['check', '--inventory', file, '--output', 'json']);
    const report = JSON.parse(r.out) as CheckReport;
    expect(report.errors, r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(new Set(report.certificates.map((c) => c.node))).toEqual(new Set(lab.nodes.map((n) => n.name)));
  });
});
