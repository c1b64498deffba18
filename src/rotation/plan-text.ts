/** The plan as text for people: a summary, then per phase, per node, in execution order, every command. */
import { planSummary, type SummaryInventory } from './summary.js';
import type { Plan, PlanNode, PlanStep } from '../plan/types.js';

const KUBELET_DUE_FILES = 'kubelet-client-current.pem, kubelet.crt or kubelet-server-current.pem, or the kubelet kubeconfig';

function withText(step: PlanStep): string {
  return Object.entries(step.with)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : v}`)
    .join(' ');
}

function stepLines(step: PlanStep, n: number, node: PlanNode, full: boolean): string[] {
  const out = [`    ${String(n).padStart(2)}. ${step.id}: ${step.title}${step.effect === 'read' ? ' [read-only]' : ''}${step.deferred ? ' [deferred]' : ''}${step.retried ? ' [retried]' : ''}`];
  if (step.deferred ?? step.retried) out.push(`        ${step.deferred ?? step.retried}`);
  if (step.why && full) out.push(`        why: ${step.why}`);
  if (step.action) out.push(`        action ${step.action} ${withText(step)}`.trimEnd());
  for (const [key, command] of Object.entries(step.commands ?? {})) {
    if (!full) continue;
    out.push(`        runs ${key}: ${node.rootShell} <<'ROTATE_CERTS'`);
    for (const l of command.trimEnd().split('\n')) out.push(`        | ${l}`);
    out.push(`        ROTATE_CERTS`);
  }
  if (step.command) {
    if (full) {
      out.push(`        ${node.rootShell} <<'ROTATE_CERTS'`);
      for (const l of step.command.trimEnd().split('\n')) out.push(`        | ${l}`);
      out.push(`        ROTATE_CERTS`);
    } else {
      out.push(`        run ${step.run}`);
    }
  }
  return out;
}

/**
 * `inventory`: the one the plan was made from, so the summary can name the management cluster's
 * kubeconfig the run would use (or say that none is set).
 */
export function renderPlanText(plan: Plan, opts: { full: boolean; header?: string; inventory?: SummaryInventory }): string {
  const out: string[] = [];
  if (opts.header) out.push(opts.header);
  out.push(`Plan ${plan.runId} for cluster ${plan.cluster} (inventory ${plan.inventory}${plan.inventoryText === undefined ? '' : ', not saved: the plan carries it'})`);
  // Look first: the order and its cost before the ~1,000 lines of commands.
  out.push(...planSummary(plan, opts.inventory));
  const detected = Object.entries(plan.detected ?? {});
  if (detected.length > 0) out.push(`Detected (os: auto): ${detected.map(([n, os]) => `${n} ${os}`).join(', ')}`);
  if (plan.kubeletDue === undefined) {
    out.push(
      'Kubelet certificates were not read (--dry-run): the kubelet phase lists every node it could go to, each [decided at run time]: a real run gives it to those whose kubelet client or serving certificate is expired or within --warn-days, and to the nodes named with --nodes.',
      'etcd certificates were not read either: a plan for etcd members whose certificates have expired (etcd recovery) differs; see docs/rotate.md.',
    );
  }
  else out.push(`Kubelet certificates due (expired or within --warn-days): ${plan.kubeletDue.length > 0 ? plan.kubeletDue.join(', ') : 'none'}`);
  const expired = plan.etcdExpired;
  if (expired && plan.phases.some((p) => p.nodes.some((n) => n.role === 'control-plane' && expired.includes(n.name)))) {
    out.push(
      `etcd members (stacked on the control plane) with expired certificates: ${expired.join(', ')}. They cannot serve or rejoin until renewed (etcd recovery):`,
      '  their nodes are renewed first, one at a time; the gates that need a quorum wait, where it is lost, for the node whose renewal makes a majority; the gate on every member\'s health runs on the last of them.',
    );
  } else if (expired) {
    out.push(
      `etcd members with expired certificates: ${expired.join(', ')}. etcd cannot be healthy until all are renewed (etcd recovery):`,
      '  they are renewed first, one at a time; the gates that need a healthy cluster run on the last of them, where etcd health covers every member.',
    );
  }
  for (const [node, kube] of Object.entries(plan.nodeNames ?? {})) {
    out.push(`Node name: ${node}'s kubelet client certificate is for Node ${kube} (CN system:node:${kube}), not ${node}: its kubelet certificate is issued for ${kube}, and the Node ${kube} must become Ready.`);
  }
  if (plan.scope.only || plan.scope.nodes) out.push(`Scope: ${plan.scope.only ? `only ${plan.scope.only}` : ''}${plan.scope.nodes ? ` nodes ${plan.scope.nodes.join(',')}` : ''}`.trim());
  plan.phases.forEach((phase, i) => {
    const parallel = phase.parallel?.length ?? 0;
    const order =
      parallel > 0
        ? parallel < phase.nodes.length
          ? ' (one node at a time, in this order; then the workers, up to --parallel at once)'
          : parallel > 1
            ? ' (up to --parallel at once)'
            : ''
        : phase.serial && phase.nodes.length > 1
          ? ' (one node at a time, in this order)'
          : '';
    out.push('', `Phase ${i + 1}: ${phase.title}${order}`);
    for (const node of phase.nodes) {
      out.push(`  ${node.name} (${node.role}, ${node.os}${plan.detected?.[node.name] ? ' detected' : ''}, ${node.host})${node.onlyIf ? ' [decided at run time]' : ''}`);
      if (node.onlyIf) out.push(`    only if, when rotate reads it, its kubelet client or serving certificate (${KUBELET_DUE_FILES}) is expired or within --warn-days`);
      node.steps.forEach((s, j) => out.push(...stepLines(s, j + 1, node, opts.full)));
      if (node.restore && opts.full) {
        out.push(`    on failure after ${node.restore.after}: restore, then stop the run`);
        node.restore.steps.forEach((s, j) => out.push(...stepLines(s, j + 1, node, opts.full).map((l) => `  ${l}`)));
      }
      if (node.backups.length > 0) out.push(`    backups: ${node.backups.join(', ')}`);
    }
  });
  if (plan.phases.length === 0) out.push('', 'Nothing to do in this scope.');
  return `${out.join('\n')}\n`;
}
