/**
 * Built-in gates: they look, never change anything (but remove-duplicate-containers, which says
 * so), and observe with bounded timeouts instead of sleeping a fixed time. Certificates are read on
 * the node with the check script (certificate blocks only); endpoints are probed from the admin
 * machine; the static pods are seen through the OS profile's commands.
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { inspectCertificate, type CertInfo } from '../certs/inspect.js';
import { servedCertificate } from '../check/probe.js';
import { checkScript, parseCheckOutput } from '../check/remote-script.js';
import type { PlanNode, PlanStep } from '../plan/types.js';
import type { EndpointRoute } from '../transport/endpoints.js';
import type { ExecResult, NodeSession } from '../transport/session.js';
import { errorMessage, outputTail } from '../util/errors.js';
import { kubeNodeName } from '../plan/node-names.js';
import { notRunning, parseStaticPods, shortId, staleContainers, STATIC_POD_NAMESPACE, staticPodName, stillRunning, unlabelledStaticPods, type StaticPodsView } from './static-pods.js';
import { plural } from '../util/wording.js';
import { etcdHealthProblem, parseEtcdHealth } from './etcd-health.js';

export class GateError extends Error {}

export interface GateTimeouts {
  /** How long a static pod may take to stop after its manifest left (kubelet checks every 20 s). */
  podStopMs: number;
  /** How long the kube-apiserver may take to serve and be ready again. */
  podStartMs: number;
  /** How long an endpoint may take to serve a renewed certificate. */
  endpointMs: number;
  pollMs: number;
}

export const DEFAULT_TIMEOUTS: GateTimeouts = { podStopMs: 120_000, podStartMs: 300_000, endpointMs: 60_000, pollMs: 250 };

export interface GateContext {
  session: NodeSession;
  node: PlanNode;
  timeouts: GateTimeouts;
  /** Certificates seen by the last snapshot-certs gate on this node, by path. */
  snapshot: Map<string, CertRead | undefined>;
  /** Runs one of the node's OS profile commands as root, with the node's variables and these. */
  run(command: string, vars?: Record<string, string>): Promise<ExecResult>;
  /** Secrets read earlier in this run (the etcd client pair), for gates that check where they went. */
  secrets: Record<string, string>;
  /** How this machine reaches the node's endpoints: through the jump host when there is one. */
  route?: EndpointRoute;
  /** Milliseconds between the endpoint going down and coming back, for the report. */
  onDowntime?: (ms: number) => void;
  /** When the endpoint was last seen going down, set by endpoint-down. */
  downSince?: number;
  now(): number;
  sleep(ms: number): Promise<void>;
}

const list = (v: unknown): string[] => (Array.isArray(v) ? v : typeof v === 'string' ? [v] : []);
const str = (v: unknown, name: string): string => {
  if (typeof v !== 'string') throw new GateError(`gate is missing its ${name}`);
  return v;
};

/** A certificate read from a node, with its PEM (for SANs and signature checks). */
export type CertRead = CertInfo & { pem: string };

/**
 * Reads the first certificate of each file, and the client certificate embedded in each kubeconfig,
 * as root; absent files map to undefined.
 */
export async function readCerts(session: NodeSession, rootShell: string, paths: string[], kubeconfigs: string[] = []): Promise<Map<string, CertRead | undefined>> {
  const optional = (path: string) => ({ path, optional: true });
  const res = await session.exec(rootShell, { stdin: checkScript({ files: paths.map(optional), kubeconfigs: kubeconfigs.map(optional) }) });
  if (res.code !== 0) throw new GateError(`reading certificates failed: ${res.stderr.trim() || `exit ${res.code}`}`);
  const parsed = parseCheckOutput(res.stdout);
  if (!parsed.complete) throw new GateError('reading certificates was cut short');
  const out = new Map<string, CertRead | undefined>([...paths, ...kubeconfigs].map((p) => [p, undefined]));
  for (const item of parsed.items) {
    if (item.kind !== 'missing' && item.pems[0]) out.set(item.path, { ...inspectCertificate(item.pems[0]), pem: item.pems[0] });
  }
  return out;
}

/** "DNS:a", "IP:10.0.0.1", ... as the certificate names them. */
export function subjectAltNames(pem: string): string[] {
  const text = new X509Certificate(pem).subjectAltName ?? '';
  return text
    .split(', ')
    .map((s) => s.trim().replace(/^IP Address:/, 'IP:'))
    .filter(Boolean);
}

