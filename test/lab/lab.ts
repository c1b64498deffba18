/**
 * Emulated EKS Anywhere / kubeadm cluster for end-to-end tests ("lab").
 *
 * A node = a network namespace (veth on a per-lab bridge) + a private mount namespace whose /etc, /var
 * and /usr/local/bin are overlays on the host's (/root and /run are its own), held open by a `sleep` process. Inside: a real
 * sshd, certificates made by openssl, shims for kubeadm/etcdadm/sheltie/apiclient/ctr/systemctl, and
 * with services: a real TLS etcd cluster on etcd nodes and agent/kubelet-agent.mjs (static-pod watcher
 * + tiny kube-apiserver) on control-plane nodes. Requires root.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

export type LabRole = 'etcd' | 'control-plane' | 'worker';
export type LabOs = 'ubuntu' | 'rhel' | 'bottlerocket';
export const LAB_KUBERNETES_VERSIONS = ['1.26', '1.28', '1.29', '1.30'] as const;
export type LabKubernetesVersion = (typeof LAB_KUBERNETES_VERSIONS)[number];
/** The EKS Distro build each minor version's binaries report (`kubeadm version -o short`). */
const EKS_D_VERSION: Record<LabKubernetesVersion, string> = {
  '1.26': 'v1.26.10-eks-1-26-20',
  '1.28': 'v1.28.3-eks-1-28-9',
  '1.29': 'v1.29.6-eks-1-29-14',
  '1.30': 'v1.30.2-eks-1-30-10',
};
export interface LabNodeSpec {
  name: string;
  role: LabRole;
  os?: LabOs;
}
export interface LabOptions {
  id?: string;
  subnet?: number;
  etcd?: number;
  controlPlane?: number;
  workers?: number;
  nodes?: LabNodeSpec[];
  os?: LabOs;
  certs?: 'valid' | 'expiring' | 'expired';
  /**
   * The Kubernetes minor version of the nodes' kubeadm (default 1.28). kubeadm's behaviour differs by
   * version where rotate-certs relies on it: before 1.27 `kubeconfig user` requires --config; from 1.29
   * the first control-plane node holds super-admin.conf and `certs renew` knows it.
   */
  kubernetes?: LabKubernetesVersion;
  services?: boolean;
  dir?: string;
  /** Internal (CLI `up`): cleanupStaleLabs() leaves the lab alone after its creator exits. */
  persistent?: boolean;
  /**
   * The Cluster API versions the emulated API serves (default both; v1beta2 is the storage
   * version). Also the state file's `servedCapiVersions`, which a test may change while it runs.
   */
  capiVersions?: Array<'v1beta2' | 'v1beta1'>;
}
/** Files of an etcd client pair on the admin machine, as etcdctl's --cacert, --cert and --key take them. */
export interface EtcdClientPair {
  cacert: string;
  cert: string;
  key: string;
}
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}
export interface LabNode {
  name: string;
  role: LabRole;
  os: LabOs;
  host: string;
  netns: string;
  user: string;
  exec(script: string): Promise<ExecResult>;
  readFile(path: string): Promise<Buffer>;
  writeFile(path: string, data: string | Buffer, mode?: number): Promise<void>;
}
export interface Lab {
  id: string;
  dir: string;
  nodes: LabNode[];
  node(name: string): LabNode;
  inventoryPath: string;
  identityFile: string;
  knownHostsFile: string;
  caDir: string;
  /**
   * The etcd members (external etcd nodes, else the control planes' stacked etcd) as etcdctl's
   * --endpoints, and a client pair on the admin machine signed by the lab's etcd CA, valid whatever
   * the lab's certificates: enough to watch etcd's health from outside while a test runs.
   */
  etcdObserver: { endpoints: string[] } & EtcdClientPair;
  stopSshd(name: string): Promise<void>;
  startSshd(name: string): Promise<void>;
  regenerateHostKey(name: string): Promise<void>;
  /**
   * Ages a node's kubelet certificates in place, without restarting its kubelet: `client` writes a new
   * kubelet-client-<date>.pem (CN system:node:NAME, O system:nodes, signed by the cluster CA, 0600) and
   * repoints kubelet-client-current.pem at it; `serving` replaces kubelet.crt/kubelet.key with the
   * kubelet's self-signed bundle (leaf, then its one-off CA: rc_kubelet_serving). 'expired' ended a day ago, 'expiring' ends in two days.
   */
  expireKubelet(name: string, what: { client?: 'expired' | 'expiring'; serving?: 'expired' | 'expiring' }): Promise<void>;
  /**
   * Writes `parent/lab/` as `eksctl anywhere create cluster` would have left it for this cluster, and
   * returns its path: `lab-eks-a-cluster.yaml` (a vSphere Cluster `lab` with external etcd when the lab
   * has etcd nodes, one VSphereMachineConfig per role whose osFamily and users[0].name match the nodes,
   * and one worker node group per worker OS: md-0, md-1, ... in order of first appearance, as the
   * Machines' cluster.x-k8s.io/deployment-name labels say), `lab-eks-a-cluster.kubeconfig` (the first
   * control-plane node's admin.conf, 0600) and `eks-a-id_rsa` (the lab's SSH private key, 0600).
   * EKS Anywhere gives etcd and the control plane one machine config each: throws when either mixes OSes.
   */
  writeEksaFolder(parent: string): Promise<string>;
  /**
   * Leaves a running container named `pod` on a node that nothing manages any more, created
   * `ageSeconds` ago: what a static pod restarted too early leaves behind (a duplicate), or
   * Bottlerocket's stale etcd container. It is labelled as the static pod's (`<pod>-<node>` in
   * kube-system) unless `of` names another pod, such as a DaemonSet's `kube-vip-ds-7xk2p`. Returns its id.
   */
  leakContainer(name: string, pod: string, ageSeconds: number, of?: { pod: string; namespace?: string }): Promise<string>;
  /**
   * The node's kubelet forgets the containers it runs: they run on, unmanaged, and every static pod
   * is started anew beside them (a new kube-apiserver crash-loops on its port, held by the old one).
   * The duplicate state of aws/eks-anywhere PR 10360. Resolves once the new containers exist.
   */
  forgetContainers(name: string): Promise<void>;
  /** From now on, a stop of `pod`'s container on the node never finishes (a hung task), until `stuck` is false. */
  stickContainer(name: string, pod: string, stuck: boolean): Promise<void>;
  /**
   * Puts every node but `reachable` out of this machine's reach, as when the nodes sit behind a
   * bastion: an `unreachable` route per node address on the admin side (connections fail at once
   * with "host unreachable"); the nodes still reach each other. `unisolate` removes them.
   */
  isolate(reachable: string[]): Promise<void>;
  unisolate(): Promise<void>;
  down(): Promise<void>;
}

const LAB_SRC = dirname(fileURLToPath(import.meta.url));
const SHIM_DIR = join(LAB_SRC, 'shims');
const NODE_SETUP = join(LAB_SRC, 'node-setup.sh');
const AGENT = join(LAB_SRC, 'agent', 'kubelet-agent.mjs');
export const REGISTRY_DIR = join(tmpdir(), 'rc-lab-registry');
const PATH_ENV = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/**
 * SHLVL=1: bash reads ~/.bashrc when its input is a socket and it is not nested, and node's pipes are
 * sockets; the host's runs pyenv init here, which rehashes under a lock both test workers share.
 */
