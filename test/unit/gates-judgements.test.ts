/** The pure judgements behind the rotation gates: kubelet certificates, static pod containers, SANs, pairs. */
import 'reflect-metadata';
import { beforeAll, describe, expect, it } from 'vitest';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { inspectCertificate } from '../../src/certs/inspect.js';
import { pairMatches, subjectAltNames, type CertRead } from '../../src/apply/gates.js';
import { installedPairProblems, parsePairFiles, renewalProblems, type CertReads, type RenewalExpectation } from '../../src/apply/gate-judgements.js';
import { createHash } from 'node:crypto';
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

describe('certs-renewed: a renewal judged from the snapshot and what is read now', () => {
  const DIR = '/etc/etcd/pki';
  const expectOf = (over: Partial<RenewalExpectation> = {}): RenewalExpectation => ({ renewed: [`${DIR}/server.crt`], unchanged: [`${DIR}/ca.crt`], kubeconfigs: [], sansKept: [`${DIR}/server.crt`], node: 'etcd-1', ...over });
  const reads = (entries: Array<[string, CertRead | undefined]>): CertReads => new Map(entries);
  const sans = [{ type: 'dns', value: 'etcd-1' }, { type: 'ip', value: '10.0.0.11' }] as x509.JsonGeneralName[];
  let etcdCa: Awaited<ReturnType<typeof ca>>;
  let caRead: CertRead;
  let old: CertRead;
  let renewed: CertRead;
  beforeAll(async () => {
    etcdCa = await ca('CN=etcd-ca');
    caRead = { ...inspectCertificate(etcdCa.cert.toString('pem')), pem: etcdCa.cert.toString('pem') };
    old = (await leaf(etcdCa, 'CN=etcd-1', now - 400 * 24 * HOUR, now - HOUR, sans)).read;
    renewed = (await leaf(etcdCa, 'CN=etcd-1', now - HOUR, now + 8760 * HOUR, sans)).read;
  });
  const before = () => reads([[`${DIR}/server.crt`, old], [`${DIR}/ca.crt`, caRead]]);

  it('passes a new serial with a later expiry from the same CA, every SAN kept, the CA unchanged', () => {
    expect(renewalProblems(before(), reads([[`${DIR}/server.crt`, renewed], [`${DIR}/ca.crt`, caRead]]), expectOf(), now)).toEqual([]);
  });

  it('names each way a leaf is not renewed', async () => {
    const after = (server: CertRead | undefined) => reads([[`${DIR}/server.crt`, server], [`${DIR}/ca.crt`, caRead]]);
    expect(renewalProblems(before(), after(undefined), expectOf(), now)).toEqual([`${DIR}/server.crt is missing`]);
    expect(renewalProblems(before(), after(old), expectOf(), now)).toEqual([`${DIR}/server.crt was not renewed (same serial ${old.serial})`]);
    const shorter = (await leaf(etcdCa, 'CN=etcd-1', now - HOUR, now - 2 * HOUR, sans)).read;
    expect(renewalProblems(before(), after(shorter), expectOf(), now)[0]).toMatch(/expires .*, no later than before$/);
    // Nothing to compare with: judged on its own, and an expired one is refused.
    const expired = (await leaf(etcdCa, 'CN=etcd-1', now - 2 * HOUR, now - HOUR, sans)).read;
    expect(renewalProblems(reads([[`${DIR}/ca.crt`, caRead]]), after(expired), expectOf(), now)).toEqual([`${DIR}/server.crt is already expired`]);
    const foreign = (await leaf(await ca('CN=someone-else'), 'CN=etcd-1', now - HOUR, now + 8760 * HOUR, sans)).read;
    expect(renewalProblems(before(), after(foreign), expectOf(), now)).toEqual([`${DIR}/server.crt is now issued by CN=someone-else, was CN=etcd-ca`]);
  });

  it('refuses a lost SAN, naming the node, and a CA that changed or went', async () => {
    const fewer = (await leaf(etcdCa, 'CN=etcd-1', now - HOUR, now + 8760 * HOUR, [{ type: 'dns', value: 'etcd-1' }])).read;
    const [lost] = renewalProblems(before(), reads([[`${DIR}/server.crt`, fewer], [`${DIR}/ca.crt`, caRead]]), expectOf(), now);
    expect(lost).toBe(`${DIR}/server.crt lost IP:10.0.0.11 (now DNS:etcd-1): etcdadm takes the host's current name and default-route address; did etcd-1's hostname or address change since the certificate was made?`);
    const otherCa = await ca('CN=etcd-ca');
    const changedCa = { ...inspectCertificate(otherCa.cert.toString('pem')), pem: otherCa.cert.toString('pem') };
    expect(renewalProblems(before(), reads([[`${DIR}/server.crt`, renewed], [`${DIR}/ca.crt`, changedCa]]), expectOf(), now)).toEqual([`${DIR}/ca.crt CHANGED: a CA must never change here`]);
    expect(renewalProblems(before(), reads([[`${DIR}/server.crt`, renewed]]), expectOf(), now)).toEqual([`${DIR}/ca.crt is missing`]);
  });

  it('judges a kubeconfig only when it was there before or is now (super-admin.conf)', () => {
    const conf = '/etc/kubernetes/super-admin.conf';
    const e = expectOf({ renewed: [], unchanged: [], sansKept: [], kubeconfigs: [conf] });
    expect(renewalProblems(reads([[conf, undefined]]), reads([[conf, undefined]]), e, now)).toEqual([]);
    expect(renewalProblems(reads([[conf, old]]), reads([[conf, undefined]]), e, now)).toEqual([`${conf} is missing`]);
    expect(renewalProblems(reads([[conf, old]]), reads([[conf, renewed]]), e, now)).toEqual([]);
  });
});

