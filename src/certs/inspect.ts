/**
 * Parses X.509 certificates (PEM or DER) into the fields the reports need, with Node's own
 * X509Certificate (OpenSSL). A JavaScript ASN.1 stack (@peculiar/x509, used before) took about
 * 180 ms to load and 1.5 ms per certificate in a short-lived process: most of what `check` cost
 * above the SSH floor (docs/benchmark.md).
 */
import { X509Certificate } from 'node:crypto';

export interface CertInfo {
  /** RFC 4514 style, in the certificate's order: "O=system:nodes, CN=system:node:lab-md-1". */
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

export function inspectCertificate(input: string | Uint8Array): CertInfo {
  const cert = new X509Certificate(typeof input === 'string' ? input : Buffer.from(input));
  return {
    subject: distinguishedName(cert.subject),
    issuer: distinguishedName(cert.issuer),
    // OpenSSL prints whole bytes, except for a serial of 0 ("0").
    serial: cert.serialNumber.toLowerCase().padStart(2, '0'),
    // OpenSSL's X509_check_ca: basicConstraints cA, and keyUsage (when present) allowing keyCertSign.
    isCA: cert.ca,
    notBefore: opensslTime(cert.validFrom),
    notAfter: opensslTime(cert.validTo),
    fingerprint: cert.fingerprint256.replace(/:/g, '').toLowerCase(),
  };
}

/**
 * OpenSSL's attribute short names that the reports have always spelled otherwise (the names of
 * RFC 4514 and @peculiar/x509); CN, O, OU, C, ST, L, DC and SN are the same in both. Types
 * @peculiar/x509 had no name for (serialNumber, street...) it printed as OIDs; OpenSSL's names stay.
 */
const ATTRIBUTE_NAMES: Record<string, string> = { emailAddress: 'E', GN: 'G', initials: 'I', title: 'T' };

/**
 * Node prints a name one RDN per line ("O=system:nodes\nCN=system:node:x"), multi-valued RDNs
 * joined by " + ", values escaped as RFC 2253 says (so a value holds no newline and no bare "+").
 * The reports join RDNs with ", " and attributes with "+".
 */
export function distinguishedName(multiline: string | undefined): string {
  return (multiline ?? '')
    .split('\n')
    .filter((rdn) => rdn !== '')
    .map((rdn) =>
      rdn
        .split(' + ')
        .map((attr) => {
          const eq = attr.indexOf('=');
          const type = attr.slice(0, eq);
          return `${ATTRIBUTE_NAMES[type] ?? type}${attr.slice(eq)}`;
        })
        .join('+'),
    )
    .join(', ');
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** ASN1_TIME_print's form, always GMT: "Nov 26 00:00:00 2026 GMT", "Jan  1 00:00:00.5 2050 GMT". */
export function opensslTime(text: string): Date {
  const m = /^([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)(\.\d+)? (\d{4,}) GMT$/.exec(text);
  const month = m ? MONTHS.indexOf(m[1] ?? '') : -1;
  if (!m || month < 0) throw new Error(`unreadable certificate date ${JSON.stringify(text)}`);
  const ms = m[6] ? Math.floor(Number(`0${m[6]}`) * 1000) : 0;
  return new Date(Date.UTC(Number(m[7]), month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), ms));
}

export { commonName } from './dn.js';
