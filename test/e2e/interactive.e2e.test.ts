/**
 * The guided run through a real pseudo-terminal (util-linux `script`), against one emulated
 * cluster, starting from the folder `eksctl anywhere create cluster` leaves and a home without
 * known_hosts. Every answer of every question is given once: node addresses typed (the management
 * API lists no Machines), "save the inventory" yes and no, host keys "this node", "all" and "no",
 * each scope, the plan confirmed and declined, a key passphrase, Ctrl-C during the rotation. Each
 * run asserts its end state: which files were written, whether any node changed, the exit code.
 * Only one run rotates (and is stopped and resumed); the others are declined or refused first.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { Plan } from '../../src/plan/types.js';
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
    /** Waits for text after what earlier waits consumed, then types `keys`; returns the match. */
    async answer(what: RegExp, keys: string, timeoutMs = 60_000): Promise<RegExpExecArray> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const rest = plain().slice(seen);
        const m = what.exec(rest);
        if (m) {
          seen += m.index + m[0].length;
          child.stdin.write(keys);
          return m;
        }
        if (Date.now() > deadline) throw new Error(`no ${what} on the terminal within ${timeoutMs} ms; it shows:\n${plain().slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}

const SAVE = /Save this inventory as \S*rotate-certs\.yaml for the next run\?/;
/** Printed once per unknown host key, before its question (the question itself is redrawn on each key). */
const PRESENTS = /\n(\S+) \(\S+:\d+\) presents host key ssh-ed25519 SHA256:\S+/;
const TRUST = /Trust (\S+)'s host key and record it/;
const KUBELET_DUE = /Kubelet certificates due .*: lab-md-1\r?\n/;
const SCOPE = /What should be rotated\?/;
const CONFIRM = /Rotate now\?/;
/** The scope menu with external etcd, in order. */
const SCOPES = { everything: '', etcd: DOWN, controlPlane: DOWN.repeat(2), kubelet: DOWN.repeat(3), pick: DOWN.repeat(4) };
const HOST_KEY = { thisNode: '', all: DOWN, no: DOWN.repeat(2) };

describe('the guided run: rotate-certs --cluster NAME, every answer', () => {
  let lab: Lab;
  let work: string;
  let home: string;
  let saved: string;
  let knownHosts: string;
  const env = () => {
    const e: NodeJS.ProcessEnv = { ...process.env, HOME: home };
    delete e.ROTATE_CERTS_SSH_PASSPHRASE;
    return e;
  };
  const knownHostLines = () => (existsSync(knownHosts) ? readFileSync(knownHosts, 'utf8').trim().split('\n') : []);
  /** Answers the three "name=address" questions a cluster with no Machines in its API asks. */
  const typeAddresses = async (t: ReturnType<typeof terminal>) => {
    for (const [role, prefix] of [['etcd', 'lab-etcd'], ['control-plane', 'lab-cp'], ['worker', 'lab-md']] as const) {
      const nodes = lab.nodes.filter((n) => n.name.startsWith(prefix)).map((n) => `${n.name}=${n.host}`);
      await t.answer(new RegExp(`${role} nodes, as name=address separated by commas:`), `${nodes.join(',')}\r`);
    }
  };
  /** Answers the next host key question; returns the node it was about. */
  const trust = async (t: ReturnType<typeof terminal>, choice: string) => {
    const node = (await t.answer(PRESENTS, ''))[1]!;
    expect((await t.answer(TRUST, `${choice}\r`))[1]).toBe(node);
    return node;
  };
  /** A run whose inventory is built again and not saved; it stops at the scope question. */
  const unsavedRunToScope = async (state: string) => {
    const t = terminal(['--cluster', 'lab', '--state-dir', join(lab.dir, state)], work, env());
    await typeAddresses(t);
    await t.answer(SAVE, 'n\r');
    return t;
  };

  beforeAll(async () => {
    // The binary the user runs; npm ci builds it, a test run after editing must too.
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: PACKAGE_ROOT, stdio: 'pipe' });
    lab = await startLab({ etcd: 1, controlPlane: 1, workers: 1 });
    work = mkdtempSync(join(lab.dir, 'admin-'));
    home = mkdtempSync(join(lab.dir, 'home-'));
    mkdirSync(join(home, '.ssh'), { mode: 0o700 });
    knownHosts = join(home, '.ssh', 'known_hosts');
    await lab.writeEksaFolder(work);
    saved = join(work, 'lab', 'rotate-certs.yaml');
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('without a terminal it asks nothing: no known_hosts with strict host keys is one line before any node is contacted', async () => {
    const r = await runIn(work, ['--cluster', 'lab', '--state-dir', join(lab.dir, 'state-none')], home);
    expect(r.code, r.err).toBe(64);
    const lines = r.err.trim().split('\n');
    expect(lines.at(-1)).toMatch(/^rotate-certs: \S+rotate-certs\.yaml: ssh\.knownHostsFile \(not set\): \S+\/\.ssh\/known_hosts does not exist, so with ssh\.hostKeyPolicy strict every node's host key is unknown/);
    expect(r.err).not.toMatch(/\n\s+at /);
    expect(existsSync(saved)).toBe(false);
    expect(existsSync(knownHosts)).toBe(false);
  });

  it('addresses typed, not saved; host keys: "no" for one node stops the run before anything changes, "this node" records one', async () => {
    // From here on the management cluster lists no Machines: every address is typed.
    const statePath = join(lab.dir, 'apiserver-state.json');
    writeFileSync(statePath, JSON.stringify({ ...JSON.parse(readFileSync(statePath, 'utf8')), machines: {} }, null, 2));
    const t = await unsavedRunToScope('state-1');
    const refused = await trust(t, HOST_KEY.no);
    const trusted = await trust(t, HOST_KEY.thisNode);
    const refusedToo = await trust(t, HOST_KEY.no);
    expect(await t.exited, t.plain().slice(-2000)).toBe(69);
    expect(t.plain()).toMatch(/cannot read every node, nothing was changed/);
    for (const n of [refused, refusedToo]) expect(t.plain()).toMatch(new RegExp(`${n}: host key ssh-ed25519 SHA256:\\S+ of \\S+ was not accepted; nothing was run there`));
    expect(t.plain()).not.toMatch(/\n\s+at /);
    expect(t.plain()).not.toMatch(SCOPE);
    expect(knownHostLines()).toHaveLength(1);
    expect(knownHostLines()[0]).toContain(`${lab.node(trusted).host} ssh-ed25519 `);
    expect(existsSync(saved)).toBe(false);
  });

  it('host keys: "all" trusts the rest at once; scope etcd, plan declined: nothing changed, nothing saved', async () => {
    const before = await serials(lab);
    const t = await unsavedRunToScope('state-2');
    await trust(t, HOST_KEY.all);
    await t.answer(SCOPE, `${SCOPES.etcd}\r`);
    await t.answer(CONFIRM, 'n\r');
    expect(await t.exited, t.plain().slice(-2000)).toBe(0);
    expect(t.plain().match(new RegExp(PRESENTS, 'g'))).toHaveLength(1);
    expect(knownHostLines()).toHaveLength(lab.nodes.length);
    expect(t.plain()).toContain('Renew external etcd certificates');
    expect(t.plain()).not.toContain('Renew control-plane certificates');
    expect(t.plain()).toContain('Nothing was changed.');
    expect(await serials(lab)).toEqual(before);
    expect(existsSync(saved)).toBe(false);
  });

  it('scope control plane, plan declined', async () => {
    const before = await serials(lab);
    const t = await unsavedRunToScope('state-3');
    await t.answer(SCOPE, `${SCOPES.controlPlane}\r`);
    await t.answer(CONFIRM, 'n\r');
    expect(await t.exited, t.plain().slice(-2000)).toBe(0);
    expect(t.plain()).not.toMatch(PRESENTS);
    expect(t.plain()).toContain('Renew control-plane certificates');
    expect(t.plain()).not.toContain('Renew external etcd certificates');
    expect(t.plain()).toContain('Nothing was changed.');
    expect(await serials(lab)).toEqual(before);
  });

  it('scope kubelets: only the node whose kubelet certificate is due; plan declined', async () => {
    await lab.expireKubelet('lab-md-1', { client: 'expiring' });
    const kubelet = (await cert(lab.node('lab-md-1'), '/var/lib/kubelet/pki/kubelet-client-current.pem')).serial;
    const t = await unsavedRunToScope('state-4');
    await t.answer(SCOPE, `${SCOPES.kubelet}\r`);
    await t.answer(KUBELET_DUE, '');
    await t.answer(CONFIRM, 'n\r');
    expect(await t.exited, t.plain().slice(-2000)).toBe(0);
    expect(t.plain()).toContain('Renew kubelet client and serving certificates');
    expect(t.plain()).not.toMatch(/^ {2}lab-cp-1 \(control-plane/m);
    expect((await cert(lab.node('lab-md-1'), '/var/lib/kubelet/pki/kubelet-client-current.pem')).serial).toBe(kubelet);
  });

  it('not saved, everything, confirmed: Ctrl-C stops at a safe point; the resume reads the inventory from the plan and finishes', async () => {
    const before = await serials(lab);
    const kubeletBefore = (await cert(lab.node('lab-md-1'), '/var/lib/kubelet/pki/kubelet-client-current.pem')).serial;
    const state = join(lab.dir, 'state-rotate');
    const t = await unsavedRunToScope('state-rotate');
    await t.answer(SCOPE, `${SCOPES.everything}\r`);
    await t.answer(KUBELET_DUE, '');
    await t.answer(CONFIRM, 'y\r');
    await t.answer(/Back up the etcd PKI folder|backup/, '\x03');
    expect(await t.exited, t.plain().slice(-3000)).toBe(130);
    const resume = /rotate-certs apply (\S+) --resume/.exec(t.plain())?.[1];
    expect(resume, t.plain().slice(-2000)).toBeDefined();
    // Nobody saved the inventory: the plan copy beside the journal carries it.
    expect(existsSync(saved)).toBe(false);
    expect((parse(readFileSync(resume!, 'utf8')) as Plan).inventoryText).toContain('cluster: lab');

    const r = await runIn(work, ['apply', resume!, '--resume', '--yes', '--state-dir', state], home);
    expect(r.code, r.err + r.out).toBe(0);
    expect(r.out).toMatch(/Rotation \S+ of cluster lab finished/);
    const after = await serials(lab);
    for (const [k, serial] of Object.entries(before)) expect(after[k], k).not.toBe(serial);
    expect((await cert(lab.node('lab-md-1'), '/var/lib/kubelet/pki/kubelet-client-current.pem')).serial).not.toBe(kubeletBefore);
    expect(existsSync(saved)).toBe(false);
  });

  it('saved; an encrypted key asks for its passphrase; picked nodes; plan declined', async () => {
    const key = join(work, 'lab', 'eks-a-id_rsa');
    execFileSync('ssh-keygen', ['-q', '-p', '-N', 'open sesame', '-P', '', '-f', key]);
    const before = await serials(lab);
    const t = terminal(['--cluster', 'lab', '--state-dir', join(lab.dir, 'state-5')], work, env());
    await typeAddresses(t);
    await t.answer(SAVE, 'y\r');
    await t.answer(/Passphrase for \S*eks-a-id_rsa:/, 'open sesame\r');
    await t.answer(SCOPE, `${SCOPES.pick}\r`);
    await t.answer(/Which nodes\?/, ' \r'); // the first one
    await t.answer(CONFIRM, 'n\r');
    expect(await t.exited, t.plain().slice(-2000)).toBe(0);
    expect(t.plain()).toContain('Nothing was changed.');
    expect(t.plain()).not.toContain('open sesame');
    expect(await serials(lab)).toEqual(before);
    // What was typed is saved for the next run.
    const inventory = readFileSync(saved, 'utf8');
    for (const n of lab.nodes) expect(inventory).toContain(`name: ${n.name}`);
    for (const n of lab.nodes) expect(inventory).toContain(n.host);
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
