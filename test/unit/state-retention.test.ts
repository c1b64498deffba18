/**
 * The state folder's retention over a real folder: plan copies and journal entries of old closed
 * runs go; an unfinished run (what --resume continues) and the last run that backed up each node
 * (what restore reads) stay, whatever their age.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Journal, stateRetention, type JournalEntry } from '../../src/state/journal.js';

let stateDir: string;
let journal: Journal;
beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), 'rc-state-'));
  journal = new Journal(stateDir, 'lab');
});
afterEach(() => rmSync(stateDir, { recursive: true, force: true }));

type Ev = Omit<JournalEntry, 't' | 'runId'>;
const start: Ev = { event: 'run-start' };
const done: Ev = { event: 'run-done' };
const backup = (node: string): Ev => ({ event: 'step-start', phase: 'etcd', node, step: 'backup', backups: [`/etc/etcd/pki.rotate-certs-x`] });
const stepDone = (node: string): Ev => ({ event: 'step-done', phase: 'etcd', node, step: 'backup' });

/** Appends a run's events and writes its plan copy, as execute() does. */
function run(runId: string, events: Ev[], plan = true): void {
  if (plan) {
    mkdirSync(journal.dir, { recursive: true });
    writeFileSync(join(journal.dir, `plan-${runId}.yaml`), `runId: ${runId}\n`);
  }
  for (const e of events) journal.append({ runId, ...e });
}

const plans = () => readdirSync(journal.dir).filter((f) => f.startsWith('plan-')).sort();
const journalRuns = () => [...new Set(journal.entries().map((e) => e.runId))];

describe('the state folder keeps the last N closed runs and everything an unfinished run or a restore needs', () => {
  it('drops the plan copies and journal entries of older closed runs, and plan copies no run ever used', () => {
    writeFileSync(join(stateDir, 'placeholder'), '');
    mkdirSync(journal.dir, { recursive: true });
    writeFileSync(join(journal.dir, 'plan-20261101T000000Z.yaml'), 'refused before it started\n');
    run('20261102T000000Z', [start, backup('lab-etcd-1'), stepDone('lab-etcd-1'), backup('lab-cp-1'), stepDone('lab-cp-1'), done]);
    run('20261103T000000Z', [start, backup('lab-etcd-1'), stepDone('lab-etcd-1'), done]);
    run('20261104T000000Z', [start, backup('lab-etcd-1'), { event: 'step-failed', phase: 'etcd', node: 'lab-etcd-1', step: 'renew' }]);
    run('20261105T000000Z', [start, backup('lab-etcd-1'), stepDone('lab-etcd-1'), done]);
    run('20261106T000000Z', [start, backup('lab-etcd-1'), stepDone('lab-etcd-1'), done]);
    writeFileSync(join(journal.dir, 'plan-20261107T000000Z.yaml'), 'refused before it started\n');
    const lock = join(journal.dir, 'lock');
    writeFileSync(lock, '{}');
    const lastOfCp1 = journal.entries().filter((e) => e.node === 'lab-cp-1' && e.backups).at(-1)?.runId;

    const removed = journal.retain(1);

    expect(removed.runs).toEqual(['20261103T000000Z', '20261105T000000Z']);
    expect(removed.plans.map((p) => p.slice(journal.dir.length + 1))).toEqual([
      'plan-20261101T000000Z.yaml',
      'plan-20261103T000000Z.yaml',
      'plan-20261105T000000Z.yaml',
      'plan-20261107T000000Z.yaml',
    ]);
    // Kept: the newest closed run, the unfinished one, and the only run that backed up lab-cp-1.
    expect(plans()).toEqual(['plan-20261102T000000Z.yaml', 'plan-20261104T000000Z.yaml', 'plan-20261106T000000Z.yaml']);
    expect(journalRuns()).toEqual(['20261102T000000Z', '20261104T000000Z', '20261106T000000Z']);
    expect(journal.unfinishedRuns()).toEqual(new Set(['20261104T000000Z']));
    expect(journal.entries().filter((e) => e.node === 'lab-cp-1' && e.backups).at(-1)?.runId).toBe(lastOfCp1);
    // The kept runs' entries are whole and in their order; the journal stays private; the lock is untouched.
    expect(journal.entries('20261102T000000Z').map((e) => e.event)).toEqual(['run-start', 'step-start', 'step-done', 'step-start', 'step-done', 'run-done']);
    expect(statSync(journal.file).mode & 0o777).toBe(0o600);
    expect(existsSync(lock)).toBe(true);
    expect(existsSync(join(stateDir, 'placeholder'))).toBe(true);
    // Again: nothing more to do.
    expect(journal.retain(1)).toEqual({ runs: [], plans: [] });
  });

  it('an old run resumed to its end is the most recent, not the oldest', () => {
    run('20261101T000000Z', [start, backup('lab-etcd-1')]);
    run('20261102T000000Z', [start, backup('lab-etcd-1'), stepDone('lab-etcd-1'), done]);
    // The first run, resumed and finished after the second.
    run('20261101T000000Z', [{ event: 'run-resume' }, backup('lab-etcd-1'), stepDone('lab-etcd-1'), done], false);
    journal.retain(1);
    expect(journalRuns()).toEqual(['20261101T000000Z']);
    expect(plans()).toEqual(['plan-20261101T000000Z.yaml']);
  });

  it('keeps N runs, and an empty or missing folder is no error', () => {
    expect(new Journal(join(stateDir, 'nowhere'), 'lab').retain(3)).toEqual({ runs: [], plans: [] });
    run('20261101T000000Z', [start, done]);
    run('20261102T000000Z', [start, done]);
    const before = readFileSync(journal.file, 'utf8');
    expect(journal.retain(3)).toEqual({ runs: [], plans: [] });
    expect(readFileSync(journal.file, 'utf8')).toBe(before);
  });

  it('the decision alone: every unfinished run stays, at least one closed run stays', () => {
    const e = (runId: string, event: JournalEntry['event']): JournalEntry => ({ t: '', runId, event });
    const entries = [e('a', 'run-start'), e('a', 'run-done'), e('b', 'run-start'), e('c', 'run-start'), e('c', 'run-done')];
    expect(stateRetention(entries, ['a', 'b', 'c', 'z'], 0)).toEqual(new Set(['a', 'z']));
    expect(stateRetention(entries, [], 5)).toEqual(new Set());
  });
});