describe('etcd-client-installed: the files the kube-apiserver reads, judged against the pair read in this run', () => {
  const pair = { cert: '-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----', key: '-----BEGIN PRIVATE KEY-----\nMIG\n-----END PRIVATE KEY-----' };
  // What installEtcdClientPair's heredocs write: the text and a newline.
  const hash = (text: string) => createHash('sha256').update(`${text}\n`).digest('hex');
  const lines = (certHash: string, keyHash: string, keyMode = '600') => `/etc/kubernetes/pki/apiserver-etcd-client.crt ${certHash} 644\n/etc/kubernetes/pki/apiserver-etcd-client.key ${keyHash} ${keyMode}\n`;

  it('reads the two lines, and refuses output that is not two', () => {
    expect(parsePairFiles(lines('a', 'b'))).toEqual({
      cert: { path: '/etc/kubernetes/pki/apiserver-etcd-client.crt', hash: 'a', mode: '644' },
      key: { path: '/etc/kubernetes/pki/apiserver-etcd-client.key', hash: 'b', mode: '600' },
    });
    expect(parsePairFiles('/etc/kubernetes/pki/apiserver-etcd-client.crt a 644\n')).toBeUndefined();
    expect(parsePairFiles('')).toBeUndefined();
  });

  it('passes the pair with its key 0600; names a wrong certificate, a wrong key, a key others can read', () => {
    const judge = (text: string) => installedPairProblems(parsePairFiles(text)!, pair);
    expect(judge(lines(hash(pair.cert), hash(pair.key)))).toEqual([]);
    expect(judge(lines(hash('old'), hash(pair.key)))).toEqual(['/etc/kubernetes/pki/apiserver-etcd-client.crt does not hold the renewed etcd client certificate']);
    expect(judge(lines(hash(pair.cert), hash('old'), '644'))).toEqual(['/etc/kubernetes/pki/apiserver-etcd-client.key does not hold the renewed etcd client key']);
    expect(judge(lines(hash(pair.cert), hash(pair.key), '644'))).toEqual(['/etc/kubernetes/pki/apiserver-etcd-client.key has mode 644, not 600']);
    // A file that is not there: etcdClientPairFiles prints "PATH missing -".
    expect(judge(`/etc/kubernetes/pki/apiserver-etcd-client.crt missing -\n/etc/kubernetes/pki/apiserver-etcd-client.key missing -\n`)).toHaveLength(2);
  });
});
