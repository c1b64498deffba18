/**
 * An identity file that is no private key, told from its text before any node is contacted (the
 * CLI rows are in bad-input.test.ts). A private key, encrypted or bundled with its certificate,
 * is never taken for one.
 */
import { describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { notAPrivateKey, notAPrivateKeyProblem, privateKeyBeside } from '../../src/transport/identity-file.js';

const rsa = generateKeyPairSync('rsa', {
  modulusLength: 1024,
  privateKeyEncoding: { type: 'pkcs8', format: 'pem', cipher: 'aes-128-cbc', passphrase: 'p' },
  publicKeyEncoding: { type: 'spki', format: 'pem' },
});
const pkcs1 = generateKeyPairSync('rsa', { modulusLength: 1024, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'pkcs1', format: 'pem' } });
const x509 = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n';

describe('identity files that are no private key', () => {
  it.each([
    ['an OpenSSH public key line', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK capv@admin\n', 'public key'],
    ['an RSA public key line', 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ capv@admin\n', 'public key'],
    ['an ECDSA public key line', 'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY\n', 'public key'],
    ['a security-key public key line', 'sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t\n', 'public key'],
    ['a PEM public key (BEGIN PUBLIC KEY)', rsa.publicKey, 'public key'],
    ['a PKCS#1 public key (BEGIN RSA PUBLIC KEY)', pkcs1.publicKey, 'public key'],
    ['an RFC 4716 public key (ssh-keygen -e)', '---- BEGIN SSH2 PUBLIC KEY ----\nComment: "x"\nAAAAB3NzaC1yc2E\n---- END SSH2 PUBLIC KEY ----\n', 'public key'],
    ['an OpenSSH certificate', 'ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQ capv@admin\n', 'ssh certificate'],
    ['an X.509 certificate', x509, 'x509 certificate'],
  ])('%s', (_name, text, kind) => {
    expect(notAPrivateKey(text)).toBe(kind);
  });

  it.each([
    ['an OpenSSH private key', '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n'],
    ['a PKCS#1 private key', pkcs1.privateKey],
    ['an encrypted PKCS#8 private key', rsa.privateKey],
    ['a private key bundled with its certificate', `${x509}${pkcs1.privateKey}`],
    ['text that is no key at all (ssh2 judges it)', 'this is not a key\n'],
  ])('%s is not refused here', (_name, text) => {
    expect(notAPrivateKey(text)).toBeUndefined();
  });

  it("names the private key beside it as ssh-keygen names the files, when it exists", () => {
    const exists = (p: string) => p === '/k/id_rsa';
    expect(privateKeyBeside('/k/id_rsa.pub', exists)).toBe('/k/id_rsa');
    expect(privateKeyBeside('/k/id_rsa-cert.pub', exists)).toBe('/k/id_rsa');
    expect(privateKeyBeside('/k/id_ed25519.pub', exists)).toBeUndefined();
    expect(privateKeyBeside('/k/id_rsa', exists)).toBeUndefined();
    expect(notAPrivateKeyProblem('/k/id_rsa.pub', 'public key', exists)).toBe('identity file /k/id_rsa.pub is the public half of a key pair, not the private key: name the private key /k/id_rsa instead');
    expect(notAPrivateKeyProblem('/k/key.pem', 'x509 certificate', exists)).toBe('identity file /k/key.pem is an X.509 certificate, not an SSH private key: name the private key instead');
  });
});
