import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { CliIo } from '../../src/cli/io.js';
import { runCli } from '../../src/cli/program.js';
import { requireKnownOs } from '../../src/profiles/detect-os.js';
import { loadInventory, parseInventory as parseSpec } from '../../src/inventory/load.js';
import type { Inventory } from '../../src/inventory/types.js';
import { compilePlan, type CompileInput } from '../../src/plan/compile.js';
import { renderPlanText } from '../../src/rotation/plan-text.js';
import { planSummary } from '../../src/rotation/summary.js';
import type { Plan } from '../../src/plan/types.js';
import { ProfileSet } from '../../src/profiles/profile.js';
import { loadRotationRunbooks } from '../../src/runbook/runbook.js';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';

const example = requireKnownOs(loadInventory(join(PACKAGE_ROOT, 'examples/lab/inventory.yaml')), 'the example names every OS');

const parse = (text: string): Inventory => requireKnownOs(parseSpec(text, '/tmp/inv.yaml'), 'the test names every OS');

const stackedText = `cluster: edge
ssh: { user: capv, identityFile: id }
controlPlane:
  - { name: edge-cp-1, host: 10.0.0.21 }
  - { name: edge-cp-2, host: 10.0.0.22 }
  - { name: edge-cp-3, host: 10.0.0.23, os: bottlerocket }
workers:
  - { name: edge-md-1, host: 10.0.0.31 }
`;

function plan(inventory: Inventory, extra: Partial<CompileInput> = {}): Plan {
  return compilePlan({
    inventory,
    inventoryDigest: 'x',
    runbooks: loadRotationRunbooks(),
    profiles: new ProfileSet(),
    runId: '20261126T000000Z',
    createdAt: '2026-11-26T00:00:00.000Z',
    scope: {},
    ...extra,
  });
}

const summaryOf = (p: Plan, inv?: Pick<Inventory, 'kubeconfig'>) => planSummary(p, inv).join('\n');
/** The summary as one line, every run of spaces and line breaks one space: for its prose, which is wrapped. */
const flat = (text: string) => text.replace(/\s+/g, ' ');
/** The node lines: name, OS, host and notes, in order. */
const nodeLines = (text: string) => text.split('\n').filter((l) => /^ {7}\S+ +(?:ubuntu|rhel|bottlerocket) +\S+/.test(l));

