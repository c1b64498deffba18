/**
 * Pre-flight: read-only checks before a rotation changes anything. Every node reachable with
 * working root; certificates as the plan saw them; CAs not expired; etcd healthy; room for the
 * backups; clocks close to ours. Any failure means nothing is changed.
 */
import type { CheckReport } from '../check/run.js';
import { kubeadmControlPlanes } from '../kube/capi.js';
import { KubeClient, readKubeconfig } from '../kube/client.js';
import { runCheck, planCheck } from '../check/run.js';
import { detectInventoryOs } from '../profiles/detect-os.js';
import type { Inventory, Role } from '../inventory/types.js';
import type { Plan, PlanFacts } from '../plan/types.js';
import type { OsProfile, ProfileSet } from '../profiles/profile.js';
import { loadCheckRunbook } from '../runbook/check-sources.js';
import { renderScript } from '../runbook/template.js';
import { nodeVars } from '../plan/compile.js';
import { etcdExpiredFrom, unexplainedEtcdTrouble } from '../plan/etcd-recovery.js';
import { nodeNamesFrom } from '../plan/node-names.js';
import { endpointRoute, unreachable, type EndpointRoute } from '../transport/endpoints.js';
import type { Connector } from '../transport/session.js';
import { RotateCertsError, ExitCode, errorMessage, nodeErrorDetail, outputTail } from '../util/errors.js';
import { mapLimit } from '../util/limit.js';
import { groupByMessage, plural } from '../util/wording.js';
import type { Reporter } from './reporter.js';

export class PreflightError extends RotateCertsError {
  /** The same problem on several nodes is one line naming them. */
  constructor(problems: Array<{ node?: string; message: string }>) {
    super(`pre-flight failed, nothing was changed:\n  - ${groupByMessage(problems).join('\n  - ')}`, ExitCode.unavailable);
  }
}

export function factsFrom(report: CheckReport): PlanFacts {
  const certificates: PlanFacts['certificates'] = {};
  for (const c of report.certificates) {
    if (c.source !== 'file' || !c.path) continue;
    (certificates[c.node] ??= {})[c.path] = { serial: c.serial, notAfter: c.notAfter };
  }
  return { gatheredAt: report.checkedAt, certificates };
}

/** Every certificate, read over the caller's connector, which stays open: its owner closes it (a pool is used again after). */
export async function gatherReport(inv: Inventory, profiles: ProfileSet, connector: Connector, warnDays: number, concurrency: number): Promise<CheckReport> {
  return runCheck(inv, planCheck(inv, profiles, loadCheckRunbook()), { connector, clock: { now: () => new Date() }, concurrency, warnDays, keepConnectorOpen: true });
}

export interface PreflightInput {
  plan: Plan;
  inventory: Inventory;
  profiles: ProfileSet;
  connector: Connector;
  reporter: Reporter;
  warnDays: number;
  concurrency: number;
  /** On resume the certificates have legitimately changed since planning. */
  compareFacts: boolean;
  /** Check etcd's health even when the plan touches neither etcd nor the control plane (an unattended run). */
  etcdHealthAlways?: boolean;
}

