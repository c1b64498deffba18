/**
 * Whole rotations through the real engine, runbooks and OS profiles, on a cluster that lives in
 * memory (fake-cluster.ts): 3 external etcd members, 2 control planes, 2 workers whose kubelets are
 * due. Every test judges the end: the journal file, the nodes' models, the ApplyResult.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Journal, type JournalEntry } from '../../src/state/journal.js';
import type { PlanNode, PlanStep } from '../../src/plan/types.js';
import { FakeCluster, ProcessDied, type FaultKind } from './fake-cluster.js';

afterAll(() => FakeCluster.removeAll());

const entriesOf = (c: FakeCluster): JournalEntry[] => new Journal(c.stateDir, c.inventory.cluster).entries(c.plan.runId);
const of = (phase: string, node: string) => (e: JournalEntry) => e.phase === phase && e.node === node;

/** Consecutive repeats folded: the order in which nodes held the run. */
function turns(entries: JournalEntry[]): string[] {
  const out: string[] = [];
  for (const e of entries) {
    if (e.event !== 'step-start') continue;
    const who = `${e.phase} ${e.node}`;
    if (out[out.length - 1] !== who) out.push(who);
  }
  return out;
}

const doneSteps = (entries: JournalEntry[], phase: string, node: string) => entries.filter((e) => of(phase, node)(e) && e.event === 'step-done').map((e) => e.step);

/** A step that changes the node, not one that only copies it aside. */
const changes = (s: PlanStep) => s.effect === 'mutate' && !s.run?.startsWith('backup');
/** Profile commands that change a node (the backups and reads excluded). */
const CHANGING = new Set(['clearPkiKeepCa', 'etcdadmCertificates', 'kubeadmRenewByName', 'installEtcdClientPair', 'staticPodsStop', 'staticPodsStart', 'removeContainer', 'installKubeletClient', 'kubeletRestart', 'kubeletConfUsePem', 'restoreDir', 'restoreKubeconfigs', 'restoreFile']);
const changed = (c: FakeCluster, node: string) => c.view(node).history.filter((k) => CHANGING.has(k));

function everyPlanNode(c: FakeCluster): Array<{ phase: string; node: PlanNode }> {
  return c.plan.phases.flatMap((p) => p.nodes.map((node) => ({ phase: p.phase, node })));
}