const BASE_ENV: NodeJS.ProcessEnv = { PATH: PATH_ENV, HOME: '/root', LANG: 'C', SHLVL: '1' };
const SETUP_CONCURRENCY = 6;
const HOLDER_CONCURRENCY = 16;
const t0 = () => Date.now();
const debug = (msg: string, since: number) => {
  if (process.env.LAB_DEBUG) process.stderr.write(`[lab] ${msg} ${Date.now() - since} ms\n`);
};

/** What lab.json and the registry hold: enough for another process (cli down, cleanup) to tear it down. */
interface LabState {
  id: string;
  dir: string;
  subnet: number;
  bridge: string;
  ownerPid: number;
  persistent: boolean;
  services: boolean;
  nodes: { name: string; role: LabRole; os: LabOs; host: string; netns: string; veth: string; holderPid: number; pids: number[] }[];
}

// ---------------------------------------------------------------- process helpers

interface RunOpts {
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}
interface RunResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

function run(cmd: string, args: string[], opts: RunOpts = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: '/', env: opts.env ?? BASE_ENV, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.on('error', () => undefined); // the child may exit without reading its input
    child.stdin.end(opts.input ?? '');
  });
}

async function must(cmd: string, args: string[], opts: RunOpts = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ').slice(0, 300)} failed (${r.code}): ${r.stderr.trim() || r.stdout.toString().trim()}`);
  return r.stdout.toString('utf8');
}

/** Starts a long-lived process in its own session, stdio to a file or nowhere; resolves with its pid. */
function spawnDetached(cmd: string, args: string[], env?: NodeJS.ProcessEnv): number {
  const child = spawn(cmd, args, { cwd: '/', detached: true, stdio: 'ignore', env: env ?? BASE_ENV });
  child.on('error', () => undefined);
  child.unref();
  if (!child.pid) throw new Error(`could not start ${cmd}`);
  return child.pid;
}

/** Alive and not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) [ZX]/s.test(stat);
  } catch {
    return false;
  }
}

async function poll<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined | false>, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** 'open' when something accepts, 'refused' when the port is closed, 'timeout' otherwise. */
export function probeTcp(host: string, port: number, timeoutMs = 500): Promise<'open' | 'refused' | 'timeout'> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const t = setTimeout(() => {
      s.destroy();
      resolve('timeout');
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve('open');
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      resolve(e.code === 'ECONNREFUSED' ? 'refused' : 'timeout');
    });
  });
}

async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let i = 0;
  let failure: unknown;
  const workers = Array.from({ length: Math.min(n, items.length) }, async () => {
    while (i < items.length && failure === undefined) {
      const item = items[i++]!;
      try {
        await fn(item);
      } catch (e) {
        failure ??= e;
      }
    }
  });
  await Promise.all(workers);
  if (failure !== undefined) throw failure;
}

// ---------------------------------------------------------------- teardown (shared by down, cli, cleanup)

async function netnsList(): Promise<string[]> {
  const r = await run('ip', ['netns', 'list']);
  return r.stdout
    .toString()
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter(Boolean);
}

async function linkList(): Promise<string[]> {
  const r = await run('ip', ['-o', 'link', 'show']);
  return r.stdout
    .toString()
    .split('\n')
    .map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1] ?? '')
    .filter(Boolean);
}

/** The admin side's unreachable routes (Lab.isolate) into the given subnets, or every lab's. */
async function removeIsolation(subnets?: number[]): Promise<void> {
  const r = await run('ip', ['-4', 'route', 'show', 'type', 'unreachable']);
  const routes = r.stdout
    .toString()
    .split('\n')
    .map((l) => /^unreachable (10\.201\.(\d+)\.\d+)\b/.exec(l.trim()))
    .filter((m): m is RegExpExecArray => m !== null && (subnets === undefined || subnets.includes(Number(m[2]))));
  if (routes.length) await run('ip', ['-force', '-batch', '-'], { input: routes.map((m) => `route del unreachable ${m[1]}\n`).join('') });
}

/** Kills every process of the lab's namespaces, removes netns + bridge + dir + registry entry. Idempotent. */
async function destroy(id: string, opts: { dir?: string; pids?: number[]; subnet?: number }): Promise<void> {
  const namespaces = (await netnsList()).filter((n) => n.startsWith(`rc-${id}-`));
  const pids = new Set(opts.pids ?? []);
  for (const ns of namespaces) {
    const r = await run('ip', ['netns', 'pids', ns]);
    for (const p of r.stdout.toString().split(/\s+/)) if (/^\d+$/.test(p)) pids.add(Number(p));
  }
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  await poll('lab processes to exit', 10_000, async () => [...pids].every((p) => !alive(p)), 20);
  if (namespaces.length) {
    await run('ip', ['-force', '-batch', '-'], { input: namespaces.map((n) => `netns delete ${n}\n`).join('') });
  }
  const bridge = `rcb-${id}`;
  if ((await linkList()).includes(bridge)) await run('ip', ['link', 'del', bridge]);
  if (opts.subnet) await removeIsolation([opts.subnet]);
  if (opts.dir) await rm(opts.dir, { recursive: true, force: true });
  await rm(join(REGISTRY_DIR, `${id}.json`), { force: true });
}

