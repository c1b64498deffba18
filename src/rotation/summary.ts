/**
 * The few lines a plan starts with, before its commands: the nodes in order, per phase, what each
 * gets, how long each kube-apiserver is expected to be down, and what needs the management
 * cluster. Pure: the plan and the kubeconfig the run would use in, lines out.
 */
import { etcdadmClusterName, etcdClientSecretName, PAUSED, SECRET_NAMESPACE } from '../apply/manual-commands.js';
// Flag defaults live with the CLI's help (a module of constants only), so the summary cannot drift from them.
import { FlagDefault, PodTimeoutDefault } from '../util/exit-codes.js';
import type { Inventory } from '../inventory/types.js';
import type { Plan, PlanNode, PlanPhase, PlanStep } from '../plan/types.js';

/**
 * A kube-apiserver's restart as observed on ordinary control planes: the old containers stop in
 * seconds, the new kube-apiserver is ready once etcd answers it. Not slept: the run watches it.
 */
export const API_DOWNTIME_ESTIMATE = '15-60 s';

/** Short names for the phases, by the nodes they go to; a phase not listed shows its runbook title. */
const LABELS: Record<string, string> = {
  etcd: 'etcd members',
  'etcd-client-pair': 'etcd client pair',
  'control-plane': 'Control planes',
  management: 'Management cluster',
  kubelet: 'Kubelets',
};

/** What the summary needs besides the plan: the inventory's kubeconfig, when the caller has it. */
export type SummaryInventory = Pick<Inventory, 'kubeconfig'>;

const stepsOf = (node: PlanNode | undefined): PlanStep[] => node?.steps ?? [];
const has = (node: PlanNode | undefined, action: PlanStep['action']) => stepsOf(node).some((s) => s.action === action);
const runs = (node: PlanNode | undefined, key: string) => stepsOf(node).some((s) => s.run === key);
const list = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : typeof v === 'string' ? [v] : []);

/** The certificates and kubeconfigs a node's certs-renewed gates hold it to, by file name. */
function renewedFiles(node: PlanNode | undefined): { certs: string[]; kubeconfigs: string[] } {
  const gates = stepsOf(node).filter((s) => s.action === 'certs-renewed');
  return {
    certs: gates.flatMap((s) => list(s.with.renewed)).map((f) => f.replace(/\.crt$/, '')),
    kubeconfigs: gates.flatMap((s) => list(s.with.kubeconfigs)),
  };
}

/** What one node of the phase gets; every node of a phase runs the same runbook steps. */
function gets(phase: PlanPhase, plan: Plan): string {
  const node = phase.nodes[0];
  const parts: string[] = [];
  const { certs, kubeconfigs } = renewedFiles(node);
  if (certs.length > 0) parts.push(certs.join(', '));
  if (kubeconfigs.length > 0) parts.push(`the client certificates in ${kubeconfigs.join(', ')} (those present)`);
  if (has(node, 'etcd-client-installed')) {
    const from = plan.phases.find((p) => p.phase === 'etcd-client-pair')?.nodes[0]?.name;
    parts.push(`the etcd client pair${from ? ` from ${from}` : ''}`);
  }
  if (has(node, 'issue-kubelet-client')) parts.push('a kubelet client certificate (signed on a control plane) and a new serving one');
  const restarts = [...(runs(node, 'staticPodsStop') ? ['static pods restarted'] : []), ...(runs(node, 'kubeletRestart') ? ['kubelet restarted (its pods keep running)'] : [])];
  if (parts.length === 0 && restarts.length === 0) return '';
  return `${parts.join('; ')}${restarts.length > 0 ? `${parts.length > 0 ? '; ' : ''}${restarts.join(', ')}` : ''}`;
}

/** Greedy word wrap, so a long list stays readable in an 120-column terminal. */
function wrap(text: string, indent: string, next = `${indent}  `, width = 118): string[] {
  const lines: string[] = [];
  let line = indent;
  for (const word of text.split(' ')) {
    if (line.trim() && line.length + 1 + word.length > width) {
      lines.push(line);
      line = next + word;
    } else line = line.trim() ? `${line} ${word}` : line + word;
  }
  return [...lines, line];
}

