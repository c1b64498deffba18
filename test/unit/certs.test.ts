import 'reflect-metadata';
import { describe, expect, it, beforeAll } from 'vitest';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { expiryOf, DAY_MS } from '../../src/certs/expiry.js';
import { commonName, distinguishedName, inspectCertificate, opensslTime, pemCertificates } from '../../src/certs/inspect.js';
import { certKind } from '../../src/certs/kind.js';
import { planCheck, runCheck, type CheckReport } from '../../src/check/run.js';
import { renderSummary } from '../../src/cli/interactive.js';
import { requireKnownOs } from '../../src/profiles/detect-os.js';
import { parseInventory } from '../../src/inventory/load.js';
import { kubeletDueFrom } from '../../src/plan/kubelet-due.js';
import { ProfileSet } from '../../src/profiles/profile.js';
import { renderJson, renderPrometheus, renderTable } from '../../src/report/check-output.js';
import { loadCheckRunbook } from '../../src/runbook/check-sources.js';
import type { Connector } from '../../src/transport/session.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

let caPem = '';
let leafPem = '';
let leafKeyPem = '';

beforeAll(async () => {
  const caKeys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '0a',
    name: 'CN=etcd-ca',
    notBefore: new Date('2025-01-01T00:00:00Z'),
    notAfter: new Date('2035-01-01T00:00:00Z'),
    keys: caKeys,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  const leafKeys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: '01ab',
    subject: 'CN=kube-apiserver, O=kubeadm',
    issuer: ca.subject,
    notBefore: new Date('2025-11-26T00:00:00Z'),
    notAfter: new Date('2026-11-26T00:00:00Z'),
    publicKey: leafKeys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: alg,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'kubernetes' }, { type: 'ip', value: '10.0.0.1' }])],
  });
  caPem = ca.toString('pem');
  leafPem = leaf.toString('pem');
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', leafKeys.privateKey);
  leafKeyPem = x509.PemConverter.encode(pkcs8, 'PRIVATE KEY');
});

describe('certificate parsing', () => {
  it('reads subject, issuer, serial, CA flag and dates', () => {
    const leaf = inspectCertificate(leafPem);
    expect(leaf.subject).toBe('CN=kube-apiserver, O=kubeadm');
    expect(leaf.issuer).toBe('CN=etcd-ca');
    expect(leaf.serial).toBe('01ab');
    expect(leaf.isCA).toBe(false);
    expect(leaf.notAfter.toISOString()).toBe('2026-11-26T00:00:00.000Z');
    expect(leaf.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(inspectCertificate(caPem).isCA).toBe(true);
  });

  it('reads DER as well as PEM', () => {
    const der = Buffer.from(new x509.X509Certificate(leafPem).rawData);
    expect(inspectCertificate(der).fingerprint).toBe(inspectCertificate(leafPem).fingerprint);
  });

  it('picks only certificate blocks out of a cert+key file (kubelet-client-current.pem)', () => {
    const blocks = pemCertificates(`${leafPem}\n${leafKeyPem}\n${caPem}`);
    expect(blocks).toHaveLength(2);
    expect(blocks.join('')).not.toContain('PRIVATE KEY');
  });

  it('refuses garbage', () => {
    expect(() => inspectCertificate('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----')).toThrow();
  });

  it('spells names as the reports always have: RDNs in certificate order, ", " and "+" between', () => {
    expect(distinguishedName('O=system:nodes\nCN=system:node:lab-md-1')).toBe('O=system:nodes, CN=system:node:lab-md-1');
    expect(distinguishedName('CN=multi + O=valued\nOU=x')).toBe('CN=multi+O=valued, OU=x');
    expect(distinguishedName('OU=Ops\\+Dev\nCN=a\\, b\nemailAddress=x@y.z\ntitle=Dr')).toBe('OU=Ops\\+Dev, CN=a\\, b, E=x@y.z, T=Dr');
    expect(distinguishedName('')).toBe('');
    expect(distinguishedName(undefined)).toBe('');
  });

  it('reads the dates OpenSSL prints, to the second and beyond 2049', () => {
    expect(opensslTime('Nov 26 00:00:00 2026 GMT').toISOString()).toBe('2026-11-26T00:00:00.000Z');
    expect(opensslTime('Jan  1 23:59:59 2050 GMT').toISOString()).toBe('2050-01-01T23:59:59.000Z');
    expect(opensslTime('Feb 28 12:00:00.25 2031 GMT').toISOString()).toBe('2031-02-28T12:00:00.250Z');
    expect(() => opensslTime('2026-11-26T00:00:00Z')).toThrow(/unreadable certificate date/);
  });

  it('a CA is what OpenSSL would let sign: basicConstraints cA, and keyUsage (if any) with keyCertSign', async () => {
    const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
    const make = (extensions: x509.Extension[]) =>
      x509.X509CertificateGenerator.createSelfSigned({ serialNumber: '02', name: 'CN=x', notBefore: new Date('2025-01-01T00:00:00Z'), notAfter: new Date('2035-01-01T00:00:00Z'), keys, signingAlgorithm: alg, extensions });
    const signer = await make([new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.digitalSignature, true)]);
    const cannotSign = await make([new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)]);
    expect(inspectCertificate(signer.toString('pem')).isCA).toBe(true);
    expect(inspectCertificate(cannotSign.toString('pem')).isCA).toBe(false);
    expect(inspectCertificate(leafPem).isCA).toBe(false);
  });

  it('finds the common name', () => {
    expect(commonName('CN=system:node:lab-md-1, O=system:nodes')).toBe('system:node:lab-md-1');
    expect(commonName('O=x, CN=y')).toBe('y');
    expect(commonName('O=x')).toBeUndefined();
  });
});

