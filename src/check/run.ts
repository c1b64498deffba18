/**
 * The `check` driver: for every node, read its certificates over one SSH session and probe its
 * endpoints, in bounded parallel. A node that fails becomes an entry in `errors`, never a crash.
 */
import { expiryOf, type Clock } from '../certs/expiry.js';
import { inspectCertificate, type CertInfo } from '../certs/inspect.js';
import { certKind, type CertKind } from '../certs/kind.js';
import type { Inventory, InventoryNode } from '../inventory/types.js';
import type { ProfileSet } from '../profiles/profile.js';
import { sourcesFor, type CheckRunbook } from '../runbook/check-sources.js';
import type { Connector, NodeSession } from '../transport/session.js';
import { errorMessage, nodeErrorDetail } from '../util/errors.js';
import { mapLimit, type Limiter } from '../util/limit.js';

export type { CertificateEntry, CheckError, CheckReport, ClusterNotChecked, MultiCheckReport } from './report.js';
import type { CertificateEntry, CheckError, CheckReport } from './report.js';
import { cisProbesFor, compareItems, evaluateCis, type CisDeviation, type CisProbe, type CisRunbook } from './cis.js';
import { cisScript, parseCisOutput } from './cis-script.js';
import { servedCertificate } from './probe.js';
import { endpointRoute } from '../transport/endpoints.js';
import { checkScript, parseCheckOutput, type ReadItem } from './remote-script.js';
import { parseBackupListing, summarizeBackups, type NodeBackups } from '../backups/listing.js';
import { listScript } from '../backups/nodes.js';

export interface NodeCheckPlan {
  node: InventoryNode;
  rootShell: string;
  script: string;
  endpoints: Array<{ host: string; port: number }>;
  /** With --cis: a second read-only root script, run over the same session, printing modes and owners. */
  cis?: { script: string; probes: CisProbe[] };
}

export function planCheck(inv: Inventory, profiles: ProfileSet, runbook: CheckRunbook, cis?: CisRunbook): NodeCheckPlan[] {
  return inv.nodes.map((node) => {
    const profile = profiles.get(node.os);
    const sources = sourcesFor(runbook, node.role, profile, inv.externalEtcd);
    const probes = cis ? cisProbesFor(cis, node.role, profile, inv.externalEtcd) : undefined;
    return {
      node,
      rootShell: profile.rootShell,
      script: checkScript(sources, listScript(profiles, node)),
      endpoints: sources.ports.map((port) => ({ host: node.host, port })),
      ...(probes ? { cis: { script: cisScript(probes), probes } } : {}),
    };
  });
}

export interface CheckDeps {
  connector: Connector;
  clock: Clock;
  concurrency: number;
  warnDays: number;
  probeTimeoutMs?: number;
  /** A limit shared with other runs (one per cluster); replaces `concurrency` when given. */
  limit?: Limiter;
  /** The caller closes the connector: other runs still use it. */
  keepConnectorOpen?: boolean;
}