/** The node's static pods and containers, through its profile's `staticPods` command. */
async function staticPodsView(ctx: GateContext): Promise<StaticPodsView> {
  const res = await ctx.run('staticPods');
  if (res.code !== 0) throw new GateError(`listing the static pods failed (exit ${res.code ?? res.signal}): ${outputTail(res.stderr)}`);
  return parseStaticPods(res.stdout);
}

const describe = (cs: Array<{ name: string; id: string }>) => cs.map((c) => `${c.name} ${shortId(c.id)}`).join(', ');
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

export async function poll<T>(ctx: Pick<GateContext, "now" | "sleep" | "timeouts">, timeoutMs: number, what: string, attempt: () => Promise<T | undefined>): Promise<T> {
  const deadline = ctx.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const v = await attempt();
      if (v !== undefined) return v;
    } catch (err) {
      last = errorMessage(err);
    }
    if (ctx.now() >= deadline) throw new GateError(`${what}: not within ${Math.round(timeoutMs / 1000)} s${last ? ` (last: ${last})` : ''}`);
    await ctx.sleep(ctx.timeouts.pollMs);
  }
}

/**
 * GET /readyz of a kube-apiserver, anonymously (readiness only: the serving certificate is judged
 * elsewhere), through `stream` when the node sits behind a jump host. Resolves with its body.
 */
