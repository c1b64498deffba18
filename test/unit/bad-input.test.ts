/**
 * Bad input, row by row as docs/bad-input.md lists it. Each row runs the CLI in-process with the
 * real SSH transport against an inventory whose nodes are TCP listeners on 127.x.y.11/.21/.31 (an
 * SSH port each, :2379 on the etcd node, :6443 on the control-plane node) that count every
 * connection and close it at once. A row asserts the line printed, the exit code, how many SSH
 * connections and endpoint probes were made, and that no file appeared in the work folder or the
 * state folder. The rows that need a real sshd (host keys, jump hosts) are in the e2e tests that
 * docs/bad-input.md names.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import ssh2 from 'ssh2';
import { parse, stringify } from 'yaml';
import { runCli } from '../../src/cli/program.js';
import type { CliIo } from '../../src/cli/io.js';
import { parseInventory } from '../../src/inventory/load.js';
import { requireKnownOs } from '../../src/profiles/detect-os.js';
import { compilePlan, planDigest, sha256 } from '../../src/plan/compile.js';
import { writePlan } from '../../src/plan/file.js';
import type { Plan } from '../../src/plan/types.js';
import { ProfileSet } from '../../src/profiles/profile.js';
import { loadRotationRunbooks } from '../../src/runbook/runbook.js';
import { filesUnder } from '../files.js';

/** An SSH server (ssh2's) refusing every login, for the host-key rows: its ed25519 host key's blob, and another key. */
const hostKeyServer = { host: '127.0.0.1', port: 0, blob: Buffer.alloc(0), other: Buffer.alloc(0), server: undefined as ssh2.Server | undefined };
const EKSA_FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'eksa');

// ---------------------------------------------------------------- the fake nodes

interface Listener {
  server: Server;
  host: string;
  port: number;
  kind: 'ssh' | 'endpoint' | 'jump';
  count: number;
}
const listeners: Listener[] = [];
let hosts = { etcd: '', cp: '', md: '', jump: '' };
let sshPorts = { etcd: 0, cp: 0, md: 0 };
/** A jump host (.41) that closes every connection: unreachable as an SSH server. */
let jumpPort = 0;

function listen(host: string, port: number, kind: Listener['kind']): Promise<Listener> {
  return new Promise((resolve, reject) => {
    const l: Listener = { server: createServer((sock) => {
      l.count++;
      sock.destroy();
    }), host, port, kind, count: 0 };
    l.server.once('error', reject);
    l.server.listen(port, host, () => {
      l.port = (l.server.address() as { port: number }).port;
      resolve(l);
    });
  });
}

async function startNodes(): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const base = `127.${2 + Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`;
    const started: Listener[] = [];
    try {
      for (const [role, last] of [['etcd', 11], ['cp', 21], ['md', 31]] as const) {
        const host = `${base}.${last}`;
        const ssh = await listen(host, 0, 'ssh');
        started.push(ssh);
        hosts = { ...hosts, [role]: host };
        sshPorts = { ...sshPorts, [role]: ssh.port };
      }
      started.push(await listen(hosts.etcd, 2379, 'endpoint'), await listen(hosts.cp, 6443, 'endpoint'));
      const jump = await listen(`${base}.41`, 0, 'jump');
      started.push(jump);
      hosts = { ...hosts, jump: jump.host };
      jumpPort = jump.port;
      listeners.push(...started);
      return;
    } catch (err) {
      for (const l of started) l.server.close();
      if (attempt >= 5) throw err;
    }
  }
}

function contacts() {
  const sum = (kind: Listener['kind']) => listeners.filter((l) => l.kind === kind).reduce((n, l) => n + l.count, 0);
  return { ssh: sum('ssh'), endpoints: sum('endpoint'), jump: sum('jump') };
}

// ---------------------------------------------------------------- files

let dir: string;
let stateDir: string;
const path = (f: string) => join(dir, f);

function inventory(cluster = 'lab'): string {
  return `cluster: ${cluster}
ssh:
  user: capv
  identityFile: id_rsa
  knownHostsFile: known_hosts
  connectTimeoutSeconds: 2
os: ubuntu
etcd:
  - { name: lab-etcd-1, host: ${hosts.etcd}, ssh: { port: ${sshPorts.etcd} } }
controlPlane:
  - { name: lab-cp-1, host: ${hosts.cp}, ssh: { port: ${sshPorts.cp} } }
workers:
  - { name: lab-md-1, host: ${hosts.md}, ssh: { port: ${sshPorts.md} } }
`;
}

/** A plan for the inventory at `file`, as `plan --dry-run` would make it (no facts), written to `out`. */
function planFor(file: string, out: string, runId = '20261126T000000Z'): Plan {
  const text = readFileSync(file, 'utf8');
  const inv = requireKnownOs(parseInventory(text, file), 'every OS is set');
  const plan = compilePlan({ inventory: inv, inventoryDigest: sha256(text), runbooks: loadRotationRunbooks(), profiles: new ProfileSet(), runId, createdAt: '2026-11-26T00:00:00.000Z', scope: {} });
  writePlan(out, plan);
  return plan;
}

/**
 * A plan for an inventory the guided run built and nobody saved (./lab/rotate-certs.yaml does not
 * exist): the plan carries it, as makePlan does. Its key and known_hosts are named absolutely.
 */
function unsavedPlanFor(out: string, runId: string): Plan {
  const file = path('lab/rotate-certs.yaml');
  const text = inventory().replace('identityFile: id_rsa', `identityFile: ${path('id_rsa')}`).replace('knownHostsFile: known_hosts', `knownHostsFile: ${path('known_hosts')}`);
  const inv = requireKnownOs(parseInventory(text, file), 'every OS is set');
  const plan: Plan = {
    ...compilePlan({ inventory: inv, inventoryDigest: sha256(text), runbooks: loadRotationRunbooks(), profiles: new ProfileSet(), runId, createdAt: '2026-11-26T00:00:00.000Z', scope: {} }),
    inventoryText: text,
  };
  writePlan(out, plan);
  return plan;
}

/** Every file under a folder, relative, with its size: "nothing changed" means this stays the same. */
function listing(root: string): string[] {
  return filesUnder(root).map((p) => `${relative(root, p)} ${statSync(p).size} ${statSync(p).mtimeMs}`);
}

// ---------------------------------------------------------------- running the CLI

const savedEnv = { ...process.env };
afterEach(() => {
  process.env = { ...savedEnv };
});

async function run(args: string[], env: Record<string, string> = {}) {
  let out = '';
  let err = '';
  // The SSH transport reads ROTATE_CERTS_SSH_PASSPHRASE and SSH_AUTH_SOCK from the process.
  process.env = { ...savedEnv, SSH_AUTH_SOCK: '', ROTATE_CERTS_SSH_PASSPHRASE: '', ...env };
  const io: CliIo = { out: (t) => void (out += t), err: (t) => void (err += t), color: false, env: process.env, cwd: dir };
  for (const l of listeners) l.count = 0;
  const before = listing(dir);
  const code = await runCli(args, io, {});
  return { code, out, err, contacted: contacts(), filesChanged: listing(dir).join('\n') !== before.join('\n') };
}

