/** The pure judgements behind the rotation gates: kubelet certificates, static pod containers, SANs, pairs. */
import 'reflect-metadata';
import { beforeAll, describe, expect, it } from 'vitest';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { inspectCertificate } from '../../src/certs/inspect.js';
import { pairMatches, subjectAltNames, type CertRead } from '../../src/apply/gates.js';
import { clientCertProblem } from '../../src/apply/kubelet.js';
import { notRunning, parseStaticPods, staleContainers, stillRunning, StaticPodsOutputError, unlabelledStaticPods } from '../../src/apply/static-pods.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const HOUR = 3600_000;
const now = Date.parse('2026-12-04T12:00:00Z');

async function keyPem(k: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', k));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n`;
}

async function ca(name: string) {
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({ serialNumber: '01', name, notBefore: new Date(now - 1000 * HOUR), notAfter: new Date(now + 87600 * HOUR), keys, signingAlgorithm: alg, extensions: [new x509.BasicConstraintsExtension(true, undefined, true)] });
  return { keys, cert };
}

async function leaf(issuer: Awaited<ReturnType<typeof ca>>, subject: string, from: number, to: number, sans: x509.JsonGeneralName[] = []) {
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: Math.floor(Math.random() * 1e9).toString(16),
    subject,
    issuer: issuer.cert.subject,
    notBefore: new Date(from),
    notAfter: new Date(to),
    publicKey: keys.publicKey,
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: alg,
    extensions: sans.length ? [new x509.SubjectAlternativeNameExtension(sans)] : [],
  });
  const pem = cert.toString('pem');
  return { pem, read: { ...inspectCertificate(pem), pem } as CertRead, key: await keyPem(keys.privateKey) };
}

describe('kubelet client certificate acceptance', () => {
  let cluster: Awaited<ReturnType<typeof ca>>;
  let other: Awaited<ReturnType<typeof ca>>;
  let before: CertRead;
  beforeAll(async () => {
    cluster = await ca('CN=kubernetes');
    other = await ca('CN=etcd-ca');
    before = (await leaf(cluster, 'O=system:nodes, CN=system:node:w1', now - 400 * 24 * HOUR, now - 24 * HOUR)).read;
  });
  const expect1 = () => ({ clientName: 'system:node:w1', ca: cluster.cert.toString('pem'), before, now });

  it('accepts the issued certificate and a newer one the kubelet rotated to through a CSR', async () => {
    const issued = await leaf(cluster, 'O=system:nodes, CN=system:node:w1', now - HOUR, now + 8760 * HOUR);
    const rotated = await leaf(cluster, 'O=system:nodes, CN=system:node:w1', now - 60_000, now + 8760 * HOUR);
    expect(clientCertProblem(issued.read, expect1())).toBeUndefined();
    expect(clientCertProblem(rotated.read, expect1())).toBeUndefined();
  });

  it('refuses the old one, another node, another group, another CA, and one not valid now', async () => {
    expect(clientCertProblem(before, expect1())).toMatch(/not valid now|still the certificate from before/);
    expect(clientCertProblem((await leaf(cluster, 'O=system:nodes, CN=system:node:w2', now - HOUR, now + 8760 * HOUR)).read, expect1())).toMatch(/not CN=system:node:w1/);
    expect(clientCertProblem((await leaf(cluster, 'O=system:masters, CN=system:node:w1', now - HOUR, now + 8760 * HOUR)).read, expect1())).toMatch(/O=system:nodes/);
    expect(clientCertProblem((await leaf(other, 'O=system:nodes, CN=system:node:w1', now - HOUR, now + 8760 * HOUR)).read, expect1())).toMatch(/not signed by the cluster CA/);
    expect(clientCertProblem((await leaf(cluster, 'O=system:nodes, CN=system:node:w1', now + HOUR, now + 8760 * HOUR)).read, expect1())).toMatch(/not valid now/);
  });
});

describe('SANs and pairs', () => {
  it('lists SANs as DNS:/IP: and tells a key that is not the certificate\'s', async () => {
    const etcd = await ca('CN=etcd-ca');
    const a = await leaf(etcd, 'CN=lab-etcd-1', now - HOUR, now + HOUR, [{ type: 'dns', value: 'lab-etcd-1' }, { type: 'ip', value: '10.0.0.11' }, { type: 'ip', value: '127.0.0.1' }]);
    const b = await leaf(etcd, 'CN=lab-etcd-1', now - HOUR, now + HOUR);
    expect(subjectAltNames(a.pem)).toEqual(['DNS:lab-etcd-1', 'IP:10.0.0.11', 'IP:127.0.0.1']);
    expect(subjectAltNames(b.pem)).toEqual([]);
    expect(pairMatches(a.pem, a.key)).toBe(true);
    expect(pairMatches(a.pem, b.key)).toBe(false);
    expect(pairMatches(a.pem, 'not a key')).toBe(false);
  });
});