describe('expiry status at the boundaries (injected clock)', () => {
  const notBefore = new Date('2025-11-26T00:00:00Z');
  const notAfter = new Date('2026-11-26T00:00:00Z');
  const at = (iso: string, warn = 30) => expiryOf(notBefore, notAfter, new Date(iso), warn);

  it('is not yet valid one millisecond before notBefore, valid at notBefore', () => {
    expect(at('2025-11-25T23:59:59.999Z').status).toBe('not-yet-valid');
    expect(at('2025-11-26T00:00:00.000Z').status).toBe('ok');
  });
  it('is valid through notAfter inclusive, expired one millisecond later', () => {
    expect(at('2026-11-26T00:00:00.000Z')).toEqual({ status: 'expiring', daysLeft: 0 });
    expect(at('2026-11-26T00:00:00.001Z')).toEqual({ status: 'expired', daysLeft: -1 });
  });
  it('is expiring at exactly warn-days left, ok a millisecond before that', () => {
    const edge = new Date(notAfter.getTime() - 30 * DAY_MS);
    expect(expiryOf(notBefore, notAfter, edge, 30)).toEqual({ status: 'expiring', daysLeft: 30 });
    expect(expiryOf(notBefore, notAfter, new Date(edge.getTime() - 1), 30)).toEqual({ status: 'ok', daysLeft: 30 });
  });
  it('counts whole days down, negative once expired', () => {
    expect(at('2026-11-24T12:00:00Z').daysLeft).toBe(1);
    expect(at('2026-12-06T00:00:00Z').daysLeft).toBe(-10);
  });
  it('warn-days 0 only flags the last instant', () => {
    expect(at('2026-11-25T00:00:00Z', 0).status).toBe('ok');
  });
});

