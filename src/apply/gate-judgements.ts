/**
 * What the certificate gates decide, apart from how they read: each takes what was read and says
 * what is wrong (an empty list: the gate passes). Pure, so every verdict is tested without a node.
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import type { CertInfo } from '../certs/inspect.js';

/** A certificate read from a node, with its PEM (for SANs and signature checks). */
export type CertRead = CertInfo & { pem: string };

/** Certificates by path; undefined: the file is absent. */
export type CertReads = ReadonlyMap<string, CertRead | undefined>;

/** "DNS:a", "IP:10.0.0.1", ... as the certificate names them. */
export function subjectAltNames(pem: string): string[] {
  const text = new X509Certificate(pem).subjectAltName ?? '';
  return text
    .split(', ')
    .map((s) => s.trim().replace(/^IP Address:/, 'IP:'))
    .filter(Boolean);
}

/** A key that is not its certificate's: the kube-apiserver could not talk to etcd with them. */
export function pairMatches(certPem: string, keyPem: string): boolean {
  try {
    return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

/** What certs-renewed compares, as full paths. */
export interface RenewalExpectation {
  /** Files that must hold a new certificate. */
  renewed: string[];
  /** Files that must hold the very same certificate (CAs). */
  unchanged: string[];
  /** Kubeconfigs a node may not have (super-admin.conf): judged as renewed when present before or after. */
  kubeconfigs: string[];
  /** Files whose new certificate must keep every SAN of the old one. */
  sansKept: string[];
  /** The node, for the message about a changed hostname. */
  node: string;
}

/** The kubeconfigs certs-renewed judges: those present before or after. */
export function presentKubeconfigs(before: CertReads, after: CertReads, kubeconfigs: string[]): string[] {
  return kubeconfigs.filter((p) => before.get(p) !== undefined || after.get(p) !== undefined);
}

/**
 * certs-renewed: why the certificates read now (`after`) are not a renewal of those the snapshot
 * took (`before`) at `now` (ms). Every leaf: present, a new serial, a later expiry, not expired, the
 * same issuer; every kept SAN still named; every CA byte for byte the same.
 */
export function renewalProblems(before: CertReads, after: CertReads, expect: RenewalExpectation, now: number): string[] {
  const problems: string[] = [];
  for (const path of [...expect.renewed, ...presentKubeconfigs(before, after, expect.kubeconfigs)]) {
    const a = after.get(path);
    const b = before.get(path);
    if (!a) problems.push(`${path} is missing`);
    else if (b && a.serial === b.serial) problems.push(`${path} was not renewed (same serial ${a.serial})`);
    else if (b && a.notAfter.getTime() <= b.notAfter.getTime()) problems.push(`${path} expires ${a.notAfter.toISOString()}, no later than before`);
    else if (a.notAfter.getTime() <= now) problems.push(`${path} is already expired`);
    else if (b && a.issuer !== b.issuer) problems.push(`${path} is now issued by ${a.issuer}, was ${b.issuer}`);
  }
  // etcdadm names server and peer after the host as it is now; a lost name breaks whoever uses it.
  for (const path of expect.sansKept) {
    const b = before.get(path);
    const a = after.get(path);
    if (!b || !a) continue;
    const kept = new Set(subjectAltNames(a.pem));
    const lost = subjectAltNames(b.pem).filter((n) => !kept.has(n));
    if (lost.length > 0) {
      problems.push(
        `${path} lost ${lost.join(', ')} (now ${[...kept].join(', ') || 'none'}): etcdadm takes the host's current name and default-route address; did ${expect.node}'s hostname or address change since the certificate was made?`,
      );
    }
  }
  for (const path of expect.unchanged) {
    const a = after.get(path);
    const b = before.get(path);
    if (!a) problems.push(`${path} is missing`);
    else if (b && a.fingerprint !== b.fingerprint) problems.push(`${path} CHANGED: a CA must never change here`);
  }
  return problems;
}

/** One line of the profile's etcdClientPairFiles output: `PATH SHA256 MODE`. */
export interface InstalledFile {
  path: string;
  hash: string;
  mode: string;
}

/** The certificate's and the key's line of etcdClientPairFiles, or undefined when the output is not two lines of them. */
export function parsePairFiles(stdout: string): { cert: InstalledFile; key: InstalledFile } | undefined {
  const [cert, key] = stdout
    .trim()
    .split('\n')
    .map((l) => {
      const [path = '', hash = '', mode = ''] = l.split(' ');
      return { path, hash, mode };
    });
  return cert && key ? { cert, key } : undefined;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * etcd-client-installed: why the files the kube-apiserver reads do not hold the pair read in this
 * run. installEtcdClientPair's heredocs write the text and a newline; the key must be 0600.
 */
export function installedPairProblems(files: { cert: InstalledFile; key: InstalledFile }, pair: { cert: string; key: string }): string[] {
  const problems: string[] = [];
  if (files.cert.hash !== sha256(`${pair.cert}\n`)) problems.push(`${files.cert.path} does not hold the renewed etcd client certificate`);
  if (files.key.hash !== sha256(`${pair.key}\n`)) problems.push(`${files.key.path} does not hold the renewed etcd client key`);
  else if (files.key.mode !== '600') problems.push(`${files.key.path} has mode ${files.key.mode}, not 600`);
  return problems;
}
