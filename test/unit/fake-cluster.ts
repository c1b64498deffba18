/**
 * Test helper: a cluster that exists only in memory, for whole rotations through the real engine,
 * runbooks and OS profiles, with no namespaces, SSH or waiting.
 *
 * Each node keeps a small model: its folders (a PKI folder, the kubeconfigs, the kubelet's files)
 * each old, cleared or renewed, its backups, its static pods running or stopped. A session knows
 * which OS-profile command a script is by matching it against every command template of the node's
 * profile (variables and secrets as wildcards, which also hands the fake the values: the folder, the
 * backup path, the installed pair), and changes the model as the real script would change the node,
 * refusing where the real one refuses (a backup that exists and differs, a clear without a backup).
 * Actions that need an endpoint or an API get fake runners that read the model; the others run for
 * real over the fake sessions (static pods, the installed etcd client pair).
 *
 * Faults strike while a node is in a given step, as the reporter says: the step fails, its
 * connection breaks, its command never returns (the process died there), the process dies just
 * before the step starts, or just after it took effect but before the journal heard.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createHash, webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { RUNNERS, type ActionRunner } from '../../src/apply/actions.js';
import { Applier, type ApplyDeps } from '../../src/apply/engine.js';
import { DEFAULT_TIMEOUTS, GateError } from '../../src/apply/gates.js';
import { Journal } from '../../src/state/journal.js';
import type { Reporter } from '../../src/apply/reporter.js';
import type { Inventory, InventoryNode, OsName, Role } from '../../src/inventory/types.js';
import { compilePlan } from '../../src/plan/compile.js';
import type { Plan, PlanNode } from '../../src/plan/types.js';
import { ProfileSet, type OsProfile } from '../../src/profiles/profile.js';
import { ACTIONS, type Action } from '../../src/runbook/actions.js';
import { loadRotationRunbooks } from '../../src/runbook/runbook.js';
import type { Connector, ExecResult, NodeSession } from '../../src/transport/session.js';

export type State = 'old' | 'cleared' | 'renewed' | 'embedded' | 'pem';
export interface Pair {
  cert: string;
  key: string;
}
/** A folder or file as the model sees it: its state, and the etcd client pair it holds, if any. */
interface Entry {
  state: State;
  pair?: Pair;
}

/** What a test asserts on: a node as it is now. */
export interface NodeView {
  /** The etcd PKI folder (etcd nodes) or the kubeadm one (control planes). */
  pki?: State;
  kubeconfigs?: State;
  /** Which etcd client pair the kube-apiserver would read. */
  etcdClient?: 'old' | 'renewed' | 'other';
  pods?: 'running' | 'stopped';
  kubelet?: State;
  kubeletConf?: State;
  backups: Record<string, State>;
  /** Profile commands it ran, in order ('?' for a script that is none). */
  history: string[];
}

export type FaultKind = 'fail' | 'drop' | 'hang' | 'die' | 'die-after';
export interface Fault {
  node: string;
  step: string;
  /** Needed when the node has that step id in two phases. */
  phase?: string;
  /**
   * fail: the step fails (its command exits 1, its gate refuses). drop: the SSH connection breaks
   * while its command runs. hang: its command never returns, as when the process dies while it
   * runs. die: the process dies just before the step starts. die-after: the step's command or
   * action runs to its end (what it changes is changed), then the process dies before step-done.
   */
  kind: FaultKind;
}

/** Thrown where the process "dies": nothing after it is journaled. */
export class ProcessDied extends Error {}

/**
 * One process of the tool. Once it has died, its commands and gates never return and its journal
 * writes nothing more, whatever its other flows (a parallel worker) were doing.
 */
interface Process {
  dead: boolean;
}

/** The real Journal, but one that a dead process can no longer write to. */
class ProcessJournal extends Journal {
  constructor(
    stateDir: string,
    cluster: string,
    private readonly process: Process,
  ) {
    super(stateDir, cluster);
  }

