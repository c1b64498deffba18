/**
 * Secret hygiene on the emulated cluster: no private key ever leaves a node through what
 * rotate-certs prints or writes. Every private key of the lab is collected (the lab's CA keys, the
 * SSH key, every key file, kubelet PEM and kubeconfig client-key-data on every node, including the
 * backups and whatever a run makes anew), then every command that can run is run with its stdout and
 * stderr captured: check (table, json, prometheus), check --dry-run, plan --out, rotate --dry-run,
 * rotate --yes (every phase: etcd, the client pair, control plane, management with
 * --refresh-kubeconfig, kubelets), a failing apply and its --resume, restore. Everything written
 * (output, journal, plan copies, lock, plan files) is scanned for a PEM private key header, for any
 * 40-character piece of any key's base64 (as DER and as base64 of the PEM text, at every byte
 * alignment, minus the pieces the public key shares), and for client-key-data. Files holding
 * credentials must be 0600, backups are root-only and keep the modes of what they copy inside, and no key file appears on a
 * node outside its PKI folders and backups. rotate-certs has no verbose flag or ROTATE_CERTS_ debug
 * variable (only ROTATE_CERTS_SSH_PASSPHRASE), so the default output is the most it ever prints.
 * HYGIENE_DEBUG=1 prints each command, its exit code and refusal lines, with timings, on stderr.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import ssh2 from 'ssh2';
import { startLab, type Lab, type LabNode } from '../lab/lab.js';
import type { JournalEntry } from '../../src/state/journal.js';
import { filesUnder } from '../files.js';
import { cli, clusterState, MIXED_NODES, pathsOf } from './rotation-state.js';

// ---------------------------------------------------------------- secrets and the scanner

const WINDOW = 40;
const PEM_KEY = /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?-----END \1PRIVATE KEY-----/g;
const PEM_HEADER = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;

/** base64 of the bytes at each of the three alignments a leak could have (the first group, mixed with padding, dropped). */
function base64At(buf: Buffer): string[] {
  return [0, 1, 2].map((k) => Buffer.concat([Buffer.alloc(k), buf]).toString('base64').slice(k ? 4 : 0));
}

function windowsOf(s: string, into: Set<string>): Set<string> {
  for (let i = 0; i + WINDOW <= s.length; i++) into.add(s.slice(i, i + WINDOW));
  return into;
}

/** The public half of a key (as DER, or the SSH blob for OpenSSH keys): its pieces are no secret. */
function publicOf(pem: string): Buffer | undefined {
  try {
    return createPublicKey(createPrivateKey(pem)).export({ type: 'spki', format: 'der' });
  } catch {
    const k = ssh2.utils.parseKey(pem);
    return k instanceof Error ? undefined : k.getPublicSSH();
  }
}

/** Every 40-character piece of a key that would show it leaked: as base64 DER (a PEM body) or as base64 of the PEM text (a kubeconfig, a Secret). */
function secretWindows(pem: string): Set<string> {
  const body = pem.replace(/-----[A-Z0-9 ]+-----/g, '').replace(/\s+/g, '');
  const der = Buffer.from(body, 'base64');
  const pub = publicOf(pem);
  const publicPieces = new Set<string>();
  if (pub) {
    for (const s of base64At(pub)) {
      windowsOf(s, publicPieces);
      for (const t of base64At(Buffer.from(s))) windowsOf(t, publicPieces);
    }
  }
  const out = new Set<string>();
  for (const s of [...base64At(der), ...base64At(Buffer.from(`${pem}\n`))]) windowsOf(s, out);
  // The body as it sits in the PEM text, one line at a time (lines break the DER alignment).
  for (const line of pem.split('\n')) if (!line.startsWith('-----')) windowsOf(line.trim(), out);
  for (const w of publicPieces) out.delete(w);
  return out;
}

interface KeyRecord {
  where: string;
  pem: string;
}

