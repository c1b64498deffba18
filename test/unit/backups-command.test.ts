/**
 * `rotate-certs backups` and the retention after a run, end to end over folders standing in for
 * the nodes (test/unit/local-node.ts: the shipped scripts, run by the local bash) and a real state
 * folder. Asserts what is left on the "nodes" and in the state folder, what is printed, exit codes.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Journal, type JournalEntry } from '../../src/state/journal.js';
import { renderRetention, retainAfterRun } from '../../src/rotation/retention.js';
import { backupsCommand, type BackupsFlags } from '../../src/cli/backups-command.js';
import type { CliIo } from '../../src/cli/io.js';
import type { Plan } from '../../src/plan/types.js';
import type { ProfileSet } from '../../src/profiles/profile.js';
import { RotateCertsError } from '../../src/util/errors.js';
import { localConnector, localInventory, localNode, localProfiles } from './local-node.js';

const R1 = '20261101T000000Z';
const R2 = '20261102T000000Z';
const R3 = '20261103T000000Z';

let dir: string;
let etcdRoot: string;
let cpRoot: string;
let profiles: ProfileSet;
let stateDir: string;

/** A backup folder as a run leaves it (0700), or as an older rotate-certs did (`mode`). */
function backup(path: string, mode = 0o700): string {
  mkdirSync(path, { recursive: true });
  writeFileSync(join(path, 'server.key'), 'KEY\n', { mode: 0o600 });
  chmodSync(path, mode);
  return path;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rc-backups-cmd-'));
  etcdRoot = join(dir, 'etcd-node');
  cpRoot = join(dir, 'cp-node');
  profiles = localProfiles(dir, { ubuntu: etcdRoot, rhel: cpRoot });
  stateDir = join(dir, 'state');
  mkdirSync(join(etcdRoot, 'etc/etcd/pki'), { recursive: true });
  mkdirSync(join(cpRoot, 'etc/kubernetes/pki'), { recursive: true });
  for (const r of [R1, R2, R3]) backup(join(etcdRoot, `etc/etcd/pki.rotate-certs-${r}`));
  backup(join(cpRoot, `etc/kubernetes/pki.rotate-certs-${R1}`), 0o755);
  backup(join(cpRoot, `etc/kubernetes/kubeconfigs.rotate-certs-${R1}`));
  backup(join(cpRoot, `etc/kubernetes/pki.rotate-certs-${R3}`));
  writeFileSync(
    join(dir, 'inv.yaml'),
    `cluster: lab
ssh: { user: capv, identityFile: id_rsa }
etcd:
  - { name: lab-etcd-1, host: 127.0.0.11, os: ubuntu }
controlPlane:
  - { name: lab-cp-1, host: 127.0.0.21, os: rhel }
workers:
  - { name: lab-md-1, host: 127.0.0.31, os: ubuntu }
`,
  );
  // R1 and R3 finished; R2 was cut off and never resumed.
  const journal = new Journal(stateDir, 'lab');
  mkdirSync(journal.dir, { recursive: true });
  for (const [runId, events] of [[R1, ['run-start', 'run-done']], [R2, ['run-start']], [R3, ['run-start', 'run-done']]] as const) {
    writeFileSync(join(journal.dir, `plan-${runId}.yaml`), `runId: ${runId}\n`);
    for (const event of events) journal.append({ runId, event });
  }
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function backups(args: Partial<BackupsFlags>, env: { interactive?: boolean } = {}) {
  let out = '';
  let err = '';
  const io: CliIo = { out: (t) => void (out += t), err: (t) => void (err += t), color: false, env: {}, cwd: dir };
  const flags: BackupsFlags = { inventory: 'inv.yaml', output: 'table', concurrency: 4, stateDir: 'state', ...args };
  const connector = localConnector(new Set(['lab-md-1']));
  try {
    const code = await backupsCommand(flags, io, { connector, profiles, now: () => new Date('2026-11-04T00:00:00Z'), ...env });
    return { code, out, err };
  } catch (e) {
    if (!(e instanceof RotateCertsError)) throw e;
    return { code: e.exitCode, out, err: `rotate-certs: ${e.message}\n` };
  }
}

const etcdBackup = (r: string) => join(etcdRoot, `etc/etcd/pki.rotate-certs-${r}`);
const cpBackup = (r: string, base = 'pki') => join(cpRoot, `etc/kubernetes/${base}.rotate-certs-${r}`);

describe('rotate-certs backups', () => {
  it('lists every node\'s backups (run, age, size, mode), marks unfinished runs, names the node it could not read, removes nothing', async () => {
    const r = await backups({});
    expect(r.code).toBe(3);
    expect(r.out).toContain('lab-etcd-1 (etcd)');
    expect(r.out).toMatch(new RegExp(`  ${R2} \\(unfinished\\)\\s+2 days\\s+\\d+ KiB\\s+0700  ${etcdBackup(R2)}`));
    expect(r.out).toMatch(new RegExp(`  ${R1}\\s+3 days\\s+\\d+ KiB\\s+0755  ${cpBackup(R1)}`));
    expect(r.out).toMatch(/Could not read:\n {2}lab-md-1: connection refused by 127\.0\.0\.31:22/);
    expect(r.out).toMatch(/Summary: 6 backup paths of 3 runs on 2 nodes/);
    expect(r.out).toMatch(/1 backup is readable by users other than root/);
    for (const p of [etcdBackup(R1), etcdBackup(R2), etcdBackup(R3), cpBackup(R1), cpBackup(R3)]) expect(existsSync(p), p).toBe(true);

    const json = JSON.parse((await backups({ output: 'json' })).out) as { backups: Array<{ node: string; path: string; runId: string; mode: string; unfinishedRun?: boolean }>; errors: Array<{ node: string }> };
    expect(json.backups.map((b) => [b.node, b.path, b.mode, b.unfinishedRun ?? false])).toEqual([
      ['lab-etcd-1', etcdBackup(R1), '0700', false],
      ['lab-etcd-1', etcdBackup(R2), '0700', true],
      ['lab-etcd-1', etcdBackup(R3), '0700', false],
      ['lab-cp-1', cpBackup(R1, 'kubeconfigs'), '0700', false],
      ['lab-cp-1', cpBackup(R1), '0755', false],
      ['lab-cp-1', cpBackup(R3), '0700', false],
    ]);
    expect(json.errors.map((e) => e.node)).toEqual(['lab-md-1']);
  });

  it('--prune --keep 1: the newest run and the unfinished one stay on each node; older go, with their plan copies', async () => {
    const r = await backups({ prune: true, keep: 1, yes: true });
    expect(r.code).toBe(3);
    for (const p of [etcdBackup(R1), cpBackup(R1), cpBackup(R1, 'kubeconfigs')]) expect(existsSync(p), `${p} removed`).toBe(false);
    for (const p of [etcdBackup(R2), etcdBackup(R3), cpBackup(R3)]) expect(existsSync(p), `${p} kept`).toBe(true);
    expect(r.out).toContain(`lab-etcd-1: removed ${etcdBackup(R1)} (run ${R1}, 3 days old)`);
    expect(r.out).toContain(`lab-cp-1: removed ${cpBackup(R1)}`);
    expect(r.out).toMatch(/State folder \S+: removed 1 plan copy and the journal entries of 1 older finished run\./);
    const journal = new Journal(stateDir, 'lab');
    expect(existsSync(join(journal.dir, `plan-${R1}.yaml`))).toBe(false);
    expect(existsSync(join(journal.dir, `plan-${R2}.yaml`))).toBe(true);
    expect(existsSync(join(journal.dir, `plan-${R3}.yaml`))).toBe(true);
    expect(journal.runs()).toEqual([R2, R3]);
    // Pruning again finds nothing to remove.
    expect((await backups({ prune: true, keep: 1, yes: true })).out).toContain('Nothing to remove.');
  });

  it('--prune is refused while a run holds the cluster lock, and without --yes when there is no terminal', async () => {
    writeFileSync(join(stateDir, 'lab', 'lock'), JSON.stringify({ pid: process.pid, host: hostname(), runId: R3, since: 'now' }));
    const locked = await backups({ prune: true, keep: 1, yes: true });
    expect(locked.code).toBe(75);
    expect(locked.err).toMatch(/another rotate-certs run holds the lock for cluster lab/);
    expect(existsSync(etcdBackup(R1))).toBe(true);
    rmSync(join(stateDir, 'lab', 'lock'));
    const unattended = await backups({ prune: true });
    expect(unattended.code).toBe(64);
    expect(existsSync(etcdBackup(R1))).toBe(true);
  });
});

describe('the retention after a run', () => {
  const step = (id: string) => ({ id, title: id, effect: 'mutate', with: {} });
  const plan = {
    runId: R3,
    phases: [
      { phase: 'etcd', nodes: [{ name: 'lab-etcd-1', steps: [step('backup'), step('health')] }] },
      { phase: 'control-plane', nodes: [{ name: 'lab-cp-1', steps: [step('backup-pki'), step('wait-ready')] }] },
    ],
  } as unknown as Plan;

  it('prunes only the nodes the run verified, keeping N runs and the unfinished ones, and the state folder alike', async () => {
    const journal = new Journal(stateDir, 'lab');
    const ev = (e: Omit<JournalEntry, 't' | 'runId'>) => journal.append({ runId: R3, ...e });
    ev({ event: 'run-resume' });
    ev({ event: 'step-done', phase: 'etcd', node: 'lab-etcd-1', step: 'backup' });
    ev({ event: 'step-done', phase: 'etcd', node: 'lab-etcd-1', step: 'health' });
    ev({ event: 'step-done', phase: 'control-plane', node: 'lab-cp-1', step: 'backup-pki' });
    ev({ event: 'step-failed', phase: 'control-plane', node: 'lab-cp-1', step: 'wait-ready' });
    const inventory = localInventory(join(dir, 'inv.yaml'), [localNode('lab-etcd-1', 'etcd', 'ubuntu'), localNode('lab-cp-1', 'control-plane', 'rhel')]);
    journal.lock(R3);
    try {
      const report = await retainAfterRun({ plan, inventory, journal, connector: localConnector(), profiles, keep: 1, concurrency: 2 });
      expect(existsSync(etcdBackup(R1))).toBe(false);
      expect(existsSync(etcdBackup(R2))).toBe(true);
      expect(existsSync(etcdBackup(R3))).toBe(true);
      // lab-cp-1 failed in this run: none of its backups is touched.
      expect(existsSync(cpBackup(R1))).toBe(true);
      const text = renderRetention(report);
      expect(text).toContain(`Older backups removed (--keep-backups 1: on each node the backups of the newest run, and of any unfinished run, stay):\n  lab-etcd-1: ${etcdBackup(R1)}\n`);
      expect(text).toMatch(/State folder: removed 1 plan copy and the journal entries of 1 older finished run\./);
    } finally {
      journal.unlock();
    }
  });

  it('a node that cannot be pruned is a warning in the report, never a failure', async () => {
    const journal = new Journal(stateDir, 'lab');
    journal.append({ runId: R3, event: 'step-done', phase: 'etcd', node: 'lab-etcd-1', step: 'backup' });
    journal.append({ runId: R3, event: 'step-done', phase: 'etcd', node: 'lab-etcd-1', step: 'health' });
    const inventory = localInventory(join(dir, 'inv.yaml'), [localNode('lab-etcd-1', 'etcd', 'ubuntu')]);
    const report = await retainAfterRun({ plan, inventory, journal, connector: localConnector(new Set(['lab-etcd-1'])), profiles, keep: 1, concurrency: 2 });
    expect(renderRetention(report)).toMatch(/Older backups could not be pruned \(the rotation itself is not affected; rotate-certs backups --prune retries\):\n {2}lab-etcd-1: connection refused/);
    expect(existsSync(etcdBackup(R1))).toBe(true);
  });
});