describe("the kubelet's self-signed serving bundle (kubelet.crt: leaf, then its one-off CA)", () => {
  // As client-go util/cert GenerateSelfSignedCertKey writes it: CA "HOST-ca@UNIX" signs leaf
  // "HOST@UNIX" (serverAuth, SAN HOST), same dates, the leaf followed by the CA. Here one day left.
  const now = new Date('2026-11-25T00:00:00Z');
  const dates = { notBefore: new Date('2025-11-25T23:00:00Z'), notAfter: new Date('2026-11-25T23:00:00Z') };
  let bundle = '';
  let clusterCa = '';
  beforeAll(async () => {
    const caKeys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
    const ca = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=lab-md-1-ca@1764111600',
      ...dates,
      keys: caKeys,
      signingAlgorithm: alg,
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.digitalSignature, true)],
    });
    const leafKeys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: '02',
      subject: 'CN=lab-md-1@1764111600',
      issuer: ca.subject,
      ...dates,
      publicKey: leafKeys.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: alg,
      extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]), new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'lab-md-1' }])],
    });
    bundle = `${leaf.toString('pem')}\n${ca.toString('pem')}\n`;
    clusterCa = caPem;
  });

  /** check over a node that holds the bundle and a cluster CA (and the same pair outside kubelet.crt). */
  async function checked() {
    const out = (path: string, text: string) => `@@file\t${path}\n${text.trim()}\n@@end\n`;
    const stdout = [
      out('/var/lib/kubelet/pki/kubelet.crt', bundle),
      out('/etc/kubernetes/pki/ca.crt', clusterCa),
      out('/etc/kubernetes/pki/other-bundle.crt', bundle),
      '@@done\n',
    ].join('');
    const inv = requireKnownOs(parseInventory('cluster: lab\nssh: { user: capv }\ncontrolPlane:\n  - { name: lab-cp-1, host: 10.0.0.21 }\n', '/x/inv.yaml'), 'test');
    const connector: Connector = {
      connect: async (node) => ({ node, exec: async () => ({ code: 0, stdout, stderr: '' }), close: async () => {} }),
    };
    const plans = planCheck(inv, new ProfileSet(), loadCheckRunbook()).map((p) => ({ ...p, endpoints: [] }));
    return { inv, report: await runCheck(inv, plans, { connector, clock: { now: () => now }, concurrency: 1, warnDays: 30 }) };
  }

  it('is the kubelet serving certificate and its CA, not a cluster CA; the same pair elsewhere stays a CA', async () => {
    const { report } = await checked();
    const kinds = Object.fromEntries(report.certificates.map((c) => [c.path, [c.kind, c.isCA, c.status]]));
    expect(kinds).toEqual({
      '/var/lib/kubelet/pki/kubelet.crt': ['leaf', false, 'expiring'],
      '/var/lib/kubelet/pki/kubelet.crt[1]': ['kubelet-serving-ca', true, 'expiring'],
      '/etc/kubernetes/pki/ca.crt': ['ca', true, 'ok'],
      '/etc/kubernetes/pki/other-bundle.crt': ['leaf', false, 'expiring'],
      '/etc/kubernetes/pki/other-bundle.crt[1]': ['ca', true, 'expiring'],
    });
    expect(certKind({ subject: 'CN=x-ca@1', issuer: 'CN=x-ca@1', isCA: true }, '/var/lib/kubelet/pki/kubelet.crt', 0, undefined)).toBe('ca');
  });

  it('check names it in every format; the guided summary counts it with the certificates and warns about no CA', async () => {
    const { inv, report } = await checked();
    expect(renderTable(report)).toMatch(/\/var\/lib\/kubelet\/pki\/kubelet\.crt\[1\]\s+lab-md-1-ca@1764111600 \(kubelet's self-signed serving CA\)/);
    expect((JSON.parse(renderJson(report)) as CheckReport).certificates.find((c) => c.path?.endsWith('kubelet.crt[1]'))).toMatchObject({ kind: 'kubelet-serving-ca', isCA: true });
    expect(renderPrometheus(report)).toMatch(/x509_cert_not_after\{[^}]*path="\/var\/lib\/kubelet\/pki\/kubelet\.crt\[1\]"[^}]*kind="kubelet-serving-ca"\}/);
    expect(renderPrometheus(report)).toMatch(/x509_cert_not_after\{[^}]*path="\/etc\/kubernetes\/pki\/ca\.crt"[^}]*kind="ca"\}/);
    const summary = renderSummary({ ...report, certificates: report.certificates.filter((c) => !c.path?.includes('other-bundle')) }, inv, 30);
    expect(summary).not.toMatch(/CA \S*kubelet\.crt/);
    // The serving certificate and its CA; the cluster CA is not a certificate to rotate.
    expect(summary).toMatch(/lab-cp-1 .* 2 certificates, soonest 2026-11-25 \(0 days\): 2 expiring\n/);
  });

  it('makes its node due for the kubelet phase on its own', async () => {
    const { report } = await checked();
    expect(kubeletDueFrom({ certificates: report.certificates.filter((c) => c.path === '/var/lib/kubelet/pki/kubelet.crt[1]') })).toEqual(['lab-cp-1']);
  });
});