/** How the phase goes through its nodes, and what it waits for before the next. */
function order(phase: PlanPhase): string {
  const parallel = phase.parallel ?? [];
  const serialNodes = phase.nodes.length - parallel.length;
  const workers = `up to --parallel (default ${FlagDefault.parallel}) at once`;
  if (parallel.length > 0 && serialNodes > 0) return `control planes one at a time, then workers ${workers}`;
  if (parallel.length > 0) return workers;
  if (phase.serial && phase.nodes.length > 1) {
    const next = phase.phase === 'etcd' ? 'healthy' : phase.phase === 'control-plane' ? 'ready' : 'through its gates';
    return `one node at a time, the next only when this one is ${next}`;
  }
  return '';
}

function nodeLine(node: PlanNode, plan: Plan, width: number, note = ''): string {
  const tags = [
    ...(plan.etcdExpired?.includes(node.name) && node.role !== 'worker' ? ['[etcd certificates expired: recovery]'] : []),
    ...(node.onlyIf ? ['[decided at run time]'] : []),
  ];
  return `       ${node.name.padEnd(width)}  ${node.os.padEnd(12)}  ${node.host}${note ? `  ${note}` : ''}${tags.length > 0 ? `  ${tags.join(' ')}` : ''}`;
}

function downtimeLines(phase: PlanPhase, stacked: boolean): string[] {
  const down = stacked ? 'kube-apiserver and etcd member are' : 'kube-apiserver is';
  const others =
    phase.nodes.length > 1
      ? 'One node at a time: the other control planes keep serving (clients of the VIP see a short break when kube-vip moves it).'
      : 'The only control plane in scope: the API is down for that whole time.';
  return wrap(
    `API downtime: each node's ${down} down while its static pods restart: about ${API_DOWNTIME_ESTIMATE}, observed, not slept. ` +
      `It depends on how fast the old containers stop, the kubelet starts new ones and etcd answers; the run waits at most ` +
      `${PodTimeoutDefault.stopSeconds} s for the stop and ${PodTimeoutDefault.startSeconds} s for ready (--pod-timeout). ${others}`,
    '     ',
  );
}

function managementLines(plan: Plan, inventory: SummaryInventory | undefined): string[] {
  const mgmt = plan.phases.find((p) => p.phase === 'management')?.nodes[0];
  const externalEtcd = plan.phases.some((p) => p.nodes.some((n) => n.role === 'etcd'));
  // As apply/engine.ts: paused while etcd members or the kube-apiservers that use them are renewed.
  const paused = externalEtcd && plan.phases.some((p) => p.phase === 'etcd' || p.phase === 'control-plane');
  const uses: string[] = [];
  if (paused) uses.push(`for the whole run, etcdadm-controller's etcd health checks are paused (${PAUSED} on EtcdadmCluster ${SECRET_NAMESPACE}/${etcdadmClusterName(plan.cluster)}), taken off when the run ends`);
  if (has(mgmt, 'update-etcd-client-secret')) uses.push(`the secret ${SECRET_NAMESPACE}/${etcdClientSecretName(plan)} gets the renewed etcd client pair`);
  if (has(mgmt, 'restart-etcdadm-controller')) uses.push(`etcdadm-controller is restarted so it reads that secret, and its rollout waited for (up to --pod-timeout)`);
  if (has(mgmt, 'kcp-not-paused')) uses.push('the KubeadmControlPlane is checked for cluster.x-k8s.io/paused (a warning only)');
  if (uses.length === 0) return ['  Management cluster: not needed in this scope.'];
  const admin = mgmt?.name ?? 'the first control plane';
  const through =
    inventory === undefined
      ? " (the inventory's kubeconfig)"
      : inventory.kubeconfig
        ? ` (kubeconfig ${inventory.kubeconfig}; if it is refused, ${admin}'s renewed admin.conf when this cluster manages itself)`
        : `: no kubeconfig set (inventory field kubeconfig), so only ${admin}'s admin.conf is tried, which works only when this cluster manages itself`;
  return [
    ...wrap(`Needs the management cluster${through}:`, '  '),
    ...uses.flatMap((u) => wrap(`- ${u}`, '     ')),
    ...(has(mgmt, 'update-etcd-client-secret')
      ? wrap('- if its API cannot be reached, that step fails with the kubectl commands to run by hand; --resume then does what is left', '     ')
      : []),
  ];
}