export function readyz(host: string, port: number, timeoutMs: number, stream?: Duplex): Promise<string> {
  return new Promise((resolve, reject) => {
    const through = stream ? { createConnection: (opts: object) => tlsConnect({ ...opts, socket: stream }) } : {};
    const req = request({ host, port, path: '/readyz', method: 'GET', rejectUnauthorized: false, timeout: timeoutMs, ...through }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString('utf8')));
      res.on('end', () => {
        stream?.destroy();
        if (res.statusCode === 200) resolve(body.trim());
        else reject(new Error(`answered ${res.statusCode}: ${body.trim().split('\n').slice(-3).join(' ') || 'no body'}`));
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${Math.round(timeoutMs / 1000)} s`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      stream?.destroy();
      reject(err.code === 'ECONNREFUSED' ? new Error('connection refused') : err);
    });
    req.end();
  });
}

export async function runGate(step: PlanStep, ctx: GateContext): Promise<string> {
  const { node } = ctx;
  const probeMs = Math.min(5000, ctx.timeouts.endpointMs);
  switch (step.action) {
    case 'snapshot-certs': {
      const dir = str(step.with.dir, 'dir');
      const kubeconfigs = kubeconfigPaths(step);
      const certs = await readCerts(ctx.session, node.rootShell, list(step.with.files).map((f) => `${dir}/${f}`), kubeconfigs);
      for (const [path, info] of certs) ctx.snapshot.set(path, info);
      return `recorded ${plural([...certs.values()].filter(Boolean).length, 'certificate')}`;
    }
    case 'certs-renewed': {
      const dir = str(step.with.dir, 'dir');
      const renewed = list(step.with.renewed).map((f) => `${dir}/${f}`);
      const unchanged = list(step.with.unchanged).map((f) => `${dir}/${f}`);
      // Kubeconfigs a node may not have (super-admin.conf): renewed when they were there before.
      const kubeconfigs = kubeconfigPaths(step);
      const now = await readCerts(ctx.session, node.rootShell, [...renewed, ...unchanged], kubeconfigs);
      const problems: string[] = [];
      const present = kubeconfigs.filter((p) => ctx.snapshot.get(p) !== undefined || now.get(p) !== undefined);
      for (const path of [...renewed, ...present]) {
        const after = now.get(path);
        const before = ctx.snapshot.get(path);
        if (!after) problems.push(`${path} is missing`);
        else if (before && after.serial === before.serial) problems.push(`${path} was not renewed (same serial ${after.serial})`);
        else if (before && after.notAfter.getTime() <= before.notAfter.getTime()) problems.push(`${path} expires ${after.notAfter.toISOString()}, no later than before`);
        else if (after.notAfter.getTime() <= ctx.now()) problems.push(`${path} is already expired`);
        else if (before && after.issuer !== before.issuer) problems.push(`${path} is now issued by ${after.issuer}, was ${before.issuer}`);
      }
      // etcdadm names server and peer after the host as it is now; a lost name breaks whoever uses it.
      for (const path of list(step.with.sansKept).map((f) => `${dir}/${f}`)) {
        const before = ctx.snapshot.get(path);
        const after = now.get(path);
        if (!before || !after) continue;
        const kept = new Set(subjectAltNames(after.pem));
        const lost = subjectAltNames(before.pem).filter((n) => !kept.has(n));
        if (lost.length > 0) {
          problems.push(
            `${path} lost ${lost.join(', ')} (now ${[...kept].join(', ') || 'none'}): etcdadm takes the host's current name and default-route address; did ${node.name}'s hostname or address change since the certificate was made?`,
          );
        }
      }
      for (const path of unchanged) {
        const after = now.get(path);
        const before = ctx.snapshot.get(path);
        if (!after) problems.push(`${path} is missing`);
        else if (before && after.fingerprint !== before.fingerprint) problems.push(`${path} CHANGED: a CA must never change here`);
      }
      if (problems.length > 0) throw new GateError(problems.join('; '));
      const soonest = Math.min(...[...renewed, ...present].map((p) => now.get(p)?.notAfter.getTime() ?? Infinity));
      return `${renewed.length + present.length} renewed (earliest expiry ${new Date(soonest).toISOString().slice(0, 10)}), ${plural(unchanged.length, 'CA')} unchanged`;
    }
    case 'endpoint-down': {
      const port = Number(step.with.port);
      const started = ctx.now();
      await poll(ctx, ctx.timeouts.podStopMs, `${node.host}:${port} to stop answering`, async () => {
        try {
          await served(ctx, port, probeMs);
          return undefined;
        } catch {
          return true;
        }
      });
      ctx.downSince = ctx.now();
      return `stopped after ${((ctx.now() - started) / 1000).toFixed(1)} s`;
    }
    case 'endpoint-serves':
    case 'apiserver-ready': {
      const port = Number(step.with.port);
      const file = str(step.with.file, 'file');
      const expected = (await readCerts(ctx.session, node.rootShell, [file])).get(file);
      if (!expected) throw new GateError(`${file} is missing`);
      // A gate retried in an etcd recovery waits as long as the plan says: up to --pod-timeout.
      const timeout = step.action === 'apiserver-ready' || step.retried ? ctx.timeouts.podStartMs : ctx.timeouts.endpointMs;
      await poll(ctx, timeout, `${node.host}:${port} to serve ${file} (serial ${expected.serial})`, async () => {
        const now = inspectCertificate(await served(ctx, port, probeMs));
        if (now.fingerprint !== expected.fingerprint) throw new Error(`still serving serial ${now.serial}`);
        return true;
      });
      if (step.action === 'endpoint-serves') return `serves serial ${expected.serial}`;
      const body = await poll(ctx, timeout, `${node.host}:${port}/readyz to say ok`, async () => readyz(node.host, port, probeMs, await ctx.route?.(node.host, port)));
      if (ctx.downSince !== undefined) {
        ctx.onDowntime?.(ctx.now() - ctx.downSince);
        ctx.downSince = undefined;
      }
      return `serves serial ${expected.serial}, /readyz ${body}`;
    }
    case 'static-pods-stopped': {
      const started = ctx.now();
      const nodeName = kubeNodeName(node);
      // Only the kubelet's own containers are waited for: a stale one would never stop by itself.
      const view = await poll(ctx, ctx.timeouts.podStopMs, `no container of ${node.name}'s static pods to run`, async () => {
        const v = await staticPodsView(ctx);
        const left = stillRunning(v, nodeName);
        if (left.length > 0) throw new Error(`still running: ${describe(left)}`);
        return v;
      });
      return `${view.pods.length} static pods, no container running, after ${((ctx.now() - started) / 1000).toFixed(1)} s`;
    }
    case 'static-pods-running': {
      const nodeName = kubeNodeName(node);
      const view = await poll(ctx, ctx.timeouts.podStartMs, `every static pod of ${node.name} to run a container`, async () => {
        const v = await staticPodsView(ctx);
        const missing = notRunning(v, nodeName);
        if (missing.length > 0) throw new Error(`not running yet: ${missing.join(', ')}`);
        return v;
      });
      return `running: ${view.pods.filter((p) => p.enabled).map((p) => p.name).join(', ')}`;
    }
    case 'static-pods-labelled': {
      // Judged by a wrong Node name, every restart gate would pass on nothing: refused before anything changes.
      const nodeName = kubeNodeName(node);
      const view = await staticPodsView(ctx);
      const unlabelled = unlabelledStaticPods(view, nodeName);
      if (unlabelled.length > 0) {
        const [first] = unlabelled;
        throw new GateError(
          `no container on ${node.name} belongs to the static pod ${STATIC_POD_NAMESPACE}/${staticPodName(first!.pod, nodeName)} (the kubelet names a static pod after its Node); containers of ${first!.pod} run in ${first!.seen.join(', ')}: is the node's Kubernetes Node named otherwise? Its kubelet client certificate (CN system:node:NAME) tells, and 'rotate-certs check' reads it. Nothing was changed`,
        );
      }
      return `${plural(view.pods.length, 'static pod')} found as ${STATIC_POD_NAMESPACE}/<pod>-${nodeName.toLowerCase()}`;
    }
    case 'remove-duplicate-containers': {
      const nodeName = kubeNodeName(node);
      const view = await staticPodsView(ctx);
      const stale = staleContainers(view, nodeName);
      if (stale.length === 0) return 'one container per static pod';
      for (const c of stale) {
        const res = await ctx.run('removeContainer', { containerId: c.id });
        if (res.code !== 0) throw new GateError(`removing the stale ${c.name} container ${shortId(c.id)} failed (exit ${res.code ?? res.signal}): ${outputTail(res.stderr)}`);
      }
      const left = staleContainers(await staticPodsView(ctx), nodeName);
      if (left.length > 0) throw new GateError(`static pods still run stale containers beside the kubelet's: ${describe(left)}`);
      return `removed ${stale.length} stale container${stale.length > 1 ? 's' : ''} older than the kubelet's: ${describe(stale)}`;
    }
    case 'etcd-client-installed': {
      const cert = ctx.secrets.etcdClientCert;
      const key = ctx.secrets.etcdClientKey;
      if (!cert || !key) throw new GateError('the renewed etcd client pair was not read in this run');
      const res = await ctx.run('etcdClientPairFiles');
      if (res.code !== 0) throw new GateError(`reading the kube-apiserver's etcd client files failed: ${outputTail(res.stderr, 3, `exit ${res.code}`)}`);
      const [certFile, keyFile] = res.stdout.trim().split('\n').map((l) => {
        const [path = '', hash = '', mode = ''] = l.split(' ');
        return { path, hash, mode };
      });
      if (!certFile || !keyFile) throw new GateError(`unexpected output from etcdClientPairFiles: ${res.stdout.trim()}`);
      // What installEtcdClientPair's heredocs write: the text and a newline.
      const problems: string[] = [];
      if (certFile.hash !== sha256(`${cert}\n`)) problems.push(`${certFile.path} does not hold the renewed etcd client certificate`);
      if (keyFile.hash !== sha256(`${key}\n`)) problems.push(`${keyFile.path} does not hold the renewed etcd client key`);
      else if (keyFile.mode !== '600') problems.push(`${keyFile.path} has mode ${keyFile.mode}, not 600`);
      if (problems.length > 0) throw new GateError(`${problems.join('; ')}: the kube-apiserver would start with a certificate and a key that do not belong together`);
      return `${certFile.path} and ${keyFile.path} hold the renewed pair (key 0600)`;
    }
    case 'stacked-etcd-healthy':
      return stackedEtcdHealthy(ctx);
    default:
      throw new GateError(`unknown action ${String(step.action)}`);
  }
}