function readRegistry(): LabState[] {
  if (!existsSync(REGISTRY_DIR)) return [];
  const out: LabState[] = [];
  for (const f of readdirSync(REGISTRY_DIR)) {
    if (!f.endsWith('.json')) continue;
    try {
      out.push(JSON.parse(readFileSync(join(REGISTRY_DIR, f), 'utf8')) as LabState);
    } catch {
      out.push({ id: f.replace(/\.json$/, ''), dir: '', subnet: 0, bridge: '', ownerPid: 0, persistent: false, services: false, nodes: [] });
    }
  }
  return out;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function statePids(s: LabState): number[] {
  return s.nodes.flatMap((n) => [n.holderPid, ...n.pids]).filter((p) => p > 0);
}

/** Tear down one lab by its state dir (CLI `down --dir`). */
export async function destroyLabDir(dir: string): Promise<void> {
  const s = JSON.parse(await readFile(join(dir, 'lab.json'), 'utf8')) as LabState;
  await destroy(s.id, { dir: s.dir, pids: statePids(s) });
}

/** Every registered lab (CLI `status`). */
export function listLabs(): LabState[] {
  return readRegistry();
}

/**
 * Removes what crashed runs left: registered labs whose creating process is gone (unless made by
 * `cli up`), and netns/bridges/dirs with our prefixes that no registered lab owns. `all` removes every lab.
 */
export async function cleanupStaleLabs(opts: { all?: boolean } = {}): Promise<void> {
  const registry = readRegistry();
  const keep = new Set<string>();
  for (const s of registry) {
    if (!opts.all && (s.persistent || (s.ownerPid > 0 && pidAlive(s.ownerPid)))) {
      keep.add(s.id);
      continue;
    }
    await destroy(s.id, { dir: s.dir || undefined, pids: statePids(s), subnet: s.subnet });
  }
  const orphanIds = new Set<string>();
  for (const n of await netnsList()) {
    const m = /^rc-([a-z0-9]{1,6})-\d+$/.exec(n);
    if (m && !keep.has(m[1]!)) orphanIds.add(m[1]!);
  }
  for (const l of await linkList()) {
    const m = /^rcb-([a-z0-9]{1,6})$/.exec(l);
    if (m && !keep.has(m[1]!)) orphanIds.add(m[1]!);
  }
  for (const id of orphanIds) await destroy(id, {});
  // Routes of isolated labs nobody keeps any more.
  const kept = registry.filter((s) => keep.has(s.id)).map((s) => s.subnet);
  const all = (await run('ip', ['-4', 'route', 'show', 'type', 'unreachable'])).stdout.toString();
  const stale = [...new Set([...all.matchAll(/^unreachable 10\.201\.(\d+)\./gm)].map((m) => Number(m[1])))].filter((n) => !kept.includes(n));
  if (stale.length) await removeIsolation(stale);
  // State dirs of the default location whose lab is not kept (older than a minute: not one being created).
  for (const f of readdirSync(tmpdir())) {
    const m = /^rc-lab-([a-z0-9]{1,6})-/.exec(f) ?? /^rc-lab-tmp\.()/.exec(f); // lab dirs, shims' scratch dirs
    if (!m || keep.has(m[1]!)) continue;
    const p = join(tmpdir(), f);
    try {
      if (Date.now() - statSync(p).mtimeMs < 60_000 && !opts.all) continue;
    } catch {
      continue;
    }
    await rm(p, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- lab construction

interface NodeRt {
  spec: Required<LabNodeSpec>;
  idx: number;
  host: string;
  netns: string;
  veth: string;
  user: string;
  holderPid: number;
  sshdPid: number;
  svcPids: number[];
  hostKey: string;
}

function defaultSpecs(o: LabOptions): LabNodeSpec[] {
  const etcd = o.etcd ?? 3;
  const cp = o.controlPlane ?? 2;
  const workers = o.workers ?? 1;
  return [
    ...Array.from({ length: etcd }, (_, i) => ({ name: `lab-etcd-${i + 1}`, role: 'etcd' as const })),
    ...Array.from({ length: cp }, (_, i) => ({ name: `lab-cp-${i + 1}`, role: 'control-plane' as const })),
    ...Array.from({ length: workers }, (_, i) => ({ name: `lab-md-${i + 1}`, role: 'worker' as const })),
  ];
}

/** etcd .11+, control plane .21+, workers .31+ when they fit; else sequential from .11 (max 200 nodes). */
function addresses(specs: LabNodeSpec[], subnet: number): string[] {
  const count = (r: LabRole) => specs.filter((s) => s.role === r).length;
  const byRole = count('etcd') <= 10 && count('control-plane') <= 10 && specs.length <= 200;
  const next: Record<LabRole, number> = { etcd: 11, 'control-plane': 21, worker: 31 };
  return specs.map((s, i) => `10.201.${subnet}.${byRole ? next[s.role]++ : 11 + i}`);
}

const subnetsInUse = new Set<number>();

/**
 * A subnet is claimed by creating REGISTRY_DIR/subnet-N with O_EXCL, holding the claiming pid:
 * two test files starting labs side by side (two vitest workers, two processes) would otherwise
 * both find N free before either registered it, and two bridges with the same address would send
 * one lab's traffic into the other. A claim whose process is gone is stale and taken over.
 */
function claimSubnet(n: number): boolean {
  const file = join(REGISTRY_DIR, `subnet-${n}`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = Number(readFileSync(file, 'utf8').trim());
      if (owner > 0 && pidAlive(owner)) return false;
      rmSync(file, { force: true });
    }
  }
  return false;
}

function releaseSubnet(n: number): void {
  const file = join(REGISTRY_DIR, `subnet-${n}`);
  try {
    if (Number(readFileSync(file, 'utf8').trim()) === process.pid) rmSync(file, { force: true });
  } catch {
    // Not claimed by this process (a lab brought up by `cli up` and taken down by another).
  }
}

async function pickSubnet(requested?: number): Promise<number> {
  mkdirSync(REGISTRY_DIR, { recursive: true });
  const addrs = (await run('ip', ['-4', '-o', 'addr', 'show'])).stdout.toString();
  const taken = (n: number) => subnetsInUse.has(n) || addrs.includes(` 10.201.${n}.`) || readRegistry().some((s) => s.subnet === n);
  if (requested !== undefined) {
    if (!Number.isInteger(requested) || requested < 1 || requested > 250) throw new Error(`subnet must be 1..250, got ${requested}`);
    if (taken(requested) || !claimSubnet(requested)) throw new Error(`subnet 10.201.${requested}.0/24 is already used by another lab`);
    subnetsInUse.add(requested);
    return requested;
  }
  const start = (process.pid + randomBytes(1)[0]!) % 250;
  for (let k = 0; k < 250; k++) {
    const n = ((start + k) % 250) + 1;
    if (!taken(n) && claimSubnet(n)) {
      subnetsInUse.add(n);
      return n;
    }
  }
  throw new Error('no free 10.201.N.0/24 subnet');
}

async function pickId(requested?: string): Promise<string> {
  const used = new Set([...readRegistry().map((s) => s.id), ...(await netnsList()).map((n) => n.split('-')[1] ?? '')]);
  if (requested !== undefined) {
    if (!/^[a-z0-9]{1,6}$/.test(requested)) throw new Error(`lab id must match [a-z0-9]{1,6}, got ${requested}`);
    if (used.has(requested)) throw new Error(`lab id ${requested} is in use`);
    return requested;
  }
  for (;;) {
    const id = randomBytes(4).toString('hex').slice(0, 5).replace(/^\d/, 'l');
    if (!used.has(id)) return id;
  }
}

function nsenter(holderPid: number, args: string[]): [string, string[]] {
  return ['nsenter', ['-t', String(holderPid), '-m', '-n', '-u', ...args]];
}

export async function startLab(opts: LabOptions = {}): Promise<Lab> {
  const specs = (opts.nodes ?? defaultSpecs(opts)).map((s) => ({ ...s, os: s.os ?? opts.os ?? 'ubuntu' })) as Required<LabNodeSpec>[];
  if (specs.length === 0) throw new Error('a lab needs at least one node');
  const names = new Set(specs.map((s) => s.name));
  if (names.size !== specs.length) throw new Error('node names must be unique');
  if (specs.some((s) => !/^[a-z0-9][a-z0-9.-]*$/.test(s.name))) throw new Error('node names must be DNS-like');
  const certs = opts.certs ?? 'valid';
  const services = opts.services ?? true;
  const id = await pickId(opts.id);
  const subnet = await pickSubnet(opts.subnet);
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), `rc-lab-${id}-`)));
  mkdirSync(dir, { recursive: true });
  const bridge = `rcb-${id}`;
  const ips = addresses(specs, subnet);
  const nodes: NodeRt[] = specs.map((spec, i) => ({
    spec,
    idx: i + 1,
    host: ips[i]!,
    netns: `rc-${id}-${i + 1}`,
    veth: `rcv${id}-${i + 1}`,
    user: spec.os === 'bottlerocket' ? 'ec2-user' : 'capv',
    holderPid: 0,
    sshdPid: 0,
    svcPids: [],
    hostKey: '',
  }));
  const etcdNodes = nodes.filter((n) => n.spec.role === 'etcd');
  const cpNodes = nodes.filter((n) => n.spec.role === 'control-plane');

  const state = (): LabState => ({
    id,
    dir,
    subnet,
    bridge,
    ownerPid: process.pid,
    persistent: !!opts.persistent,
    services,
    nodes: nodes.map((n) => ({
      name: n.spec.name,
      role: n.spec.role,
      os: n.spec.os,
      host: n.host,
      netns: n.netns,
      veth: n.veth,
      holderPid: n.holderPid,
      pids: [n.sshdPid, ...n.svcPids].filter((p) => p > 0),
    })),
  });
  const saveState = async () => {
    const s = JSON.stringify(state(), null, 2);
    await writeFile(join(dir, 'lab.json'), s);
    await writeFile(join(REGISTRY_DIR, `${id}.json`), s);
  };
  mkdirSync(REGISTRY_DIR, { recursive: true });
  await saveState(); // registered before anything exists, so a crash from here on is cleanable

  let downed = false;
  const down = async () => {
    if (downed) return;
    downed = true;
    await destroy(id, { dir, pids: state().nodes.flatMap((n) => [n.holderPid, ...n.pids]).filter((p) => p > 0), subnet });
    subnetsInUse.delete(subnet);
    releaseSubnet(subnet);
  };

  const began = t0();
  try {
    const caDir = join(dir, 'ca');
    mkdirSync(join(dir, 'shared'), { recursive: true });
    mkdirSync(caDir, { recursive: true });
    await Promise.all([
      must('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `rc-lab-${id}`, '-f', join(dir, 'id_ed25519')]),
      makeCas(caDir),
      (async () => {
        // Bridge + one veth per node, in one ip process.
        const batch = [`link add ${bridge} type bridge`, `addr add 10.201.${subnet}.1/24 dev ${bridge}`, `link set ${bridge} up`];
        for (const n of nodes) batch.push(`netns add ${n.netns}`, `link add ${n.veth} type veth peer name eth0 netns ${n.netns}`, `link set ${n.veth} master ${bridge} up`);
        await must('ip', ['-batch', '-'], { input: batch.join('\n') + '\n' });
      })(),
    ]);
    await chmod(join(dir, 'id_ed25519'), 0o600);
    // The etcd client pair the control plane and the management-cluster secret share (first etcd node
    // has it too), and the observer's: an etcd client pair on the admin side that stays valid whatever
    // the lab's certificates, for tests that watch etcd's quorum (etcdObserver).
    await must('bash', [
      '-c',
      `. "${SHIM_DIR}/rc-lab-lib.sh"; trap rc_tmp_done EXIT; rc_issue "$1/etcd-ca.crt" "$1/etcd-ca.key" "$2/apiserver-etcd-client.crt" "$2/apiserver-etcd-client.key" /O=system:masters/CN=apiserver-etcd-client client '' ${certDates(certs)}
       rc_issue "$1/etcd-ca.crt" "$1/etcd-ca.key" "$1/etcd-observer.crt" "$1/etcd-observer.key" /CN=rc-lab-observer client ''`,
      '_',
      caDir,
      join(dir, 'shared'),
    ]);

    debug('keys, CAs, bridge', began);
    // Bounded: 200 namespaces mounting overlays at once made the first ones miss startHolder's 15 s.
    await pool(nodes, HOLDER_CONCURRENCY, (n) => startHolder(dir, n));
    debug('namespaces', began);
    await saveState();
    const etcdIps = etcdNodes.map((n) => n.host).join(' ');
    // Stacked etcd: one member per control-plane node (the manifest's --initial-cluster).
    const cpMembers = cpNodes.map((n) => `${n.spec.name}=https://${n.host}:2380`).join(',');
    const firstCpIp = cpNodes[0]?.host ?? '';
    await pool(nodes, SETUP_CONCURRENCY, async (n) => {
      const env = {
        PATH: PATH_ENV,
        HOME: '/root',
        LANG: 'C',
        NODE_NAME: n.spec.name,
        NODE_IP: n.host,
        NODE_PREFIX: '24',
        NODE_ROLE: n.spec.role,
        NODE_OS: n.spec.os,
        NODE_USER: n.user,
        LAB_DIR: dir,
        CA_DIR: caDir,
        LAB_CERTS: certs,
        K8S_VERSION: EKS_D_VERSION[opts.kubernetes ?? '1.28'],
        ETCD_IPS: etcdIps,
        FIRST_CP: n === cpNodes[0] ? '1' : '0',
        FIRST_CP_IP: firstCpIp,
        CP_MEMBERS: cpMembers,
        SHARED_ETCD_CLIENT: n === etcdNodes[0] ? '1' : '0',
        SHIM_DIR,
        CLUSTER: 'lab',
      };
      const [c, a] = nsenter(n.holderPid, ['bash', NODE_SETUP]);
      const out = await must(c, a, { env, timeoutMs: 120_000 });
      n.hostKey = out.trim().split('\n').pop() ?? '';
      if (!n.hostKey.startsWith('ssh-ed25519 ')) throw new Error(`node ${n.spec.name}: no host key from setup`);
    });
    debug('node setup', began);
    for (const n of nodes) n.sshdPid = startSshdProcess(n);
    await saveState();
    await writeInventory(dir, nodes);
    await writeFile(join(dir, 'known_hosts'), nodes.map((n) => `${n.host} ${n.hostKey}\n`).join(''));
    await seedApiState(dir, nodes, opts.capiVersions);
    // All sshds start together: 200 of them on a busy machine took longer than one's 10 s.
    const sshdWaitMs = Math.max(10_000, nodes.length * 150);
    await Promise.all(nodes.map((n) => waitPort(n.host, 22, 'open', `sshd of ${n.spec.name}`, sshdWaitMs)));

    debug('sshd', began);
    if (services) {
      if (etcdNodes.length) {
        const cluster = etcdNodes.map((n) => `${n.spec.name}=https://${n.host}:2380`).join(',');
        for (const n of etcdNodes) n.svcPids.push(startEtcd(n, cluster, id));
      }
      for (const n of cpNodes) n.svcPids.push(startAgent(n, dir));
      await saveState();
      // With expired certificates etcd peers cannot handshake and nothing gets healthy: don't wait for it.
      // Stacked: the members are the control planes' etcd static pods, started by their kubelets.
      const members = etcdNodes.length ? etcdNodes : cpNodes;
      if (members.length && certs !== 'expired') await waitEtcdHealthy(members.map((n) => n.host), observerPair(caDir));
      debug('etcd healthy', began);
      await Promise.all(cpNodes.map((n) => waitPort(n.host, 6443, 'open', `apiserver of ${n.spec.name}`, 20_000)));
      debug('apiservers', began);
    }
    await saveState();
  } catch (e) {
    try {
      await down();
    } catch {
      /* report the original failure */
    }
    throw e;
  }

  const byName = new Map(nodes.map((n) => [n.spec.name, n]));
  const rt = (name: string): NodeRt => {
    const n = byName.get(name);
    if (!n) throw new Error(`no lab node ${name}`);
    return n;
  };
  const labNodes: LabNode[] = nodes.map((n) => makeLabNode(n));
  const stopSshd = async (name: string) => {
    const n = rt(name);
    if (n.sshdPid && alive(n.sshdPid)) {
      process.kill(n.sshdPid, 'SIGTERM');
      const pid = n.sshdPid;
      await poll(`sshd of ${name} to exit`, 5000, async () => !alive(pid), 20);
    }
    n.sshdPid = 0;
    await waitPort(n.host, 22, 'refused', `sshd of ${name} to stop`);
    await saveState();
  };
  const startSshd = async (name: string) => {
    const n = rt(name);
    if (n.sshdPid && alive(n.sshdPid)) return;
    n.sshdPid = startSshdProcess(n);
    await saveState();
    await waitPort(n.host, 22, 'open', `sshd of ${name}`);
  };
  return {
    id,
    dir,
    nodes: labNodes,
    node: (name: string) => {
      const n = labNodes.find((x) => x.name === name);
      if (!n) throw new Error(`no lab node ${name}`);
      return n;
    },
    inventoryPath: join(dir, 'inventory.yaml'),
    identityFile: join(dir, 'id_ed25519'),
    knownHostsFile: join(dir, 'known_hosts'),
    caDir: join(dir, 'ca'),
    etcdObserver: { endpoints: (etcdNodes.length ? etcdNodes : cpNodes).map((n) => `https://${n.host}:2379`), ...observerPair(join(dir, 'ca')) },
    stopSshd,
    startSshd,
    regenerateHostKey: async (name: string) => {
      const n = rt(name);
      const [c, a] = nsenter(n.holderPid, ['bash', '-c', "rm -f /etc/ssh/ssh_host_ed25519_key* && ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key"]);
      await must(c, a);
      await stopSshd(name);
      await startSshd(name);
    },
    writeEksaFolder: async (parent: string) => {
      const folder = join(parent, 'lab');
      const cp = cpNodes[0];
      if (!cp) throw new Error('writeEksaFolder: the lab has no control-plane node (no admin.conf for the kubeconfig)');
      const api = 'anywhere.eks.amazonaws.com/v1alpha1';
      const pub = (await readFile(join(dir, 'id_ed25519.pub'), 'utf8')).trim();
      const machineConfig = (name: string, of: NodeRt[]) => {
        const oses = [...new Set(of.map((n) => n.spec.os))];
        if (oses.length > 1) throw new Error(`writeEksaFolder: ${of.map((n) => n.spec.name).join(', ')} mix ${oses.join(' and ')}, and EKS Anywhere gives them one machine config`);
        const os = oses[0]!;
        return {
          apiVersion: api,
          kind: 'VSphereMachineConfig',
          metadata: { name },
          spec: {
            datastore: 'lab-datastore',
            diskGiB: 25,
            folder: '/lab/vm/eks-a',
            memoryMiB: 8192,
            numCPUs: 2,
            osFamily: os === 'rhel' ? 'redhat' : os,
            resourcePool: '/lab/host/cluster/Resources',
            template: `/lab/vm/Templates/${os}-kube-v1-28`,
            users: [{ name: of[0]!.user, sshAuthorizedKeys: [pub] }],
          },
        };
      };
      const workers = nodes.filter((n) => n.spec.role === 'worker');
      const groups = [...eksaWorkerGroups(nodes)].map(([os, group]) => ({ group, of: workers.filter((n) => n.spec.os === os) }));
      const docs: unknown[] = [
        {
          apiVersion: api,
          kind: 'Cluster',
          metadata: { name: 'lab' },
          spec: {
            clusterNetwork: { cniConfig: { cilium: {} }, pods: { cidrBlocks: ['192.168.0.0/16'] }, services: { cidrBlocks: ['10.96.0.0/12'] } },
            // The virtual IP kube-vip would hold: unused in the lab, where admin.conf names the first node.
            controlPlaneConfiguration: { count: cpNodes.length, endpoint: { host: `10.201.${subnet}.254` }, machineGroupRef: { kind: 'VSphereMachineConfig', name: 'lab-cp' } },
            datacenterRef: { kind: 'VSphereDatacenterConfig', name: 'lab' },
            ...(etcdNodes.length ? { externalEtcdConfiguration: { count: etcdNodes.length, machineGroupRef: { kind: 'VSphereMachineConfig', name: 'lab-etcd' } } } : {}),
            kubernetesVersion: '1.28',
            managementCluster: { name: 'lab' },
            ...(groups.length
              ? { workerNodeGroupConfigurations: groups.map((g) => ({ count: g.of.length, machineGroupRef: { kind: 'VSphereMachineConfig', name: `lab-${g.group}` }, name: g.group })) }
              : {}),
          },
        },
        {
          apiVersion: api,
          kind: 'VSphereDatacenterConfig',
          metadata: { name: 'lab' },
          spec: { datacenter: 'lab', insecure: false, network: '/lab/network/rc-lab', server: 'vcenter.lab.invalid', thumbprint: '' },
        },
        ...(etcdNodes.length ? [machineConfig('lab-etcd', etcdNodes)] : []),
        machineConfig('lab-cp', cpNodes),
        ...groups.map((g) => machineConfig(`lab-${g.group}`, g.of)),
      ];
      mkdirSync(folder, { recursive: true });
      await writeFile(join(folder, 'lab-eks-a-cluster.yaml'), docs.map((d) => stringify(d)).join('---\n'));
      const adminConf = await makeLabNode(cp).readFile(cp.spec.os === 'bottlerocket' ? '/var/lib/kubeadm/admin.conf' : '/etc/kubernetes/admin.conf');
      for (const [file, data] of [
        ['lab-eks-a-cluster.kubeconfig', adminConf],
        ['eks-a-id_rsa', await readFile(join(dir, 'id_ed25519'))],
      ] as const) {
        await writeFile(join(folder, file), data, { mode: 0o600 });
        await chmod(join(folder, file), 0o600);
      }
      return folder;
    },
    isolate: async (reachable) => {
      for (const r of reachable) rt(r);
      const hidden = nodes.filter((n) => !reachable.includes(n.spec.name));
      await must('ip', ['-batch', '-'], { input: hidden.map((n) => `route add unreachable ${n.host}/32\n`).join('') });
    },
    unisolate: () => removeIsolation([subnet]),
    leakContainer: async (name, pod, ageSeconds, of) => {
      const image = pod === 'etcd' ? 'public.ecr.aws/eks-distro/etcd-io/etcd:v3.5.9-eks-1-28-9' : `public.ecr.aws/eks-distro/kubernetes/${pod}:v1.28.3-eks-1-28-9`;
      const created = String(BigInt(Date.now() - ageSeconds * 1000) * 1_000_000n);
      const script = '. /usr/local/bin/rc-lab-lib.sh; rc_container_new "$1" "$2" "$3" "$4" "$5"';
      const [c, a] = nsenter(rt(name).holderPid, ['bash', '-c', script, '_', pod, of?.pod ?? `${pod}-${name}`, image, created, of?.namespace ?? 'kube-system']);
      return (await must(c, a)).trim();
    },
    forgetContainers: async (name) => {
      const n = rt(name);
      const records = () => must(...nsenter(n.holderPid, ['bash', '-c', 'ls /var/lib/rotate-certs-lab/containers | wc -l']));
      const before = Number((await records()).trim());
      await must(...nsenter(n.holderPid, ['touch', '/var/lib/rotate-certs-lab/forget']));
      // The kubelet picks the file up on its next sync; the new containers are records beside the old.
      const deadline = Date.now() + 20_000;
      while (Number((await records()).trim()) <= before) {
        if (Date.now() > deadline) throw new Error(`forgetContainers: ${name}'s kubelet started no new containers`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    stickContainer: async (name, pod, stuck) => {
      const file = `/var/lib/rotate-certs-lab/stuck/${pod}`;
      await must(...nsenter(rt(name).holderPid, ['bash', '-c', stuck ? `mkdir -p /var/lib/rotate-certs-lab/stuck && touch ${file}` : `rm -f ${file}`]));
    },
    expireKubelet: async (name, what) => {
      const n = rt(name);
      if (!what.client && !what.serving) throw new Error('expireKubelet: say which certificate (client, serving)');
      const script = [
        'set -euo pipefail',
        '. /usr/local/bin/rc-lab-lib.sh',
        "trap 'rc_tmp_done' EXIT",
        'd=/var/lib/kubelet/pki',
        what.client
          ? `t=$(mktemp -d); rc_issue "$1/ca.crt" "$1/ca.key" "$t/c.crt" "$t/c.key" "/O=system:nodes/CN=system:node:$2" client '' ${certDates(what.client)}; rc_kubelet_client_from "$t/c.crt" "$t/c.key"; rm -rf "$t"`
          : '',
        what.serving
          ? `rc_kubelet_serving "$d" "$2" ${certDates(what.serving)}`
          : '',
      ].join('\n');
      const [c, a] = nsenter(n.holderPid, ['bash', '-c', script, '_', join(dir, 'ca'), n.spec.name, n.host]);
      await must(c, a);
    },
    down,
  };
}

function certDates(certs: 'valid' | 'expiring' | 'expired'): string {
  const d = { valid: ["'-1 hour'", "'+365 days'"], expiring: ["'-363 days'", "'+2 days'"], expired: ["'-400 days'", "'-1 day'"] }[certs];
  return `"$(rc_date ${d[0]})" "$(rc_date ${d[1]})"`;
}

/** The three CAs (10 years, EC P-256) and the service-account key pair. */
async function makeCas(caDir: string): Promise<void> {
  const ca = (name: string, cn: string) =>
    must('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '3650', '-subj', `/CN=${cn}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign',
      '-keyout', join(caDir, `${name}.key`), '-out', join(caDir, `${name}.crt`),
    ]);
  await Promise.all([
    ca('ca', 'kubernetes'),
    ca('etcd-ca', 'etcd-ca'),
    ca('front-proxy-ca', 'front-proxy-ca'),
    (async () => {
      await must('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', join(caDir, 'sa.key')]);
      await must('openssl', ['pkey', '-in', join(caDir, 'sa.key'), '-pubout', '-out', join(caDir, 'sa.pub')]);
    })(),
  ]);
  for (const f of readdirSync(caDir)) await chmod(join(caDir, f), f.endsWith('.key') ? 0o600 : 0o644);
}

/** The node's mount namespace: overlays over /etc /var /usr/local/bin, a fresh /run and /root, held by `sleep`. */
function startHolder(dir: string, n: NodeRt): Promise<void> {
  const nd = join(dir, 'nodes', n.spec.name);
  const layers = [
    ['etc', '/etc'],
    ['var', '/var'],
    ['bin', '/usr/local/bin'],
  ] as const;
  const script = [
    'set -e',
    ...layers.map(([k, target]) => `mkdir -p ${nd}/${k}.upper ${nd}/${k}.work && mount -t overlay overlay -o lowerdir=${target},upperdir=${nd}/${k}.upper,workdir=${nd}/${k}.work ${target}`),
    'mount -t tmpfs -o mode=0755 tmpfs /run',
    // Root's own home, as on a real node: the host's /root/.bashrc (here: pyenv init, which rehashes
    // its shims under a lock) ran in every root script, since bash reads ~/.bashrc when its input is a
    // socket (sshd's channel, node's pipes); with two test files at once those waits ran to minutes.
    'mount -t tmpfs -o mode=0700 tmpfs /root',
    'mkdir -p /run/sshd',
    `hostname ${n.spec.name}`,
    'echo ready',
    'exec sleep infinity',
  ].join('\n');
  return new Promise((resolve, reject) => {
    // Its own UTS namespace too: etcdadm names a member's certificates after the host's name.
    const child = spawn('ip', ['netns', 'exec', n.netns, 'unshare', '--mount', '--uts', '--propagation', 'private', 'bash', '-c', script], {
      cwd: '/',
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: BASE_ENV,
    });
    n.holderPid = child.pid ?? 0;
    let out = '';
    let err = '';
    const timer = setTimeout(() => finish(new Error(`node ${n.spec.name}: namespace setup timed out`)), 15_000);
    const finish = (e?: Error) => {
      clearTimeout(timer);
      child.stdout.destroy();
      child.stderr.destroy();
      child.unref();
      if (e) reject(e);
      else resolve();
    };
    child.on('error', (e) => finish(e));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready\n')) finish();
    });
    child.on('exit', (code) => finish(new Error(`node ${n.spec.name}: namespace setup exited ${code}: ${err.trim()}`)));
  });
}

