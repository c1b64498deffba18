/**
 * Built-in gates: they look, never change anything (but remove-duplicate-containers, which says
 * so), and observe with bounded timeouts instead of sleeping a fixed time. Certificates are read on
 * the node with the check script (certificate blocks only); endpoints are probed from the admin
 * machine; the static pods are seen through the OS profile's commands. Each gate is a GateRunner
 * that actions.ts registers under its action's name; what a gate decides from what it read is in
 * gate-judgements.ts (and static-pods.ts, etcd-health.ts), pure and tested on its own.
 */
import { request } from 'node:https';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { inspectCertificate } from '../certs/inspect.js';
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
import { installedPairProblems, parsePairFiles, presentKubeconfigs, renewalProblems, type CertRead, type RenewalExpectation } from './gate-judgements.js';

// The pure judgements moved to gate-judgements.ts; these names are still imported from here.
export { pairMatches, subjectAltNames, type CertRead } from './gate-judgements.js';

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

/** The node's static pods and containers, through its profile's `staticPods` command. */
async function staticPodsView(ctx: GateContext): Promise<StaticPodsView> {
  const res = await ctx.run('staticPods');
  if (res.code !== 0) throw new GateError(`listing the static pods failed (exit ${res.code ?? res.signal}): ${outputTail(res.stderr)}`);
  return parseStaticPods(res.stdout);
}

const describe = (cs: Array<{ name: string; id: string }>) => cs.map((c) => `${c.name} ${shortId(c.id)}`).join(', ');

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

/** How a gate runs: the plan's step, the node's context. Resolves with a one-line summary or throws GateError. */
export type GateRunner = (step: PlanStep, ctx: GateContext) => Promise<string>;

const probeMsOf = (ctx: GateContext) => Math.min(5000, ctx.timeouts.endpointMs);

/** snapshot-certs: records the certificates before anything changes, for certs-renewed and kubelet-renewed. */
export const snapshotCerts: GateRunner = async (step, ctx) => {
  const dir = str(step.with.dir, 'dir');
  const certs = await readCerts(ctx.session, ctx.node.rootShell, list(step.with.files).map((f) => `${dir}/${f}`), kubeconfigPaths(step));
  for (const [path, info] of certs) ctx.snapshot.set(path, info);
  return `recorded ${plural([...certs.values()].filter(Boolean).length, 'certificate')}`;
};

/** certs-renewed: the leaves renewed, the CAs unchanged, every kept SAN still there (renewalProblems). */
export const certsRenewed: GateRunner = async (step, ctx) => {
  const dir = str(step.with.dir, 'dir');
  const expect: RenewalExpectation = {
    renewed: list(step.with.renewed).map((f) => `${dir}/${f}`),
    unchanged: list(step.with.unchanged).map((f) => `${dir}/${f}`),
    kubeconfigs: kubeconfigPaths(step),
    sansKept: list(step.with.sansKept).map((f) => `${dir}/${f}`),
    node: ctx.node.name,
  };
  const now = await readCerts(ctx.session, ctx.node.rootShell, [...expect.renewed, ...expect.unchanged], expect.kubeconfigs);
  const problems = renewalProblems(ctx.snapshot, now, expect, ctx.now());
  if (problems.length > 0) throw new GateError(problems.join('; '));
  const judged = [...expect.renewed, ...presentKubeconfigs(ctx.snapshot, now, expect.kubeconfigs)];
  const soonest = Math.min(...judged.map((p) => now.get(p)?.notAfter.getTime() ?? Infinity));
  return `${judged.length} renewed (earliest expiry ${new Date(soonest).toISOString().slice(0, 10)}), ${plural(expect.unchanged.length, 'CA')} unchanged`;
};

/** endpoint-down: polls until the node's port stops serving; remembers when, for the downtime. */
export const endpointDown: GateRunner = async (step, ctx) => {
  const port = Number(step.with.port);
  const started = ctx.now();
  await poll(ctx, ctx.timeouts.podStopMs, `${ctx.node.host}:${port} to stop answering`, async () => {
    try {
      await served(ctx, port, probeMsOf(ctx));
      return undefined;
    } catch {
      return true;
    }
  });
  ctx.downSince = ctx.now();
  return `stopped after ${((ctx.now() - started) / 1000).toFixed(1)} s`;
};

/** The port serves the certificate in `file` (serial compared by fingerprint), polled; the expected certificate's serial. */
async function servesFile(step: PlanStep, ctx: GateContext, timeout: number): Promise<string> {
  const port = Number(step.with.port);
  const file = str(step.with.file, 'file');
  const expected = (await readCerts(ctx.session, ctx.node.rootShell, [file])).get(file);
  if (!expected) throw new GateError(`${file} is missing`);
  await poll(ctx, timeout, `${ctx.node.host}:${port} to serve ${file} (serial ${expected.serial})`, async () => {
    const now = inspectCertificate(await served(ctx, port, probeMsOf(ctx)));
    if (now.fingerprint !== expected.fingerprint) throw new Error(`still serving serial ${now.serial}`);
    return true;
  });
  return expected.serial;
}

