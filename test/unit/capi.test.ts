/**
 * Cluster API versions: Machines and KubeadmControlPlanes read from a server that serves only
 * v1beta2 (a future Cluster API that stopped serving v1beta1), only v1beta1 (before 1.11), or
 * both, over HTTPS as the real client talks to it. An unserved group/version answers 404 with
 * released kube-apiservers' plain-text body, or a JSON Status on newer ones.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listMachineNodes } from '../../src/eksa/machines.js';
import { kubeadmControlPlanes } from '../../src/kube/capi.js';
import { KubeClient, readKubeconfig } from '../../src/kube/client.js';
import { json, notFoundStatus, pageNotFound, startLocalApi, type Answer, type LocalApi } from './local-api.js';

const labels = (extra: Record<string, string>) => ({ 'cluster.x-k8s.io/cluster-name': 'prod', ...extra });
/** The same Machines as each version spells them: nodeRef is {name} in v1beta2, an ObjectReference in v1beta1. */
function machines(version: 'v1beta2' | 'v1beta1') {
  const nodeRef = (name: string) => (version === 'v1beta2' ? { name } : { apiVersion: 'v1', kind: 'Node', name, uid: 'u-1' });
  return {
    kind: 'MachineList',
    apiVersion: `cluster.x-k8s.io/${version}`,
    items: [
      { metadata: { name: 'prod-etcd-abc', labels: labels({ 'cluster.x-k8s.io/etcd-cluster': 'prod-etcd' }) }, status: { addresses: [{ type: 'ExternalIP', address: '10.0.0.11' }] } },
      { metadata: { name: 'prod-x8k2p', labels: labels({ 'cluster.x-k8s.io/control-plane': '' }) }, status: { nodeRef: nodeRef('prod-cp-1'), addresses: [{ type: 'ExternalIP', address: '10.0.0.21' }], phase: 'Running' } },
      { metadata: { name: 'prod-md-0-1', labels: labels({ 'cluster.x-k8s.io/deployment-name': 'prod-md-0' }) }, status: { nodeRef: nodeRef('prod-md-0-1-node'), addresses: [{ type: 'InternalIP', address: '10.0.0.31' }] } },
    ],
  };
}
const kcps = (version: string) => ({ kind: 'KubeadmControlPlaneList', apiVersion: `controlplane.cluster.x-k8s.io/${version}`, items: [{ metadata: { name: 'prod', annotations: { 'cluster.x-k8s.io/paused': '' } } }] });

describe('Cluster API: v1beta2 first, v1beta1 when the server does not serve v1beta2', () => {
  let api: LocalApi;
  let served: string[] = [];
  let unserved: Answer = pageNotFound;
  beforeAll(async () => {
    api = await startLocalApi((r) => {
      const m = /^\/apis\/((?:controlplane\.)?cluster\.x-k8s\.io)\/(v1beta\d)\/namespaces\/eksa-system\/(machines|kubeadmcontrolplanes)/.exec(r.path);
      if (!m) return notFoundStatus('the server could not find the requested resource');
      if (!served.includes(m[2]!)) return unserved;
      return json(200, m[3] === 'machines' ? machines(m[2] as 'v1beta2' | 'v1beta1') : kcps(m[2]!));
    });
  });
  afterAll(async () => {
    await api?.close();
  });
  const client = () => new KubeClient(readKubeconfig(api.adminKubeconfig()));
  const versionsAsked = () => api.seen.map((r) => /\/(v1beta\d)\//.exec(r.path)?.[1]);
  const expected = [
    { name: 'prod-etcd-abc', host: '10.0.0.11', role: 'etcd' },
    { name: 'prod-cp-1', host: '10.0.0.21', role: 'control-plane', machine: 'prod-x8k2p', phase: 'Running' },
    { name: 'prod-md-0-1-node', host: '10.0.0.31', role: 'worker', deploymentName: 'prod-md-0', machine: 'prod-md-0-1' },
  ];

  it('a v1beta2-only server: Machines (nodeRef {name}) and KCPs with one request each', async () => {
    served = ['v1beta2'];
    api.seen.length = 0;
    expect(await listMachineNodes(client(), 'prod')).toEqual(expected);
    expect(await kubeadmControlPlanes(client(), 'eksa-system')).toEqual({ names: ['prod'], paused: ['prod'] });
    expect(versionsAsked()).toEqual(['v1beta2', 'v1beta2']);
  });

  it('a v1beta1-only server (plain-text 404 for v1beta2): the same nodes, read with v1beta1', async () => {
    served = ['v1beta1'];
    unserved = pageNotFound;
    api.seen.length = 0;
    expect(await listMachineNodes(client(), 'prod')).toEqual(expected);
    expect(await kubeadmControlPlanes(client(), 'eksa-system')).toEqual({ names: ['prod'], paused: ['prod'] });
    expect(versionsAsked()).toEqual(['v1beta2', 'v1beta1', 'v1beta2', 'v1beta1']);
  });

  it('a v1beta1-only server answering a JSON Status 404 for v1beta2: the same', async () => {
    served = ['v1beta1'];
    unserved = notFoundStatus('the server could not find the requested resource');
    api.seen.length = 0;
    expect(await listMachineNodes(client(), 'prod')).toEqual(expected);
    expect(versionsAsked()).toEqual(['v1beta2', 'v1beta1']);
  });

  it('no Cluster API at all: the 404 says the kubeconfig should be the management cluster\'s', async () => {
    served = [];
    unserved = pageNotFound;
    await expect(listMachineNodes(client(), 'prod')).rejects.toThrow(/GET \/apis\/cluster\.x-k8s\.io\/v1beta1\/.*: 404 404 page not found \(no Cluster API Machines here/);
  });
});