export async function preflight(input: PreflightInput): Promise<CheckReport> {
  const { plan, inventory: inv, reporter } = input;
  const problems: Array<{ node?: string; message: string }> = [];
  const planNodes = new Set(plan.phases.flatMap((p) => p.nodes.map((n) => n.name)));
  reporter.phase('Pre-flight (read-only)');

  const report = await gatherReport(inv, input.profiles, input.connector, input.warnDays, input.concurrency);
  const warnings: Array<{ node: string; message: string }> = [];
  for (const e of report.errors) {
    // On resume, a node the last run left part-way may lack the files it was renewing: resume
    // restores it from its backup before anything else, so that is not a reason to refuse.
    const partWay = !input.compareFacts && e.message.startsWith('expected certificate file ');
    const endpoint = e.message.startsWith('endpoint ');
    // An endpoint this machine cannot reach at all: the gates could not tell it stopping from
    // serving (a closed port, or one that answers badly, is only a warning).
    if (planNodes.has(e.node) && endpoint && unreachable(e.message)) {
      problems.push({ node: e.node, message: `${e.message}: the gates watch this endpoint, so it must be reachable from here${inv.nodes.some((n) => n.ssh.jumpHost) ? ' (through ssh.jumpHost, as SSH goes)' : '; behind a bastion, set ssh.jumpHost'}` });
    } else if (planNodes.has(e.node) && !endpoint && !partWay) problems.push({ node: e.node, message: e.message });
    else warnings.push(e);
  }
  for (const line of groupByMessage(warnings)) reporter.warn(line);
  // Every command a node gets follows from its OS: an os: auto node must still be what the plan found.
  const autoNames = Object.keys(plan.detected ?? {}).filter((n) => planNodes.has(n));
  if (autoNames.length > 0) {
    const again = await detectInventoryOs(
      { ...inv, nodes: inv.nodes.filter((n) => autoNames.includes(n.name)).map((n) => ({ ...n, os: 'auto' as const })) },
      input.connector,
      input.concurrency,
    );
    for (const e of again.errors) problems.push({ node: e.node, message: e.message });
    for (const [node, os] of Object.entries(again.detected)) {
      const was = plan.detected?.[node];
      if (os !== was) problems.push({ node, message: `the plan was made for ${was}, but the node now looks like ${os}; make a new plan` });
    }
  }
  // Cluster CAs only: the kubelet's self-signed serving CA is renewed with its serving certificate.
  for (const ca of report.certificates.filter((c) => c.kind === 'ca' && c.source === 'file')) {
    if (ca.status === 'expired' || ca.status === 'not-yet-valid') problems.push({ node: ca.node, message: `CA ${ca.path} is ${ca.status}: rotate-certs cannot renew a CA; leaf certificates signed by it would not be trusted` });
    else if (ca.status === 'expiring') reporter.warn(`${ca.node}: CA ${ca.path} expires in ${plural(ca.daysLeft, 'day')} (${ca.notAfter}). rotate-certs cannot renew CAs; plan a CA rotation now.`);
  }
  if (input.compareFacts && plan.facts) {
    const now = factsFrom(report).certificates;
    for (const [node, files] of Object.entries(plan.facts.certificates)) {
      if (!planNodes.has(node)) continue;
      for (const [path, was] of Object.entries(files)) {
        const is = now[node]?.[path];
        if (is && is.serial !== was.serial) problems.push({ node, message: `${path} changed since the plan was made (serial ${was.serial} -> ${is.serial}); make a new plan` });
      }
    }
  }

  // The commands the node's steps run, room for backups, clock skew: one read-only script per node.
  const targets = inv.nodes.filter((n) => planNodes.has(n.name));
  await mapLimit(targets, input.concurrency, async (node) => {
    const profile = input.profiles.get(node.os);
    const template = profile.commands.preflightFacts;
    if (!template) return;
    const vars = nodeVars(node, profile, plan.runId);
    const needed = requiredCommands(profile, node.role);
    try {
      const session = await input.connector.connect(node);
      try {
        const sentAt = Date.now();
        const res = await session.exec(profile.rootShell, { stdin: `${commandProbe(needed)}\n${renderScript(template, vars, {})}` });
        if (res.code !== 0) {
          problems.push({ node: node.name, message: `pre-flight facts failed (exit ${res.code}): ${res.stderr.trim() || 'no error output'}` });
          return;
        }
        const missing = res.stdout.split('\n').flatMap((l) => (l.startsWith('missing-command=') ? [l.slice('missing-command='.length)] : []));
        if (missing.length > 0) {
          problems.push({ node: node.name, message: `${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not on the node, and ${profile.file.replace(/^.*\/(os-profiles\/)/, '$1')} runs ${missing.length > 1 ? 'them' : 'it'} (as root, through ${profile.rootShell})` });
        }
        for (const line of res.stdout.split('\n')) {
          const clock = /^clock=(\d+)$/.exec(line);
          if (clock) {
            const skew = Math.abs(Number(clock[1]) * 1000 - (sentAt + Date.now()) / 2);
            if (skew > 300_000) problems.push({ node: node.name, message: `its clock is ${Math.round(skew / 1000)} s away from this machine's; fix time sync first, or renewed certificates may be not yet valid elsewhere` });
            else if (skew > 30_000) reporter.warn(`${node.name}: clock skew ${Math.round(skew / 1000)} s`);
          }
          const free = /^free=(\S+) (\d+) (\d+)$/.exec(line);
          if (free && Number(free[2]) < Number(free[3]) + 1024) problems.push({ node: node.name, message: `no room to back up ${free[1]}: needs ${free[3]} KiB plus 1 MiB, ${free[2]} KiB free` });
        }
      } finally {
        await session.close();
      }
    } catch (err) {
      problems.push({ node: node.name, message: nodeErrorDetail(err, node.name) });
    }
  });

  // etcd health before touching it: a cluster that is already unhealthy must not lose a member,
  // unless the plan is an etcd recovery and its members' expired certificates explain it all.
  // Stacked etcd: its members are the control planes, asked through their own etcd container.
  const etcdMembers = inv.nodes.filter((n) => n.role === (inv.externalEtcd ? 'etcd' : 'control-plane'));
  const healthCommand = inv.externalEtcd ? 'etcdHealth' : 'stackedEtcdHealth';
  const expiredNow = etcdExpiredFrom(report);
  const planned = plan.etcdExpired ?? [];
  const recovering = plan.phases.some((p) => (p.phase === 'etcd' || p.phase === 'control-plane') && p.nodes.some((n) => n.steps.some((s) => s.deferred ?? s.retried)));
  if (input.compareFacts && expiredNow.join(',') !== planned.join(',')) {
    problems.push({ message: `etcd members with expired certificates: ${expiredNow.join(', ') || 'none'} now, ${planned.join(', ') || 'none'} when the plan was made; make a new plan` });
  }
  // Asked of a member whose own certificates are valid: an expired one cannot even answer etcdctl.
  const etcdNode = etcdMembers.find((n) => !expiredNow.includes(n.name)) ?? etcdMembers[0];
  if (etcdNode && (input.etcdHealthAlways || plan.phases.some((p) => p.phase === 'etcd' || p.phase === 'control-plane'))) {
    const profile = input.profiles.get(etcdNode.os);
    const template = profile.commands[healthCommand];
    if (template) {
      try {
        const session = await input.connector.connect(etcdNode);
        try {
          // Stacked etcd: its container is found by its static pod's name, which carries the Node name.
          const kubeNodeName = nodeNamesFrom(report)[etcdNode.name] ?? plan.nodeNames?.[etcdNode.name] ?? etcdNode.name;
          const res = await session.exec(profile.rootShell, { stdin: renderScript(template, { ...nodeVars(etcdNode, profile, plan.runId), kubeNodeName }, {}) });
          const why = outputTail(res.stderr, 3, '');
          const from = `checked from ${etcdNode.name}`;
          if (res.code === 0 && recovering && input.compareFacts) {
            problems.push({ message: `etcd is healthy (${from}), but the plan is an etcd recovery for ${planned.join(', ')}: its gates would wait for the last of them; make a new plan` });
          } else if (res.code === 0) {
            reporter.info(`etcd healthy (${from})`);
          } else if (recovering) {
            const unexplained = unexplainedEtcdTrouble(etcdMembers, expiredNow, `${res.stdout}\n${res.stderr}`);
            if (unexplained) problems.push({ message: `etcd is not healthy (${from}) beyond its members with expired certificates: ${unexplained}. Fix that first: renewing members now could cost the quorum (${why})` });
            else reporter.warn(`etcd is not healthy (${from}), as expected with expired certificates on ${expiredNow.join(', ')}. etcd recovery: they are renewed one at a time, and the gates that need a healthy cluster wait until enough of them are (the plan marks them [deferred] and [retried]): ${why}`);
          } else if (input.compareFacts) {
            const first = inv.externalEtcd ? 'etcd' : 'the control plane (stacked etcd)';
            const hint = expiredNow.length > 0 ? ` (certificates expired on ${expiredNow.join(', ')}: renew ${first} first, in a plan that includes every etcd member)` : '';
            problems.push({ message: `etcd is not healthy (${from}): ${why}${hint}` });
          }
          // On resume a node the last run left part-way may be the unhealthy member: it is
          // restored first, and the restore waits for the whole cluster's health.
          else reporter.warn(`etcd is not healthy (${from}); resuming restores any node left part-way first: ${why}`);
          // The profile noticed something worth saying (say, a stale etcd container).
          for (const w of res.stderr.split('\n').filter((l) => l.startsWith('warning: '))) reporter.warn(`${etcdNode.name}: ${w.slice('warning: '.length)}`);
        } finally {
          await session.close();
        }
      } catch (err) {
        problems.push({ message: `etcd health from ${etcdNode.name}: ${nodeErrorDetail(err, etcdNode.name)}` });
      }
    }
  }

  if (problems.length > 0) throw new PreflightError(problems);
  // Only when the run can go ahead: a refused run need not reach the API.
  await reportKcpPaused(inv, reporter, endpointRoute(inv.nodes, input.connector));
  reporter.info(`pre-flight ok: ${plural(report.certificates.length, 'certificate')} read from ${plural(inv.nodes.length, 'node')}`);
  return report;
}