/** Private keys in a file's text: PEM blocks, and the keys inside base64 kubeconfig client-key-data. */
function keysIn(where: string, text: string): KeyRecord[] {
  const out: KeyRecord[] = [...text.matchAll(PEM_KEY)].map((m) => ({ where, pem: m[0] }));
  for (const m of text.matchAll(/client-key-data:\s*"?([A-Za-z0-9+/=]+)/g)) {
    out.push(...keysIn(`${where} (client-key-data)`, Buffer.from(m[1]!, 'base64').toString('utf8')));
  }
  return out;
}

class Secrets {
  private readonly byPem = new Map<string, string>();
  private readonly windows = new Map<string, string>();
  add(records: KeyRecord[]): void {
    for (const r of records) {
      if (this.byPem.has(r.pem)) continue;
      this.byPem.set(r.pem, r.where);
      for (const w of secretWindows(r.pem)) if (!this.windows.has(w)) this.windows.set(w, r.where);
    }
  }
  get count(): number {
    return this.byPem.size;
  }
  any(): string {
    return [...this.byPem.keys()][0]!;
  }
  /** What in `texts` gives a key away: one finding per text and key. */
  scan(texts: Array<{ what: string; text: string }>): string[] {
    dbg(`scan ${texts.length} texts, ${texts.reduce((n, t) => n + t.text.length, 0)} chars, ${this.windows.size} windows`);
    const findings: string[] = [];
    for (const { what, text } of texts) {
      if (PEM_HEADER.test(text)) findings.push(`${what}: a PEM private key header: ${PEM_HEADER.exec(text)![0]}`);
      // The only client-key-data allowed is the field name in the Ubuntu profile's sed that removes it.
      const uses = text.split('client-key-data').slice(1);
      if (uses.some((rest) => !rest.startsWith(':.*|'))) findings.push(`${what}: client-key-data outside the profile's sed pattern`);
      const seen = new Set<string>();
      for (const run of text.match(/[A-Za-z0-9+/=]{40,}/g) ?? []) {
        for (let i = 0; i + WINDOW <= run.length; i++) {
          const where = this.windows.get(run.slice(i, i + WINDOW));
          if (where && !seen.has(where)) {
            seen.add(where);
            findings.push(`${what}: holds a piece of the private key in ${where}: ...${run.slice(i, i + WINDOW)}...`);
          }
        }
      }
    }
    return findings;
  }
}

// ---------------------------------------------------------------- what the nodes hold

const KEY_DIRS = '/etc/etcd /etc/kubernetes /etc/ssh /var/lib/kubelet /var/lib/kubeadm /var/lib/etcd/pki*';

/** Every file on a node that is or holds a private key, with its content (read as root). */
async function keyFiles(n: LabNode): Promise<Map<string, string>> {
  const r = await n.exec(
    `{ find ${KEY_DIRS} \\( -name '*.key' -o -name 'kubelet-client*.pem' -o -name '*.conf' -o -name kubeconfig -o -name 'ssh_host_*_key' \\) -type f -print0 2>/dev/null; ` +
      `grep -rlZ -e 'PRIVATE KEY' -e 'client-key-data' ${KEY_DIRS} 2>/dev/null; } | sort -zu | while IFS= read -r -d '' f; do printf '%s\\t%s\\n' "$f" "$(base64 -w0 <"$f")"; done`,
  );
  const out = new Map<string, string>();
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const [path, b64] = line.split('\t') as [string, string];
    out.set(path, Buffer.from(b64 ?? '', 'base64').toString('utf8'));
  }
  return out;
}

/** `stat -c '%a %U:%G %n'` of every file and folder rotate-certs may back up, by path. */
async function modes(n: LabNode, roots = '/etc/etcd /etc/kubernetes /var/lib/kubelet /var/lib/kubeadm /var/lib/etcd/pki*'): Promise<Map<string, string>> {
  const r = await n.exec(`find ${roots} -print0 2>/dev/null | xargs -0 -r stat -c '%a %U:%G %n'`);
  const out = new Map<string, string>();
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const [mode, owner, ...rest] = line.split(' ');
    out.set(rest.join(' '), `${mode} ${owner}`);
  }
  return out;
}

/** Files holding a private key anywhere a node wrote (its overlays), as node paths. */
function keyHoldersWritten(lab: Lab, node: string): Set<string> {
  const out = new Set<string>();
  for (const [layer, mount] of [['etc', '/etc'], ['var', '/var'], ['root', '/root'], ['bin', '/usr/local/bin']] as const) {
    const upper = join(lab.dir, 'nodes', node, `${layer}.upper`);
    if (!existsSync(upper)) continue;
    let listing = '';
    try {
      listing = execFileSync('grep', ['-rlZ', '--exclude-dir=member', '-e', 'PRIVATE KEY', '-e', 'client-key-data', upper], { encoding: 'utf8', maxBuffer: 64 << 20 });
    } catch (err) {
      listing = (err as { stdout?: string }).stdout ?? ''; // grep exits 1 when nothing matches
    }
    for (const f of listing.split('\0').filter(Boolean)) out.add(`${mount}/${relative(upper, f)}`);
  }
  return out;
}