/** The certificate the node's endpoint serves, reached the way SSH goes. */
async function served(ctx: GateContext, port: number, timeoutMs: number): Promise<Buffer> {
  const stream = await ctx.route?.(ctx.node.host, port);
  return servedCertificate({ host: ctx.node.host, port, timeoutMs, ...(stream ? { stream } : {}) });
}

/**
 * Stacked etcd after a member's restart: etcdctl in the node's etcd container lists every member
 * started and calls each one healthy (a quorum read through it). Polled: the restarted member takes
 * a moment to rejoin, and in an etcd recovery the renewed members to elect a leader.
 */
async function stackedEtcdHealthy(ctx: GateContext): Promise<string> {
  const started = ctx.now();
  const view = await poll(ctx, ctx.timeouts.podStartMs, `etcd to have its quorum with every member healthy (etcdctl in ${ctx.node.name}'s etcd container)`, async () => {
    const res = await ctx.run('stackedEtcdHealth');
    const v = parseEtcdHealth(res.stdout, res.stderr);
    const problem = etcdHealthProblem(v) ?? (res.code !== 0 ? `etcdctl exited ${res.code ?? res.signal}` : undefined);
    if (problem) throw new Error(`${problem}${res.code !== 0 ? `: ${outputTail(res.stderr, 2, '')}` : ''}`);
    return v;
  });
  return `${view.members.length} members started and healthy (${view.members.map((m) => m.name).join(', ')}) after ${((ctx.now() - started) / 1000).toFixed(1)} s`;
}

function kubeconfigPaths(step: PlanStep): string[] {
  const dir = step.with.kubeconfigDir;
  return typeof dir === 'string' ? list(step.with.kubeconfigs).map((f) => `${dir}/${f}`) : [];
}

/** A key that is not its certificate's: the kube-apiserver could not talk to etcd with them. */
export function pairMatches(certPem: string, keyPem: string): boolean {
  try {
    return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}
