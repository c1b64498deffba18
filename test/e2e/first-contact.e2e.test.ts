/**
 * First contact, as an operator meets rotate-certs on the admin machine: the folder `eksctl anywhere
 * create cluster` left, a home without known_hosts. `check --cluster` names `trust`; `inventory
 * --write` saves the inventory without touching a node; `trust --accept-new` records every node's
 * host key; `check` then reads every node; a node whose host key changed is refused by `trust`,
 * naming both keys, and its old line stays; `plan --dry-run` reads the saved inventory.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CheckReport } from '../../src/check/run.js';
import type { CliIo } from '../../src/cli/io.js';
import { runCli } from '../../src/cli/program.js';
import { loadInventory } from '../../src/inventory/load.js';
import { startLab, type Lab, type LabNode } from '../lab/lab.js';

describe('first contact from the EKS Anywhere folder: check names trust, inventory, trust, check, a changed key', () => {
  let lab: Lab;
  let work: string;
  let home: string;
  const savedHome = process.env.HOME;
  const knownHosts = () => join(home, '.ssh', 'known_hosts');
  const inventory = () => join(work, 'lab', 'rotate-certs.yaml');

  /** The CLI in-process, run in the folder that holds ./lab/, with the fresh home. */
  async function run(args: string[]) {
    let out = '';
    let err = '';
    const io: CliIo = { out: (t) => void (out += t), err: (t) => void (err += t), color: false, env: process.env, cwd: work };
    const code = await runCli(args, io, {});
    return { code, out, err };
  }

  /** The node's ed25519 host key as its sshd presents it: the blob, and OpenSSH's fingerprint of it. */
  async function hostKey(node: LabNode): Promise<{ blob: string; fingerprint: string }> {
    const blob = (await node.readFile('/etc/ssh/ssh_host_ed25519_key.pub')).toString('utf8').trim().split(/\s+/)[1]!;
    return { blob, fingerprint: `SHA256:${createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '')}` };
  }

  beforeAll(async () => {
    lab = await startLab({ etcd: 1, controlPlane: 1, workers: 1 });
    work = mkdtempSync(join(tmpdir(), 'rc-first-contact-'));
    await lab.writeEksaFolder(work);
    home = mkdtempSync(join(tmpdir(), 'rc-first-contact-home-'));
    // The default known_hosts (~/.ssh/known_hosts) of an admin machine that never ssh'd anywhere.
    process.env.HOME = home;
  });
  afterAll(async () => {
    process.env.HOME = savedHome;
    await lab?.down();
  });

  it('check --cluster, straight from the EKS Anywhere folder with no known_hosts, names trust as the fix (64)', async () => {
    const r = await run(['check', '--cluster', 'lab']);
    expect(r.code).toBe(64);
    expect(r.err.trim().split('\n').at(-1)).toMatch(
      /^rotate-certs: \S+\/lab\/rotate-certs\.yaml: ssh\.knownHostsFile \(not set\): \S+\/\.ssh\/known_hosts does not exist, so with ssh\.hostKeyPolicy strict every node's host key is unknown: check and record them with rotate-certs trust --cluster lab/,
    );
    expect(r.out).toBe('');
    expect(existsSync(knownHosts())).toBe(false);
    expect(existsSync(inventory())).toBe(false);
  });

  it('plan --cluster lab --dry-run works straight from the folder too: built from the API, no node contacted, nothing saved', async () => {
    for (const n of lab.nodes) await lab.stopSshd(n.name);
    let r: Awaited<ReturnType<typeof run>>;
    try {
      r = await run(['plan', '--cluster', 'lab', '--dry-run']);
    } finally {
      for (const n of lab.nodes) await lab.startSshd(n.name);
    }
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/^Built the inventory of lab from \S+\/lab\/ \(3 machines listed through \S+\/lab-eks-a-cluster\.kubeconfig\); not saved/m);
    for (const n of lab.nodes.filter((x) => x.role !== 'worker')) expect(r.out).toContain(n.name);
    expect(existsSync(inventory())).toBe(false);
  });

  it('inventory --cluster lab --write writes ./lab/rotate-certs.yaml with every sshd stopped: no node is needed', async () => {
    for (const n of lab.nodes) await lab.stopSshd(n.name);
    let r: Awaited<ReturnType<typeof run>>;
    try {
      r = await run(['inventory', '--cluster', 'lab', '--write']);
    } finally {
      for (const n of lab.nodes) await lab.startSshd(n.name);
    }
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/Next, check and record the nodes' host keys: rotate-certs trust --cluster lab/);
    expect(readFileSync(inventory(), 'utf8')).toBe(r.out);
    const inv = loadInventory(inventory());
    expect(inv.nodes.map((n) => [n.name, n.host, n.role, n.os, n.ssh.user])).toEqual(lab.nodes.map((n) => [n.name, n.host, n.role, n.os, n.user]));
    expect(existsSync(knownHosts())).toBe(false);
    // A second --write does not replace it.
    const again = await run(['inventory', '--cluster', 'lab', '--write']);
    expect(again.code).toBe(64);
    expect(again.err).toMatch(/rotate-certs\.yaml already exists and --write does not replace it: add --force/);
  });

  it('trust --cluster lab --accept-new records each node\'s host key, one OpenSSH line each, in a new 0600 known_hosts', async () => {
    const r = await run(['trust', '--cluster', 'lab', '--accept-new']);
    expect(r.code, r.err).toBe(0);
    const want: string[] = [];
    for (const n of lab.nodes) {
      const key = await hostKey(n);
      // Each node, its address, its key type and fingerprint, and "new".
      expect(r.out).toMatch(new RegExp(`^  ${n.name} +${n.host.replace(/\./g, '\\.')} +ssh-ed25519 ${key.fingerprint.replace(/[+/]/g, '\\$&')} +new$`, 'm'));
      want.push(`${n.host} ssh-ed25519 ${key.blob}`);
    }
    expect(readFileSync(knownHosts(), 'utf8')).toBe(`${want.join('\n')}\n`);
    expect(statSync(knownHosts()).mode & 0o777).toBe(0o600);
    expect(r.out).toMatch(/Recorded 3 new host keys in \S+\/\.ssh\/known_hosts\./);
    // OpenSSH itself, with strict host keys, trusts the file as written.
    for (const n of lab.nodes) {
      const args = ['-i', lab.identityFile, '-o', `UserKnownHostsFile=${knownHosts()}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', `${n.user}@${n.host}`, 'true'];
      expect(execFileSync('ssh', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })).toBe('');
    }
  });

  it('check --cluster lab then reads every node (0)', async () => {
    const r = await run(['check', '--cluster', 'lab', '-o', 'json']);
    const report = JSON.parse(r.out) as CheckReport;
    expect(report.errors, r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(new Set(report.certificates.map((c) => c.node))).toEqual(new Set(lab.nodes.map((n) => n.name)));
  });

  it('a node whose host key changed: trust --accept-new refuses it naming both keys (69), and keeps its old line', async () => {
    const md = lab.node('lab-md-1');
    const before = readFileSync(knownHosts(), 'utf8');
    const old = await hostKey(md);
    await lab.regenerateHostKey(md.name);
    const now = await hostKey(md);
    const r = await run(['trust', '--cluster', 'lab', '--accept-new']);
    expect(r.code).toBe(69);
    const lines = r.err.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`rotate-certs: lab-md-1: HOST KEY CHANGED for ${md.host}: `);
    expect(lines[0]).toContain(`holds ssh-ed25519 ${old.fingerprint}, the node now presents ssh-ed25519 ${now.fingerprint}; not recorded`);
    expect(r.out).toMatch(/^ {2}lab-md-1 .* CHANGED$/m);
    expect(readFileSync(knownHosts(), 'utf8')).toBe(before);
  });

  it('plan --cluster lab --dry-run then reads the saved inventory', async () => {
    const r = await run(['plan', '--cluster', 'lab', '--dry-run']);
    expect(r.code, r.err).toBe(0);
    for (const n of lab.nodes.filter((x) => x.role !== 'worker')) expect(r.out).toContain(n.name);
    expect(r.err).not.toMatch(/Built the inventory/);
  });
});
