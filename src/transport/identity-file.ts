/**
 * What an identity file holds when it is not a private key: the public half of a pair, an SSH
 * certificate or an X.509 certificate. Told from the text alone (pure), so the one line that
 * refuses it can say which file to name instead, before any node is contacted.
 */
import { existsSync } from 'node:fs';

export type NotAPrivateKey = 'public key' | 'ssh certificate' | 'x509 certificate';

// OpenSSH's one-line formats: "<type> <base64> [comment]"; the blob of every key type starts "AAAA".
const SSH_CERT_LINE = /^[a-z0-9@.-]+-cert-v0[01]@openssh\.com\s+AAAA/;
const SSH_PUBLIC_LINE = /^(?:ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+)\s+AAAA/;
const PEM_PUBLIC = /^-----BEGIN (?:RSA |EC |DSA )?PUBLIC KEY-----/m;
// RFC 4716, what ssh-keygen -e writes.
const SSH2_PUBLIC = /^---- BEGIN SSH2 PUBLIC KEY ----/m;
const PEM_CERTIFICATE = /^-----BEGIN (?:TRUSTED )?CERTIFICATE-----/m;
// Any private key block (PKCS#1, PKCS#8, OpenSSH, encrypted or not): a file holding one is a key
// file, whatever else is bundled with it; ssh2 decides whether it can read it.
const PEM_PRIVATE = /^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/m;

/** The kind of file it is when its text says it is no private key; undefined otherwise. */
export function notAPrivateKey(text: string): NotAPrivateKey | undefined {
  if (PEM_PRIVATE.test(text)) return undefined;
  const first = text.trimStart();
  if (SSH_CERT_LINE.test(first)) return 'ssh certificate';
  if (SSH_PUBLIC_LINE.test(first) || PEM_PUBLIC.test(text) || SSH2_PUBLIC.test(text)) return 'public key';
  if (PEM_CERTIFICATE.test(text)) return 'x509 certificate';
  return undefined;
}

/**
 * Where its private key usually is, as ssh-keygen names the files: id_rsa.pub and id_rsa-cert.pub
 * belong to id_rsa. Only a file that exists is suggested.
 */
export function privateKeyBeside(file: string, exists: (path: string) => boolean = existsSync): string | undefined {
  const m = /^(.+?)(?:-cert)?\.pub$/.exec(file);
  return m?.[1] && exists(m[1]) ? m[1] : undefined;
}

/** The problem, for "<inventory>: <field>: <problem>": which file, what it is, which file to name instead. */
export function notAPrivateKeyProblem(file: string, kind: NotAPrivateKey, exists?: (path: string) => boolean): string {
  const what =
    kind === 'public key'
      ? 'is the public half of a key pair, not the private key'
      : kind === 'ssh certificate'
        ? 'is an SSH certificate (a signed public key), not the private key'
        : 'is an X.509 certificate, not an SSH private key';
  const beside = privateKeyBeside(file, exists);
  return `identity file ${file} ${what}: name ${beside ? `the private key ${beside}` : 'the private key'} instead`;
}
