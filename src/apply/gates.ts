/**
 * Built-in gates: they look, never change anything, and observe with bounded timeouts instead of
 * sleeping a fixed time. Certificates are read on the node with the check script (certificate
 * blocks only); endpoints are probed from the admin machine.
 */
import { request } from 'node:https';
import { inspectCertificate, type CertInfo } from '../certs/inspect.js';
import { servedCertificate } from '../check/probe.js';
import { checkScript, parseCheckOutput } from '../check/remote-script.js';
import type { PlanNode, PlanStep } from '../plan/types.js';
import type { NodeSession } from '../transport/session.js';
import { errorMessage } from '../util/errors.js';
import { plural } from '../util/wording.js';

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
  snapshot: Map<string, CertInfo | undefined>;
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

/** Reads the first certificate of each file as root; absent files map to undefined. */
export async function readCerts(session: NodeSession, rootShell: string, paths: string[]): Promise<Map<string, CertInfo | undefined>> {
  const res = await session.exec(rootShell, { stdin: checkScript({ files: paths.map((path) => ({ path, optional: false })), kubeconfigs: [] }) });
  if (res.code !== 0) throw new GateError(`reading certificates failed: ${res.stderr.trim() || `exit ${res.code}`}`);
  const parsed = parseCheckOutput(res.stdout);
  if (!parsed.complete) throw new GateError('reading certificates was cut short');
  const out = new Map<string, CertInfo | undefined>(paths.map((p) => [p, undefined]));
  for (const item of parsed.items) {
    if (item.kind === 'file' && item.pems[0]) out.set(item.path, inspectCertificate(item.pems[0]));
  }
  return out;
}

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

function readyz(host: string, port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: '/readyz', method: 'GET', rejectUnauthorized: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString('utf8')));
      res.on('end', () => (res.statusCode === 200 ? resolve(body.trim()) : reject(new Error(`/readyz answered ${res.statusCode}: ${body.trim().split('\n').slice(-3).join(' ')}`))));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

export async function runGate(step: PlanStep, ctx: GateContext): Promise<string> {
  const { node } = ctx;
  const probeMs = Math.min(5000, ctx.timeouts.endpointMs);
  switch (step.action) {
    case 'snapshot-certs': {
      const dir = str(step.with.dir, 'dir');
      const certs = await readCerts(ctx.session, node.rootShell, list(step.with.files).map((f) => `${dir}/${f}`));
      for (const [path, info] of certs) ctx.snapshot.set(path, info);
      return `recorded ${plural([...certs.values()].filter(Boolean).length, 'certificate')}`;
    }
    case 'certs-renewed': {
      const dir = str(step.with.dir, 'dir');
      const renewed = list(step.with.renewed).map((f) => `${dir}/${f}`);
      const unchanged = list(step.with.unchanged).map((f) => `${dir}/${f}`);
      const now = await readCerts(ctx.session, node.rootShell, [...renewed, ...unchanged]);
      const problems: string[] = [];
      for (const path of renewed) {
        const after = now.get(path);
        const before = ctx.snapshot.get(path);
        if (!after) problems.push(`${path} is missing`);
        else if (before && after.serial === before.serial) problems.push(`${path} was not renewed (same serial ${after.serial})`);
        else if (before && after.notAfter.getTime() <= before.notAfter.getTime()) problems.push(`${path} expires ${after.notAfter.toISOString()}, no later than before`);
        else if (after.notAfter.getTime() <= ctx.now()) problems.push(`${path} is already expired`);
        else if (before && after.issuer !== before.issuer) problems.push(`${path} is now issued by ${after.issuer}, was ${before.issuer}`);
      }
      for (const path of unchanged) {
        const after = now.get(path);
        const before = ctx.snapshot.get(path);
        if (!after) problems.push(`${path} is missing`);
        else if (before && after.fingerprint !== before.fingerprint) problems.push(`${path} CHANGED: a CA must never change here`);
      }
      if (problems.length > 0) throw new GateError(problems.join('; '));
      const soonest = Math.min(...renewed.map((p) => now.get(p)?.notAfter.getTime() ?? Infinity));
      return `${renewed.length} renewed (earliest expiry ${new Date(soonest).toISOString().slice(0, 10)}), ${plural(unchanged.length, 'CA')} unchanged`;
    }
    case 'endpoint-down': {
      const port = Number(step.with.port);
      const started = ctx.now();
      await poll(ctx, ctx.timeouts.podStopMs, `${node.host}:${port} to stop answering`, async () => {
        try {
          await servedCertificate({ host: node.host, port, timeoutMs: probeMs });
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
      const timeout = step.action === 'apiserver-ready' ? ctx.timeouts.podStartMs : ctx.timeouts.endpointMs;
      await poll(ctx, timeout, `${node.host}:${port} to serve ${file} (serial ${expected.serial})`, async () => {
        const served = inspectCertificate(await servedCertificate({ host: node.host, port, timeoutMs: probeMs }));
        if (served.fingerprint !== expected.fingerprint) throw new Error(`still serving serial ${served.serial}`);
        return true;
      });
      if (step.action === 'endpoint-serves') return `serves serial ${expected.serial}`;
      const body = await poll(ctx, timeout, `${node.host}:${port}/readyz to say ok`, async () => readyz(node.host, port, probeMs));
      if (ctx.downSince !== undefined) {
        ctx.onDowntime?.(ctx.now() - ctx.downSince);
        ctx.downSince = undefined;
      }
      return `serves serial ${expected.serial}, /readyz ${body}`;
    }
    default:
      throw new GateError(`unknown action ${String(step.action)}`);
  }
}
