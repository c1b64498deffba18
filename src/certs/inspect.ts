/** Parses X.509 certificates (PEM or DER) into the fields the reports need. */
import 'reflect-metadata';
import { BasicConstraintsExtension, SubjectAlternativeNameExtension, X509Certificate } from '@peculiar/x509';
import { createHash } from 'node:crypto';

export interface CertInfo {
  subject: string;
  issuer: string;
  /** Lower-case hex, as openssl prints it without colons. */
  serial: string;
  isCA: boolean;
  notBefore: Date;
  notAfter: Date;
  /** DNS names and IP addresses from the subjectAltName extension. */
  sans: string[];
  /** SHA-256 of the DER, hex: identifies "the same certificate" across sources. */
  fingerprint: string;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** Every certificate block in a PEM text; anything else in the text (keys included) is ignored. */
export function pemCertificates(text: string): string[] {
  return text.match(PEM_CERT) ?? [];
}

export function inspectCertificate(input: string | Uint8Array): CertInfo {
  const cert = new X509Certificate(typeof input === 'string' ? input : new Uint8Array(input));
  const bc = cert.getExtension(BasicConstraintsExtension);
  const san = cert.getExtension(SubjectAlternativeNameExtension);
  const der = new Uint8Array(cert.rawData);
  return {
    subject: cert.subject,
    issuer: cert.issuer,
    serial: cert.serialNumber.toLowerCase(),
    isCA: bc?.ca ?? false,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    sans: san ? san.names.items.map((n) => n.value) : [],
    fingerprint: createHash('sha256').update(der).digest('hex'),
  };
}

export { commonName } from './dn.js';
