import 'reflect-metadata';
import { describe, expect, it, beforeAll } from 'vitest';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { expiryOf, DAY_MS } from '../../src/certs/expiry.js';
import { commonName, distinguishedName, inspectCertificate, opensslTime, pemCertificates } from '../../src/certs/inspect.js';

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