describe('a whole rotation', () => {
  it('etcd members one at a time, then the pair, the control planes one at a time, the management steps, the workers\' kubelets last; each node changed only after its backup', async () => {
    // Three OS profiles in one cluster: the fake knows each one's commands.
    const c = await FakeCluster.create({ os: { 'cp-2': 'rhel', 'w-2': 'bottlerocket' } });
    const { applier } = c.applier();
    const result = await applier.run(false);
    await applier.close();

    expect(result, JSON.stringify(result.failures)).toMatchObject({ outcome: 'done' });
    expect(c.renewedEverywhere()).toBe(true);
    const entries = entriesOf(c);
    const order = turns(entries);
    expect(order.slice(0, 7)).toEqual(['etcd etcd-1', 'etcd etcd-2', 'etcd etcd-3', 'etcd-client-pair etcd-1', 'control-plane cp-1', 'control-plane cp-2', 'management cp-1']);
    // The workers go side by side, after everything else.
    expect(new Set(order.slice(7))).toEqual(new Set(['kubelet w-1', 'kubelet w-2']));
    expect(order.length).toBeGreaterThan(9);
    expect(entries[0]?.event).toBe('run-start');
    expect(entries.at(-1)?.event).toBe('run-done');
    expect(entries.filter((e) => e.event.startsWith('restore'))).toEqual([]);

    for (const { phase, node } of everyPlanNode(c)) {
      expect(doneSteps(entries, phase, node.name), `${phase} ${node.name}`).toEqual(node.steps.map((s) => s.id));
      if (!node.restore) continue;
      const backedUp = entries.findIndex((e) => of(phase, node.name)(e) && e.event === 'step-done' && e.step === node.restore?.after);
      const firstChange = entries.findIndex((e) => of(phase, node.name)(e) && e.event === 'step-start' && changes(node.steps.find((s) => s.id === e.step) as PlanStep));
      expect(backedUp, `${phase} ${node.name}: backup before any change`).toBeGreaterThan(-1);
      expect(backedUp).toBeLessThan(firstChange);
    }
    // On the nodes themselves: the first backup command comes before the first command that changes anything.
    for (const name of c.nodes.keys()) {
      const h = c.view(name).history;
      const firstChange = h.findIndex((k) => CHANGING.has(k));
      if (firstChange < 0) continue;
      const firstBackup = h.findIndex((k) => k.startsWith('backup'));
      expect(firstBackup, `${name}: a backup`).toBeGreaterThanOrEqual(0);
      expect(firstBackup, name).toBeLessThan(firstChange);
    }
    expect(result.downtimeMs).toEqual({ 'cp-1': 60_000, 'cp-2': 60_000 });
    expect(Object.keys(result.backups).sort()).toEqual(['cp-1', 'cp-2', 'etcd-1', 'etcd-2', 'etcd-3', 'w-1', 'w-2']);
    // The fake has no management API: the pause is refused once, saying why, and the run goes on.
    expect(c.lines.filter((l) => l.startsWith('WARNING'))).toEqual([
      "WARNING etcdadm-controller: could not pause its etcd health checks (the management cluster's API cannot be used: the inventory names no kubeconfig (field kubeconfig) and no admin.conf could be read). If it runs, it may replace an etcd member that stays unhealthy for 5 checks in a row (2.5 min).",
    ]);
  });

  it('stops at the first failing gate: etcd-2 renewed nothing, so it is restored and no later node is touched', async () => {
    const c = await FakeCluster.create();
    c.node('etcd-2').etcdadmRenews = false;
    const { applier } = c.applier();
    const result = await applier.run(false);

    expect(result).toMatchObject({ outcome: 'failed', failure: { phase: 'etcd', node: 'etcd-2', step: 'verify-certs', restored: true } });
    expect(result.failure?.message).toMatch(/cleared, not renewed/);
    expect(c.view('etcd-1').pki).toBe('renewed');
    expect(c.view('etcd-2')).toMatchObject({ pki: 'old', backups: { '/etc/etcd/pki.rotate-certs-20261201T000000Z': 'old' } });
    expect(c.view('etcd-3')).toMatchObject({ pki: 'old', backups: {}, history: [] });
    for (const name of ['cp-1', 'cp-2', 'w-1', 'w-2']) {
      expect(changed(c, name), name).toEqual([]);
      expect(c.view(name).backups, name).toEqual({});
    }
    expect(c.view('cp-1')).toMatchObject({ pki: 'old', kubeconfigs: 'old', etcdClient: 'old', pods: 'running' });
    expect(c.management.secret).toBe('old');

    const entries = entriesOf(c);
    expect(entries.filter((e) => e.node === 'etcd-2' && e.event !== 'step-start' && e.event !== 'step-done').map((e) => e.event)).toEqual(['step-failed', 'restore-start', 'restore-done']);
    expect(entries.filter((e) => e.node !== undefined && !['etcd-1', 'etcd-2'].includes(e.node))).toEqual([]);
    expect(entries.some((e) => e.event === 'run-done')).toBe(false);
  });

  it('restores a control plane that failed after its restart: old certificates, old kubeconfigs, the old etcd client pair, its pods running', async () => {
    const c = await FakeCluster.create();
    c.faults = [{ node: 'cp-1', phase: 'control-plane', step: 'wait-ready', kind: 'fail' }];
    const { applier } = c.applier();
    const result = await applier.run(false);

    expect(result).toMatchObject({ outcome: 'failed', failure: { node: 'cp-1', step: 'wait-ready', restored: true } });
    expect(c.view('cp-1')).toMatchObject({
      pki: 'old',
      kubeconfigs: 'old',
      etcdClient: 'old',
      pods: 'running',
      backups: { '/etc/kubernetes/pki.rotate-certs-20261201T000000Z': 'old', '/etc/kubernetes/kubeconfigs.rotate-certs-20261201T000000Z': 'old' },
    });
    expect(changed(c, 'cp-2')).toEqual([]);
    const cp1 = entriesOf(c).filter(of('control-plane', 'cp-1')).map((e) => e.event);
    expect(cp1.slice(-3)).toEqual(['step-failed', 'restore-start', 'restore-done']);
  });

  it('a failure before the backup step needs no restore, and nothing on the node changed', async () => {
    const c = await FakeCluster.create();
    c.faults = [{ node: 'cp-1', phase: 'control-plane', step: 'pods-found', kind: 'fail' }];
    const { applier } = c.applier();
    const result = await applier.run(false);

    expect(result).toMatchObject({ outcome: 'failed', failure: { node: 'cp-1', step: 'pods-found', restored: true } });
    expect(entriesOf(c).filter((e) => e.event.startsWith('restore'))).toEqual([]);
    expect(c.view('cp-1')).toMatchObject({ pki: 'old', backups: {} });
    expect(changed(c, 'cp-1')).toEqual([]);
  });

  it.each([
    { phase: 'control-plane', node: 'cp-1', first: 'backup-pki', last: 'backup-kubeconfigs' },
    { phase: 'kubelet', node: 'w-1', first: 'backup', last: 'backup-conf' },
  ])('$node stopped between $first and $last: nothing changed, so no restore; a resume redoes it from its first step', async ({ phase, node, first, last }) => {
    const c = await FakeCluster.create();
    const plan = c.planNode(phase, node);
    expect(plan.restore?.after).toBe(last);
    const stopping = c.applier({ stopRequested: () => c.finished.get(`${phase}/${node}`)?.at(-1) === first });
    expect((await stopping.applier.run(false)).outcome).toBe('stopped');
    const before = entriesOf(c);
    expect(before.filter((e) => e.event.startsWith('restore'))).toEqual([]);
    expect(before.filter(of(phase, node)).at(-1)).toMatchObject({ event: 'run-stopped', step: last });
    expect(c.lines).toContain(`${node}: stopping before ${last}; nothing was changed yet, so there is nothing to restore`);
    // No restore ran: not a restart of static pods or of the kubelet, nothing put back.
    expect(changed(c, node)).toEqual([]);
    expect(c.asBefore(node)).toBe(true);

    const { applier } = c.applier();
    expect((await applier.run(true)).outcome).toBe('done');
    expect(c.renewedEverywhere()).toBe(true);
    const resumed = entriesOf(c).slice(before.length);
    expect(resumed.filter((e) => e.event.startsWith('restore'))).toEqual([]);
    expect(doneSteps(resumed, phase, node)).toEqual(plan.steps.map((s) => s.id));
    for (const state of Object.values(c.view(node).backups)) expect(state).toBe('old');
  });

  it('a failure in the last backup step: nothing changed, so no restore', async () => {
    const c = await FakeCluster.create();
    c.faults = [{ node: 'cp-1', phase: 'control-plane', step: 'backup-kubeconfigs', kind: 'fail' }];
    const { applier } = c.applier();
    const result = await applier.run(false);

    expect(result).toMatchObject({ outcome: 'failed', failure: { node: 'cp-1', step: 'backup-kubeconfigs', restored: true } });
    expect(entriesOf(c).filter((e) => e.event.startsWith('restore'))).toEqual([]);
    expect(c.lines).toContain('cp-1: backup-kubeconfigs failed before anything was changed (the steps up to backup-kubeconfigs only read or make backups); no restore needed');
    expect(changed(c, 'cp-1')).toEqual([]);
    expect(c.asBefore('cp-1')).toBe(true);
  });

  it('looks actions and captures up by their own names: toString is unknown; a replacement left undefined keeps the built-in runner', async () => {
    const named = async (mutate: (c: FakeCluster) => void) => {
      const c = await FakeCluster.create();
      mutate(c);
      return c.applier().applier.run(false);
    };
    // A plan file from another version may name anything; an inherited property is no action.
    const action = await named((c) => Object.assign(c.planNode('etcd', 'etcd-1').steps[0] as PlanStep, { action: 'toString' }));
    expect(action).toMatchObject({ outcome: 'failed', failure: { node: 'etcd-1', message: 'unknown action toString' } });
    const capture = await named((c) => Object.assign(c.planNode('etcd-client-pair', 'etcd-1').steps[0] as PlanStep, { capture: 'constructor' }));
    expect(capture).toMatchObject({ outcome: 'failed', failure: { node: 'etcd-1', step: 'read-pair', message: 'unknown capture constructor' } });

    const c = await FakeCluster.create();
    // static-pods-labelled's real runner reads the fake's containers.
    const { applier } = c.applier({ actions: { 'static-pods-labelled': undefined } });
    expect((await applier.run(false)).outcome).toBe('done');
  });

  it('parallel workers: a failing one is restored, the other finishes', async () => {
    const c = await FakeCluster.create();
    c.faults = [{ node: 'w-1', phase: 'kubelet', step: 'wait', kind: 'fail' }];
    const { applier } = c.applier();
    const result = await applier.run(false);

    expect(result.outcome).toBe('failed');
    expect(result.failures).toEqual([expect.objectContaining({ node: 'w-1', step: 'wait', restored: true })]);
    expect(c.view('w-1')).toMatchObject({ kubelet: 'old', kubeletConf: 'old' });
    expect(c.view('w-2')).toMatchObject({ kubelet: 'renewed', kubeletConf: 'pem' });
    const entries = entriesOf(c);
    expect(doneSteps(entries, 'kubelet', 'w-2')).toEqual(c.planNode('kubelet', 'w-2').steps.map((s) => s.id));
    expect(entries.filter(of('kubelet', 'w-1')).map((e) => e.event).slice(-2)).toEqual(['restore-start', 'restore-done']);
    // Side by side: w-2 took steps while w-1 was between its own.
    const turnsOfWorkers = turns(entries).filter((t) => t.startsWith('kubelet'));
    expect(turnsOfWorkers.length).toBeGreaterThan(2);
    expect(entries.some((e) => e.event === 'run-done')).toBe(false);
  });
});

