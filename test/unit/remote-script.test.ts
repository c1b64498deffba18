import 'reflect-metadata';
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkScript, parseCheckOutput } from '../../src/check/remote-script.js';

// Fixed PEM-shaped text: the script only moves blocks around, it never parses them.
const CERT = '-----BEGIN CERTIFICATE-----\nMIIBfake1\n-----END CERTIFICATE-----';
const CERT2 = '-----BEGIN CERTIFICATE-----\nMIIBfake2\n-----END CERTIFICATE-----';
const KEY = '-----BEGIN EC PRIVATE KEY-----\nSECRETKEYMATERIAL\n-----END EC PRIVATE KEY-----';

describe('the check script, run by a real bash over real files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rc-script-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'pki'));
  writeFileSync(join(dir, 'pki', 'server.crt'), `${CERT}\n`);
  writeFileSync(join(dir, 'pki', 'bundle.crt'), `${CERT}\n${CERT2}\n`);
  writeFileSync(join(dir, 'kubelet-client-2025.pem'), `${CERT}\n${KEY}\n`);
  symlinkSync(join(dir, 'kubelet-client-2025.pem'), join(dir, 'kubelet-client-current.pem'));
  writeFileSync(
    join(dir, 'admin.conf'),
    `apiVersion: v1\nusers:\n- name: admin\n  user:\n    client-certificate-data: ${Buffer.from(CERT).toString('base64')}\n    client-key-data: ${Buffer.from(KEY).toString('base64')}\n`,
  );
  writeFileSync(join(dir, 'quoted.conf'), `users:\n- user:\n    client-certificate-data: "${Buffer.from(CERT2).toString('base64')}"\n`);
  writeFileSync(join(dir, "it's odd.crt"), `${CERT}\n`);
  // Windows line ends, no final newline.
  writeFileSync(join(dir, 'crlf.crt'), [CERT, CERT2].join('\n').replace(/\n/g, '\r\n'));
  // A block cut short right before a key: the key must not ride along, the good block must survive.
  writeFileSync(join(dir, 'cut.pem'), `-----BEGIN CERTIFICATE-----\nMIIBcut\n${KEY}\n${CERT2}\n`);
  // The same with the key indented and an END CERTIFICATE line after it.
  writeFileSync(join(dir, 'indented.pem'), `-----BEGIN CERTIFICATE-----\nMIIBcut\n${KEY.replace(/^/gm, '  ')}\n-----END CERTIFICATE-----\n`);
  writeFileSync(join(dir, 'no-newline.conf'), `users:\n- user:\n    client-certificate-data: ${Buffer.from(CERT).toString('base64')}`);

  const script = checkScript({
    files: [
      { path: join(dir, 'pki', 'server.crt'), optional: false },
      { path: join(dir, 'pki', 'bundle.crt'), optional: false },
      { path: join(dir, 'kubelet-client-current.pem'), optional: false },
      { path: join(dir, 'pki', 'peer.crt'), optional: false },
      { path: join(dir, 'pki', 'super.crt'), optional: true },
      { path: join(dir, "it's odd.crt"), optional: false },
      { path: join(dir, 'crlf.crt'), optional: false },
      { path: join(dir, 'cut.pem'), optional: false },
      { path: join(dir, 'indented.pem'), optional: false },
    ],
    kubeconfigs: [
      { path: join(dir, 'admin.conf'), optional: false },
      { path: join(dir, 'quoted.conf'), optional: false },
      { path: join(dir, 'nope.conf'), optional: true },
      { path: join(dir, 'no-newline.conf'), optional: false },
    ],
  });
  const stdout = execFileSync('bash', ['-s'], { input: script, encoding: 'utf8' });

  it('never prints private key material', () => {
    expect(stdout).not.toContain('PRIVATE KEY');
    expect(stdout).not.toContain('SECRETKEYMATERIAL');
    expect(stdout).not.toContain('MIIBcut');
    expect(stdout).not.toContain(Buffer.from(KEY).toString('base64'));
  });

  it('returns every certificate block, kubeconfig-embedded ones decoded', () => {
    const { items, complete } = parseCheckOutput(stdout);
    expect(complete).toBe(true);
    expect(items).toEqual([
      { kind: 'file', path: join(dir, 'pki', 'server.crt'), pems: [CERT] },
      { kind: 'file', path: join(dir, 'pki', 'bundle.crt'), pems: [CERT, CERT2] },
      { kind: 'file', path: join(dir, 'kubelet-client-current.pem'), pems: [CERT] },
      { kind: 'missing', path: join(dir, 'pki', 'peer.crt') },
      { kind: 'file', path: join(dir, "it's odd.crt"), pems: [CERT] },
      { kind: 'file', path: join(dir, 'crlf.crt'), pems: [CERT, CERT2] },
      { kind: 'file', path: join(dir, 'cut.pem'), pems: [CERT2] },
      { kind: 'file', path: join(dir, 'indented.pem'), pems: [] },
      { kind: 'kubeconfig', path: join(dir, 'admin.conf'), pems: [CERT] },
      { kind: 'kubeconfig', path: join(dir, 'quoted.conf'), pems: [CERT2] },
      { kind: 'kubeconfig', path: join(dir, 'no-newline.conf'), pems: [CERT] },
    ]);
  });

  it('notices output that was cut short', () => {
    const cut = stdout.slice(0, stdout.indexOf('@@kubeconfig'));
    expect(parseCheckOutput(cut).complete).toBe(false);
  });
});