function startSshdProcess(n: NodeRt): number {
  const [c, a] = nsenter(n.holderPid, ['/usr/sbin/sshd', '-D', '-E', '/var/log/sshd.log']);
  return spawnDetached(c, a);
}

function startEtcd(n: NodeRt, cluster: string, id: string): number {
  const pki = n.spec.os === 'bottlerocket' ? '/var/lib/etcd/pki' : '/etc/etcd/pki';
  const data = n.spec.os === 'bottlerocket' ? '/var/lib/etcd/data' : '/var/lib/etcd';
  const args = [
    `--name=${n.spec.name}`,
    `--data-dir=${data}`,
    `--listen-client-urls=https://${n.host}:2379,https://127.0.0.1:2379`,
    `--advertise-client-urls=https://${n.host}:2379`,
    `--listen-peer-urls=https://${n.host}:2380`,
    `--initial-advertise-peer-urls=https://${n.host}:2380`,
    `--initial-cluster=${cluster}`,
    '--initial-cluster-state=new',
    `--initial-cluster-token=rc-lab-${id}`,
    `--cert-file=${pki}/server.crt`,
    `--key-file=${pki}/server.key`,
    '--client-cert-auth=true',
    `--trusted-ca-file=${pki}/ca.crt`,
    `--peer-cert-file=${pki}/peer.crt`,
    `--peer-key-file=${pki}/peer.key`,
    '--peer-client-cert-auth=true',
    `--peer-trusted-ca-file=${pki}/ca.crt`,
    '--heartbeat-interval=100',
    '--election-timeout=1000',
    '--snapshot-count=10000',
    '--quota-backend-bytes=104857600',
  ];
  // bash only to open the log inside the node's /var; exec keeps the pid etcd's.
  const [c, a] = nsenter(n.holderPid, ['bash', '-c', 'exec /usr/bin/etcd "$@" >>/var/log/etcd.log 2>&1', 'etcd', ...args]);
  return spawnDetached(c, a);
}