/** What a node of this role runs, as its OS profile lists it (requires: all and the role's). */
export function requiredCommands(profile: OsProfile, role: Role): string[] {
  return [...new Set([...(profile.requires?.all ?? []), ...(profile.requires?.[role] ?? [])])].sort();
}

/** A read-only probe printing missing-command=NAME for each command the root shell cannot find. */
export function commandProbe(commands: string[]): string {
  // Names are validated at load (letters, digits, . _ + -): nothing here needs quoting.
  return commands.map((c) => `command -v ${c} >/dev/null 2>&1 || echo missing-command=${c}`).join('\n');
}

/**
 * The KCP paused state before anything changes, so a pause that predates the run is not blamed on
 * it. Read-only and advisory: the API is often down when certificates have expired.
 */
async function reportKcpPaused(inv: Inventory, reporter: Reporter, route: EndpointRoute): Promise<void> {
  if (!inv.kubeconfig) return;
  try {
    const { names, paused } = await kubeadmControlPlanes(new KubeClient(readKubeconfig(inv.kubeconfig), 5000, route), 'eksa-system');
    if (paused.length > 0) reporter.warn(`KubeadmControlPlane ${paused.join(', ')} is already paused (cluster.x-k8s.io/paused) before this run`);
    else reporter.info(`KubeadmControlPlane not paused (${names.length} checked)`);
  } catch (err) {
    reporter.info(`KCP paused state not checked before the run: ${errorMessage(err)}`);
  }
}