/**
 * Cut one node at each of its steps, then resume in a new process (a fresh Applier and a Journal
 * read from disk): the run ends done with every node renewed, the cut node put back from its
 * backup before it is redone (once its last backup step, restore.after, finished), and the nodes
 * finished before it not run again.
 *   stop: Ctrl-C between two steps (stopRequested)   fail: the step fails
 *   hang: the process dies while the step's command runs   die: the process dies just before the step
 *   die-after: the step took effect, then the process died before the journal heard (a backup made
 *     but never journaled: the resume finds it and must accept it, the files being unchanged)
 */
const probe = await FakeCluster.create();
const SUBJECTS = [
  { phase: 'etcd', node: 'etcd-2' },
  { phase: 'control-plane', node: 'cp-1' },
  { phase: 'kubelet', node: 'w-1' },
];
const MODES: Array<FaultKind | 'stop'> = ['stop', 'fail', 'hang', 'die', 'die-after'];
const cases = SUBJECTS.flatMap(({ phase, node }) =>
  probe
    .planNode(phase, node)
    .steps.flatMap((step, i) => MODES.filter((mode) => mode !== 'stop' || i > 0).map((mode) => ({ phase, node, step: step.id, i, mode }))),
);

describe('resume after a cut at each step', () => {
  it.each(cases)('$node: $mode at $step', async ({ phase, node, step, i, mode }) => {
    const c = await FakeCluster.create();
    const plan = c.planNode(phase, node);
    if (mode !== 'stop') c.faults = [{ node, phase, step, kind: mode }];
    const first = c.applier(mode === 'stop' ? { stopRequested: () => (c.finished.get(`${phase}/${node}`)?.length ?? 0) >= i } : {});
    const run = first.applier.run(false);
    if (mode === 'stop') expect((await run).outcome).toBe('stopped');
    if (mode === 'fail') expect(await run).toMatchObject({ outcome: 'failed', failure: { node, step } });
    if (mode === 'die') await expect(run).rejects.toThrow(ProcessDied);
    // The process is gone mid-command: its run never ends, and nothing more is journaled.
    if (mode === 'hang' || mode === 'die-after') expect(await Promise.race([c.died.then(() => 'died'), run.then(() => 'ended', () => 'ended')])).toBe('died');
    const cut = plan.steps[i] as PlanStep;
    if (mode === 'die-after' && cut.run?.startsWith('backup')) {
      // The backup is on the node, and the journal does not know it.
      expect(Object.keys(c.view(node).backups)).toContain(cut.with.backup);
      expect(doneSteps(entriesOf(c), phase, node)).not.toContain(step);
    }
    // Dropped without close(), as a killed process would. A node stopped or failed is put back at
    // once, not left half-done for a resume that may never come.
    if (mode === 'stop' || mode === 'fail') expect(c.asBefore(node), JSON.stringify(c.view(node))).toBe(true);

    const second = c.applier();
    const result = await second.applier.run(true);
    await second.applier.close();
    expect(result, JSON.stringify(result.failures)).toMatchObject({ outcome: 'done' });
    expect(c.renewedEverywhere()).toBe(true);

    const entries = entriesOf(c);
    const resumeAt = entries.findIndex((e) => e.event === 'run-resume');
    const before = entries.slice(0, resumeAt);
    const mine = of(phase, node);
    // Every node the first process finished is skipped; the cut one is done again from its first step.
    for (const { phase: p, node: n } of everyPlanNode(c)) {
      const finished = n.steps.every((s) => doneSteps(before, p, n.name).includes(s.id)) && !before.some((e) => of(p, n.name)(e) && e.event === 'step-failed');
      const redone = entries.slice(resumeAt).filter((e) => of(p, n.name)(e) && e.event === 'step-start');
      if (finished) expect(redone, `${p} ${n.name} was finished`).toEqual([]);
      else expect(doneSteps(entries.slice(resumeAt), p, n.name), `${p} ${n.name}`).toEqual(n.steps.map((s) => s.id));
    }
    // The cut node, once backed up, is put back before it is redone: by the first process (stop,
    // fail) or by the second (hang, die).
    const backedUp = before.some((e) => mine(e) && e.event === 'step-done' && e.step === plan.restore?.after);
    const lastCut = before.map((e, j) => (mine(e) && e.event.startsWith('step-') ? j : -1)).reduce((a, b) => Math.max(a, b), -1);
    const firstRedo = entries.findIndex((e, j) => j > resumeAt && mine(e) && e.event === 'step-start');
    const restoredIn = (from: number, to: number) => entries.slice(from, to).filter((e) => mine(e) && e.event.startsWith('restore-')).map((e) => e.event);
    const [from, to] = mode === 'stop' || mode === 'fail' ? [lastCut, resumeAt] : [resumeAt, firstRedo];
    expect(restoredIn(from, to)).toEqual(backedUp ? ['restore-start', 'restore-done'] : []);
    expect(restoredIn(lastCut, firstRedo)).toEqual(restoredIn(from, to));
    expect(entries.filter((e) => e.event === 'restore-failed')).toEqual([]);
    // The backup was never overwritten: it still holds the old certificates.
    for (const state of Object.values(c.view(node).backups)) expect(state).toBe('old');
  });
});