export async function runCheck(inv: Inventory, plans: NodeCheckPlan[], deps: CheckDeps): Promise<CheckReport> {
  const now = deps.clock.now();
  const certificates: CertificateEntry[] = [];
  const errors: CheckError[] = [];
  const cis: CisDeviation[] = [];
  const backups: NodeBackups[] = [];
  const closing: Array<Promise<void>> = [];

  const entry = (
    node: InventoryNode,
    source: CertificateEntry['source'],
    where: { path?: string; endpoint?: string },
    pem: string | Buffer,
    kindOf: (info: CertInfo) => CertKind = (info) => certKind(info, undefined, 0, undefined),
  ): CertificateEntry => {
    const info = inspectCertificate(pem);
    const { status, daysLeft } = expiryOf(info.notBefore, info.notAfter, now, deps.warnDays);
    return {
      node: node.name,
      role: node.role,
      source,
      ...where,
      subject: info.subject,
      issuer: info.issuer,
      serial: info.serial,
      isCA: info.isCA,
      kind: kindOf(info),
      notBefore: info.notBefore.toISOString(),
      notAfter: info.notAfter.toISOString(),
      daysLeft,
      status,
    };
  };

  const readNode = async (plan: NodeCheckPlan) => {
    const { node } = plan;
    let session: NodeSession | undefined;
    try {
      session = await deps.connector.connect(node);
      const res = await session.exec(plan.rootShell, { stdin: plan.script });
      if (res.code !== 0) {
        errors.push({ node: node.name, message: `reading certificates as root failed (exit ${res.code ?? res.signal}): ${firstLine(res.stderr) || 'no error output'}${sudoHint(res.stderr)}` });
        return;
      }
      const parsed = parseCheckOutput(res.stdout);
      if (!parsed.complete) errors.push({ node: node.name, message: 'the certificate read was cut short; some files may be missing from this report' });
      for (const item of parsed.items) collect(node, item);
      const listing = parseBackupListing(res.stdout);
      if (listing.complete) backups.push(summarizeBackups(node.name, listing.entries));
      if (plan.cis) await readCis(node, session, plan.rootShell, plan.cis.script, plan.cis.probes);
    } catch (err) {
      errors.push({ node: node.name, message: nodeErrorDetail(err, node.name) });
    } finally {
      // The slot goes to the next node now; the connection's teardown is awaited at the end.
      if (session) closing.push(session.close().catch(() => {}));
    }
  };

  // Only modes, owners and paths come back; deviations are judged here.
  const readCis = async (node: InventoryNode, session: NodeSession, rootShell: string, script: string, probes: CisProbe[]) => {
    const res = await session.exec(rootShell, { stdin: script });
    if (res.code !== 0) {
      errors.push({ node: node.name, message: `reading file modes as root failed (exit ${res.code ?? res.signal}): ${firstLine(res.stderr) || 'no error output'}` });
      return;
    }
    const parsed = parseCisOutput(res.stdout);
    if (!parsed.complete) errors.push({ node: node.name, message: 'the file mode read (--cis) was cut short; some deviations may be missing from this report' });
    for (const path of parsed.failed) errors.push({ node: node.name, message: `could not read the mode and owner of ${path}` });
    cis.push(...evaluateCis(node.name, probes, parsed.stats));
  };

  const collect = (node: InventoryNode, item: ReadItem) => {
    if (item.kind === 'missing') {
      errors.push({ node: node.name, message: `expected certificate file ${item.path} is missing` });
      return;
    }
    if (item.kind === 'file' && item.pems.length === 0) {
      errors.push({ node: node.name, message: `${item.path} holds no PEM certificate` });
      return;
    }
    let first: CertInfo | undefined;
    for (const [i, pem] of item.pems.entries()) {
      const path = i === 0 ? item.path : `${item.path}[${i}]`;
      const kindOf = (info: CertInfo) => {
        if (i === 0) first = info;
        return certKind(info, item.path, i, first);
      };
      try {
        certificates.push(entry(node, item.kind, { path }, pem, kindOf));
      } catch (err) {
        errors.push({ node: node.name, message: `${path}: not a parsable certificate (${errorMessage(err)})` });
      }
    }
  };

  const route = endpointRoute(inv.nodes, deps.connector);
  const probe = async (node: InventoryNode, host: string, port: number) => {
    const endpoint = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    try {
      const stream = await route(host, port);
      const der = await servedCertificate({ host, port, timeoutMs: deps.probeTimeoutMs ?? 5000, ...(stream ? { stream } : {}) });
      certificates.push(entry(node, 'endpoint', { endpoint }, der));
    } catch (err) {
      errors.push({ node: node.name, message: `endpoint ${endpoint}: ${errorMessage(err)}` });
    }
  };

  const jobs: Array<() => Promise<void>> = [
    ...plans.map((p) => () => readNode(p)),
    ...plans.flatMap((p) => p.endpoints.map((e) => () => probe(p.node, e.host, e.port))),
  ];
  const { limit } = deps;
  if (limit) await Promise.all(jobs.map((job) => limit(job)));
  else await mapLimit(jobs, deps.concurrency, (job) => job());
  await Promise.all(closing);
  if (!deps.keepConnectorOpen) await deps.connector.close?.();

  const order = new Map(inv.nodes.map((n, i) => [n.name, i]));
  certificates.sort((a, b) => (order.get(a.node) ?? 0) - (order.get(b.node) ?? 0) || a.daysLeft - b.daysLeft || (a.path ?? a.endpoint ?? '').localeCompare(b.path ?? b.endpoint ?? ''));
  errors.sort((a, b) => (order.get(a.node) ?? 0) - (order.get(b.node) ?? 0) || a.message.localeCompare(b.message));
  const report: CheckReport = { cluster: inv.cluster, checkedAt: now.toISOString(), warnDays: deps.warnDays, certificates, errors };
  if (backups.length > 0) report.backups = backups.sort((a, b) => (order.get(a.node) ?? 0) - (order.get(b.node) ?? 0));
  if (plans.some((p) => p.cis)) {
    cis.sort((a, b) => (order.get(a.node) ?? 0) - (order.get(b.node) ?? 0) || a.path.localeCompare(b.path) || compareItems(a.item, b.item));
    report.cis = cis;
  }
  return report;
}

function firstLine(s: string): string {
  return s.split('\n').find((l) => l.trim() !== '')?.trim() ?? '';
}

function sudoHint(stderr: string): string {
  return /password is required|a terminal is required/.test(stderr) ? ' (rotate-certs needs passwordless sudo for the SSH user)' : '';
}
