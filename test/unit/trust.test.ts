/**
 * Host keys on first contact: the known_hosts lines rotate-certs writes, what `trust` does with each
 * verdict (accept-new, confirmation, a changed key), and `trust` itself against SSH servers on
 * loopback (ssh2's server, one host key each, refusing every login): what it prints, what it
 * records, its exit codes, and that it never logs in. The same on real OpenSSH servers is
 * test/e2e/first-contact.e2e.test.ts.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { FlagDefault, TrustExit } from '../../src/util/exit-codes.js';
import type { CliIo } from '../../src/cli/io.js';
import { runCli } from '../../src/cli/program.js';
import { describeKey, fingerprint, forgetHostKeyCommand, KnownHosts, knownHostsLine, trustAction, trustCommandFor } from '../../src/transport/known-hosts.js';

/** An SSH server with its own ed25519 host key that refuses every login, counting the attempts. */
interface Host {
  host: string;
  port: number;
  /** The host key's public blob, as known_hosts holds it. */
  blob: Buffer;
  logins: number;
  server: ssh2.Server;
}

async function sshServer(host: string, port = 0): Promise<Host> {
  const key = ssh2.utils.generateKeyPairSync('ed25519');
  const h: Host = { host, port, blob: Buffer.from(key.public.split(' ')[1]!, 'base64'), logins: 0, server: undefined as unknown as ssh2.Server };
  h.server = new ssh2.Server({ hostKeys: [key.private] }, (client) => {
    client.on('authentication', (ctx) => {
      h.logins++;
      ctx.reject();
    });
    client.on('error', () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    h.server.once('error', reject);
    h.server.listen(port, host, () => resolve());
  });
  h.port = (h.server.address() as AddressInfo).port;
  return h;
}

const closeServer = (h: Host) => new Promise<void>((resolve) => h.server.close(() => resolve()));

/** In `dir`: a user key, and an inventory of lab-cp-1 and lab-md-1 at these SSH servers. */
function writeClusterFiles(dir: string, cp: { host: string; port: number }, md: { host: string; port: number }): void {
  const key = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
  writeFileSync(join(dir, 'id_rsa'), key.privateKey, { mode: 0o600 });
  writeFileSync(
    join(dir, 'inv.yaml'),
    [
      'cluster: lab',
      'ssh: { user: capv, identityFile: id_rsa, knownHostsFile: known_hosts, connectTimeoutSeconds: 5 }',
      'os: ubuntu',
      `controlPlane: [{ name: lab-cp-1, host: ${cp.host}, ssh: { port: ${cp.port} } }]`,
      `workers: [{ name: lab-md-1, host: ${md.host}, ssh: { port: ${md.port} } }]`,
      '',
    ].join('\n'),
  );
}

describe('known_hosts lines and what trust does with each verdict (pure)', () => {
  const blob = Buffer.from(ssh2.utils.generateKeyPairSync('ed25519').public.split(' ')[1]!, 'base64');

  it('one OpenSSH line per host: the plain host on port 22, [host]:port otherwise', () => {
    expect(knownHostsLine('10.0.0.1', 22, blob)).toBe(`10.0.0.1 ssh-ed25519 ${blob.toString('base64')}`);
    expect(knownHostsLine('10.0.0.1', 2222, blob)).toBe(`[10.0.0.1]:2222 ssh-ed25519 ${blob.toString('base64')}`);
    expect(knownHostsLine('fd00::1', 2222, blob)).toBe(`[fd00::1]:2222 ssh-ed25519 ${blob.toString('base64')}`);
    expect(describeKey(blob)).toBe(`ssh-ed25519 ${fingerprint(blob)}`);
    // OpenSSH's fingerprint: SHA256, base64 without padding.
    expect(fingerprint(blob)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });

  it('record() appends exactly that line to a new 0600 file, and a second load matches it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rc-trust-line-'));
    try {
      const file = join(dir, 'ssh', 'known_hosts');
      KnownHosts.load(file).record('10.0.0.1', 2222, blob);
      expect(readFileSync(file, 'utf8')).toBe(`${knownHostsLine('10.0.0.1', 2222, blob)}\n`);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(KnownHosts.load(file).verify('10.0.0.1', 2222, blob)).toBe('match');
      expect(KnownHosts.load(file).recorded('10.0.0.1', 2222)).toEqual([blob]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('accept-new records a key known_hosts does not hold; without it the user confirms; a changed or revoked key is never recorded', () => {
    expect(trustAction('match', false)).toBe('known');
    expect(trustAction('match', true)).toBe('known');
    expect(trustAction('unknown', true)).toBe('record');
    expect(trustAction('unknown', false)).toBe('confirm');
    for (const acceptNew of [true, false]) {
      expect(trustAction('mismatch', acceptNew)).toBe('refuse');
      expect(trustAction('revoked', acceptNew)).toBe('refuse');
    }
  });

  it('the errors name trust as the inventory was named, and ssh-keygen -R as the shell needs it', () => {
    expect(trustCommandFor('/admin/prod/rotate-certs.yaml')).toBe('rotate-certs trust --cluster prod');
    expect(trustCommandFor('/admin/prod.yaml')).toBe('rotate-certs trust --inventory /admin/prod.yaml');
    expect(forgetHostKeyCommand('10.0.0.1', 22, '/home/me/.ssh/known_hosts')).toBe('ssh-keygen -R 10.0.0.1 -f /home/me/.ssh/known_hosts');
    expect(forgetHostKeyCommand('10.0.0.1', 2222, '/tmp/my hosts')).toBe(`ssh-keygen -R '[10.0.0.1]:2222' -f '/tmp/my hosts'`);
  });
});

describe('inventory and trust --help', () => {
  async function help(args: string[]) {
    let out = '';
    const io: CliIo = { out: (t) => void (out += t), err: () => undefined, color: false, env: {}, cwd: '/' };
    expect(await runCli(args, io, {})).toBe(0);
    return out;
  }
  const codes = (text: string) => [...text.slice(text.indexOf('\nExit codes:\n'), text.indexOf('\nExamples:\n')).matchAll(/^ {0,2}(\d{1,3})  \S/gm)].map((m) => Number(m[1]));

  it('each ends with the exit codes its code returns, then examples; help COMMAND prints the same', async () => {
    const trust = await help(['trust', '--help']);
    expect(codes(trust)).toEqual([TrustExit.done, 64, TrustExit.refused, TrustExit.stopped]);
    expect(trust).toMatch(new RegExp(`--concurrency <n> +nodes contacted at once \\(default: ${FlagDefault.concurrency}\\)`));
    expect(trust).toMatch(/\nExamples:\n {2}rotate-certs trust --cluster mycluster\n/);
    expect(await help(['help', 'trust'])).toBe(trust);
    const inventory = await help(['inventory', '--help']);
    expect(codes(inventory)).toEqual([0, 64, 130]);
    expect(inventory).toMatch(/It contacts that API and no\s+node\./);
    expect(await help(['help', 'inventory'])).toBe(inventory);
  });
});

describe('rotate-certs trust against SSH servers', () => {
  let dir: string;
  let cp: Host;
  let md: Host;
  const kh = () => join(dir, 'known_hosts');
  const savedEnv = { ...process.env };

  async function run(args: string[]) {
    let out = '';
    let err = '';
    const io: CliIo = { out: (t) => void (out += t), err: (t) => void (err += t), color: false, env: process.env, cwd: dir };
    const code = await runCli(args, io, {});
    return { code, out, err, logins: cp.logins + md.logins };
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rc-trust-'));
    const base = `127.${2 + Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`;
    cp = await sshServer(`${base}.21`);
    md = await sshServer(`${base}.31`);
    writeClusterFiles(dir, cp, md);
    process.env = { ...savedEnv, SSH_AUTH_SOCK: '', ROTATE_CERTS_SSH_PASSPHRASE: '' };
  });
  afterAll(async () => {
    process.env = { ...savedEnv };
    await Promise.all([cp, md].map(closeServer));
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    cp.logins = 0;
    md.logins = 0;
  });

  const row = (h: Host, name: string, status: string) => new RegExp(`^  ${name} +\\[${h.host.replace(/\./g, '\\.')}\\]:${h.port} +${describeKey(h.blob).replace(/[+/]/g, '\\$&')} +${status}$`, 'm');

  it('check names trust while known_hosts does not exist (64), and for each unknown key once it does (3)', async () => {
    const missing = await run(['check', '-i', 'inv.yaml', '-o', 'json']);
    expect(missing.code).toBe(64);
    expect(missing.err).toMatch(/: check and record them with rotate-certs trust --inventory \S+\/inv\.yaml \(or set ssh\.hostKeyPolicy: accept-new\)\n$/);
    writeFileSync(kh(), '');
    try {
      const unknown = await run(['check', '-i', 'inv.yaml', '-o', 'json']);
      const errors = (JSON.parse(unknown.out) as { errors: Array<{ node: string; message: string }> }).errors.filter((e) => e.message.startsWith('unknown host key'));
      expect(errors.map((e) => e.node).sort()).toEqual(['lab-cp-1', 'lab-md-1']);
      for (const e of errors) expect(e.message).toMatch(/, not in \S+known_hosts: check and record it with rotate-certs trust --inventory \S+\/inv\.yaml \(or set ssh\.hostKeyPolicy: accept-new\)$/);
      expect(unknown.logins).toBe(0);
    } finally {
      rmSync(kh());
    }
  });

  it('check of two inventories at once: each unknown key names the trust command of its own inventory', async () => {
    const text = readFileSync(join(dir, 'inv.yaml'), 'utf8');
    writeFileSync(join(dir, 'a.yaml'), text.replace('cluster: lab', 'cluster: site-a').replace(/^workers: .*\n/m, ''));
    writeFileSync(join(dir, 'b.yaml'), text.replace('cluster: lab', 'cluster: site-b').replace(/^controlPlane: .*\n/m, `controlPlane: [{ name: lab-md-1, host: ${md.host}, ssh: { port: ${md.port} } }]\n`).replace(/^workers: .*\n/m, ''));
    writeFileSync(kh(), '');
    try {
      const r = await run(['check', '-i', 'a.yaml', 'b.yaml', '-o', 'json']);
      const clusters = (JSON.parse(r.out) as { clusters: Array<{ cluster: string; errors: Array<{ message: string }> }> }).clusters;
      const hint = (c: string) => clusters.find((x) => x.cluster === c)?.errors.find((e) => e.message.startsWith('unknown host key'))?.message;
      expect(hint('site-a')).toMatch(/rotate-certs trust --inventory \S+\/a\.yaml \(/);
      expect(hint('site-b')).toMatch(/rotate-certs trust --inventory \S+\/b\.yaml \(/);
    } finally {
      rmSync(kh());
    }
  });

  it('without a terminal, --yes or --accept-new: each key is printed, none recorded (64), no login', async () => {
    const r = await run(['trust', '-i', 'inv.yaml']);
    expect(r.out).toMatch(row(cp, 'lab-cp-1', 'new'));
    expect(r.out).toMatch(row(md, 'lab-md-1', 'new'));
    expect(r.err).toBe(
      "rotate-certs: 2 new host keys not recorded: no terminal to confirm them; compare the fingerprints above with each node's own (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on its console), then run again with --yes (or --accept-new to record new keys unchecked)\n",
    );
    expect(r.code).toBe(64);
    expect(existsSync(kh())).toBe(false);
    expect(r.logins).toBe(0);
  });

  it('--accept-new records both, [host]:port lines in a new 0600 known_hosts; a second run finds them known', async () => {
    const r = await run(['trust', '-i', 'inv.yaml', '--accept-new']);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toBe('');
    expect(readFileSync(kh(), 'utf8')).toBe(`${knownHostsLine(cp.host, cp.port, cp.blob)}\n${knownHostsLine(md.host, md.port, md.blob)}\n`);
    expect(statSync(kh()).mode & 0o777).toBe(0o600);
    expect(r.out).toContain(`Recorded 2 new host keys in ${kh()}.`);
    const again = await run(['trust', '-i', 'inv.yaml']);
    expect(again.code).toBe(0);
    expect(again.out).toMatch(row(md, 'lab-md-1', 'known'));
    expect(again.out).toContain('Every host key was already recorded.');
    expect(r.logins + again.logins).toBe(0);
  });

  it('a changed key is refused with both fingerprints (69) by --accept-new and --yes, its line kept; the other host is settled', async () => {
    const before = readFileSync(kh(), 'utf8');
    const old = md;
    await closeServer(md);
    md = await sshServer(old.host, old.port);
    try {
      for (const flag of ['--accept-new', '--yes']) {
        const r = await run(['trust', '-i', 'inv.yaml', flag]);
        expect(r.code, flag).toBe(69);
        expect(r.out).toMatch(row(md, 'lab-md-1', 'CHANGED'));
        expect(r.out).toMatch(row(cp, 'lab-cp-1', 'known'));
        expect(r.err).toBe(
          `rotate-certs: lab-md-1: HOST KEY CHANGED for [${md.host}]:${md.port}: ${kh()} holds ${describeKey(old.blob)}, the node now presents ${describeKey(md.blob)}; not recorded. ` +
            `Possible man-in-the-middle; if the node was rebuilt, remove the old entry (ssh-keygen -R '[${md.host}]:${md.port}' -f ${kh()}) and run trust again\n`,
        );
        expect(readFileSync(kh(), 'utf8')).toBe(before);
      }
      // check names both keys too.
      const check = await run(['check', '-i', 'inv.yaml', '-o', 'json']);
      const e = (JSON.parse(check.out) as { errors: Array<{ node: string; message: string }> }).errors.find((x) => x.node === 'lab-md-1');
      expect(e?.message).toContain(`HOST KEY CHANGED for ${md.host}:${md.port} (now ${describeKey(md.blob)}); known_hosts ${kh()} holds another key (${describeKey(old.blob)}).`);
    } finally {
      writeFileSync(kh(), before);
    }
  });

  it('a node that does not answer: its cause on one line (69); the other is still settled', async () => {
    rmSync(kh());
    await closeServer(md);
    try {
      const r = await run(['trust', '-i', 'inv.yaml', '--accept-new']);
      expect(r.code).toBe(69);
      expect(r.out).toMatch(/^ {2}lab-md-1 +\S+ +- +not read \(the cause is below\)$/m);
      expect(r.err).toBe(`rotate-certs: lab-md-1: connection refused by ${md.host}:${md.port} (is sshd running?)\n`);
      expect(readFileSync(kh(), 'utf8')).toBe(`${knownHostsLine(cp.host, cp.port, cp.blob)}\n`);
    } finally {
      md = await sshServer(md.host, md.port);
    }
  });
});

describe('rotate-certs trust and a host whose key type known_hosts does not hold', () => {
  let dir: string;
  let both: { host: string; port: number; ecdsa: Buffer; ed25519: Buffer; server: ssh2.Server };
  let edOnly: Host;
  const savedEnv = { ...process.env };
  const kh = () => join(dir, 'known_hosts');
  const blobOf = (pub: string) => Buffer.from(pub.split(' ')[1]!, 'base64');

  async function run(args: string[]) {
    let out = '';
    let err = '';
    const io: CliIo = { out: (t) => void (out += t), err: (t) => void (err += t), color: false, env: process.env, cwd: dir };
    const code = await runCli(args, io, {});
    return { code, out, err };
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rc-trust-types-'));
    const base = `127.${2 + Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`;
    // A host with two host keys, as OpenSSH servers have: it presents whichever type the client asks for first.
    const ecdsa = ssh2.utils.generateKeyPairSync('ecdsa', { bits: 256 });
    const ed = ssh2.utils.generateKeyPairSync('ed25519');
    const server = new ssh2.Server({ hostKeys: [ecdsa.private, ed.private] }, (client) => {
      client.on('authentication', (ctx) => ctx.reject());
      client.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, `${base}.21`, () => resolve()));
    both = { host: `${base}.21`, port: (server.address() as AddressInfo).port, ecdsa: blobOf(ecdsa.public), ed25519: blobOf(ed.public), server };
    edOnly = await sshServer(`${base}.31`);
    writeClusterFiles(dir, both, edOnly);
    // Both hosts recorded with an ECDSA key: lab-cp-1's own, and for lab-md-1 one it does not even have.
    const otherEcdsa = blobOf(ssh2.utils.generateKeyPairSync('ecdsa', { bits: 256 }).public);
    writeFileSync(kh(), `${knownHostsLine(both.host, both.port, both.ecdsa)}\n${knownHostsLine(edOnly.host, edOnly.port, otherEcdsa)}\n`, { mode: 0o600 });
    process.env = { ...savedEnv, SSH_AUTH_SOCK: '', ROTATE_CERTS_SSH_PASSPHRASE: '' };
  });
  afterAll(async () => {
    process.env = { ...savedEnv };
    await new Promise<void>((resolve) => both.server.close(() => resolve()));
    await closeServer(edOnly);
    rmSync(dir, { recursive: true, force: true });
  });

  it('a real connection with ssh.hostKeyPolicy: accept-new does not record a new key type of a known host either', async () => {
    const before = readFileSync(kh(), 'utf8');
    writeFileSync(join(dir, 'accept-new.yaml'), readFileSync(join(dir, 'inv.yaml'), 'utf8').replace('connectTimeoutSeconds: 5 }', 'connectTimeoutSeconds: 5, hostKeyPolicy: accept-new }'));
    const r = await run(['check', '-i', 'accept-new.yaml', '-o', 'json']);
    const errors = (JSON.parse(r.out) as { errors: Array<{ node: string; message: string }> }).errors;
    expect(errors.find((e) => e.node === 'lab-md-1')?.message).toMatch(
      new RegExp(`presents a host key of a new type \\(ssh-ed25519 SHA256:\\S+\\) while ${kh().replace(/[/.]/g, '\\$&')} holds only ecdsa-sha2-nistp256 for it: a rebuilt node, or something else answering in its place; compare it on the node's console, then record it with rotate-certs trust --inventory \\S+accept-new\\.yaml --yes$`),
    );
    // lab-cp-1's recorded ECDSA key matched: it got as far as the login (which these servers refuse).
    expect(errors.find((e) => e.node === 'lab-cp-1')?.message).not.toMatch(/host key/);
    expect(readFileSync(kh(), 'utf8')).toBe(before);
  });

  it('asks for the recorded type first (known, not a new ed25519 key); a host offering only another type is not recorded by --accept-new (64)', async () => {
    const before = readFileSync(kh(), 'utf8');
    const r = await run(['trust', '-i', 'inv.yaml', '--accept-new']);
    expect(r.out).toMatch(new RegExp(`^  lab-cp-1 +\\[${both.host.replace(/\./g, '\\.')}\\]:${both.port} +${describeKey(both.ecdsa).replace(/[+/]/g, '\\$&')} +known$`, 'm'));
    expect(r.out).toMatch(new RegExp(`^  lab-md-1 +\\S+ +${describeKey(edOnly.blob).replace(/[+/]/g, '\\$&')} +new type \\(ecdsa-sha2-nistp256 recorded\\)$`, 'm'));
    expect(r.err).toContain(`rotate-certs: lab-md-1: presents a ssh-ed25519 host key, while ${kh()} holds only ecdsa-sha2-nistp256 for [${edOnly.host}]:${edOnly.port}: a rebuilt node, or something else answering in its place;`);
    expect(r.err).toContain('rotate-certs: 1 new host key not recorded: a host known_hosts already holds another type for is not new to --accept-new;');
    expect(r.code).toBe(64);
    expect(readFileSync(kh(), 'utf8')).toBe(before);
    // A person who compared it records it with --yes.
    const yes = await run(['trust', '-i', 'inv.yaml', '--yes']);
    expect(yes.code, yes.err).toBe(0);
    expect(readFileSync(kh(), 'utf8')).toBe(`${before}${knownHostsLine(edOnly.host, edOnly.port, edOnly.blob)}\n`);
  });
});