function startAgent(n: NodeRt, dir: string): number {
  const [c, a] = nsenter(n.holderPid, ['bash', '-c', 'exec "$0" "$@" >>/var/log/kubelet-agent.log 2>&1', process.execPath, AGENT]);
  return spawnDetached(c, a, {
    PATH: PATH_ENV,
    HOME: '/root',
    LANG: 'C',
    LAB_NODE_NAME: n.spec.name,
    LAB_NODE_IP: n.host,
    LAB_DIR: dir,
    // Bottlerocket's staticPodPath holds files named after the pod, without an extension.
    LAB_MANIFEST_DIR: n.spec.os === 'bottlerocket' ? '/etc/kubernetes/static-pods' : '/etc/kubernetes/manifests',
    LAB_MANIFEST_EXT: n.spec.os === 'bottlerocket' ? '' : '.yaml',
    LAB_POLL_MS: process.env.LAB_POLL_MS ?? '250',
  });
}

async function waitPort(host: string, port: number, want: 'open' | 'refused', what: string, timeoutMs = 10_000): Promise<void> {
  await poll(what, timeoutMs, async () => (await probeTcp(host, port, 300)) === want, 30);
}

/** The admin side's etcd client pair, signed by the lab's etcd CA and valid whatever the lab's certificates. */
function observerPair(caDir: string): EtcdClientPair {
  return { cacert: join(caDir, 'etcd-ca.crt'), cert: join(caDir, 'etcd-observer.crt'), key: join(caDir, 'etcd-observer.key') };
}