beforeAll(async () => {
  await startNodes();
  dir = mkdtempSync(join(tmpdir(), 'rc-bad-input-'));
  stateDir = path('state');
  const key = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
  writeFileSync(path('id_rsa'), key.privateKey, { mode: 0o600 });
  const encrypted = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs1', format: 'pem', cipher: 'aes-128-cbc', passphrase: 'correct horse' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  writeFileSync(path('id_encrypted'), encrypted.privateKey, { mode: 0o600 });
  writeFileSync(path('id_garbage'), 'this is not a key\n', { mode: 0o600 });
  // Its public half as ssh-keygen writes it (the private key id_rsa is beside it), a PEM public
  // key with no private key beside it, and an OpenSSH certificate of it: none is a private key.
  const parsed = ssh2.utils.parseKey(key.privateKey);
  if (parsed instanceof Error) throw parsed;
  const publicLine = `ssh-rsa ${parsed.getPublicSSH().toString('base64')} capv@admin\n`;
  writeFileSync(path('id_rsa.pub'), publicLine, { mode: 0o600 });
  // As ssh-keygen leaves a pair: the public half readable by all.
  mkdirSync(path('pair'), { mode: 0o700 });
  writeFileSync(path('pair/id_rsa'), key.privateKey, { mode: 0o600 });
  writeFileSync(path('pair/id_rsa.pub'), publicLine);
  chmodSync(path('pair/id_rsa.pub'), 0o644);
  writeFileSync(path('id_spki'), key.publicKey, { mode: 0o600 });
  writeFileSync(path('id_rsa-cert.pub'), `ssh-rsa-cert-v01@openssh.com ${Buffer.from('\0\0\0\x1cssh-rsa-cert-v01@openssh.com\0\0\0\x20').toString('base64')} capv@admin\n`, { mode: 0o600 });
  mkdirSync(path('id_folder'), { mode: 0o700 });
  writeFileSync(path('known_hosts'), '');
  writeFileSync(path('inv.yaml'), inventory());
  writeFileSync(path('a-file'), 'not a folder\n');
  const hostKey = ssh2.utils.generateKeyPairSync('ed25519');
  hostKeyServer.blob = Buffer.from(hostKey.public.split(' ')[1]!, 'base64');
  hostKeyServer.other = Buffer.from(ssh2.utils.generateKeyPairSync('ed25519').public.split(' ')[1]!, 'base64');
  hostKeyServer.server = new ssh2.Server({ hostKeys: [hostKey.private] }, (client) => {
    client.on('authentication', (ctx) => ctx.reject());
    client.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => hostKeyServer.server!.listen(0, hostKeyServer.host, () => resolve()));
  hostKeyServer.port = (hostKeyServer.server.address() as { port: number }).port;
});

afterAll(async () => {
  await Promise.all(listeners.map((l) => new Promise((r) => l.server.close(r))));
  await new Promise((r) => hostKeyServer.server?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------- the table

interface Row {
  /** The row's name in docs/bad-input.md. */
  name: string;
  /** Files to write before the run, relative to the work folder (text, or a function of the base inventory). */
  files?: Record<string, string | ((inv: string) => string)>;
  setup?: () => void;
  args: string[];
  /** A function when it needs what only exists at test time (the work folder, the listeners). */
  env?: Record<string, string> | (() => Record<string, string>);
  code: number;
  /** Matched against stderr (or stdout with json output). */
  message: RegExp | (() => RegExp);
  /** stderr is exactly one line. */
  oneLine?: boolean;
  /** Connections to the jump host (default 0). */
  jump?: number;
  /** SSH connections expected (default 0); 'any' for rows that read the nodes. */
  ssh?: number | 'some';
  /** Endpoint probes (:6443, :2379) expected (default 0). */
  endpoints?: number | 'some';
  /** Files in the work folder may change (default: they must not). */
  writes?: boolean;
  stream?: 'out' | 'err';
  /** More about the run than one message says. */
  also?: (r: RunResult) => void;
}

type RunResult = Awaited<ReturnType<typeof run>>;

/** A journal of cluster lab in the state folder, with a plan copy for run `runId` as execute() keeps it. */
function journalOf(runId: string, events: string[]): void {
  mkdirSync(path('state/lab'), { recursive: true });
  planFor(path('inv.yaml'), path(`state/lab/plan-${runId}.yaml`), runId);
  const lines = events.map((event, i) => JSON.stringify({ t: `2026-11-26T06:00:0${i}.000Z`, runId, event, ...(event === 'step-start' ? { phase: 'etcd', node: 'lab-etcd-1', step: 'backup-pki' } : {}) }));
  writeFileSync(path('state/lab/journal.jsonl'), `${lines.join('\n')}\n`);
}

const rotate = (file: string) => ['rotate', '-i', file, '--yes', '--state-dir', 'state'];

/**
 * A problem every node would share (SSH settings): `check` and `rotate --yes` both stop with one
 * line naming the inventory field, exit 64, before any node or endpoint is contacted.
 */
function credentialRows(name: string, files: Row['files'], message: RegExp, setup?: () => void, env?: Row['env']): Row[] {
  const file = Object.keys(files ?? {})[0] ?? '';
  return [
    { name: `${name} (check)`, files, args: ['check', '-i', file, '-o', 'json'], code: 64, message, oneLine: true, ...(setup ? { setup } : {}), ...(env ? { env } : {}) },
    { name: `${name} (rotate)`, files, args: rotate(file), code: 64, message, oneLine: true, ...(setup ? { setup } : {}), ...(env ? { env } : {}) },
  ];
}

/** Inventory mistakes: refused at load, the same way by every command, before anything is contacted. */
const inventoryRows: Array<{ name: string; edit: (text: string) => string; message: RegExp }> = [
  { name: 'malformed YAML', edit: () => 'cluster: lab\ncontrolPlane: [ {name: a\n', message: /bad\.yaml:3: not valid YAML: Flow map in block collection must be sufficiently indented and end with a \}/ },
  { name: 'an empty file', edit: () => '', message: /bad\.yaml: the file is empty/ },
  { name: 'unknown top-level field', edit: (t) => t.replace(/^ssh:/m, 'sssh:'), message: /bad\.yaml:2: sssh: unknown field \(known fields: cluster, kubeconfig, ssh, os, etcd, controlPlane, workers\)/ },
  { name: 'unknown node field', edit: (t) => t.replace('{ name: lab-cp-1,', '{ name: lab-cp-1, role: master,'), message: /bad\.yaml:11: controlPlane\[0\]\.role: unknown field \(known fields: name, host, os, ssh\)/ },
  { name: 'unknown ssh field', edit: (t) => t.replace('  user: capv\n', '  user: capv\n  password: hunter2\n'), message: /bad\.yaml:4: ssh\.password: unknown field/ },
  { name: 'unknown OS', edit: (t) => t.replace('os: ubuntu', 'os: windows'), message: /bad\.yaml:7: os: expected one of ubuntu, rhel, bottlerocket, auto, got "windows"/ },
  { name: 'unknown OS on one node', edit: (t) => t.replace('{ name: lab-md-1,', '{ name: lab-md-1, os: debian,'), message: /bad\.yaml:13: workers\[0\]\.os: expected one of ubuntu, rhel, bottlerocket, auto, got "debian"/ },
  { name: 'duplicate node names', edit: (t) => t.replace('name: lab-md-1', 'name: lab-cp-1'), message: /bad\.yaml:13: workers\[0\]\.name: node name "lab-cp-1" is already used by controlPlane\[0\] \(node names must be unique\)/ },
  { name: 'duplicate hosts', edit: (t) => t.replace(`host: ${hosts.md}, ssh: { port: ${sshPorts.md} }`, `host: ${hosts.cp}, ssh: { port: ${sshPorts.cp} }`), message: /workers\[0\]\.host: host \S+ is already used by controlPlane\[0\] \(each node needs its own address\)/ },
  { name: 'empty control-plane list', edit: (t) => t.replace(/controlPlane:\n.*\n/, 'controlPlane: []\n'), message: /bad\.yaml:10: controlPlane: needs at least 1 entry/ },
  { name: 'control-plane list left empty (null)', edit: (t) => t.replace(/controlPlane:\n.*\n/, 'controlPlane:\n'), message: /bad\.yaml:10: controlPlane: expected a list of a node: \{ name, host \}, got null/ },
  { name: 'no control-plane list', edit: (t) => t.replace(/controlPlane:\n.*\n/, ''), message: /bad\.yaml:1: controlPlane: required field is missing/ },
  { name: 'name: x;touch /tmp/pwned', edit: (t) => t.replace('name: lab-cp-1', 'name: "x;touch /tmp/pwned"'), message: /controlPlane\[0\]\.name: "x;touch \/tmp\/pwned" is not a node name: lower-case letters, digits, "-" and "\."/ },
  { name: 'name: $(id)', edit: (t) => t.replace('name: lab-cp-1', 'name: "$(id)"'), message: /controlPlane\[0\]\.name: "\$\(id\)" is not a node name/ },
  { name: 'name with a backtick', edit: (t) => t.replace('name: lab-cp-1', 'name: "`id`"'), message: /controlPlane\[0\]\.name: "`id`" is not a node name/ },
  { name: 'name with a single quote', edit: (t) => t.replace('name: lab-cp-1', `name: "lab'cp"`), message: /controlPlane\[0\]\.name: "lab'cp" is not a node name/ },
  { name: 'name with a double quote', edit: (t) => t.replace('name: lab-cp-1', 'name: "lab\\"cp"'), message: /controlPlane\[0\]\.name: "lab\\"cp" is not a node name/ },
  { name: 'name with a newline', edit: (t) => t.replace('name: lab-cp-1', 'name: "lab-cp-1\\ntouch /tmp/pwned"'), message: /controlPlane\[0\]\.name: "lab-cp-1\\ntouch \/tmp\/pwned" is not a node name/ },
  { name: 'name with a space', edit: (t) => t.replace('name: lab-cp-1', 'name: "lab cp"'), message: /controlPlane\[0\]\.name: "lab cp" is not a node name/ },
  { name: 'host: x;touch /tmp/pwned', edit: (t) => t.replace(`host: ${hosts.cp}`, 'host: "10.0.0.1;touch /tmp/pwned"'), message: /controlPlane\[0\]\.host: "10\.0\.0\.1;touch \/tmp\/pwned" is not an IP address or a host name \(letters, digits, "-" and "\."\)/ },
  { name: 'host: $(id)', edit: (t) => t.replace(`host: ${hosts.cp}`, 'host: "$(id)"'), message: /controlPlane\[0\]\.host: "\$\(id\)" is not an IP address or a host name/ },
  { name: 'host with a backtick', edit: (t) => t.replace(`host: ${hosts.cp}`, 'host: "`id`"'), message: /controlPlane\[0\]\.host: "`id`" is not an IP address or a host name/ },
  { name: 'host with quotes', edit: (t) => t.replace(`host: ${hosts.cp}`, `host: "cp'1"`), message: /controlPlane\[0\]\.host: "cp'1" is not an IP address or a host name/ },
  { name: 'host with a newline', edit: (t) => t.replace(`host: ${hosts.cp}`, 'host: "10.0.0.1\\nid"'), message: /controlPlane\[0\]\.host: "10\.0\.0\.1\\nid" is not an IP address or a host name/ },
  { name: 'host that looks like an ssh option', edit: (t) => t.replace(`host: ${hosts.cp}`, 'host: "-oProxyCommand=id"'), message: /controlPlane\[0\]\.host: "-oProxyCommand=id" is not an IP address or a host name/ },
  { name: 'IPv6 zone id with $(id)', edit: (t) => t.replace(`host: ${hosts.cp}`, 'host: "fe80::1%$(id)"'), message: /controlPlane\[0\]\.host: "fe80::1%\$\(id\)" is not an IP address or a host name/ },
  { name: 'ssh.user: $(id)', edit: (t) => t.replace('user: capv', 'user: "$(id)"'), message: /bad\.yaml:3: ssh\.user: "\$\(id\)" is not a user name: lower-case letters, digits, "_", "-" and "\."/ },
  { name: 'ssh.user that looks like an ssh option', edit: (t) => t.replace('user: capv', 'user: "-oProxyCommand=id"'), message: /ssh\.user: "-oProxyCommand=id" is not a user name/ },
  { name: 'ssh.jumpHost: capv@$(id)', edit: (t) => t.replace('  user: capv\n', '  user: capv\n  jumpHost: "capv@$(id)"\n'), message: /bad\.yaml:4: ssh\.jumpHost: "capv@\$\(id\)" is not user@host or user@host:port/ },
  { name: 'cluster: lab;id', edit: (t) => t.replace('cluster: lab', 'cluster: "lab;id"'), message: /bad\.yaml:1: cluster: "lab;id" is not a DNS label: lower-case letters, digits and "-", at most 63/ },
  { name: 'identityFile with a newline', edit: (t) => t.replace('identityFile: id_rsa', 'identityFile: "id_rsa\\nid"'), message: /bad\.yaml:4: ssh\.identityFile: "id_rsa\\nid" is not a file path/ },
  { name: 'port out of range', edit: (t) => t.replace(`port: ${sshPorts.cp}`, 'port: 70000'), message: /controlPlane\[0\]\.ssh\.port: expected a port number 1-65535, got 70000/ },
  // No guessed user (it used to be ec2-user): a wrong one fails on every node as a refused key.
  {
    name: 'no ssh.user',
    edit: (t) => t.replace('  user: capv\n', ''),
    message: /bad\.yaml:2: ssh\.user: required field is missing \(the user to log in as on every node: spec\.users\[0\]\.name of the cluster's machine configs, e\.g\. capv on vSphere, ec2-user on Bottlerocket; a node may set its own\)$/m,
  },
  {
    name: 'no ssh.user, and one node without its own',
    edit: (t) => t.replace('  user: capv\n', '').replace(`ssh: { port: ${sshPorts.etcd} }`, `ssh: { port: ${sshPorts.etcd}, user: capv }`).replace(`ssh: { port: ${sshPorts.cp} }`, `ssh: { port: ${sshPorts.cp}, user: capv }`),
    message: /bad\.yaml:12: workers\[0\]\.ssh\.user: required field is missing \(no ssh\.user applies to every node: set ssh\.user, or one for this node; e\.g\. capv on vSphere, ec2-user on Bottlerocket\)$/m,
  },
];

describe('bad inventories: one line naming file, line and field; exit 64; nothing contacted, nothing written', () => {
  for (const row of inventoryRows) {
    it(row.name, async () => {
      writeFileSync(path('bad.yaml'), row.edit(readFileSync(path('inv.yaml'), 'utf8')));
      for (const args of [['check', '-i', 'bad.yaml'], ['plan', '-i', 'bad.yaml', '--out', 'plan.yaml', '--state-dir', 'state'], rotate('bad.yaml'), ['rotate', '-i', 'bad.yaml', '--dry-run']]) {
        const r = await run(args);
        expect(r.err, args.join(' ')).toMatch(row.message);
        expect(r.err.trim().split('\n'), 'one line').toHaveLength(1);
        expect(r.err).toMatch(/^rotate-certs: \//);
        expect(r.code).toBe(64);
        expect(r.out).toBe('');
        expect(r.contacted).toEqual({ ssh: 0, endpoints: 0, jump: 0 });
        expect(r.filesChanged, 'no file written').toBe(false);
      }
    });
  }
});

const rows: Row[] = [
  // ---- files named on the command line
  { name: 'inventory file missing', args: rotate('nope.yaml'), code: 64, message: /^rotate-certs: cannot read inventory \S+\/nope\.yaml: no such file$/m },
  { name: 'inventory is a folder', files: { 'inv-dir/.keep': '' }, args: rotate('inv-dir'), code: 64, message: /^rotate-certs: cannot read inventory \S+\/inv-dir: is a folder$/m },
  // ---- flags
  { name: '--nodes naming no node (--dry-run)', args: ['rotate', '-i', 'inv.yaml', '--dry-run', '--nodes', 'x;touch /tmp/pwned'], code: 64, message: /^rotate-certs: --nodes: no node named x;touch \/tmp\/pwned in \S+\/inv\.yaml$/m },
  {
    name: '--nodes naming no node, without --dry-run',
    args: ['plan', '-i', 'inv.yaml', '--nodes', 'lab-nope', '--state-dir', 'state'],
    code: 64,
    message: /^rotate-certs: --nodes: no node named lab-nope in \S+\/inv\.yaml$/m,
  },
  { name: '--nodes with no names', args: ['rotate', '-i', 'inv.yaml', '--dry-run', '--nodes', ',,,'], code: 64, message: /^rotate-certs: --nodes: no node names given/m },
  { name: '--only with an unknown part', args: ['rotate', '-i', 'inv.yaml', '--dry-run', '--only', 'everything'], code: 64, message: /error: option '--only <part>' argument 'everything' is invalid\. Allowed choices are etcd, control-plane, kubelet, workers\./ },
  { name: '--warn-days out of range', args: ['check', '-i', 'inv.yaml', '--warn-days', '99999'], code: 64, message: /^rotate-certs: --warn-days must be between 0 and 3650, got 99999$/m },
  { name: '--pod-timeout too short', args: ['rotate', '-i', 'inv.yaml', '--dry-run', '--pod-timeout', '1'], code: 64, message: /^rotate-certs: --pod-timeout must be between 5 and 3600, got 1$/m },
  { name: '--parallel 0', args: ['rotate', '-i', 'inv.yaml', '--dry-run', '--parallel', '0'], code: 64, message: /^rotate-certs: --parallel must be between 1 and 64, got 0$/m },
  {
    name: 'os: auto with --dry-run',
    files: { 'auto.yaml': (t) => t.replace('os: ubuntu', 'os: auto') },
    args: ['rotate', '-i', 'auto.yaml', '--dry-run'],
    code: 64,
    message: /^rotate-certs: lab-etcd-1, lab-cp-1, lab-md-1 have os: auto, which needs a connection to detect, and --dry-run connects to nothing\./m,
  },
  // rotate --resume is apply --resume of the cluster's last run, when that run did not finish.
  {
    name: 'rotate --resume with no run in the journal',
    args: ['rotate', '-i', 'inv.yaml', '--resume', '--state-dir', 'state'],
    code: 64,
    message: /^rotate-certs: --resume: the journal \S+\/state\/lab\/journal\.jsonl holds no run of cluster lab; nothing to resume: run without --resume$/m,
    oneLine: true,
  },
  {
    name: 'rotate --resume when the last run finished',
    setup: () => journalOf('20261126T060000Z', ['run-start', 'run-done']),
    args: ['rotate', '-i', 'inv.yaml', '--resume', '--state-dir', 'state'],
    code: 64,
    message: /^rotate-certs: --resume: the last run of cluster lab, 20261126T060000Z, finished \(see \S+\/journal\.jsonl\); nothing to resume: run without --resume$/m,
    oneLine: true,
  },
  {
    name: 'rotate --resume --dry-run',
    args: ['rotate', '-i', 'inv.yaml', '--resume', '--dry-run'],
    code: 64,
    message: /^rotate-certs: --resume continues a run that changes the cluster; --dry-run changes nothing\. Drop one of them$/m,
    oneLine: true,
  },
  {
    name: 'rotate --resume --only etcd',
    args: ['rotate', '-i', 'inv.yaml', '--resume', '--only', 'etcd', '--state-dir', 'state'],
    code: 64,
    message: /^rotate-certs: --resume continues the last run with its own plan, which --only and --nodes cannot change: drop them, or start a new run without --resume$/m,
    oneLine: true,
  },
  {
    name: 'control: rotate --resume of a run cut off part-way continues it as apply --resume does, as far as pre-flight (no --yes needed)',
    setup: () => journalOf('20261126T070000Z', ['run-start', 'step-start']),
    args: ['rotate', '-i', 'inv.yaml', '--resume', '--state-dir', 'state'],
    code: 69,
    message: /^Resuming run 20261126T070000Z of cluster lab: rotate-certs apply \S+\/state\/lab\/plan-20261126T070000Z\.yaml --resume\n[^]*^rotate-certs: pre-flight failed, nothing was changed:$/m,
    ssh: 'some',
    endpoints: 'some',
    writes: true,
    also: (r) => expect(r.err).not.toMatch(/has no run|already applied/),
  },
  // -o is the output format wherever it exists (check -o json); it used to be plan's --out.
  {
    name: 'plan -o json',
    args: ['plan', '-i', 'inv.yaml', '-o', 'json', '--state-dir', 'state'],
    code: 64,
    message: /^rotate-certs: plan has no -o\/--output: -o is the output format of check \(-o json\); plan prints the plan, or writes it to a file with --out FILE$/m,
    oneLine: true,
    also: () => expect(existsSync(path('json'))).toBe(false),
  },
  // A plan made without some nodes would leave out what they need (their kubelets), and apply refuses it.
  {
    name: 'plan --out when nodes cannot be read: no plan written, one line per cause, exit 3',
    args: ['plan', '-i', 'inv.yaml', '--out', 'p.yaml', '--state-dir', 'state'],
    code: 3,
    message: /^rotate-certs: no plan written to \S+\/p\.yaml: 3 nodes could not be read; fix the causes above, then plan again$/m,
    ssh: 'some',
    endpoints: 'some',
    also: (r) => {
      expect(existsSync(path('p.yaml'))).toBe(false);
      expect(r.out).toBe('');
      expect(r.out + r.err).not.toMatch(/Kubelet certificates due|rotate-certs apply/);
      const lines = r.err.trim().split('\n');
      for (const line of lines) expect(line).toMatch(/^rotate-certs: /);
      // Each node's cause once: three nodes, at most three causes, and the closing line.
      expect(lines.length).toBeLessThanOrEqual(4);
      for (const node of ['lab-etcd-1', 'lab-cp-1', 'lab-md-1']) expect(r.err.split(`ssh to ${node} (`).length - 1, node).toBe(1);
    },
  },
  // The guided run takes no --inventory: the line says what it does take.
  {
    name: 'guided run: a folder with neither an inventory nor a cluster spec',
    files: { 'nospec/.keep': '' },
    args: ['--cluster', 'nospec', '--yes', '--state-dir', 'state'],
    code: 64,
    message: /^rotate-certs: neither \S+\/nospec\/rotate-certs\.yaml nor \S+\/nospec\/nospec-eks-a-cluster\.yaml exists: run in the folder where you ran eksctl anywhere create cluster, or write \S+\/nospec\/rotate-certs\.yaml by hand \(see docs\/inventory\.md\)$/m,
    oneLine: true,
    also: (r) => expect(r.err).not.toContain('--inventory'),
  },
  // --cluster NAME is one thing in every command: the same line wherever ./NAME/ holds neither file.
  ...[
    ['check', '--cluster', 'nospec'],
    ['plan', '--cluster', 'nospec', '--dry-run'],
    ['rotate', '--cluster', 'nospec', '--dry-run'],
    ['trust', '--cluster', 'nospec', '--accept-new'],
  ].map(
    (args): Row => ({
      name: `${args.join(' ')}: a folder with neither an inventory nor a cluster spec`,
      files: { 'nospec/.keep': '' },
      args,
      code: 64,
      message: /^rotate-certs: neither \S+\/nospec\/rotate-certs\.yaml nor \S+\/nospec\/nospec-eks-a-cluster\.yaml exists: run in the folder where you ran eksctl anywhere create cluster/m,
      oneLine: true,
    }),
  ),
  {
    name: 'check --cluster: an EKS Anywhere folder without its kubeconfig, no terminal: one line saying what gives the nodes',
    files: { 'nokube/nokube-eks-a-cluster.yaml': () => readFileSync(join(EKSA_FIXTURES, 'no-kubeconfig', 'nokube', 'nokube-eks-a-cluster.yaml'), 'utf8') },
    args: ['check', '--cluster', 'nokube'],
    code: 64,
    message:
      /^rotate-certs: cannot list the nodes of nokube: \S+\/nokube has no nokube-eks-a-cluster\.kubeconfig to list the Machines of nokube with; give --management-kubeconfig FILE \(a kubeconfig whose API lists them\), run rotate-certs inventory --cluster nokube --write on a terminal to type their addresses, or write \S+\/nokube\/rotate-certs\.yaml by hand \(see docs\/inventory\.md\)$/m,
    oneLine: true,
  },
  {
    name: 'inventory --cluster: no EKS Anywhere folder',
    args: ['inventory', '--cluster', 'nosuch'],
    code: 64,
    message: /^rotate-certs: no EKS Anywhere folder \.\/nosuch\/: \S+\/nosuch\/nosuch-eks-a-cluster\.yaml does not exist: run in the folder where you ran eksctl anywhere create cluster$/m,
    oneLine: true,
  },
  {
    name: 'inventory --write onto an existing rotate-certs.yaml: refused, the file kept',
    files: {
      'nokube/nokube-eks-a-cluster.yaml': () => readFileSync(join(EKSA_FIXTURES, 'no-kubeconfig', 'nokube', 'nokube-eks-a-cluster.yaml'), 'utf8'),
      'nokube/rotate-certs.yaml': '# written by hand\n',
    },
    args: ['inventory', '--cluster', 'nokube', '--write'],
    code: 64,
    message: /^rotate-certs: \S+\/nokube\/rotate-certs\.yaml already exists and --write does not replace it: add --force to replace it, or leave out --write to print the inventory it would be$/m,
    oneLine: true,
    also: () => expect(readFileSync(path('nokube/rotate-certs.yaml'), 'utf8')).toBe('# written by hand\n'),
  },
  // Host keys on first contact (the ssh2 server: its key is read, nobody logs in).
  {
    name: 'trust: a changed host key is never recorded, even with --accept-new: both keys named, exit 69',
    files: {
      'changed.yaml': () =>
        `cluster: lab\nssh: { user: capv, identityFile: id_rsa, knownHostsFile: kh-changed }\nos: ubuntu\ncontrolPlane: [{ name: lab-cp-1, host: ${hostKeyServer.host}, ssh: { port: ${hostKeyServer.port} } }]\n`,
      'kh-changed': () => `[${hostKeyServer.host}]:${hostKeyServer.port} ssh-ed25519 ${hostKeyServer.other.toString('base64')}\n`,
    },
    args: ['trust', '-i', 'changed.yaml', '--accept-new'],
    code: 69,
    message: () =>
      new RegExp(
        `^rotate-certs: lab-cp-1: HOST KEY CHANGED for \\[127\\.0\\.0\\.1\\]:${hostKeyServer.port}: \\S+/kh-changed holds ssh-ed25519 SHA256:\\S+, the node now presents ssh-ed25519 SHA256:\\S+; not recorded\\. ` +
          `Possible man-in-the-middle; if the node was rebuilt, remove the old entry \\(ssh-keygen -R '\\[127\\.0\\.0\\.1\\]:${hostKeyServer.port}' -f \\S+/kh-changed\\) and run trust again$`,
        'm',
      ),
    also: (r) => {
      expect(r.err.trim().split('\n'), 'one line').toHaveLength(1);
      expect(r.out).toMatch(/^ {2}lab-cp-1 .* CHANGED$/m);
    },
  },
  {
    name: 'trust without a terminal, --yes or --accept-new: the keys are printed, none recorded',
    files: { 'unconfirmed.yaml': () => `cluster: lab\nssh: { user: capv, identityFile: id_rsa, knownHostsFile: kh-new }\nos: ubuntu\ncontrolPlane: [{ name: lab-cp-1, host: ${hostKeyServer.host}, ssh: { port: ${hostKeyServer.port} } }]\n` },
    args: ['trust', '-i', 'unconfirmed.yaml'],
    code: 64,
    message: /^rotate-certs: 1 new host key not recorded: no terminal to confirm it; compare the fingerprints above with each node's own \(ssh-keygen -lf \/etc\/ssh\/ssh_host_ed25519_key\.pub on its console\), then run again with --yes \(or --accept-new to record new keys unchecked\)$/m,
    also: (r) => {
      expect(r.err.trim().split('\n'), 'one line').toHaveLength(1);
      expect(r.out).toMatch(/^ {2}lab-cp-1 .* new$/m);
      expect(existsSync(path('kh-new'))).toBe(false);
    },
  },
  {
    name: 'guided run: nodes that cannot be read are named once each, exit 69, nothing changed',
    files: { 'lab/rotate-certs.yaml': (t) => t.replace('identityFile: id_rsa', `identityFile: ${path('id_rsa')}`).replace('knownHostsFile: known_hosts', `knownHostsFile: ${path('known_hosts')}`) },
    args: ['--cluster', 'lab', '--yes', '--state-dir', 'state'],
    code: 69,
    message: /^rotate-certs: cannot read every node, nothing was changed; fix these first:$/m,
    ssh: 'some',
    endpoints: 'some',
    also: (r) => {
      for (const node of ['lab-etcd-1', 'lab-cp-1', 'lab-md-1']) {
        expect(r.out, node).toMatch(new RegExp(`^  ${node} .* not read \\(the cause is below\\)$`, 'm'));
        expect(`${r.out}${r.err}`.split(`ssh to ${node} (`).length - 1, `${node}'s error, once`).toBe(1);
      }
      expect(r.out).not.toMatch(/could not be read: (?!endpoint)/);
    },
  },
  {
    name: 'rotate without --yes and no terminal',
    args: ['rotate', '-i', 'inv.yaml', '--state-dir', 'state'],
    code: 64,
    message: /^rotate-certs: refusing to change the cluster without confirmation: pass --yes \(no terminal to ask on\), or --dry-run to see the commands$/m,
  },
  {
    name: '--state-dir is a file',
    args: ['rotate', '-i', 'inv.yaml', '--yes', '--state-dir', 'a-file'],
    code: 64,
    message: /^rotate-certs: cannot use \S+\/a-file\/lab as the state folder \(a file is in the way\): give --state-dir a folder$/m,
  },
  {
    name: 'plan --out into a missing folder',
    args: ['plan', '-i', 'inv.yaml', '--out', 'no/such/dir/plan.yaml', '--state-dir', 'state'],
    code: 64,
    message: /^rotate-certs: --out: the folder \S+\/no\/such\/dir does not exist$/m,
  },
  { name: 'plan --dry-run --out', args: ['plan', '-i', 'inv.yaml', '--dry-run', '--out', 'dry-plan.yaml'], code: 64, message: /^rotate-certs: --out writes a plan made from what the nodes hold; --dry-run reads nothing/m },
  { name: 'restore --node naming no node', args: ['restore', '-i', 'inv.yaml', '--node', '$(id)', '--yes', '--state-dir', 'state'], code: 64, message: /^rotate-certs: --node: no node named \$\(id\) in \S+\/inv\.yaml$/m },
  { name: 'restore with no backup in the journal', args: ['restore', '-i', 'inv.yaml', '--node', 'lab-cp-1', '--yes', '--state-dir', 'state'], code: 64, message: /^rotate-certs: the journal \S+\/state\/lab\/journal\.jsonl records no backup of lab-cp-1; nothing to restore$/m },
  // ---- plan files
  { name: 'plan file missing', args: ['apply', 'nope-plan.yaml', '--yes', '--state-dir', 'state'], code: 64, message: /^rotate-certs: cannot read plan \S+\/nope-plan\.yaml: no such file$/m },
  { name: 'plan file not a plan (an inventory)', args: ['apply', 'inv.yaml', '--yes', '--state-dir', 'state'], code: 64, message: /^rotate-certs: \S+\/inv\.yaml: not a rotate-certs plan \(kind: rotate-certs\/plan is missing\)$/m },
  {
    name: 'plan file not YAML',
    files: { 'broken-plan.yaml': 'kind: rotate-certs/plan\nphases: [ {x: 1\n' },
    args: ['apply', 'broken-plan.yaml', '--yes', '--state-dir', 'state'],
    code: 64,
    message: /^rotate-certs: \S+\/broken-plan\.yaml: not a plan file \(not valid YAML: /m,
  },
  {
    name: 'plan edited by hand',
    setup: () => {
      planFor(path('inv.yaml'), path('edited.yaml'));
      writeFileSync(path('edited.yaml'), readFileSync(path('edited.yaml'), 'utf8').replace('kubeadm certs renew all', 'kubeadm certs renew all; touch /tmp/pwned'));
    },
    args: ['apply', 'edited.yaml', '--yes', '--state-dir', 'state'],
    code: 64,
    message: /^rotate-certs: \S+\/edited\.yaml: the plan was changed after it was made \(digest mismatch\); make a new one with rotate-certs plan$/m,
  },
  {
    name: 'plan edited by hand, digest recomputed',
    setup: () => {
      const plan = planFor(path('inv.yaml'), path('redigested.yaml'));
      const text = JSON.stringify(plan).replace('kubeadm certs renew all', 'kubeadm certs renew all; touch /tmp/pwned');
      const edited = JSON.parse(text) as Plan;
      writeFileSync(path('redigested.yaml'), stringify({ ...edited, digest: planDigest(edited) }, { lineWidth: 0 }));
    },
    args: ['apply', 'redigested.yaml', '--yes', '--state-dir', 'state'],
    code: 64,
    message: /^rotate-certs: the plan does not match what this rotate-certs would run from its inventory and runbooks \(made by another version\?\); make a new plan$/m,
  },
  {
    name: 'plan of an unsupported version',
    setup: () => {
      planFor(path('inv.yaml'), path('v2.yaml'));
      const plan = parse(readFileSync(path('v2.yaml'), 'utf8')) as Plan & { version: number };
      writeFileSync(path('v2.yaml'), stringify({ ...plan, version: 2 }));
    },
    args: ['apply', 'v2.yaml', '--yes', '--state-dir', 'state'],
    code: 64,
    message: /^rotate-certs: \S+\/v2\.yaml: plan version 2 is not supported by this rotate-certs; make a new plan$/m,
  },
  {
    name: 'inventory changed since the plan',
    setup: () => {
      writeFileSync(path('inv-changed.yaml'), inventory());
      planFor(path('inv-changed.yaml'), path('stale.yaml'));
      writeFileSync(path('inv-changed.yaml'), inventory().replace('connectTimeoutSeconds: 2', 'connectTimeoutSeconds: 3'));
    },
    args: ['apply', 'stale.yaml', '--yes', '--state-dir', 'state'],
    code: 64,
    message: /^rotate-certs: the inventory \S+\/inv-changed\.yaml changed since the plan was made; make a new plan$/m,
  },
  {
    name: "plan from another cluster (its inventory path now holds this cluster's)",
    setup: () => {
      writeFileSync(path('cluster.yaml'), inventory('prod'));
      planFor(path('cluster.yaml'), path('prod-plan.yaml'));
      writeFileSync(path('cluster.yaml'), inventory('lab'));
    },
    args: ['apply', 'prod-plan.yaml', '--yes', '--state-dir', 'state'],
    code: 64,
    message: /^rotate-certs: the inventory \S+\/cluster\.yaml changed since the plan was made; make a new plan$/m,
  },
  {
    name: 'plan from another machine (its inventory is not here)',
    setup: () => {
      writeFileSync(path('elsewhere.yaml'), inventory('prod'));
      planFor(path('elsewhere.yaml'), path('foreign-plan.yaml'));
      rmSync(path('elsewhere.yaml'));
    },
    args: ['apply', 'foreign-plan.yaml', '--yes', '--state-dir', 'state'],
    code: 64,
    message: /^rotate-certs: the plan's inventory \S+\/elsewhere\.yaml cannot be read$/m,
  },
  {
    name: 'plan already applied',
    setup: () => {
      planFor(path('inv.yaml'), path('done-plan.yaml'), '20261126T010000Z');
      mkdirSync(path('state/lab'), { recursive: true });
      writeFileSync(path('state/lab/journal.jsonl'), `${JSON.stringify({ t: '2026-11-26T01:00:00.000Z', runId: '20261126T010000Z', event: 'run-start' })}\n`);
    },
    args: ['apply', 'done-plan.yaml', '--yes', '--state-dir', 'state'],
    code: 64,
    message: /^rotate-certs: plan 20261126T010000Z was already applied \(see \S+\/journal\.jsonl\); use --resume to continue it, or make a new plan$/m,
    // The plan copy beside the journal is written before the refusal.
    writes: true,
  },
  {
    name: 'apply --resume of a run the journal does not hold',
    setup: () => {
      planFor(path('inv.yaml'), path('fresh-plan.yaml'), '20261126T020000Z');
    },
    args: ['apply', 'fresh-plan.yaml', '--resume', '--state-dir', 'state'],
    code: 64,
    message: /^rotate-certs: --resume: the journal \S+\/journal\.jsonl has no run 20261126T020000Z; run without --resume$/m,
    writes: true,
  },
  {
    name: 'control: a plan that carries its inventory (not saved) is applied without the file, as far as pre-flight',
    setup: () => {
      unsavedPlanFor(path('unsaved-plan.yaml'), '20261126T040000Z');
    },
    args: ['apply', 'unsaved-plan.yaml', '--yes', '--state-dir', 'state'],
    code: 69,
    message: /^rotate-certs: pre-flight failed, nothing was changed:$/m,
    ssh: 'some',
    endpoints: 'some',
    writes: true,
  },
  {
    name: 'control: restore --cluster NAME of a run whose inventory was not saved reads it from the run\'s plan',
    setup: () => {
      mkdirSync(path('state/lab'), { recursive: true });
      unsavedPlanFor(path('state/lab/plan-20261126T050000Z.yaml'), '20261126T050000Z');
      // Both backups made (the last one is restore.after): a restore is due.
      const done = (step: string, backup: string) => JSON.stringify({ t: '2026-11-26T05:00:00.000Z', runId: '20261126T050000Z', event: 'step-done', phase: 'control-plane', node: 'lab-cp-1', step, backups: [backup] });
      writeFileSync(path('state/lab/journal.jsonl'), `${done('backup-pki', '/etc/kubernetes/pki.rotate-certs-20261126T050000Z')}\n${done('backup-kubeconfigs', '/etc/kubernetes/kubeconfigs.rotate-certs-20261126T050000Z')}\n`);
    },
    args: ['restore', '--cluster', 'lab', '--node', 'lab-cp-1', '--yes', '--state-dir', 'state'],
    // The fake node closes the connection: the restore is tried there and fails.
    code: 2,
    message: /restore failed|restore FAILED/,
    stream: 'out',
    ssh: 'some',
    writes: true,
  },
  {
    name: 'lock held by another run',
    setup: () => {
      mkdirSync(path('state/lab'), { recursive: true });
      writeFileSync(path('state/lab/lock'), JSON.stringify({ pid: process.pid, host: hostname(), runId: 'other', since: 'now' }));
    },
    args: rotate('inv.yaml'),
    code: 75,
    message: /^rotate-certs: another rotate-certs run holds the lock for cluster lab \(pid \d+ on \S+, run other, since now\); wait for it, or if it is gone, remove \S+\/state\/lab\/lock$/m,
  },
  // ---- backups
  {
    name: 'backups --prune without --yes and no terminal',
    args: ['backups', '-i', 'inv.yaml', '--prune', '--state-dir', 'state'],
    code: 64,
    message: /^rotate-certs: refusing to remove backups without confirmation: pass --yes \(no terminal to ask on\), or drop --prune to only list them$/m,
    oneLine: true,
  },
  {
    name: 'backups --keep without --prune',
    args: ['backups', '-i', 'inv.yaml', '--keep', '1'],
    code: 64,
    message: /^rotate-certs: --keep says how many runs --prune keeps: add --prune, or drop --keep to only list the backups$/m,
    oneLine: true,
  },
  { name: 'backups --prune --keep 0', args: ['backups', '-i', 'inv.yaml', '--prune', '--keep', '0', '--yes', '--state-dir', 'state'], code: 64, message: /^rotate-certs: --keep must be between 1 and 1000, got 0$/m },
  { name: 'rotate --keep-backups 0', args: ['rotate', '-i', 'inv.yaml', '--dry-run', '--keep-backups', '0'], code: 64, message: /^rotate-certs: --keep-backups must be between 1 and 1000, got 0$/m },
  // Renewal as a routine (docs/routine.md): each refused before the inventory's nodes are contacted.
  { name: 'rotate --due-within 30 (no unit)', args: ['rotate', '-i', 'inv.yaml', '--yes', '--due-within', '30'], code: 64, message: /^rotate-certs: --due-within expects a number of days or hours, such as 30d or 12h, got "30"$/m, oneLine: true },
  { name: 'rotate --due-within 0h', args: ['rotate', '-i', 'inv.yaml', '--yes', '--due-within', '0h'], code: 64, message: /^rotate-certs: --due-within must be between 1h and 3650d, got 0h$/m, oneLine: true },
  {
    name: 'rotate --due-within 30d --dry-run',
    args: ['rotate', '-i', 'inv.yaml', '--due-within', '30d', '--dry-run'],
    code: 64,
    message: /^rotate-certs: --due-within reads the cluster to decide what is due; --dry-run reads nothing\. Drop one of them$/m,
    oneLine: true,
  },
  { name: 'rotate --textfile without --due-within', args: ['rotate', '-i', 'inv.yaml', '--yes', '--textfile', 'run.prom'], code: 64, message: /^rotate-certs: --textfile is for due runs: add --due-within \(such as --due-within 30d\)$/m, oneLine: true },
  {
    name: 'rotate --due-within 30d --textfile into a folder that does not exist',
    args: ['rotate', '-i', 'inv.yaml', '--yes', '--due-within', '30d', '--state-dir', 'state', '--textfile', 'no/such/run.prom'],
    code: 64,
    message: /^rotate-certs: --textfile: the folder \S+\/no\/such does not exist; create it \(for a textfile: node_exporter's --collector\.textfile\.directory\)$/m,
    oneLine: true,
  },
  { name: 'rotate of several clusters without --due-within', args: ['rotate', '-c', 'lab', '-c', 'other', '--yes'], code: 64, message: /^rotate-certs: --cluster given more than once is for due runs: add --due-within \(such as --due-within 30d\)$/m, oneLine: true },
  { name: 'backups -o prometheus', args: ['backups', '-i', 'inv.yaml', '-o', 'prometheus'], code: 64, message: /^rotate-certs: --output must be one of table, json, got "prometheus"$/m },
  {
    name: 'backups --prune while another run holds the lock',
    setup: () => {
      mkdirSync(path('state/lab'), { recursive: true });
      writeFileSync(path('state/lab/lock'), JSON.stringify({ pid: process.pid, host: hostname(), runId: 'other', since: 'now' }));
    },
    args: ['backups', '-i', 'inv.yaml', '--prune', '--yes', '--state-dir', 'state'],
    code: 75,
    message: /^rotate-certs: another rotate-certs run holds the lock for cluster lab \(pid \d+ on \S+, run other, since now\); wait for it, or if it is gone, remove \S+\/state\/lab\/lock$/m,
    oneLine: true,
  },
  {
    name: 'backups when nodes cannot be read: each named, the others listed, exit 3, nothing written',
    args: ['backups', '-i', 'inv.yaml', '--state-dir', 'state'],
    code: 3,
    message: /^Could not read:\n {2}lab-etcd-1: /m,
    stream: 'out',
    ssh: 'some',
    also: (r) => {
      for (const node of ['lab-etcd-1', 'lab-cp-1', 'lab-md-1']) expect(r.out, node).toContain(node);
      expect(r.err).toBe('');
    },
  },
  {
    name: 'control: a valid plan gets as far as pre-flight, which reads the nodes',
    setup: () => {
      planFor(path('inv.yaml'), path('valid-plan.yaml'), '20261126T030000Z');
    },
    args: ['apply', 'valid-plan.yaml', '--yes', '--state-dir', 'state'],
    code: 69,
    message: /^rotate-certs: pre-flight failed, nothing was changed:$/m,
    ssh: 'some',
    endpoints: 'some',
    writes: true,
  },
  // ---- SSH settings every node shares: checked once on this machine, before any node or endpoint is contacted
  ...credentialRows('identity file missing', { 'nokey.yaml': (t) => t.replace('identityFile: id_rsa', 'identityFile: no_such_key') }, /^rotate-certs: \S+\/nokey\.yaml: ssh\.identityFile: cannot read identity file \S+\/no_such_key: no such file$/m),
  ...credentialRows('identity file unreadable (a folder)', { 'dirkey.yaml': (t) => t.replace('identityFile: id_rsa', 'identityFile: id_folder') }, /^rotate-certs: \S+\/dirkey\.yaml: ssh\.identityFile: cannot read identity file \S+\/id_folder: EISDIR$/m),
  ...credentialRows(
    'identity file readable by others',
    { 'openkey.yaml': (t) => t.replace('identityFile: id_rsa', 'identityFile: id_open') },
    /^rotate-certs: \S+\/openkey\.yaml: ssh\.identityFile: identity file \S+\/id_open is readable by others \(mode 0644\); OpenSSH refuses such keys too: chmod 600 \S+\/id_open$/m,
    () => {
      writeFileSync(path('id_open'), readFileSync(path('id_rsa')));
      chmodSync(path('id_open'), 0o644);
    },
  ),
  ...credentialRows('identity file not a key', { 'garbage.yaml': (t) => t.replace('identityFile: id_rsa', 'identityFile: id_garbage') }, /^rotate-certs: \S+\/garbage\.yaml: ssh\.identityFile: identity file \S+\/id_garbage is not a private key ssh2 can read: /),
  // ssh2 reads a public key as a key: without the check every node would fail at authentication.
  ...credentialRows(
    'identity file is the public key (0600)',
    { 'pubkey.yaml': (t) => t.replace('identityFile: id_rsa', 'identityFile: id_rsa.pub') },
    /^rotate-certs: \S+\/pubkey\.yaml: ssh\.identityFile: identity file (\S+)\/id_rsa\.pub is the public half of a key pair, not the private key: name the private key \1\/id_rsa instead$/m,
  ),
  ...credentialRows(
    'identity file is the public key (0644, as ssh-keygen leaves it): named as such, no chmod advice',
    { 'pubopen.yaml': (t) => t.replace('identityFile: id_rsa', 'identityFile: pair/id_rsa.pub') },
    /^rotate-certs: \S+\/pubopen\.yaml: ssh\.identityFile: identity file (\S+)\/pair\/id_rsa\.pub is the public half of a key pair, not the private key: name the private key \1\/pair\/id_rsa instead$/m,
  ),
  ...credentialRows(
    'identity file is a PEM public key (BEGIN PUBLIC KEY)',
    { 'spki.yaml': (t) => t.replace('identityFile: id_rsa', 'identityFile: id_spki') },
    /^rotate-certs: \S+\/spki\.yaml: ssh\.identityFile: identity file \S+\/id_spki is the public half of a key pair, not the private key: name the private key instead$/m,
  ),
  ...credentialRows(
    'identity file is an SSH certificate',
    { 'sshcert.yaml': (t) => t.replace('identityFile: id_rsa', 'identityFile: id_rsa-cert.pub') },
    /^rotate-certs: \S+\/sshcert\.yaml: ssh\.identityFile: identity file (\S+)\/id_rsa-cert\.pub is an SSH certificate \(a signed public key\), not the private key: name the private key \1\/id_rsa instead$/m,
  ),
  ...credentialRows(
    "one node's own identity file is a public key",
    { 'nodepub.yaml': (t) => t.replace(`ssh: { port: ${sshPorts.md} }`, `ssh: { port: ${sshPorts.md}, identityFile: id_rsa.pub }`) },
    /^rotate-certs: \S+\/nodepub\.yaml: workers\[0\]\.ssh\.identityFile: identity file \S+\/id_rsa\.pub is the public half of a key pair, not the private key: name the private key \S+\/id_rsa instead$/m,
  ),
  ...credentialRows(
    "one node's own identity file missing",
    { 'nodekey.yaml': (t) => t.replace(`ssh: { port: ${sshPorts.md} }`, `ssh: { port: ${sshPorts.md}, identityFile: no_such_key }`) },
    /^rotate-certs: \S+\/nodekey\.yaml: workers\[0\]\.ssh\.identityFile: cannot read identity file \S+\/no_such_key: no such file$/m,
  ),
  ...credentialRows('encrypted key, no ROTATE_CERTS_SSH_PASSPHRASE', { 'enc.yaml': (t) => t.replace('identityFile: id_rsa', 'identityFile: id_encrypted') }, /^rotate-certs: \S+\/enc\.yaml: ssh\.identityFile: identity file \S+\/id_encrypted is encrypted: set ROTATE_CERTS_SSH_PASSPHRASE or run interactively$/m),
  ...credentialRows(
    'encrypted key, wrong ROTATE_CERTS_SSH_PASSPHRASE',
    { 'enc.yaml': (t) => t.replace('identityFile: id_rsa', 'identityFile: id_encrypted') },
    /^rotate-certs: \S+\/enc\.yaml: ssh\.identityFile: wrong passphrase for identity file \S+\/id_encrypted$/m,
    undefined,
    { ROTATE_CERTS_SSH_PASSPHRASE: 'wrong horse' },
  ),
  ...credentialRows(
    'no identityFile and no ssh-agent',
    { 'agentless.yaml': (t) => t.replace('  identityFile: id_rsa\n', '') },
    /^rotate-certs: \S+\/agentless\.yaml: ssh\.identityFile is not set and there is no ssh-agent \(SSH_AUTH_SOCK is not set\): name the private key in ssh\.identityFile, or start ssh-agent and add it$/m,
  ),
  ...credentialRows(
    'known_hosts file missing (hostKeyPolicy strict)',
    { 'nokh.yaml': (t) => t.replace('knownHostsFile: known_hosts', 'knownHostsFile: no_known_hosts') },
    /^rotate-certs: \S+\/nokh\.yaml: ssh\.knownHostsFile: \S+\/no_known_hosts does not exist, so with ssh\.hostKeyPolicy strict every node's host key is unknown: check and record them with rotate-certs trust --inventory \S+\/nokh\.yaml \(or set ssh\.hostKeyPolicy: accept-new\)$/m,
  ),
  ...credentialRows(
    'known_hosts unreadable (a folder)',
    { 'dirkh.yaml': (t) => t.replace('knownHostsFile: known_hosts', 'knownHostsFile: id_folder') },
    /^rotate-certs: \S+\/dirkh\.yaml: ssh\.knownHostsFile: cannot read \S+\/id_folder: it is a folder$/m,
  ),
  {
    name: 'control: known_hosts missing with hostKeyPolicy accept-new is no error (the nodes are read)',
    files: { 'acceptkh.yaml': (t) => t.replace('knownHostsFile: known_hosts', 'knownHostsFile: new_known_hosts\n  hostKeyPolicy: accept-new') },
    args: ['check', '-i', 'acceptkh.yaml', '-o', 'json'],
    code: 3,
    message: /"errors": \[/,
    stream: 'out',
    ssh: 'some',
    endpoints: 'some',
  },
  ...(['check', 'rotate'] as const).map(
    (cmd): Row => ({
      name: `jump host unreachable (${cmd}): one line, exit 69; the jump host is tried once and no node is contacted`,
      files: { 'jump.yaml': (t) => t.replace('  user: capv\n', `  user: capv\n  jumpHost: capv@${hosts.jump}:${jumpPort}\n`) },
      args: cmd === 'check' ? ['check', '-i', 'jump.yaml', '-o', 'json'] : rotate('jump.yaml'),
      code: 69,
      message: () => new RegExp(`^rotate-certs: \\S+\\/jump\\.yaml: ssh\\.jumpHost: cannot reach jump host capv@${hosts.jump.replace(/\./g, '\\.')}:${jumpPort}: `),
      jump: 1,
      oneLine: true,
    }),
  ),
];

describe('bad flags, plan files and credentials', () => {
  for (const row of rows) {
    it(row.name, async () => {
      rmSync(stateDir, { recursive: true, force: true });
      const base = readFileSync(path('inv.yaml'), 'utf8');
      for (const [f, content] of Object.entries(row.files ?? {})) {
        mkdirSync(join(dir, f, '..'), { recursive: true });
        writeFileSync(path(f), typeof content === 'function' ? content(base) : content);
      }
      row.setup?.();
      const r = await run(row.args, typeof row.env === 'function' ? row.env() : row.env);
      const text = row.stream === 'out' ? r.out : r.err;
      expect(text).toMatch(typeof row.message === 'function' ? row.message() : row.message);
      expect(r.code).toBe(row.code);
      if (row.code !== 70) expect(r.err, 'no stack trace').not.toMatch(/\n\s+at /);
      if (row.oneLine) expect(r.err.trim().split('\n'), 'one line').toHaveLength(1);
      if (row.oneLine) expect(r.out).toBe('');
      const want = (n: number | 'some' | undefined) => (n === 'some' ? expect.any(Number) : (n ?? 0));
      expect(r.contacted).toEqual({ ssh: want(row.ssh), endpoints: want(row.endpoints), jump: row.jump ?? 0 });
      if (row.ssh === 'some') expect(r.contacted.ssh).toBeGreaterThan(0);
      if (row.endpoints === 'some') expect(r.contacted.endpoints).toBeGreaterThan(0);
      if (!row.writes) expect(r.filesChanged, 'no file written').toBe(false);
      row.also?.(r);
    });
  }

  it('the passphrase itself is never printed', async () => {
    writeFileSync(path('enc.yaml'), inventory().replace('identityFile: id_rsa', 'identityFile: id_encrypted'));
    const r = await run(['check', '-i', 'enc.yaml', '-o', 'json'], { ROTATE_CERTS_SSH_PASSPHRASE: 'wrong horse' });
    expect(`${r.out}${r.err}`).not.toContain('wrong horse');
  });

  it('the listeners count: a check that reads the nodes is seen', async () => {
    const r = await run(['check', '-i', 'inv.yaml', '-o', 'json']);
    expect(r.code).toBe(3);
    expect(r.contacted.ssh).toBe(3);
    expect(r.contacted.endpoints).toBe(2);
  });
});
