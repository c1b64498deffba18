/**
 * A cluster behind a bastion: this machine has no route to any node but the bastion (the worker),
 * as when the admin machine sits outside a locked-down network. Every SSH session, endpoint probe
 * (the gates' :2379 and :6443, pre-flight's) and API call (the secret through a control plane's
 * admin.conf, the Node Ready gate through the inventory's kubeconfig, both naming a node's address)
 * must go through ssh.jumpHost. Assertions are about the end state, read after the isolation is
 * lifted.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { probeTcp, startLab, type Lab } from '../lab/lab.js';
import { cert, cli, clusterState, expectRotated, serials } from './rotation-state.js';

describe('rotation behind a bastion', () => {
  let lab: Lab;
  let viaBastion: string;
  beforeAll(async () => {
    lab = await startLab({ etcd: 3, controlPlane: 2, workers: 1 });
    const bastion = lab.node('lab-md-1');
    // The management kubeconfig names lab-cp-1's address, which only the bastion reaches.
    const kubeconfig = join(lab.dir, 'lab-eks-a-cluster.kubeconfig');
    writeFileSync(kubeconfig, await lab.node('lab-cp-1').readFile('/etc/kubernetes/admin.conf'), { mode: 0o600 });
    viaBastion = join(lab.dir, 'inventory-bastion.yaml');
    writeFileSync(
      viaBastion,
      readFileSync(lab.inventoryPath, 'utf8')
        .replace(/^cluster: lab$/m, 'cluster: lab\nkubeconfig: lab-eks-a-cluster.kubeconfig')
        .replace(/^ssh:\n/m, `ssh:\n  jumpHost: ${bastion.user}@${bastion.host}\n`),
    );
    await lab.isolate(['lab-md-1']);
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('this machine reaches the bastion only', async () => {
    expect(await probeTcp(lab.node('lab-md-1').host, 22)).toBe('open');
    for (const n of ['lab-etcd-1', 'lab-cp-1']) expect(await probeTcp(lab.node(n).host, 22), n).not.toBe('open');
  });

  it('without ssh.jumpHost nothing is reached: the run stops before any change', async () => {
    const before = await clusterState(lab);
    const r = await cli(['rotate', '-i', lab.inventoryPath, '--yes', '--state-dir', join(lab.dir, 'state-direct')]);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/lab-etcd-1: \S+ is unreachable|lab-etcd-1: .*host unreachable/);
    expect(await clusterState(lab)).toEqual(before);
  });

  it('with ssh.jumpHost a full rotate --yes renews every node; its gates and API calls go through the bastion', async () => {
    await lab.expireKubelet('lab-md-1', { client: 'expired' });
    const workerBefore = (await cert(lab.node('lab-md-1'), '/var/lib/kubelet/pki/kubelet-client-current.pem')).serial;
    const before = await serials(lab);
    const beforeState = await clusterState(lab);
    const r = await cli(['rotate', '-i', viaBastion, '--yes', '--state-dir', join(lab.dir, 'state')]);
    expect(r.err).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    // The gates saw each endpoint serve the renewed certificate, through the bastion.
    expect(r.err).toMatch(/lab-etcd-3 serving: ok \(serves serial/);
    expect(r.err).toMatch(/lab-cp-2 wait-ready: ok \(serves serial \S+, \/readyz ok\)/);
    // The API calls too: the secret (lab-cp-1's address) and the worker's Node, Ready.
    expect(r.err).toMatch(/etcd-client-secret: ok \(eksa-system\/lab-apiserver-etcd-client updated/);
    expect(r.err).toMatch(/lab-md-1 ready: ok \(Node Ready\)/);

    await lab.unisolate();
    await expectRotated(lab, before, beforeState);
    expect((await cert(lab.node('lab-md-1'), '/var/lib/kubelet/pki/kubelet-client-current.pem')).serial).not.toBe(workerBefore);
  });
});