describe('plan summary', () => {
  it('the example dry run: nodes in order per phase, what each gets, API downtime, the management cluster and its kubeconfig', () => {
    const text = summaryOf(plan(example), example);
    const prose = flat(text);
    // One line per node of each phase, in the order the run takes them.
    expect(nodeLines(text).map((l) => l.trim().split(/\s+/)[0])).toEqual(['lab-etcd-1', 'lab-etcd-2', 'lab-etcd-3', 'lab-cp-1', 'lab-cp-2', 'lab-cp-1', 'lab-cp-2', 'lab-md-1', 'lab-md-2']);
    expect(text).toMatch(/^ {2}1\. etcd members, one node at a time, the next only when this one is healthy:$/m);
    expect(text).toContain('\n     each gets: server, peer, etcdctl-etcd-client, apiserver-etcd-client\n');
    expect(text).toMatch(/^ {2}2\. etcd client pair: on lab-etcd-1, read only \(changes nothing\)$/m);
    expect(text).toMatch(/^ {2}3\. Control planes, one node at a time, the next only when this one is ready:$/m);
    expect(text).toMatch(/^ {7}lab-cp-1 +ubuntu +198\.51\.100\.21 +API down ~15-60 s$/m);
    expect(prose).toContain(
      'each gets: apiserver, apiserver-kubelet-client, front-proxy-client; the client certificates in admin.conf, controller-manager.conf, scheduler.conf, super-admin.conf (those present); the etcd client pair from lab-etcd-1; static pods restarted',
    );
    expect(prose).toContain("API downtime: each node's kube-apiserver is down while its static pods restart: about 15-60 s, observed, not slept.");
    expect(prose).toContain('the run waits at most 120 s for the stop and 300 s for ready (--pod-timeout). One node at a time: the other control planes keep serving');
    expect(text).toMatch(/^ {2}4\. Management cluster: once, after the nodes above \(see below\)$/m);
    expect(prose).toContain('5. Kubelets, control planes one at a time, then workers up to --parallel (default 5) at once:');
    expect(text).toMatch(/^ {7}lab-md-2 +bottlerocket +198\.51\.100\.32 +\[decided at run time\]$/m);
    expect(prose).toContain(`Needs the management cluster (kubeconfig ${join(PACKAGE_ROOT, 'examples/lab/lab-eks-a-cluster.kubeconfig')}; if it is refused, lab-cp-1's renewed admin.conf`);
    expect(prose).toContain("- for the whole run, etcdadm-controller's etcd health checks are paused (cluster.x-k8s.io/paused on EtcdadmCluster eksa-system/lab-etcd), taken off when the run ends");
    expect(prose).toContain('- the secret eksa-system/lab-apiserver-etcd-client gets the renewed etcd client pair');
    expect(prose).toContain('- etcdadm-controller is restarted so it reads that secret');
    expect(prose).toContain('- the KubeadmControlPlane is checked for cluster.x-k8s.io/paused (a warning only)');
    // Short: a screenful, not the ~1,400 lines of commands; and it fits a terminal.
    expect(text.split('\n').length).toBeLessThan(45);
    for (const line of text.split('\n')) expect(line.length).toBeLessThanOrEqual(120);
  });

  it('comes first: the dry run and the plan print it before any phase or command', () => {
    for (const full of [true, false]) {
      const out = renderPlanText(plan(example), { full, inventory: example, header: '# header' });
      const summary = out.indexOf('\nSummary: 7 nodes in 5 phases, in this order');
      expect(summary).toBeGreaterThan(0);
      expect(summary).toBeLessThan(out.indexOf('\nPhase 1:'));
      expect(summary).toBeLessThan(out.indexOf('Needs the management cluster'));
    }
    // The commands follow it, as before.
    expect(renderPlanText(plan(example), { full: true, inventory: example })).toContain('etcdadm join phase certificates');
  });

  it("the README's dry run (rotate and plan) starts with it, naming the example's kubeconfig, and contacts nothing", async () => {
    for (const command of ['rotate', 'plan']) {
      let out = '';
      let contacted = 0;
      const io: CliIo = { out: (t) => void (out += t), err: () => undefined, color: false, env: {}, cwd: PACKAGE_ROOT };
      const connector = { connect: () => Promise.reject(new Error(`contacted ${++contacted}`)) };
      expect(await runCli([command, '--inventory', 'examples/lab/inventory.yaml', '--dry-run'], io, { connector })).toBe(0);
      expect(contacted).toBe(0);
      const lines = out.split('\n');
      expect(lines[0]).toBe(`# rotate-certs ${command} --dry-run: nothing was contacted. A summary, then every command that would run, in this order.`);
      expect(lines.slice(2, 4)).toEqual(['', 'Summary: 7 nodes in 5 phases, in this order (the steps follow):']);
      expect(flat(out.slice(0, out.indexOf('\nPhase 1:')))).toContain(`Needs the management cluster (kubeconfig ${join(PACKAGE_ROOT, 'examples/lab/lab-eks-a-cluster.kubeconfig')};`);
    }
  });

  it('says when no kubeconfig is set, and what is tried instead', () => {
    const prose = flat(summaryOf(plan(example), { kubeconfig: undefined }));
    expect(prose).toContain("Needs the management cluster: no kubeconfig set (inventory field kubeconfig), so only lab-cp-1's admin.conf is tried, which works only when this cluster manages itself:");
  });

  it('stacked etcd: the etcd member goes down with the kube-apiserver; no secret, no etcdadm-controller', () => {
    const inv = parse(stackedText);
    const text = summaryOf(plan(inv), inv);
    const prose = flat(text);
    expect(text).toMatch(/^ {2}1\. Control planes, one node at a time/m);
    expect(text).toMatch(/^ {7}edge-cp-3 +bottlerocket +10\.0\.0\.23 +API down ~15-60 s$/m);
    expect(prose).toContain("each node's kube-apiserver and etcd member are down while its static pods restart");
    expect(prose).toContain('each gets: apiserver, apiserver-kubelet-client, front-proxy-client, etcd/server, etcd/peer, etcd/healthcheck-client, apiserver-etcd-client;');
    expect(text).toMatch(/^ {2}2\. Management cluster: once, after the nodes above/m);
    expect(prose).not.toContain('etcdadm-controller');
    expect(prose).not.toContain('gets the renewed etcd client pair');
    expect(prose).toContain('Needs the management cluster: no kubeconfig set');
    expect(prose).toContain('- the KubeadmControlPlane is checked for cluster.x-k8s.io/paused');
  });

  it('a real plan: only the due kubelets, unmarked; none due is said', () => {
    const due = summaryOf(plan(example, { kubeletDue: ['lab-md-1'] }), example);
    expect(due).toMatch(/^ {2}5\. Kubelets, up to --parallel \(default 5\) at once:\n {7}lab-md-1 +ubuntu +198\.51\.100\.31$/m);
    expect(due).not.toContain('decided at run time');
    const none = summaryOf(plan(example, { kubeletDue: [] }), example);
    expect(none).not.toContain('Kubelets,');
    expect(none).toContain('\n  Kubelets: none is due (expired or within --warn-days), so none is renewed.\n');
  });

  it('one control plane: its API is down for the whole restart', () => {
    const inv = parse(stackedText.replace(/ {2}- \{ name: edge-cp-[23].*\n/g, ''));
    expect(flat(summaryOf(plan(inv), inv))).toContain('The only control plane in scope: the API is down for that whole time.');
  });

  it('--only workers: parallel workers, no management cluster, the workers carry on after a failure', () => {
    const text = summaryOf(plan(example, { scope: { only: 'workers' } }), example);
    expect(text).toMatch(/^Summary: 2 nodes in 1 phase \(scope: only workers\), in this order/m);
    expect(flat(text)).toContain('On a failure: a failing worker is restored from its backup and the other workers finish.');
    expect(text).toContain('\n  Management cluster: not needed in this scope.\n');
    expect(nodeLines(text).map((l) => l.trim().split(/\s+/)[0])).toEqual(['lab-md-1', 'lab-md-2']);
  });

  it('etcd recovery: the expired members go first, and are marked', () => {
    const text = summaryOf(plan(example, { etcdExpired: ['lab-etcd-3'], kubeletDue: [] }), example);
    const etcd = nodeLines(text).filter((l) => l.includes('lab-etcd'));
    expect(etcd[0]).toMatch(/^ {7}lab-etcd-3 .*\[etcd certificates expired: recovery\]$/);
    expect(etcd.slice(1).join('\n')).not.toContain('expired');
  });

  it('nothing in scope: no summary', () => {
    expect(planSummary(plan(example, { kubeletDue: [], scope: { only: 'kubelet' } }), example)).toEqual([]);
  });
});