/** `etcdctl endpoint health --cluster` from the root netns. */
async function waitEtcdHealthy(hosts: string[], pair: EtcdClientPair): Promise<void> {
  const args = [
    `--endpoints=${hosts.map((h) => `https://${h}:2379`).join(',')}`,
    `--cacert=${pair.cacert}`,
    `--cert=${pair.cert}`,
    `--key=${pair.key}`,
    '--dial-timeout=1s',
    '--command-timeout=2s',
    'endpoint',
    'health',
    '--cluster',
  ];
  await poll('etcd cluster health', 60_000, async () => (await run('etcdctl', args, { env: { PATH: PATH_ENV, ETCDCTL_API: '3' }, timeoutMs: 5000 })).code === 0, 100);
}

async function writeInventory(dir: string, nodes: NodeRt[]): Promise<void> {
  const entry = (n: NodeRt) => ({
    name: n.spec.name,
    host: n.host,
    ...(n.spec.os === 'bottlerocket' ? { os: 'bottlerocket', ssh: { user: 'ec2-user' } } : {}),
  });
  const majority = nodes.every((n) => n.spec.os === 'bottlerocket') ? 'bottlerocket' : (nodes.find((n) => n.spec.os !== 'bottlerocket')?.spec.os ?? 'ubuntu');
  const inv: Record<string, unknown> = {
    cluster: 'lab',
    ssh: { user: majority === 'bottlerocket' ? 'ec2-user' : 'capv', identityFile: 'id_ed25519', port: 22, knownHostsFile: 'known_hosts', hostKeyPolicy: 'strict' },
    os: majority,
  };
  const etcd = nodes.filter((n) => n.spec.role === 'etcd');
  if (etcd.length) inv.etcd = etcd.map(entry);
  inv.controlPlane = nodes.filter((n) => n.spec.role === 'control-plane').map(entry);
  inv.workers = nodes.filter((n) => n.spec.role === 'worker').map(entry);
  // Per-node os only where it differs from the top level (bottlerocket entries always say so).
  for (const list of [inv.etcd, inv.controlPlane, inv.workers] as (Record<string, unknown>[] | undefined)[]) {
    for (const e of list ?? []) {
      const n = nodes.find((x) => x.spec.name === e.name)!;
      if (n.spec.os !== majority && n.spec.os !== 'bottlerocket') e.os = n.spec.os;
    }
  }
  await writeFile(join(dir, 'inventory.yaml'), stringify(inv));
}

