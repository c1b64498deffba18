/** Parses X.509 certificates (PEM or DER) into the fields the reports need. */
import 'reflect-metadata';
import { AsnConvert } from '@peculiar/asn1-schema';
import { BasicConstraints, id_ce_basicConstraints, type Certificate } from '@peculiar/asn1-x509';
import { X509Certificate } from '@peculiar/x509';
import { createHash } from 'node:crypto';

export interface CertInfo {
  subject: string;
  issuer: string;
  /** Lower-case hex, as openssl prints it without colons. */
  serial: string;
  isCA: boolean;
  notBefore: Date;
  notAfter: Date;
  /** SHA-256 of the DER, hex: identifies "the same certificate" across sources. */
  fingerprint: string;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** Every certificate block in a PEM text; anything else in the text (keys included) is ignored. */
export function pemCertificates(text: string): string[] {
  return text.match(PEM_CERT) ?? [];
}

/**
 * X509Certificate with the one extension we need read straight from the parsed ASN.1. Its
 * getExtension() re-encodes and re-parses every extension first, which tripled the cost of a
 * `check` over many nodes.
 */
class ParsedCertificate extends X509Certificate {
  get isCA(): boolean {
    const tbs = (this.asn as Certificate).tbsCertificate;
    const ext = tbs.extensions?.find((e) => e.extnID === id_ce_basicConstraints);
    return ext ? AsnConvert.parse(ext.extnValue, BasicConstraints).cA : false;
  }
}

export function inspectCertificate(input: string | Uint8Array): CertInfo {
  const cert = new ParsedCertificate(typeof input === 'string' ? input : new Uint8Array(input));
  return {
    subject: cert.subject,
    issuer: cert.issuer,
    serial: cert.serialNumber.toLowerCase(),
    isCA: cert.isCA,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    fingerprint: createHash('sha256').update(new Uint8Array(cert.rawData)).digest('hex'),
  };
}

export { commonName } from './dn.js';