/** endpoint-serves: the port serves the certificate in the file. */
export const endpointServes: GateRunner = async (step, ctx) => {
  // A gate retried in an etcd recovery waits as long as the plan says: up to --pod-timeout.
  const serial = await servesFile(step, ctx, step.retried ? ctx.timeouts.podStartMs : ctx.timeouts.endpointMs);
  return `serves serial ${serial}`;
};

/** apiserver-ready: the port serves the certificate in the file and /readyz says ok; ends the downtime endpoint-down began. */
export const apiserverReady: GateRunner = async (step, ctx) => {
  const timeout = ctx.timeouts.podStartMs;
  const serial = await servesFile(step, ctx, timeout);
  const { node } = ctx;
  const port = Number(step.with.port);
  const body = await poll(ctx, timeout, `${node.host}:${port}/readyz to say ok`, async () => readyz(node.host, port, probeMsOf(ctx), await ctx.route?.(node.host, port)));
  if (ctx.downSince !== undefined) {
    ctx.onDowntime?.(ctx.now() - ctx.downSince);
    ctx.downSince = undefined;
  }
  return `serves serial ${serial}, /readyz ${body}`;
};

/** static-pods-stopped: no container of the node's static pods runs. */
export const staticPodsStopped: GateRunner = async (_step, ctx) => {
  const started = ctx.now();
  const nodeName = kubeNodeName(ctx.node);
  // Only the kubelet's own containers are waited for: a stale one would never stop by itself.
  const view = await poll(ctx, ctx.timeouts.podStopMs, `no container of ${ctx.node.name}'s static pods to run`, async () => {
    const v = await staticPodsView(ctx);
    const left = stillRunning(v, nodeName);
    if (left.length > 0) throw new Error(`still running: ${describe(left)}`);
    return v;
  });
  return `${view.pods.length} static pods, no container running, after ${((ctx.now() - started) / 1000).toFixed(1)} s`;
};

/** static-pods-running: every enabled static pod runs a container. */
export const staticPodsRunning: GateRunner = async (_step, ctx) => {
  const nodeName = kubeNodeName(ctx.node);
  const view = await poll(ctx, ctx.timeouts.podStartMs, `every static pod of ${ctx.node.name} to run a container`, async () => {
    const v = await staticPodsView(ctx);
    const missing = notRunning(v, nodeName);
    if (missing.length > 0) throw new Error(`not running yet: ${missing.join(', ')}`);
    return v;
  });
  return `running: ${view.pods.filter((p) => p.enabled).map((p) => p.name).join(', ')}`;
};

/** static-pods-labelled: the static pods' containers carry the Node name the restart gates judge by. */
export const staticPodsLabelled: GateRunner = async (_step, ctx) => {
  // Judged by a wrong Node name, every restart gate would pass on nothing: refused before anything changes.
  const { node } = ctx;
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
};

/** remove-duplicate-containers: removes static pod containers older than the kubelet's (the one gate that changes something). */
export const removeDuplicateContainers: GateRunner = async (_step, ctx) => {
  const nodeName = kubeNodeName(ctx.node);
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
};

/** etcd-client-installed: the files the kube-apiserver reads hold the pair read in this run (installedPairProblems). */
export const etcdClientInstalled: GateRunner = async (_step, ctx) => {
  const cert = ctx.secrets.etcdClientCert;
  const key = ctx.secrets.etcdClientKey;
  if (!cert || !key) throw new GateError('the renewed etcd client pair was not read in this run');
  const res = await ctx.run('etcdClientPairFiles');
  if (res.code !== 0) throw new GateError(`reading the kube-apiserver's etcd client files failed: ${outputTail(res.stderr, 3, `exit ${res.code}`)}`);
  const files = parsePairFiles(res.stdout);
  if (!files) throw new GateError(`unexpected output from etcdClientPairFiles: ${res.stdout.trim()}`);
  const problems = installedPairProblems(files, { cert, key });
  if (problems.length > 0) throw new GateError(`${problems.join('; ')}: the kube-apiserver would start with a certificate and a key that do not belong together`);
  return `${files.cert.path} and ${files.key.path} hold the renewed pair (key 0600)`;
};

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
export const stackedEtcdHealthy: GateRunner = async (_step, ctx) => {
  const started = ctx.now();
  // The etcd container is its static pod's, which the kubelet names after the Node: not the inventory's name.
  const vars = { kubeNodeName: kubeNodeName(ctx.node) };
  const view = await poll(ctx, ctx.timeouts.podStartMs, `etcd to have its quorum with every member healthy (etcdctl in ${ctx.node.name}'s etcd container)`, async () => {
    const res = await ctx.run('stackedEtcdHealth', vars);
    const v = parseEtcdHealth(res.stdout, res.stderr);
    const problem = etcdHealthProblem(v) ?? (res.code !== 0 ? `etcdctl exited ${res.code ?? res.signal}` : undefined);
    if (problem) throw new Error(`${problem}${res.code !== 0 ? `: ${outputTail(res.stderr, 2, '')}` : ''}`);
    return v;
  });
  return `${view.members.length} members started and healthy (${view.members.map((m) => m.name).join(', ')}) after ${((ctx.now() - started) / 1000).toFixed(1)} s`;
};

function kubeconfigPaths(step: PlanStep): string[] {
  const dir = step.with.kubeconfigDir;
  return typeof dir === 'string' ? list(step.with.kubeconfigs).map((f) => `${dir}/${f}`) : [];
}