/**
 * The worker node group of each worker OS, as writeEksaFolder's spec names them: md-0 for the first OS
 * met, md-1 for the next... A cluster with one worker OS has md-0 only (MachineDeployment lab-md-0).
 */
function eksaWorkerGroups(nodes: NodeRt[]): Map<LabOs, string> {
  const groups = new Map<LabOs, string>();
  for (const n of nodes) if (n.spec.role === 'worker' && !groups.has(n.spec.os)) groups.set(n.spec.os, `md-${groups.size}`);
  return groups;
}

/** The management cluster's objects the agent serves: secret, KCP, Machines, Nodes. */
async function seedApiState(dir: string, nodes: NodeRt[], capiVersions?: Array<'v1beta2' | 'v1beta1'>): Promise<void> {
  const b64 = (f: string) => readFileSync(join(dir, 'shared', f)).toString('base64');
  const etcd = nodes.filter((n) => n.spec.role === 'etcd');
  const cp = nodes.filter((n) => n.spec.role === 'control-plane');
  const br = cp[0]?.spec.os === 'bottlerocket';
  const kpki = br ? '/var/lib/kubeadm/pki' : '/etc/kubernetes/pki';
  const now = new Date().toISOString();
  const workerGroups = eksaWorkerGroups(nodes);
  let rv = 1;
  const meta = (name: string, extra: Record<string, unknown> = {}) => ({ name, namespace: 'eksa-system', uid: randomBytes(8).toString('hex'), resourceVersion: String(rv++), creationTimestamp: now, ...extra });
  const state = {
    resourceVersion: 100,
    ...(capiVersions ? { servedCapiVersions: capiVersions } : {}),
    secrets: {
      // As etcdadm-controller makes it (controllers/certs.go, Cluster API util/secret): type
      // cluster.x-k8s.io/secret, which a Secret can never change.
      'eksa-system/lab-apiserver-etcd-client': {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: meta('lab-apiserver-etcd-client', { labels: { 'cluster.x-k8s.io/cluster-name': 'lab' } }),
        type: 'cluster.x-k8s.io/secret',
        data: { 'tls.crt': b64('apiserver-etcd-client.crt'), 'tls.key': b64('apiserver-etcd-client.key') },
      },
    } as Record<string, unknown>,
    kubeadmcontrolplanes: {
      // Stored as v1beta2 (Cluster API's storage version from v1.11); api.mjs converts for v1beta1.
      'eksa-system/lab': {
        apiVersion: 'controlplane.cluster.x-k8s.io/v1beta2',
        kind: 'KubeadmControlPlane',
        metadata: meta('lab', { labels: { 'cluster.x-k8s.io/cluster-name': 'lab' }, annotations: {} }),
        spec: {
          replicas: cp.length,
          version: 'v1.28.3-eks-1-28-9',
          kubeadmConfigSpec: {
            clusterConfiguration: {
              etcd: etcd.length
                ? { external: { caFile: `${kpki}/etcd/ca.crt`, certFile: `${kpki}/${br ? 'server' : 'apiserver'}-etcd-client.crt`, keyFile: `${kpki}/apiserver-etcd-client.key`, endpoints: etcd.map((n) => `https://${n.host}:2379`) } }
                : { local: { dataDir: '/var/lib/etcd' } },
            },
          },
        },
        status: { initialization: { controlPlaneInitialized: true }, replicas: cp.length, readyReplicas: cp.length, availableReplicas: cp.length, upToDateReplicas: cp.length },
      },
    } as Record<string, unknown>,
    machines: Object.fromEntries(
      nodes.map((n) => [
        `eksa-system/${n.spec.name}`,
        {
          apiVersion: 'cluster.x-k8s.io/v1beta2',
          kind: 'Machine',
          metadata: meta(n.spec.name, {
            labels: {
              'cluster.x-k8s.io/cluster-name': 'lab',
              ...(n.spec.role === 'control-plane' ? { 'cluster.x-k8s.io/control-plane': '' } : {}),
              ...(n.spec.role === 'etcd' ? { 'cluster.x-k8s.io/etcd-cluster': 'lab-etcd' } : {}),
              ...(n.spec.role === 'worker' ? { 'cluster.x-k8s.io/deployment-name': `lab-${workerGroups.get(n.spec.os)}` } : {}),
            },
          }),
          spec: { clusterName: 'lab', version: 'v1.28.3-eks-1-28-9' },
          status: {
            phase: 'Running',
            initialization: { bootstrapDataSecretCreated: true, infrastructureProvisioned: true },
            addresses: [{ type: 'ExternalIP', address: n.host }],
            ...(n.spec.role !== 'etcd' ? { nodeRef: { name: n.spec.name } } : {}),
          },
        },
      ]),
    ),
    ...(etcd.length ? etcdadmControllerState(meta) : {}),
    ...(etcd.length
      ? {
          // aws/etcdadm-controller api/v1beta1; eks-anywhere names it <cluster>-etcd (pkg/clusterapi/name.go EtcdClusterName).
          etcdadmclusters: {
            'eksa-system/lab-etcd': {
              apiVersion: 'etcdcluster.cluster.x-k8s.io/v1beta1',
              kind: 'EtcdadmCluster',
              metadata: meta('lab-etcd', { labels: { 'cluster.x-k8s.io/cluster-name': 'lab' }, annotations: {} }),
              spec: { replicas: etcd.length, etcdadmConfigSpec: { format: cp.some((n) => n.spec.os === 'bottlerocket') ? 'bottlerocket' : 'cloud-config' } },
              status: { ready: true, creationComplete: true, endpoints: etcd.map((n) => `https://${n.host}:2379`).join(',') },
            },
          } as Record<string, unknown>,
        }
      : {}),
    nodes: Object.fromEntries(
      nodes
        .filter((n) => n.spec.role !== 'etcd')
        .map((n) => [
          n.spec.name,
          {
            apiVersion: 'v1',
            kind: 'Node',
            metadata: {
              name: n.spec.name,
              uid: randomBytes(8).toString('hex'),
              resourceVersion: String(rv++),
              creationTimestamp: now,
              labels: { 'kubernetes.io/hostname': n.spec.name, ...(n.spec.role === 'control-plane' ? { 'node-role.kubernetes.io/control-plane': '' } : {}) },
            },
            status: {
              addresses: [
                { type: 'InternalIP', address: n.host },
                { type: 'Hostname', address: n.spec.name },
              ],
              conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: now, lastTransitionTime: now }],
              nodeInfo: { kubeletVersion: 'v1.28.3-eks-1-28-9', osImage: n.spec.os === 'bottlerocket' ? 'Bottlerocket OS 1.19.0' : n.spec.os === 'rhel' ? 'Red Hat Enterprise Linux 8.8' : 'Ubuntu 22.04.3 LTS' },
            },
          },
        ]),
    ),
  };
  await writeFile(join(dir, 'apiserver-state.json'), JSON.stringify(state, null, 2));
  await writeFile(join(dir, 'events.log'), '');
}