describe('rotate-certs restore (Applier.restoreNode)', () => {
  it('after a finished run: every phase of the node put back from its backups, the latest first', async () => {
    const c = await FakeCluster.create({ kubeletDue: ['cp-1', 'w-1', 'w-2'] });
    expect((await c.applier().applier.run(false)).outcome).toBe('done');
    expect(c.view('cp-1')).toMatchObject({ pki: 'renewed', kubelet: 'renewed' });
    const ran = entriesOf(c).length;

    const { applier } = c.applier();
    expect(await applier.restoreNode('cp-1')).toEqual([
      { phase: 'kubelet', ok: true },
      { phase: 'control-plane', ok: true },
    ]);
    await applier.close();
    expect(c.view('cp-1')).toMatchObject({ pki: 'old', kubeconfigs: 'old', etcdClient: 'old', pods: 'running', kubelet: 'old', kubeletConf: 'old' });
    expect(entriesOf(c).slice(ran).map((e) => `${e.event} ${e.phase}`)).toEqual(['restore-start kubelet', 'restore-done kubelet', 'restore-start control-plane', 'restore-done control-plane']);
    // The other nodes keep what the run gave them.
    expect(c.view('cp-2')).toMatchObject({ pki: 'renewed', kubeconfigs: 'renewed' });
  });

  it('after a stop before the last backup: nothing was changed, so nothing is restored and nothing runs on the node', async () => {
    const c = await FakeCluster.create();
    const stopping = c.applier({ stopRequested: () => c.finished.get('control-plane/cp-1')?.at(-1) === 'backup-pki' });
    expect((await stopping.applier.run(false)).outcome).toBe('stopped');
    const ran = entriesOf(c).length;
    const history = c.view('cp-1').history.length;

    const { applier } = c.applier();
    expect(await applier.restoreNode('cp-1')).toEqual([]);
    await applier.close();
    expect(entriesOf(c).slice(ran)).toEqual([]);
    // Only the management API's fallback was looked for (admin.conf, for the etcdadm-controller pause).
    expect(c.view('cp-1').history.slice(history).filter((k) => k !== '?')).toEqual([]);
    expect(c.asBefore('cp-1')).toBe(true);
  });
});