// ---------------------------------------------------------------- the local side

const T0 = Date.now();
const dbg = (msg: string) => {
  if (process.env.HYGIENE_DEBUG) process.stderr.write(`[hygiene ${((Date.now() - T0) / 1000).toFixed(1)}s] ${msg}\n`);
};

const modeOf = (p: string) => statSync(p).mode & 0o777;
const octal = (m: number) => m.toString(8).padStart(4, '0');

describe('secret hygiene: no private key leaves a node through output or files', () => {
  let lab: Lab;
  let work: string;
  let stateDir: string;
  let inventory: string;
  const secrets = new Secrets();
  const captured: Array<{ what: string; text: string }> = [];
  /** Files rotate-certs wrote outside the state folder that are no credential (plan files). */
  const planFiles: string[] = [];
  /** Files holding a private key on each node before anything ran. */
  const holdersBefore = new Map<string, Set<string>>();
  const lockSeen: Array<{ mode: number; text: string }> = [];

  async function collectKeys(when: string): Promise<void> {
    dbg(`collect ${when} start`);
    for (const dir of [lab.dir, join(lab.dir, 'ca'), join(lab.dir, 'shared')]) {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (!e.isFile()) continue;
        const text = readFileSync(join(dir, e.name), 'utf8');
        secrets.add(keysIn(`${when}: lab ${relative(lab.dir, join(dir, e.name))}`, text));
      }
    }
    // The management Secret the lab's API serves holds the etcd client key, base64.
    const state = JSON.parse(readFileSync(join(lab.dir, 'apiserver-state.json'), 'utf8')) as { secrets: Record<string, { data: Record<string, string> }> };
    for (const [name, s] of Object.entries(state.secrets)) for (const v of Object.values(s.data)) secrets.add(keysIn(`${when}: secret ${name}`, Buffer.from(v, 'base64').toString('utf8')));
    const perNode = await Promise.all(lab.nodes.map(async (n) => [n.name, await keyFiles(n)] as const));
    for (const [name, files] of perNode) for (const [path, text] of files) secrets.add(keysIn(`${when}: ${name}:${path}`, text));
    dbg(`collect ${when} done: ${secrets.count} keys`);
  }

  /** Runs the CLI in-process, keeps what it printed, and peeks at the state folder (the lock) at every step boundary. */
  async function run(args: string[]) {
    const lock = join(stateDir, 'lab', 'lock');
    dbg(`run ${args.join(' ')}`);
    const r = await cli(args, {
      stopRequested: () => {
        if (existsSync(lock)) lockSeen.push({ mode: modeOf(lock), text: readFileSync(lock, 'utf8') });
        return false;
      },
    });
    dbg(`  -> ${r.code} ${r.err.split('\n').filter((l) => /^(rotate-certs:| {2}- )/.test(l)).slice(0, 4).join('\n     ')}`);
    captured.push({ what: `rotate-certs ${args.join(' ')} (stdout)`, text: r.out }, { what: `rotate-certs ${args.join(' ')} (stderr)`, text: r.err });
    return r;
  }

  const journal = (): JournalEntry[] =>
    readFileSync(join(stateDir, 'lab', 'journal.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as JournalEntry);

  function written(): Array<{ what: string; text: string }> {
    return [...filesUnder(stateDir), ...planFiles].map((f) => ({ what: f, text: readFileSync(f, 'utf8') }));
  }

  /** Backups hold the modes and owners of what they copied (a kubeconfig backup folder is new: 0700). */
  async function expectBackupsKeepModes(runId: string, before: Map<string, Map<string, string>>): Promise<number> {
    let compared = 0;
    const byNode = new Map<string, Set<string>>();
    for (const e of journal()) {
      if (e.runId !== runId || !e.node || !e.backups) continue;
      const set = byNode.get(e.node) ?? new Set<string>();
      for (const b of e.backups) set.add(b);
      byNode.set(e.node, set);
    }
    expect(byNode.size, 'the journal names backups').toBeGreaterThan(0);
    for (const [node, paths] of byNode) {
      const was = before.get(node)!;
      for (const backup of paths) {
        const now = await modes(lab.node(node), backup);
        expect(now.size, `${node}:${backup} exists`).toBeGreaterThan(0);
        const kubeconfigs = /\/kubeconfigs\.rotate-certs-[^/]+$/.test(backup);
        const origin = backup.replace(/\.rotate-certs-[^/]+$/, '');
        for (const [path, mode] of now) {
          if (path === backup) {
            // The backup itself (a folder, or a single file's copy) is root's only: it holds private keys.
            expect(mode, `${node}:${path} (a backup is root-only)`).toMatch(/^[0-7]00 root:root$/);
            continue;
          }
          const original = kubeconfigs ? join(origin.replace(/\/kubeconfigs$/, ''), relative(backup, path)) : origin + path.slice(backup.length);
          expect(was.has(original), `${node}:${original} existed before (${path})`).toBe(true);
          expect(`${mode} ${path}`, `${node}: backup keeps the mode and owner of ${original}`).toBe(`${was.get(original)} ${path}`);
          compared++;
        }
      }
    }
    return compared;
  }

  /** No node holds a private key anywhere but where it held one before, its backups and a new dated kubelet PEM; none got looser modes. */
  async function expectKeysStayPut(keyModesBefore: Map<string, Map<string, string>>): Promise<void> {
    for (const n of lab.nodes) {
      const before = holdersBefore.get(n.name)!;
      const strays = [...keyHoldersWritten(lab, n.name)].filter((p) => !before.has(p) && !p.includes('.rotate-certs-') && !/^\/var\/lib\/kubelet\/pki\/kubelet-client-\d{4}-[\d-]+\.pem$/.test(p));
      dbg(`strays ${n.name}`);
      expect(strays, `${n.name}: files holding a private key outside the PKI folders and backups`).toEqual([]);
      const was = keyModesBefore.get(n.name)!;
      const now = await modes(n);
      for (const path of (await keyFiles(n)).keys()) {
        if (path.includes('.rotate-certs-') || path.startsWith('/etc/ssh/')) continue;
        const [mode, owner] = now.get(path)!.split(' ') as [string, string];
        const prev = was.get(path);
        if (prev) {
          const [pm, po] = prev.split(' ') as [string, string];
          expect(parseInt(mode, 8) & ~parseInt(pm, 8), `${n.name}:${path} was ${prev}, now ${mode} ${owner}`).toBe(0);
          expect(owner, `${n.name}:${path} owner`).toBe(po);
        } else {
          expect(`${mode} ${owner}`, `${n.name}:${path} (new) is root's only`).toMatch(/^[0-7]00 root:root$/);
        }
      }
    }
  }

  async function allModes(): Promise<Map<string, Map<string, string>>> {
    return new Map(await Promise.all(lab.nodes.map(async (n) => [n.name, await modes(n)] as const)));
  }

  beforeAll(async () => {
    lab = await startLab({
      nodes: MIXED_NODES,
    });
    // Kubelets due, so the rotation has a kubelet phase: an Ubuntu control plane and a Bottlerocket worker.
    await lab.expireKubelet('lab-cp-1', { client: 'expiring' });
    await lab.expireKubelet('lab-md-1', { client: 'expiring', serving: 'expiring' });
    work = mkdtempSync(join(tmpdir(), 'rc-secret-hygiene-'));
    stateDir = join(work, 'state');
    // A management kubeconfig the API refuses (same CA, a client certificate of the etcd CA), so
    // the secret goes through the renewed admin.conf and --refresh-kubeconfig replaces this file.
    // Written 0644 as a careless user might have it.
    const etcd1 = lab.node('lab-etcd-1');
    const b64 = async (p: string) => (await etcd1.readFile(`${pathsOf(etcd1).etcdPki}/${p}`)).toString('base64');
    const adminConf = (await lab.node('lab-cp-1').readFile('/etc/kubernetes/admin.conf')).toString('utf8');
    const refused = adminConf
      .replace(/client-certificate-data: \S+/, `client-certificate-data: ${await b64('etcdctl-etcd-client.crt')}`)
      .replace(/client-key-data: \S+/, `client-key-data: ${await b64('etcdctl-etcd-client.key')}`);
    writeFileSync(join(lab.dir, 'mgmt.kubeconfig'), refused, { mode: 0o644 });
    inventory = join(lab.dir, 'inventory-mgmt.yaml');
    writeFileSync(inventory, readFileSync(lab.inventoryPath, 'utf8').replace('cluster: lab\n', 'cluster: lab\nkubeconfig: mgmt.kubeconfig\n'));
    await collectKeys('before');
    for (const n of lab.nodes) holdersBefore.set(n.name, keyHoldersWritten(lab, n.name));
  }, 300_000);

  afterAll(async () => {
    await lab?.down();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('collects every private key of the lab, and the scan finds one planted in any form', () => {
    // 3 lab CAs + sa + the SSH key + the shared etcd client pair, and per node at least a kubelet key and a host key.
    expect(secrets.count).toBeGreaterThan(40);
    const pem = secrets.any();
    const body = pem.split('\n').filter((l) => !l.startsWith('-----')).join('');
    const middle = body.slice(Math.floor(body.length / 2) - 20, Math.floor(body.length / 2) + 20);
    const planted = [
      { what: 'a PEM', text: `ok\n${pem}\n` },
      { what: 'a 40-character piece of a body', text: `serial 00ff ${middle} done` },
      { what: 'base64 of the PEM, as a kubeconfig holds it', text: `  secret: ${Buffer.from(`${pem}\n`).toString('base64')}\n` },
      { what: 'a kubeconfig', text: 'users:\n- user:\n    client-key-data: LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0tCg==\n' },
    ];
    for (const p of planted) expect(secrets.scan([p]), p.what).not.toEqual([]);
    expect(secrets.scan([{ what: 'clean', text: 'rotate-certs: every certificate ok; sed -e "s|client-key-data:.*|client-key: $pem|"' }])).toEqual([]);
  });

  it('read-only commands print no key: check (table, json, prometheus), check --dry-run, plan --out, plan and rotate --dry-run', async () => {
    for (const output of ['table', 'json', 'prometheus']) {
      const r = await run(['check', '-i', inventory, '--output', output]);
      expect(r.code, `check -o ${output}: ${r.err}`).toBeLessThanOrEqual(1); // kubelets expiring: 1
    }
    expect((await run(['check', '-i', inventory, '--dry-run'])).code).toBe(0);
    const planFile = join(work, 'plan.yaml');
    const plan = await run(['plan', '-i', inventory, '--out', planFile, '--state-dir', stateDir]);
    expect(plan.code, plan.err).toBe(0);
    planFiles.push(planFile);
    expect(modeOf(planFile) & 0o077, `plan file is ${octal(modeOf(planFile))}`).toBe(0);
    expect((await run(['plan', '-i', inventory, '--dry-run'])).code).toBe(0);
    // With every node named, every kubelet step is in the dry run too (the key installs, the sed on kubelet.conf).
    const dry = await run(['rotate', '-i', inventory, '--dry-run', '--nodes', lab.nodes.map((n) => n.name).join(',')]);
    expect(dry.code).toBe(0);
    expect(dry.out).toContain('<redacted:');
    expect((await run(['rotate', '-i', inventory, '--dry-run'])).code).toBe(0);
    expect(secrets.scan([...captured, ...written()])).toEqual([]);
  }, 300_000);

  it('an encrypted SSH key: its passphrase and its body are never printed, right or wrong', async () => {
    const key = join(work, 'id_encrypted');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'correct horse battery', '-f', key]);
    const pub = readFileSync(`${key}.pub`, 'utf8');
    for (const n of lab.nodes) await n.exec(`cat >> ~${n.user}/.ssh/authorized_keys <<'EOF'\n${pub}EOF`);
    secrets.add(keysIn('the encrypted SSH key', readFileSync(key, 'utf8')));
    const inv = join(work, 'inventory-encrypted.yaml');
    writeFileSync(inv, readFileSync(inventory, 'utf8').replace(/identityFile: \S+/, `identityFile: ${key}`).replace(/knownHostsFile: \S+/, `knownHostsFile: ${lab.knownHostsFile}`).replace('kubeconfig: mgmt.kubeconfig\n', ''));
    const saved = { ...process.env };
    try {
      for (const pass of ['correct horse battery', 'wrong staple']) {
        process.env.ROTATE_CERTS_SSH_PASSPHRASE = pass;
        process.env.SSH_AUTH_SOCK = '';
        const r = await run(['check', '-i', inv, '--output', 'json']);
        expect(`${r.out}${r.err}`).not.toContain(pass);
        if (pass.startsWith('wrong')) expect(r.err).toMatch(/ssh\.identityFile: wrong passphrase for identity file/);
        else expect(r.code).toBeLessThanOrEqual(1);
      }
    } finally {
      process.env = saved;
    }
    expect(secrets.scan(captured)).toEqual([]);
  }, 300_000);

  it('bad SSH input stops rotate before any change: a known_hosts mismatch at pre-flight, an unreachable jump host before any node', async () => {
    const before = await clusterState(lab);
    // lab-cp-1's entry holds lab-cp-2's host key.
    const lines = readFileSync(lab.knownHostsFile, 'utf8').trim().split('\n');
    const keyOf = (host: string) => lines.find((l) => l.startsWith(`${host} `))!.split(' ').slice(1).join(' ');
    const cp1 = lab.node('lab-cp-1').host;
    writeFileSync(join(lab.dir, 'known_hosts.mismatch'), lines.map((l) => (l.startsWith(`${cp1} `) ? `${cp1} ${keyOf(lab.node('lab-cp-2').host)}` : l)).join('\n') + '\n');
    const mismatch = join(work, 'inventory-mismatch.yaml');
    writeFileSync(mismatch, readFileSync(lab.inventoryPath, 'utf8').replace(/knownHostsFile: \S+/, `knownHostsFile: ${join(lab.dir, 'known_hosts.mismatch')}`).replace(/identityFile: \S+/, `identityFile: ${lab.identityFile}`));
    const r1 = await run(['rotate', '-i', mismatch, '--yes', '--state-dir', stateDir]);
    expect(r1.code).toBe(69);
    expect(r1.err).toMatch(/pre-flight failed, nothing was changed:\n(?: {2}- .*\n)*? {2}- lab-cp-1: .*HOST KEY CHANGED for \S+:22/);

    const jump = join(work, 'inventory-jump.yaml');
    const dead = lab.nodes[0]!.host.replace(/\.\d+$/, '.250');
    writeFileSync(jump, readFileSync(lab.inventoryPath, 'utf8').replace(/identityFile: \S+/, `identityFile: ${lab.identityFile}\n  jumpHost: capv@${dead}\n  connectTimeoutSeconds: 2`).replace(/knownHostsFile: \S+/, `knownHostsFile: ${lab.knownHostsFile}`));
    const r2 = await run(['rotate', '-i', jump, '--yes', '--state-dir', stateDir]);
    // Found once, before any node: one line naming the field.
    expect(r2.code).toBe(69);
    expect(r2.err.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^rotate-certs: \\S+inventory-jump\\.yaml: ssh\\.jumpHost: cannot reach jump host capv@${dead.replace(/\./g, '\\.')}:22: `))]);
    expect(await clusterState(lab)).toEqual(before);
    expect(secrets.scan(captured)).toEqual([]);
  }, 300_000);

  it('rotate --yes --refresh-kubeconfig (every phase) prints and writes no key; credentials 0600; backups keep modes', async () => {
    const modesBefore = await allModes();
    const r = await run(['rotate', '-i', inventory, '--yes', '--refresh-kubeconfig', '--state-dir', stateDir]);
    expect(r.err).not.toMatch(/FAILED/);
    expect(r.code, r.out).toBe(0);
    // Every phase ran.
    const id = journal().filter((e) => e.event === 'run-start').at(-1)!.runId;
    const phases = new Set(journal().filter((e) => e.runId === id && e.event === 'step-done').map((e) => e.phase));
    expect([...phases].sort()).toEqual(['control-plane', 'etcd', 'etcd-client-pair', 'kubelet', 'management'].sort());
    expect(r.err).toMatch(/replaced \S+mgmt\.kubeconfig with the renewed admin\.conf of lab-cp-1 \(old one kept as (\S+)\)/);
    await collectKeys('after rotate');

    // The refreshed kubeconfig and the kept copy of the refused one (0644 here) hold keys: both 0600.
    const kubeconfig = join(lab.dir, 'mgmt.kubeconfig');
    expect(octal(modeOf(kubeconfig))).toBe('0600');
    const kept = readdirSync(lab.dir).filter((f) => f.startsWith('mgmt.kubeconfig.rotate-certs-'));
    expect(kept).toHaveLength(1);
    expect(octal(modeOf(join(lab.dir, kept[0]!))), 'the kept copy of the old kubeconfig').toBe('0600');
    secrets.add(keysIn('the refreshed kubeconfig', readFileSync(kubeconfig, 'utf8')));

    // The state folder: journal and plan copy 0600, folders 0700; the lock, seen during the run, 0600 and no secret.
    expect(lockSeen.length, 'the lock was seen during the run').toBeGreaterThan(0);
    for (const l of lockSeen) expect(octal(l.mode)).toBe('0600');
    captured.push(...lockSeen.map((l, i) => ({ what: `lock (seen ${i})`, text: l.text })));
    for (const f of filesUnder(stateDir)) {
      expect(`${octal(modeOf(f))} ${f}`).toBe(`0600 ${f}`);
    }
    for (const d of [stateDir, join(stateDir, 'lab')]) expect(`${octal(modeOf(d))} ${d}`).toBe(`0700 ${d}`);

    const compared = await expectBackupsKeepModes(id, modesBefore);
    expect(compared, 'files compared in backups').toBeGreaterThan(50);
    await expectKeysStayPut(modesBefore);
    expect(secrets.scan([...captured, ...written()])).toEqual([]);
  }, 900_000);

  it('a failing apply (restored, exit 1) and its --resume print and write no key; backups keep modes', async () => {
    const cp1 = lab.node('lab-cp-1');
    const planFile = join(work, 'plan-fail.yaml');
    // The control plane only (with the client pair and the management step): etcd was covered above.
    const p = await run(['plan', '-i', inventory, '--only', 'control-plane', '--out', planFile, '--state-dir', stateDir]);
    expect(p.code, p.err).toBe(0);
    planFiles.push(planFile);
    const modesBefore = await allModes();
    await cp1.exec('mkdir -p /etc/rotate-certs-lab && touch /etc/rotate-certs-lab/fail-kubeadm');
    const failed = await run(['apply', planFile, '--yes', '--state-dir', stateDir]);
    expect(failed.code, failed.out).toBe(1);
    expect(failed.out).toMatch(/Rotation FAILED on lab-cp-1, step \S+: command kubeadmRenewByName exited 1: .*injected failure/);
    expect(failed.out).toMatch(/lab-cp-1 was restored from its backup/);
    await collectKeys('after the failed apply');
    await cp1.exec('rm /etc/rotate-certs-lab/fail-kubeadm');
    const resumed = await run(['apply', planFile, '--resume', '--state-dir', stateDir]);
    expect(resumed.code, resumed.out).toBe(0);
    await collectKeys('after --resume');
    const runId = journal().filter((e) => e.event === 'run-resume').at(-1)!.runId;
    expect(await expectBackupsKeepModes(runId, modesBefore)).toBeGreaterThan(20);
    await expectKeysStayPut(modesBefore);
    for (const f of filesUnder(stateDir)) expect(`${octal(modeOf(f))} ${f}`).toBe(`0600 ${f}`);
    expect(secrets.scan([...captured, ...written()])).toEqual([]);
  }, 900_000);

  it('restore --node --yes prints and writes no key', async () => {
    const r = await run(['restore', '-i', inventory, '--node', 'lab-cp-1', '--yes', '--state-dir', stateDir]);
    expect(r.code, `${r.out}${r.err}`).toBe(0);
    expect(r.out).toContain('lab-cp-1: control-plane restored');
    await collectKeys('after restore');
    for (const f of filesUnder(stateDir)) expect(`${octal(modeOf(f))} ${f}`).toBe(`0600 ${f}`);
    expect(secrets.scan([...captured, ...written()])).toEqual([]);
  }, 300_000);

  it('in the end, nothing captured or written holds any key the lab ever had', () => {
    expect(captured.length).toBeGreaterThan(25);
    expect(secrets.scan([...captured, ...written()])).toEqual([]);
  });
});