/**
 * etcdadm-controller as EKS Anywhere installs it on a management cluster with external etcd
 * (eks-anywhere pkg/clustermanager/internal/deployments.go): one replica, rolled out, with its
 * ReplicaSet. api.mjs emulates its rollouts.
 */
function etcdadmControllerState(meta: (name: string, extra?: Record<string, unknown>) => Record<string, unknown>) {
  const ns = 'etcdadm-controller-system';
  const name = 'etcdadm-controller-controller-manager';
  const labels = { 'control-plane': 'controller-manager' };
  const template = { metadata: { labels }, spec: { containers: [{ name: 'manager', image: 'public.ecr.aws/eks-anywhere/aws/etcdadm-controller:v1.0.24-eks-a-v0.21.0-eks-a-86', command: ['/manager'] }] } };
  const deployment = meta(name, { namespace: ns, generation: 1, labels, annotations: { 'deployment.kubernetes.io/revision': '1' } });
  const rsName = `${name}-5f7b9c4d6c`;
  const rsLabels = { ...labels, 'pod-template-hash': '5f7b9c4d6c' };
  const available = { replicas: 1, readyReplicas: 1, availableReplicas: 1 };
  return {
    deployments: {
      [`${ns}/${name}`]: {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: deployment,
        spec: { replicas: 1, selector: { matchLabels: labels }, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } }, progressDeadlineSeconds: 600, revisionHistoryLimit: 10, template },
        status: {
          observedGeneration: 1,
          updatedReplicas: 1,
          ...available,
          conditions: [
            { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'Deployment has minimum availability.' },
            { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable', message: `ReplicaSet "${rsName}" has successfully progressed.` },
          ],
        },
      },
    },
    replicasets: {
      [`${ns}/${rsName}`]: {
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        metadata: meta(rsName, { namespace: ns, generation: 1, labels: rsLabels, annotations: { 'deployment.kubernetes.io/revision': '1' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name, uid: deployment.uid, controller: true }] }),
        spec: { replicas: 1, selector: { matchLabels: rsLabels }, template: { ...template, metadata: { labels: rsLabels } } },
        status: { ...available, fullyLabeledReplicas: 1, observedGeneration: 1 },
      },
    },
  };
}

function makeLabNode(n: NodeRt): LabNode {
  const enter = (args: string[], input?: string | Buffer) => {
    const [c, a] = nsenter(n.holderPid, args);
    return run(c, a, { input });
  };
  return {
    name: n.spec.name,
    role: n.spec.role,
    os: n.spec.os,
    host: n.host,
    netns: n.netns,
    user: n.user,
    exec: async (script: string) => {
      const r = await enter(['bash', '-c', script]);
      return { code: r.code, stdout: r.stdout.toString('utf8'), stderr: r.stderr };
    },
    readFile: async (path: string) => {
      const r = await enter(['cat', '--', path]);
      if (r.code !== 0) throw new Error(`${n.spec.name}:${path}: ${r.stderr.trim()}`);
      return r.stdout;
    },
    writeFile: async (path: string, data: string | Buffer, mode?: number) => {
      const chmodPart = mode === undefined ? '' : `chmod ${mode.toString(8)} "$1"`;
      const r = await enter(['bash', '-c', `set -e; mkdir -p "$(dirname "$1")"; cat > "$1"; ${chmodPart}`, '_', path], data);
      if (r.code !== 0) throw new Error(`${n.spec.name}:${path}: ${r.stderr.trim()}`);
    },
  };
}
