/**
 * The guided run through a real pseudo-terminal (util-linux `script`), against the emulated
 * cluster, starting from the folder `eksctl anywhere create cluster` leaves: the inventory is
 * built from it and saved, unknown host keys are shown and accepted, the scope is chosen, the plan
 * confirmed, and the rotation finishes. Without a terminal the same command asks nothing.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';
import { startLab, type Lab } from '../lab/lab.js';
import { cert, serials } from './rotation-state.js';

const MAIN = join(PACKAGE_ROOT, 'dist', 'cli', 'main.js');
const DOWN = '\x1b[B';

/** One run of the binary in a pseudo-terminal; answers are typed when their prompt shows. */
function terminal(args: string[], cwd: string, env: NodeJS.ProcessEnv) {
  // A wide terminal, so prompts are not wrapped.
  const cmd = `stty cols 200 rows 50; ${[process.execPath, MAIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')}`;
  const child = spawn('script', ['-qfec', cmd, '/dev/null'], { cwd, env: { ...env, TERM: 'xterm', COLUMNS: '160', LINES: '50' } });
  let screen = '';
  child.stdout.on('data', (d: Buffer) => (screen += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (screen += d.toString('utf8')));
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  // eslint-disable-next-line no-control-regex
  const plain = () => screen.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
  let seen = 0;
  return {
    plain,
    exited,
    /** Waits for text after what earlier waits consumed, then types `keys`. */
    async answer(what: RegExp, keys: string, timeoutMs = 60_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const rest = plain().slice(seen);
        const m = what.exec(rest);
        if (m) {
          seen += m.index + m[0].length;
          child.stdin.write(keys);
          return;
        }
        if (Date.now() > deadline) throw new Error(`no ${what} on the terminal within ${timeoutMs} ms; it shows:\n${plain().slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}

describe('the guided run: rotate-certs --cluster NAME', () => {
  let lab: Lab;
  let work: string;
  let home: string;
  beforeAll(async () => {
    // The binary the user runs; npm ci builds it, a test run after editing must too.
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: PACKAGE_ROOT, stdio: 'pipe' });
    lab = await startLab({ etcd: 1, controlPlane: 1, workers: 1 });
    work = mkdtempSync(join(lab.dir, 'admin-'));
    home = mkdtempSync(join(lab.dir, 'home-'));
    mkdirSync(join(home, '.ssh'), { mode: 0o700 });
    await lab.writeEksaFolder(work);
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('without a terminal it asks nothing: what it cannot settle alone is an error naming the fix', async () => {
    const r = await runIn(work, ['--cluster', 'lab', '--state-dir', join(lab.dir, 'state-none')], home);
    expect(r.code).toBe(69);
    expect(r.err + r.out).toMatch(/unknown host key for .* not in .*known_hosts; verify it and add it, or set ssh\.hostKeyPolicy: accept-new/);
    expect(r.err).not.toMatch(/\n\s+at /);
    expect(existsSync(join(work, 'lab', 'rotate-certs.yaml'))).toBe(false);
  });

  it('builds and saves the inventory, asks about host keys, scope and the plan, then rotates', async () => {
    await lab.expireKubelet('lab-md-1', { client: 'expired' });
    const before = await serials(lab);
    const kubeletBefore = (await cert(lab.node('lab-md-1'), '/var/lib/kubelet/pki/kubelet-client-current.pem')).serial;
    const t = terminal(['--cluster', 'lab', '--state-dir', join(lab.dir, 'state')], work, { ...process.env, HOME: home });
    await t.answer(/Save this inventory as \S*rotate-certs\.yaml for the next run\?/, 'y\r');
    await t.answer(/presents host key ssh-ed25519 SHA256:\S+/, '');
    await t.answer(/Trust .*host key and record it/, `${DOWN}\r`); // "Yes, and every other new host key"
    await t.answer(/Certificates of lab/, '');
    await t.answer(/What should be rotated\?/, '\r'); // everything that needs it
    await t.answer(/Kubelet certificates due .*: lab-md-1/, '');
    await t.answer(/Rotate now\?/, 'y\r');
    const code = await t.exited;
    expect(code, t.plain().slice(-3000)).toBe(0);
    expect(t.plain()).toMatch(/Rotation \S+ of cluster lab finished/);

    // The end state: every leaf renewed, the worker's kubelet on a new client certificate.
    const after = await serials(lab);
    for (const [k, serial] of Object.entries(before)) expect(after[k], k).not.toBe(serial);
    expect((await cert(lab.node('lab-md-1'), '/var/lib/kubelet/pki/kubelet-client-current.pem')).serial).not.toBe(kubeletBefore);
    // What was asked was recorded: the inventory for the next run, the host keys.
    const saved = readFileSync(join(work, 'lab', 'rotate-certs.yaml'), 'utf8');
    for (const n of lab.nodes) expect(saved).toContain(n.host);
    expect(readFileSync(join(home, '.ssh', 'known_hosts'), 'utf8').trim().split('\n')).toHaveLength(lab.nodes.length);
  });

  it('an encrypted key asks for its passphrase; picked nodes; declining the plan changes nothing', async () => {
    const key = join(work, 'lab', 'eks-a-id_rsa');
    execFileSync('ssh-keygen', ['-q', '-p', '-N', 'open sesame', '-P', '', '-f', key]);
    const before = await serials(lab);
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
    delete env.ROTATE_CERTS_SSH_PASSPHRASE;
    const t = terminal(['--cluster', 'lab', '--state-dir', join(lab.dir, 'state')], work, env);
    await t.answer(/Passphrase for \S*eks-a-id_rsa:/, 'open sesame\r');
    await t.answer(/What should be rotated\?/, `${DOWN}${DOWN}${DOWN}${DOWN}\r`); // Pick nodes
    await t.answer(/Which nodes\?/, ' \r'); // the first one
    await t.answer(/Rotate now\?/, 'n\r');
    expect(await t.exited, t.plain().slice(-2000)).toBe(0);
    expect(t.plain()).toContain('Nothing was changed.');
    expect(t.plain()).not.toContain('open sesame');
    expect(await serials(lab)).toEqual(before);
  });

  it('Ctrl-C during the rotation stops at a safe point and says how to resume; the resume finishes', async () => {
    const key = join(work, 'lab', 'eks-a-id_rsa');
    execFileSync('ssh-keygen', ['-q', '-p', '-N', '', '-P', 'open sesame', '-f', key]);
    const before = await serials(lab);
    const state = join(lab.dir, 'state-ctrl-c');
    const t = terminal(['--cluster', 'lab', '--yes', '--state-dir', state], work, { ...process.env, HOME: home });
    await t.answer(/lab-etcd-1/, '');
    await t.answer(/Back up the etcd PKI folder|backup/, '\x03');
    expect(await t.exited, t.plain().slice(-2000)).toBe(130);
    const resume = /rotate-certs apply (\S+) --resume/.exec(t.plain())?.[1];
    expect(resume, t.plain().slice(-2000)).toBeDefined();
    const r = await runIn(work, ['apply', resume!, '--resume', '--yes', '--state-dir', state], home);
    expect(r.code, r.err + r.out).toBe(0);
    const after = await serials(lab);
    for (const [k, serial] of Object.entries(before)) expect(after[k], k).not.toBe(serial);
  });
});

/** The binary without a terminal (stdin a pipe), in the admin folder. */
function runIn(cwd: string, args: string[], home: string): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, ...args], { cwd, env: { ...process.env, HOME: home } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
    child.stdin.end();
    child.on('close', (code) => resolve({ code: code ?? -1, out, err }));
  });
}