describe('the journal across a crash', () => {
  it('a process that dies while a command runs, and a torn last line: the next process resumes from what the file says', async () => {
    const c = await FakeCluster.create();
    c.faults = [{ node: 'cp-1', phase: 'control-plane', step: 'renew', kind: 'hang' }];
    const dying = c.applier().applier.run(false).catch(() => undefined);
    expect(await Promise.race([c.died.then(() => 'died'), dying.then(() => 'ended')])).toBe('died');
    // The step-done it was writing when the power went: half a line, no newline.
    const { journal } = c.applier();
    appendFileSync(journal.file, `{"t":"2026-12-01T00:00:00.000Z","runId":"${c.plan.runId}","event":"step-done","phase":"control-plane","node":"cp-1","st`);
    expect(entriesOf(c).filter(of('control-plane', 'cp-1')).at(-1)).toMatchObject({ event: 'step-start', step: 'renew' });

    const { applier } = c.applier();
    const result = await applier.run(true);
    expect(result.outcome).toBe('done');
    expect(c.renewedEverywhere()).toBe(true);
    const entries = entriesOf(c);
    // The entry after the torn line is kept: it starts a line of its own.
    expect(entries.filter((e) => e.event === 'run-resume')).toHaveLength(1);
    const cp1 = entries.filter(of('control-plane', 'cp-1'));
    const resumed = cp1.findIndex((e) => e.event === 'restore-start');
    expect(cp1.slice(resumed, resumed + 3)).toMatchObject([{ event: 'restore-start' }, { event: 'restore-done' }, { event: 'step-start', step: 'snapshot' }]);
  });

  it('a connection that breaks mid-command: the step fails, the node is restored over a new connection, and a resume finishes', async () => {
    const c = await FakeCluster.create();
    c.faults = [{ node: 'etcd-2', phase: 'etcd', step: 'renew', kind: 'drop' }];
    const first = await c.applier().applier.run(false);
    expect(first).toMatchObject({ outcome: 'failed', failure: { node: 'etcd-2', step: 'renew', restored: true } });
    expect(first.failure?.message).toBe('connection reset by peer');
    expect(c.asBefore('etcd-2')).toBe(true);
    const { applier } = c.applier();
    expect((await applier.run(true)).outcome).toBe('done');
    expect(c.renewedEverywhere()).toBe(true);
  });

  it('Journal: a torn last line is skipped, everything before it counts, and the next entry is not lost with it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rc-journal-'));
    try {
      const j = new Journal(dir, 'lab');
      j.append({ runId: 'r', event: 'run-start' });
      j.append({ runId: 'r', event: 'step-start', phase: 'etcd', node: 'e1', step: 'backup' });
      appendFileSync(j.file, '{"t":"2026-12-01T00:00:00.000Z","runId":"r","event":"step-do');
      expect(new Journal(dir, 'lab').entries('r').map((e) => e.event)).toEqual(['run-start', 'step-start']);
      new Journal(dir, 'lab').append({ runId: 'r', event: 'run-resume' });
      expect(new Journal(dir, 'lab').entries('r').map((e) => e.event)).toEqual(['run-start', 'step-start', 'run-resume']);
      expect(readFileSync(j.file, 'utf8').endsWith('\n')).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