  override append(entry: Parameters<Journal['append']>[0]): void {
    if (this.process.dead) throw new ProcessDied('a dead process writes nothing');
    super.append(entry);
  }
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

// ---- a real certificate and key, so the engine's pair check and the installed-files gate judge real text

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

async function makePair(cn: string): Promise<Pair> {
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const now = Date.parse('2026-01-01T00:00:00Z');
  const cert = await x509.X509CertificateGenerator.createSelfSigned({ serialNumber: '01', name: `CN=${cn}`, notBefore: new Date(now), notAfter: new Date(now + 365 * 86_400_000), keys, signingAlgorithm: alg });
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const key = `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----`;
  return { cert: cert.toString('pem'), key };
}

let pairs: Promise<{ old: Pair; renewed: Pair }> | undefined;
/** Made once per test file: generating keys is the slow part. */
function etcdClientPairs(): Promise<{ old: Pair; renewed: Pair }> {
  pairs ??= Promise.all([makePair('apiserver-etcd-client-old'), makePair('apiserver-etcd-client')]).then(([old, renewed]) => ({ old, renewed }));
  return pairs;
}

// ---- which profile command a script is

interface CommandPattern {
  key: string;
  re: RegExp;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Every command of a profile as a regular expression: {{var}} matches one line's worth, {{secret:x}} anything. */
function patternsOf(profile: OsProfile): CommandPattern[] {
  return Object.entries(profile.commands).map(([key, template]) => {
    const seen = new Set<string>();
    let src = '';
    let last = 0;
    for (const m of template.matchAll(/\{\{(secret:)?([A-Za-z][A-Za-z0-9]*)\}\}/g)) {
      src += escapeRe(template.slice(last, m.index));
      const group = `${m[1] ? 's' : 'v'}_${m[2]}`;
      src += seen.has(group) ? `\\k<${group}>` : `(?<${group}>${m[1] ? '[\\s\\S]*?' : '[^\\n]*?'})`;
      seen.add(group);
      last = m.index + m[0].length;
    }
    return { key, re: new RegExp(`^${src}${escapeRe(template.slice(last))}$`) };
  });
}

/** shq's quoting undone. */
const unquote = (v: string) => (v.startsWith("'") && v.endsWith("'") ? v.slice(1, -1).replace(/'\\''/g, "'") : v);

interface Recognised {
  key: string;
  vars: Record<string, string>;
  secrets: Record<string, string>;
}

// ---- the nodes

const STATIC_PODS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-vip'];

class FakeNode {
  readonly files = new Map<string, Entry>();
  pods: 'running' | 'stopped' = 'running';
  /** Bumped at each start of the static pods: new containers. */
  podGeneration = 1;
  readonly history: string[] = [];
  /** A fault of the model itself: etcdadm exits 0 and renews nothing. */
  etcdadmRenews = true;

  constructor(
    readonly inv: InventoryNode,
    readonly vars: Record<string, string>,
    pairs: { old: Pair },
  ) {
    const role = inv.role;
    if (role === 'etcd') this.files.set(vars.etcdPki as string, { state: 'old', pair: pairs.old });
    if (role === 'control-plane') {
      this.files.set(vars.kubePki as string, { state: 'old', pair: pairs.old });
      this.files.set(vars.kubeconfigDir as string, { state: 'old' });
    }
    if (role !== 'etcd') {
      this.files.set(vars.kubeletPki as string, { state: 'old' });
      this.files.set(vars.kubeletConf as string, { state: 'old' });
    }
  }

  get(var_: string): Entry | undefined {
    return this.files.get(this.vars[var_] as string);
  }
}

const ok = (stdout = ''): ExecResult => ({ code: 0, stdout: `${stdout}\n`, stderr: '' });
const refuse = (stderr: string): ExecResult => ({ code: 1, stdout: '', stderr: `${stderr}\n` });
const same = (a: Entry | undefined, b: Entry | undefined) => a !== undefined && b !== undefined && a.state === b.state && a.pair?.cert === b.pair?.cert;
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

export interface ClusterOptions {
  /** Whose kubelets are due; the workers by default. */
  kubeletDue?: string[];
  os?: Partial<Record<string, OsName>>;
}

// Read once per test file: every cluster uses the shipped runbooks and profiles as they are.
const PROFILES = new ProfileSet();
let RUNBOOKS: ReturnType<typeof loadRotationRunbooks> | undefined;
const PATTERNS = new Map<OsName, CommandPattern[]>();

export class FakeCluster {
  readonly nodes = new Map<string, FakeNode>();
  readonly profiles = PROFILES;
  readonly inventory: Inventory;
  readonly plan: Plan;
  readonly stateDir = mkdtempSync(join(tmpdir(), 'rc-fake-'));
  /** The management cluster's copy of the etcd client pair, and etcdadm-controller. */
  readonly management = { secret: 'old' as 'old' | 'renewed' | 'other', controller: 'running' as 'running' | 'restarted' };
  faults: Fault[] = [];
  /** Where each node is, as the reporter last heard: phase and step. */
  private readonly at = new Map<string, { phase?: string; step?: string }>();
  /** Steps each node finished, by phase, in this process (for stopping between two steps). */
  readonly finished = new Map<string, string[]>();
  /** Resolved when a fault made the process die (hang or die). */
  died!: Promise<void>;
  private markDied!: () => void;
  /** The process the last applier() started. */
  private process: Process = { dead: false };
  readonly lines: string[] = [];
  /** The fake clock: `now` and `sleep` only move this number. */
  t = Date.parse('2026-12-01T00:00:00Z');

  private constructor(
    private readonly pairs: { old: Pair; renewed: Pair },
    opts: ClusterOptions,
  ) {
    this.resetDied();
    const node = (name: string, role: Role, last: number): InventoryNode =>
      ({ name, host: `10.0.0.${last}`, role, os: opts.os?.[name] ?? 'ubuntu', ssh: { user: 'capv', port: 22 } }) as InventoryNode;
    const nodes = [node('etcd-1', 'etcd', 11), node('etcd-2', 'etcd', 12), node('etcd-3', 'etcd', 13), node('cp-1', 'control-plane', 21), node('cp-2', 'control-plane', 22), node('w-1', 'worker', 31), node('w-2', 'worker', 32)];
    this.inventory = { cluster: 'lab', file: join(this.stateDir, 'inventory.yaml'), text: '', externalEtcd: true, nodes };
    this.plan = compilePlan({
      inventory: this.inventory,
      inventoryDigest: 'fake',
      runbooks: (RUNBOOKS ??= loadRotationRunbooks()),
      profiles: this.profiles,
      runId: '20261201T000000Z',
      createdAt: '2026-12-01T00:00:00.000Z',
      scope: {},
      kubeletDue: opts.kubeletDue ?? ['w-1', 'w-2'],
    });
    for (const n of nodes) {
      const profile = this.profiles.get(n.os);
      this.nodes.set(n.name, new FakeNode(n, { ...profile.vars, nodeName: n.name, host: n.host, runId: this.plan.runId }, pairs));
    }
  }

  private static readonly made: string[] = [];

  static async create(opts: ClusterOptions = {}): Promise<FakeCluster> {
    const c = new FakeCluster(await etcdClientPairs(), opts);
    FakeCluster.made.push(c.stateDir);
    return c;
  }

  /** Removes the state folders (journals) of every cluster made so far. */
  static removeAll(): void {
    for (const dir of FakeCluster.made.splice(0)) rmSync(dir, { recursive: true, force: true });
  }

  private resetDied(): void {
    const process = this.process;
    this.died = new Promise((resolve) => {
      this.markDied = () => {
        process.dead = true;
        resolve();
      };
    });
  }

  node(name: string): FakeNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no fake node ${name}`);
    return n;
  }

  /** A plan node by phase and name. */
  planNode(phase: string, name: string): PlanNode {
    const n = this.plan.phases.find((p) => p.phase === phase)?.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no ${name} in phase ${phase}`);
    return n;
  }

  view(name: string): NodeView {
    const n = this.node(name);
    const state = (v: string) => n.get(v)?.state;
    const role = n.inv.role;
    const pkiVar = role === 'etcd' ? 'etcdPki' : 'kubePki';
    const known = new Set(Object.values(n.vars));
    const backups = Object.fromEntries([...n.files].filter(([path]) => !known.has(path)).map(([path, e]) => [path, e.state]));
    const pair = n.get('kubePki')?.pair;
    return {
      ...(role !== 'worker' ? { pki: state(pkiVar) } : {}),
      ...(role === 'control-plane'
        ? { kubeconfigs: state('kubeconfigDir'), etcdClient: pair === this.pairs.old ? 'old' : pair?.cert === this.pairs.renewed.cert ? 'renewed' : 'other', pods: n.pods }
        : {}),
      ...(role !== 'etcd' ? { kubelet: state('kubeletPki'), kubeletConf: state('kubeletConf') } : {}),
      backups,
      history: [...n.history],
    } as NodeView;
  }

  /** Whether the node is as it was before the run: nothing renewed, nothing half-done (backups aside). */
  asBefore(name: string): boolean {
    const { backups: _b, history: _h, ...now } = this.view(name);
    return Object.values(now).every((v) => v === 'old' || v === 'running');
  }

  /** Every node renewed where the plan renews it, and nothing half-done. */
  renewedEverywhere(): boolean {
    const due = new Set(this.plan.phases.find((p) => p.phase === 'kubelet')?.nodes.map((n) => n.name) ?? []);
    return [...this.nodes.keys()].every((name) => {
      const v = this.view(name);
      const kubeletOk = !due.has(name) || (v.kubelet === 'renewed' && v.kubeletConf === 'pem');
      if (v.pki !== undefined && v.pki !== 'renewed') return false;
      if (v.kubeconfigs !== undefined && (v.kubeconfigs !== 'renewed' || v.etcdClient !== 'renewed' || v.pods !== 'running')) return false;
      return kubeletOk;
    }) && this.management.secret === 'renewed' && this.management.controller === 'restarted';
  }

  // ---- faults

  private strike(node: string, when: 'start' | 'run'): FaultKind | undefined {
    const at = this.at.get(node);
    const i = this.faults.findIndex((f) => f.node === node && f.step === at?.step && (f.phase === undefined || f.phase === at?.phase) && (f.kind === 'die') === (when === 'start'));
    if (i < 0) return undefined;
    const [fault] = this.faults.splice(i, 1);
    return fault!.kind;
  }

  /** A command or gate that never returns: the process died while it ran. */
  private hang<T>(): Promise<T> {
    this.markDied();
    return new Promise<T>(() => {});
  }

  // ---- the reporter: where each node is; silent

  readonly reporter: Reporter = {
    phase: (title) => this.lines.push(`== ${title}`),
    nodeStart: (phase, node) => {
      this.at.set(node, { phase });
    },
    nodeEnd: (phase, node, outcome, message) => this.lines.push(`${phase} ${node}: ${outcome}${message ? ` ${message}` : ''}`),
    stepStart: (node, step) => {
      this.at.set(node, { ...this.at.get(node), step });
      this.lines.push(`${node} ${step}`);
      if (this.strike(node, 'start') === 'die') {
        this.markDied();
        throw new ProcessDied(`the process died before ${node} ${step}`);
      }
    },
    stepDone: (node, step) => {
      const key = `${this.at.get(node)?.phase}/${node}`;
      this.finished.set(key, [...(this.finished.get(key) ?? []), step]);
      this.lines.push(`${node} ${step}: ok`);
    },
    stepFailed: (node, step, message) => this.lines.push(`${node} ${step}: FAILED ${message}`),
    info: (m) => this.lines.push(m),
    warn: (m) => this.lines.push(`WARNING ${m}`),
    note: (m) => this.lines.push(`NOTE ${m}`),
  };

  // ---- sessions

  private recognise(os: OsName, script: string): Recognised | undefined {
    let patterns = PATTERNS.get(os);
    if (!patterns) {
      patterns = patternsOf(this.profiles.get(os));
      PATTERNS.set(os, patterns);
    }
    const hits = patterns.flatMap((p) => {
      const m = p.re.exec(script);
      return m ? [{ key: p.key, groups: m.groups ?? {} }] : [];
    });
    if (hits.length > 1) throw new Error(`the fake cannot tell ${hits.map((h) => h.key).join(' from ')} apart`);
    const [hit] = hits;
    if (!hit) return undefined;
    const vars: Record<string, string> = {};
    const secrets: Record<string, string> = {};
    for (const [g, v] of Object.entries(hit.groups)) {
      if (g.startsWith('v_')) vars[g.slice(2)] = unquote(v);
      else secrets[g.slice(2)] = v;
    }
    return { key: hit.key, vars, secrets };
  }

  /** A connector over the nodes for one process: once it died, nothing it sends returns. */
  connector(process: Process = this.process): Connector {
    const gone = <T>() => new Promise<T>(() => {});
    return {
      connect: async (inv) => {
        await tick();
        if (process.dead) return gone();
        const session: NodeSession = {
          node: inv,
          exec: async (_command, opts) => {
            // Another node's step may go on meanwhile (parallel workers).
            await tick();
            if (process.dead) return gone();
            const node = this.node(inv.name);
            const fault = this.strike(inv.name, 'run');
            if (fault === 'hang') return this.hang();
            if (fault === 'drop') throw new Error(`${inv.name}: connection reset by peer`);
            const cmd = this.recognise(node.inv.os, opts?.stdin ?? '');
            node.history.push(cmd?.key ?? '?');
            if (fault === 'fail') return refuse(`injected fault in ${cmd?.key ?? 'a script'}`);
            if (fault === 'die-after') {
              if (cmd) this.run(node, cmd);
              return this.hang();
            }
            return cmd ? this.run(node, cmd) : refuse('the fake node does not know this script');
          },
          close: async () => undefined,
        };
        return session;
      },
    };
  }

  /** What each profile command does to the model; as the real script, it refuses rather than overwrite or delete blindly. */
  private run(node: FakeNode, cmd: Recognised): ExecResult {
    const { vars: v, secrets } = cmd;
    const f = node.files;
    const copy = (from: string, to: string, what: string): ExecResult => {
      const src = f.get(from);
      if (!src) return refuse(`${from} does not exist`);
      const dst = f.get(to);
      if (dst) return same(src, dst) ? ok(`backup ${to} already exists and matches`) : refuse(`${to} already exists and differs from ${from}: refusing to overwrite an earlier backup`);
      f.set(to, { ...src });
      return ok(`backed up ${what}`);
    };
    const restore = (to: string, from: string): ExecResult => {
      const b = f.get(from);
      if (!b) return refuse(`no backup at ${from}`);
      f.set(to, { ...b });
      return ok(`restored ${to} from ${from}`);
    };
    const set = (path: string, state: State, pair?: Pair) => {
      const e = f.get(path);
      if (!e) return refuse(`${path} does not exist`);
      f.set(path, { ...e, state, ...(pair ? { pair } : {}) });
      return ok();
    };
    const etcdPki = node.vars.etcdPki as string;
    const kubePki = node.vars.kubePki as string;
    const kubeletPki = node.vars.kubeletPki as string;
    const kubeletConf = node.vars.kubeletConf as string;
    switch (cmd.key) {
      case 'backupDir':
      case 'backupKubeconfigs':
        return copy(v.dir as string, v.backup as string, v.dir as string);
      case 'backupFile':
        return copy(v.file as string, v.backup as string, v.file as string);
      case 'restoreDir':
      case 'restoreKubeconfigs':
        return restore(v.dir as string, v.backup as string);
      case 'restoreFile':
        return restore(v.file as string, v.backup as string);
      case 'clearPkiKeepCa':
        if (!f.has(v.backup as string)) return refuse(`no backup at ${v.backup}: refusing to delete anything in ${v.dir}`);
        return set(v.dir as string, 'cleared');
      case 'etcdadmCertificates': {
        // etcdadm makes only what is missing.
        const e = f.get(etcdPki);
        if (e?.state === 'cleared' && node.etcdadmRenews) f.set(etcdPki, { state: 'renewed', pair: this.pairs.renewed });
        return ok();
      }
      case 'removeStaleEtcd':
        return ok('etcd runs as a systemd service: no containers to check');
      case 'etcdHealth': {
        const down = [...this.nodes.values()].filter((n) => n.inv.role === 'etcd' && n.get('etcdPki')?.state === 'cleared');
        return down.length > 0 ? refuse(`${down.map((n) => n.inv.name).join(', ')} unhealthy: no certificates`) : ok('every member is healthy');
      }
      case 'readEtcdClientPair': {
        const e = f.get(v.dir as string);
        if (!e?.pair || e.state === 'cleared') return refuse(`cat: ${v.dir}/apiserver-etcd-client.crt: No such file or directory`);
        return ok(`${e.pair.cert}${e.pair.key}`);
      }
      case 'kubeadmRenewByName': {
        const pki = f.get(kubePki);
        if (!pki) return refuse(`${kubePki} does not exist`);
        f.set(kubePki, { ...pki, state: 'renewed' });
        return set(node.vars.kubeconfigDir as string, 'renewed');
      }
      case 'installEtcdClientPair': {
        const pki = f.get(kubePki);
        if (!pki) return refuse(`${kubePki} does not exist`);
        f.set(kubePki, { ...pki, pair: { cert: secrets.etcdClientCert as string, key: secrets.etcdClientKey as string } });
        return ok('installed the pair');
      }
      case 'etcdClientPairFiles': {
        const pair = f.get(kubePki)?.pair;
        if (!pair) return refuse('no pair');
        return ok(`${kubePki}/apiserver-etcd-client.crt ${sha256(`${pair.cert}\n`)} 644\n${kubePki}/apiserver-etcd-client.key ${sha256(`${pair.key}\n`)} 600`);
      }
      case 'staticPods':
        return ok(this.staticPods(node));
      case 'staticPodsStop':
        node.pods = 'stopped';
        return ok(`moved ${STATIC_PODS.length} manifests`);
      case 'staticPodsStart':
        if (node.pods === 'stopped') {
          node.pods = 'running';
          node.podGeneration++;
        }
        return ok('manifests back');
      case 'removeContainer':
        return ok();
      case 'installKubeletClient':
        if (!f.has(v.backup as string)) return refuse(`no backup at ${v.backup}: refusing to remove the kubelet's certificates`);
        // Bottlerocket: the new pair goes straight into the PKI folder, unused until the restart.
        if (secrets.kubeletClientCert) return set(kubeletPki, 'embedded');
        // Elsewhere: the kubelet's files go, and its kubeconfig embeds the new pair.
        set(kubeletPki, 'cleared');
        return set(kubeletConf, 'embedded');
      case 'kubeletRestart': {
        // The kubelet writes kubelet-client-current.pem from an embedded pair when it has none.
        const pki = f.get(kubeletPki)?.state;
        if (pki === 'embedded' || (pki === 'cleared' && f.get(kubeletConf)?.state === 'embedded')) set(kubeletPki, 'renewed');
        return ok('active');
      }
      case 'kubeletConfUsePem':
        if (f.get(kubeletPki)?.state !== 'renewed') return refuse(`${kubeletPki}/kubelet-client-current.pem is missing`);
        return set(kubeletConf, 'pem');
      default:
        return refuse(`the fake node does not run ${cmd.key}`);
    }
  }

  /** The profile's staticPods output: the pods (in place or stashed) and crictl's containers, labelled as the kubelet labels them. */
  private staticPods(node: FakeNode): string {
    const running = node.pods === 'running';
    const containers = STATIC_PODS.map((pod) => ({
      id: sha256(`${node.inv.name}/${pod}/${node.podGeneration}`),
      metadata: { name: pod, attempt: 0 },
      labels: { 'io.kubernetes.container.name': pod, 'io.kubernetes.pod.name': `${pod}-${node.inv.name}`, 'io.kubernetes.pod.namespace': 'kube-system' },
      state: running ? 'CONTAINER_RUNNING' : 'CONTAINER_EXITED',
      createdAt: String(BigInt(node.podGeneration) * 1_000_000_000n),
    }));
    return `@@pods\n${STATIC_PODS.map((p) => `${p} ${running ? 'enabled' : 'disabled'}`).join('\n')}\n@@containers\n${JSON.stringify({ containers })}`;
  }

  // ---- actions: fakes for what needs an endpoint or an API, the real runners for the rest; faults strike first

  private readonly fakes: Partial<Record<Action, ActionRunner>> = {
    'snapshot-certs': async (step, ctx) => {
      const e = this.node(ctx.node.name).files.get(step.with.dir as string);
      return `recorded ${e?.state ?? 'nothing'}`;
    },
    'certs-renewed': async (step, ctx) => {
      const n = this.node(ctx.node.name);
      const dirs = [step.with.dir, step.with.kubeconfigDir].filter((d): d is string => typeof d === 'string');
      const stale = dirs.filter((d) => n.files.get(d)?.state !== 'renewed');
      if (stale.length > 0) throw new GateError(`${stale.map((d) => `${d} is ${n.files.get(d)?.state ?? 'missing'}`).join('; ')}, not renewed`);
      return `${dirs.join(', ')} renewed`;
    },
    'endpoint-down': async (step, ctx) => {
      if (this.node(ctx.node.name).pods !== 'stopped') throw new GateError(`${ctx.node.host}:${step.with.port} still answers`);
      ctx.downSince = ctx.now();
      return 'stopped';
    },
    'endpoint-serves': async (step, ctx) => {
      const e = this.node(ctx.node.name).files.get(dirname(step.with.file as string));
      if (!e || e.state === 'cleared') throw new GateError(`${ctx.node.host}:${step.with.port} serves nothing`);
      return `serves the ${e.state} certificate`;
    },
    'apiserver-ready': async (step, ctx) => {
      const n = this.node(ctx.node.name);
      if (n.pods !== 'running' || n.get('kubePki')?.state === 'cleared') throw new GateError(`${ctx.node.host}:${step.with.port} does not answer`);
      // A minute of downtime on the fake clock, so the result has something to add up.
      if (ctx.downSince !== undefined) {
        this.t += 60_000;
        ctx.onDowntime?.(ctx.now() - ctx.downSince);
        ctx.downSince = undefined;
      }
      return 'ready';
    },
    'update-etcd-client-secret': async (_step, ctx) => {
      const cert = ctx.secrets.etcdClientCert;
      if (!cert) throw new GateError('the renewed etcd client pair was not read in this run');
      this.management.secret = cert === this.pairs.renewed.cert ? 'renewed' : 'other';
      return 'secret updated';
    },
    'restart-etcdadm-controller': async () => {
      this.management.controller = 'restarted';
      return 'restarted';
    },
    'kcp-not-paused': async () => '1 KubeadmControlPlane, none paused',
    'issue-kubelet-client': async (_step, ctx) => {
      // What the real one keeps, in the shapes the profiles' installKubeletClient take it.
      ctx.nodeSecrets.kubeletKubeconfig = `apiVersion: v1\nkind: Config\n# a client certificate for system:node:${ctx.node.name}`;
      ctx.nodeSecrets.kubeletClientCert = `-----BEGIN CERTIFICATE-----\n(system:node:${ctx.node.name})\n-----END CERTIFICATE-----`;
      ctx.nodeSecrets.kubeletClientKey = '-----BEGIN PRIVATE KEY-----\n(key)\n-----END PRIVATE KEY-----';
      ctx.nodeSecrets.kubeletClientName = `system:node:${ctx.node.name}`;
      return `issued CN=system:node:${ctx.node.name}`;
    },
    'kubelet-renewed': async (_step, ctx) => {
      const state = this.node(ctx.node.name).get('kubeletPki')?.state;
      if (state !== 'renewed') throw new GateError(`the kubelet's client certificate is ${state}`);
      return 'new client certificate in use';
    },
    'node-ready': async (_step, ctx) => {
      if (this.node(ctx.node.name).get('kubeletPki')?.state !== 'renewed') throw new GateError('Node NotReady');
      return 'Node Ready';
    },
  };

  /** For ApplyDeps.actions: every action, so a fault can strike any step. */
  actions(process: Process = this.process): Partial<Record<Action, ActionRunner>> {
    return Object.fromEntries(
      ACTIONS.map((a): [Action, ActionRunner] => [
        a,
        async (step, ctx) => {
          await tick();
          if (process.dead) return new Promise<string>(() => {});
          const fault = this.strike(ctx.node.name, 'run');
          if (fault === 'hang') return this.hang();
          if (fault === 'fail') throw new GateError(`injected fault in ${a}`);
          if (fault === 'drop') throw new Error(`${ctx.node.name}: connection reset by peer`);
          const runner = this.fakes[a] ?? RUNNERS[a];
          if (fault === 'die-after') {
            await runner(step, ctx).catch(() => undefined);
            return this.hang();
          }
          return runner(step, ctx);
        },
      ]),
    );
  }

  /** A new process: a Journal read from disk, a fresh connector, and an Applier over them. */
  applier(opts: { stopRequested?: () => boolean; parallel?: number; actions?: ApplyDeps['actions'] } = {}): { applier: Applier; journal: Journal } {
    const process: Process = { dead: false };
    this.process = process;
    this.resetDied();
    this.finished.clear();
    const journal = new ProcessJournal(this.stateDir, this.inventory.cluster, process);
    const deps: ApplyDeps = {
      inventory: this.inventory,
      connector: this.connector(process),
      journal,
      reporter: this.reporter,
      profiles: this.profiles,
      timeouts: DEFAULT_TIMEOUTS,
      now: () => this.t,
      sleep: async (ms) => {
        this.t += ms;
        await tick();
      },
      stopRequested: opts.stopRequested ?? (() => false),
      refreshKubeconfig: async () => false,
      ...(opts.parallel ? { parallel: opts.parallel } : {}),
      actions: { ...this.actions(process), ...opts.actions },
    };
    return { applier: new Applier(this.plan, deps), journal };
  }
}
