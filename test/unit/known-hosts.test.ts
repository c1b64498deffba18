import { afterAll, describe, expect, it } from 'vitest';
import { createHmac, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fingerprint, hostKeyName, keyTypeOf, KnownHosts } from '../../src/transport/known-hosts.js';

/** An SSH ed25519 public key blob: string "ssh-ed25519", string key. */
function ed25519Blob(): Buffer {
  const { publicKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const str = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  return Buffer.concat([str(Buffer.from('ssh-ed25519')), str(raw)]);
}

const dir = mkdtempSync(join(tmpdir(), 'rc-kh-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const a = ed25519Blob();
const b = ed25519Blob();

function file(text: string): string {
  const f = join(dir, `kh-${Math.random().toString(36).slice(2)}`);
  writeFileSync(f, text);
  return f;
}

describe('known_hosts', () => {
  it('matches a plain entry and treats another key of the same type as changed', () => {
    const kh = KnownHosts.load(file(`# comment\n10.0.0.1,node1 ssh-ed25519 ${a.toString('base64')}\n`));
    expect(kh.verify('10.0.0.1', 22, a)).toBe('match');
    expect(kh.verify('node1', 22, a)).toBe('match');
    expect(kh.verify('10.0.0.1', 22, b)).toBe('mismatch');
    expect(kh.verify('10.0.0.2', 22, a)).toBe('unknown');
    expect(kh.knownTypes('10.0.0.1', 22)).toEqual(['ssh-ed25519']);
  });

  it('uses [host]:port for non-22 ports', () => {
    const kh = KnownHosts.load(file(`[10.0.0.1]:2222 ssh-ed25519 ${a.toString('base64')}\n`));
    expect(kh.verify('10.0.0.1', 2222, a)).toBe('match');
    expect(kh.verify('10.0.0.1', 22, a)).toBe('unknown');
    expect(hostKeyName('h', 22)).toBe('h');
  });

  it('matches hashed host names', () => {
    const salt = Buffer.from('0123456789abcdefghij');
    const hash = createHmac('sha1', salt).update('10.0.0.9').digest('base64');
    const kh = KnownHosts.load(file(`|1|${salt.toString('base64')}|${hash} ssh-ed25519 ${a.toString('base64')}\n`));
    expect(kh.verify('10.0.0.9', 22, a)).toBe('match');
    expect(kh.verify('10.0.0.8', 22, a)).toBe('unknown');
  });

  it('honours wildcards, negation and @revoked', () => {
    const kh = KnownHosts.load(file(`10.0.0.*,!10.0.0.5 ssh-ed25519 ${a.toString('base64')}\n@revoked * ssh-ed25519 ${b.toString('base64')}\n`));
    expect(kh.verify('10.0.0.7', 22, a)).toBe('match');
    expect(kh.verify('10.0.0.5', 22, a)).toBe('unknown');
    expect(kh.verify('10.0.0.7', 22, b)).toBe('revoked');
  });

  it('records a new key (accept-new) so a second load matches, creating the file 0600', () => {
    const f = join(dir, 'sub', 'known_hosts');
    KnownHosts.load(f).record('10.0.0.3', 22, a);
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(KnownHosts.load(f).verify('10.0.0.3', 22, a)).toBe('match');
    KnownHosts.load(f).record('10.0.0.4', 2200, b, true);
    expect(KnownHosts.load(f).verify('10.0.0.4', 2200, b)).toBe('match');
    expect(readFileSync(f, 'utf8')).not.toContain('10.0.0.4');
  });

  it('a key recorded after a lookup is seen by the same instance (a connector reuses it for every node)', () => {
    const kh = KnownHosts.load(join(dir, 'reused', 'known_hosts'));
    expect(kh.knownTypes('10.0.0.6', 22)).toEqual([]);
    expect(kh.verify('10.0.0.6', 22, a)).toBe('unknown');
    kh.record('10.0.0.6', 22, a);
    expect(kh.verify('10.0.0.6', 22, a)).toBe('match');
    expect(kh.knownTypes('10.0.0.6', 22)).toEqual(['ssh-ed25519']);
    expect(kh.verify('10.0.0.6', 22, b)).toBe('mismatch');
  });

  it('adds a newline before appending to a file that lacks one', () => {
    const f = file(`h1 ssh-ed25519 ${a.toString('base64')}`);
    KnownHosts.load(f).record('h2', 22, b);
    const kh = KnownHosts.load(f);
    expect(kh.verify('h1', 22, a)).toBe('match');
    expect(kh.verify('h2', 22, b)).toBe('match');
  });

  it('prints OpenSSH-style fingerprints and key types', () => {
    expect(fingerprint(a)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(keyTypeOf(a)).toBe('ssh-ed25519');
  });
});