function failureLine(plan: Plan): string {
  const parallel = plan.phases.some((p) => (p.parallel?.length ?? 0) > 0);
  const serial = plan.phases.some((p) => p.nodes.some((n) => !p.parallel?.includes(n.name) && n.steps.some((s) => s.effect === 'mutate')));
  const worker = 'a failing worker is restored from its backup and the other workers finish';
  if (!serial) return `On a failure: ${worker}.`;
  return `On a failure: that node is restored from its backup and the run stops; nodes after it are not touched${parallel ? ` (${worker})` : ''}.`;
}

function scopeText(plan: Plan): string {
  const { only, nodes } = plan.scope;
  const parts = [...(only ? [`only ${only}`] : []), ...(nodes ? [`nodes ${nodes.join(', ')}`] : [])];
  return parts.length > 0 ? ` (scope: ${parts.join('; ')})` : '';
}

/** The summary's lines, ending with a blank line. `inventory` gives the kubeconfig the run would use. */
export function planSummary(plan: Plan, inventory?: SummaryInventory): string[] {
  const nodes = new Set(plan.phases.flatMap((p) => p.nodes.map((n) => n.name)));
  if (nodes.size === 0) return [];
  const width = Math.max(...[...nodes].map((n) => n.length));
  const stacked = !plan.phases.some((p) => p.nodes.some((n) => n.role === 'etcd'));
  const out = ['', `Summary: ${nodes.size} node${nodes.size === 1 ? '' : 's'} in ${plan.phases.length} phase${plan.phases.length === 1 ? '' : 's'}${scopeText(plan)}, in this order (the steps follow):`];
  plan.phases.forEach((phase, i) => {
    const head = `${i + 1}. ${LABELS[phase.phase] ?? phase.title}`;
    if (phase.phase === 'management') {
      out.push(...wrap(`${head}: once, after the nodes above (see below)`, '  ', '     '));
      return;
    }
    const readOnly = phase.nodes.every((n) => n.steps.every((s) => s.effect === 'read'));
    if (readOnly) {
      out.push(...wrap(`${head}: on ${phase.nodes.map((n) => n.name).join(', ')}, read only (changes nothing)`, '  ', '     '));
      return;
    }
    const how = order(phase);
    out.push(...wrap(`${head}${how ? `, ${how}` : ''}:`, '  ', '     '));
    const cp = phase.phase === 'control-plane';
    for (const node of phase.nodes) out.push(nodeLine(node, plan, width, cp ? `API down ~${API_DOWNTIME_ESTIMATE}` : ''));
    const what = gets(phase, plan);
    if (what) out.push(...wrap(`each gets: ${what}`, '     '));
    if (phase.nodes.some((n) => n.onlyIf)) out.push(...wrap('[decided at run time]: only if, when the run reads it, its kubelet client or serving certificate is expired or within --warn-days', '     '));
    if (cp) out.push(...downtimeLines(phase, stacked));
  });
  const kubeletInScope = !plan.scope.only || plan.scope.only === 'kubelet' || plan.scope.only === 'workers';
  if (plan.kubeletDue?.length === 0 && kubeletInScope && !plan.phases.some((p) => p.phase === 'kubelet')) {
    out.push('  Kubelets: none is due (expired or within --warn-days), so none is renewed.');
  }
  out.push(...wrap(failureLine(plan), '  '));
  out.push(...managementLines(plan, inventory), '');
  return out;
}