describe('static pods as the runtime shows them', () => {
  const listing = (pods: string, containers: object[]) => `@@pods\n${pods}\n@@containers\n${JSON.stringify({ containers })}\n`;
  /** A container as crictl lists it; `pod` is its pod's name label (static pods: NAME-node), in kube-system unless `ns`. */
  const c = (id: string, name: string, state: string, createdAt: string, pod = `${name}-cp-1`, ns = 'kube-system') => ({
    id: id.padEnd(64, '0'),
    metadata: { name, attempt: 0 },
    labels: { 'io.kubernetes.container.name': name, 'io.kubernetes.pod.name': pod, 'io.kubernetes.pod.namespace': ns },
    state,
    createdAt,
  });
  const ids = (cs: Array<{ id: string }>) => cs.map((x) => x.id.slice(0, 2));

  it('reads crictl and ctr times, and finds what still runs, what does not yet, and stale containers (the newest is the kubelet\'s)', () => {
    const view = parseStaticPods(
      listing('kube-apiserver enabled\nkube-vip enabled\netcd disabled', [
        c('aa', 'kube-apiserver', 'CONTAINER_RUNNING', '1700000000000000000'),
        c('bb', 'kube-apiserver', 'CONTAINER_RUNNING', '2023-11-14T22:13:21.000000001Z'),
        c('cc', 'kube-vip', 'CONTAINER_EXITED', '1700000000000000000'),
        c('dd', 'cilium-agent', 'CONTAINER_RUNNING', '1600000000000000000', 'cilium-x7k2p'),
      ]),
    );
    expect(view.pods).toEqual([{ name: 'kube-apiserver', enabled: true }, { name: 'kube-vip', enabled: true }, { name: 'etcd', enabled: false }]);
    expect(view.containers[0]).toMatchObject({ podNamespace: 'kube-system', podName: 'kube-apiserver-cp-1' });
    expect(ids(stillRunning(view, 'cp-1'))).toEqual(['bb']); // aa is stale: it never stops with the pod
    expect(notRunning(view, 'cp-1')).toEqual(['kube-vip']);
    expect(ids(staleContainers(view, 'cp-1'))).toEqual(['aa']); // bb is 1 ns newer
  });

  it('a same-named container of another pod is neither waited for nor stale (a kube-vip DaemonSet beside the static pod)', () => {
    const view = parseStaticPods(
      listing('kube-vip enabled', [
        c('aa', 'kube-vip', 'CONTAINER_RUNNING', '1700000000000000000'),
        c('bb', 'kube-vip', 'CONTAINER_RUNNING', '1800000000000000000', 'kube-vip-ds-7xk2p'),
        c('cc', 'kube-vip', 'CONTAINER_RUNNING', '1900000000000000000', 'kube-vip-cp-1', 'default'),
      ]),
    );
    expect(ids(staleContainers(view, 'cp-1'))).toEqual([]);
    expect(ids(stillRunning(view, 'cp-1'))).toEqual(['aa']);
    expect(unlabelledStaticPods(view, 'cp-1')).toEqual([]);
    // The static kube-vip gone: the DaemonSet's container does not count as it.
    const stopped = parseStaticPods(listing('kube-vip enabled', [c('aa', 'kube-vip', 'CONTAINER_EXITED', '1700000000000000000'), c('bb', 'kube-vip', 'CONTAINER_RUNNING', '1800000000000000000', 'kube-vip-ds-7xk2p')]));
    expect(stillRunning(stopped, 'cp-1')).toEqual([]);
    expect(notRunning(stopped, 'cp-1')).toEqual(['kube-vip']);
  });

  it('the duplicate state: a stale kube-apiserver runs while the kubelet\'s newer one crash-loops', () => {
    const view = parseStaticPods(
      listing('kube-apiserver enabled\nkube-scheduler enabled', [
        c('aa', 'kube-apiserver', 'CONTAINER_RUNNING', '1700000000000000000'),
        c('bb', 'kube-apiserver', 'CONTAINER_EXITED', '1800000000000000000'),
        c('cc', 'kube-scheduler', 'CONTAINER_RUNNING', '1700000000000000000'),
        c('dd', 'kube-scheduler', 'CONTAINER_RUNNING', '1800000000000000000'),
      ]),
    );
    expect(ids(staleContainers(view, 'cp-1'))).toEqual(['aa', 'cc']);
    expect(ids(stillRunning(view, 'cp-1'))).toEqual(['dd']); // the stale apiserver blocks no wait
    expect(notRunning(view, 'cp-1')).toEqual(['kube-apiserver']);
  });

  it('pod names follow the Node name, lower-cased; a wrong one is caught rather than judged on', () => {
    const view = parseStaticPods(listing('kube-apiserver enabled', [c('aa', 'kube-apiserver', 'CONTAINER_RUNNING', '1700000000000000000', 'kube-apiserver-cp-1.example')]));
    expect(ids(stillRunning(view, 'CP-1.Example'))).toEqual(['aa']);
    expect(stillRunning(view, 'cp-1')).toEqual([]);
    expect(unlabelledStaticPods(view, 'cp-1')).toEqual([{ pod: 'kube-apiserver', seen: ['kube-system/kube-apiserver-cp-1.example'] }]);
    // A pod with no container at all is not evidence of a wrong name.
    expect(unlabelledStaticPods(parseStaticPods(listing('kube-apiserver enabled', [])), 'cp-1')).toEqual([]);
  });

  it('refuses output it cannot read rather than judging on it', () => {
    expect(() => parseStaticPods('nothing')).toThrow(StaticPodsOutputError);
    expect(() => parseStaticPods(listing('kube-apiserver maybe', []))).toThrow(/unexpected static pod line/);
    expect(() => parseStaticPods('@@pods\n@@containers\n{"containers":[{"id":"../x"}]}')).toThrow(/unexpected container id/);
    expect(() => parseStaticPods(listing('', [c('ee', 'x', 'CONTAINER_RUNNING', 'yesterday')]))).toThrow(/creation time/);
  });
});
