/**
 * Backups on a node: the shipped scripts (backupDir, backupFile, restoreDir, restoreFile,
 * listBackups, removeBackups) run by the local bash over a folder standing in for the node, the
 * parser of the listing, the prune decision and the nodes a run verified.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JournalEntry } from '../../src/state/journal.js';
import { parseBackupListing, runIdTime, summarizeBackups, type BackupEntry } from '../../src/backups/listing.js';
import { listScript } from '../../src/backups/nodes.js';
import { decidePrune } from '../../src/backups/retention.js';
import { verifiedNodes } from '../../src/rotation/retention.js';
import { checkScript, parseCheckOutput } from '../../src/check/remote-script.js';
import type { Plan } from '../../src/plan/types.js';
import { renderScript } from '../../src/runbook/template.js';
import { localNode, localProfiles, runLocal } from './local-node.js';

const dir = mkdtempSync(join(tmpdir(), 'rc-backups-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const root = join(dir, 'node');
const profiles = localProfiles(dir, { ubuntu: root });
const ubuntu = profiles.get('ubuntu');
const node = localNode('lab-cp-1', 'control-plane', 'ubuntu');
const etcdPki = join(root, 'etc/etcd/pki');
const kubeletConf = join(root, 'etc/kubernetes/kubelet.conf');
const mode = (p: string) => (statSync(p).mode & 0o7777).toString(8).padStart(4, '0');

/** Runs one of the profile's commands with these variables, as the engine renders it. */
function run(command: string, vars: Record<string, string> = {}) {
  const template = ubuntu.commands[command];
  if (template === undefined) throw new Error(`no command ${command}`);
  return runLocal(renderScript(template, { ...ubuntu.vars, ...vars }, {}));
}

mkdirSync(join(etcdPki, 'sub'), { recursive: true });
chmodSync(etcdPki, 0o755);
writeFileSync(join(etcdPki, 'ca.crt'), 'CA CERT\n', { mode: 0o644 });
writeFileSync(join(etcdPki, 'server.key'), 'SERVER KEY\n', { mode: 0o600 });
writeFileSync(join(etcdPki, 'sub', 'peer.crt'), 'PEER\n', { mode: 0o644 });
mkdirSync(join(root, 'etc/kubernetes'), { recursive: true });
writeFileSync(kubeletConf, 'kubelet kubeconfig\n', { mode: 0o644 });

describe('backups on the node are root-only', () => {
  const run1 = `${etcdPki}.rotate-certs-20261120T010000Z`;

  it('backupDir: a verified copy, 0700 whatever the folder\'s mode, the modes inside kept, nothing half-made left', () => {
    const r = run('backupDir', { dir: etcdPki, backup: run1 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(mode(run1)).toBe('0700');
    expect(readFileSync(join(run1, 'server.key'), 'utf8')).toBe('SERVER KEY\n');
    expect(mode(join(run1, 'server.key'))).toBe('0600');
    expect(mode(join(run1, 'ca.crt'))).toBe('0644');
    expect(readFileSync(join(run1, 'sub', 'peer.crt'), 'utf8')).toBe('PEER\n');
    expect(existsSync(`${run1}.partial`)).toBe(false);
    // The folder itself is left as it was.
    expect(mode(etcdPki)).toBe('0755');
  });

  it('a resumed run keeps its matching backup, and one an earlier version left 0755 becomes 0700', () => {
    chmodSync(run1, 0o755);
    const r = run('backupDir', { dir: etcdPki, backup: run1 });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/already exists and matches/);
    expect(mode(run1)).toBe('0700');
    // A backup that differs is still refused, never overwritten.
    writeFileSync(join(run1, 'ca.crt'), 'OTHER\n');
    const refused = run('backupDir', { dir: etcdPki, backup: run1 });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/differs from .*: refusing to overwrite an earlier backup/);
    writeFileSync(join(run1, 'ca.crt'), 'CA CERT\n');
  });

  it('restoreDir: the folder back with its own mode (not the backup\'s 0700); what it held set aside, 0700', () => {
    writeFileSync(join(etcdPki, 'server.key'), 'RENEWED KEY\n', { mode: 0o600 });
    const r = run('restoreDir', { dir: etcdPki, backup: run1 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(readFileSync(join(etcdPki, 'server.key'), 'utf8')).toBe('SERVER KEY\n');
    expect(mode(etcdPki)).toBe('0755');
    const aside = runLocal(`ls -d ${run1}.replaced-*`).stdout.trim();
    expect(readFileSync(join(aside, 'server.key'), 'utf8')).toBe('RENEWED KEY\n');
    expect(mode(aside)).toBe('0700');
  });

  it('backupFile: the copy is 0600 from the start, byte for byte; restoreFile gives the file its own mode back', () => {
    const backup = `${kubeletConf}.rotate-certs-20261120T010000Z`;
    const r = run('backupFile', { file: kubeletConf, backup });
    expect(r.code).toBe(0);
    expect(mode(backup)).toBe('0600');
    expect(readFileSync(backup, 'utf8')).toBe('kubelet kubeconfig\n');
    writeFileSync(kubeletConf, 'new kubeconfig\n');
    const restored = run('restoreFile', { file: kubeletConf, backup });
    expect(restored.code).toBe(0);
    expect(readFileSync(kubeletConf, 'utf8')).toBe('kubelet kubeconfig\n');
    expect(mode(kubeletConf)).toBe('0644');
    const aside = runLocal(`ls ${backup}.replaced-*`).stdout.trim();
    expect(mode(aside)).toBe('0600');
  });

  it('backupKubeconfigs: a 0700 folder; a resumed run makes an older 0755 one 0700', () => {
    const kdir = join(root, 'etc/kubernetes');
    writeFileSync(join(kdir, 'admin.conf'), 'admin\n', { mode: 0o600 });
    const backup = join(kdir, 'kubeconfigs.rotate-certs-20261120T010000Z');
    expect(run('backupKubeconfigs', { dir: kdir, backup }).code).toBe(0);
    expect(mode(backup)).toBe('0700');
    chmodSync(backup, 0o755);
    expect(run('backupKubeconfigs', { dir: kdir, backup }).code).toBe(0);
    expect(mode(backup)).toBe('0700');
  });
});

describe('listBackups and its parser', () => {
  it('lists every backup beside the folders the runbooks back up, with mode, type and size; nothing else', () => {
    // A second run's backup, one a cut-off run left half-made, and names that are not backups.
    expect(run('backupDir', { dir: etcdPki, backup: `${etcdPki}.rotate-certs-20261125T020000Z` }).code).toBe(0);
    mkdirSync(`${etcdPki}.rotate-certs-20261126T030000Z.partial`, { mode: 0o700 });
    mkdirSync(`${etcdPki}.rotate-certs-restoring`);
    mkdirSync(`${etcdPki}.bak`);
    mkdirSync(join(root, 'etc/etcd/other.rotate-certs-20261120T010000Z'));
    mkdirSync(join(root, 'etc/etcd/pki.rotate-certs-notarun'));
    const r = runLocal(listScript(profiles, node));
    expect(r.code).toBe(0);
    const { entries, complete } = parseBackupListing(r.stdout);
    expect(complete).toBe(true);
    const rel = (p: string) => p.slice(root.length);
    expect(entries.map((e) => [rel(e.path), e.runId, e.kind, e.type, e.mode])).toEqual([
      ['/etc/etcd/pki.rotate-certs-20261120T010000Z', '20261120T010000Z', 'backup', 'dir', '0700'],
      [expect.stringMatching(/^\/etc\/etcd\/pki\.rotate-certs-20261120T010000Z\.replaced-\d+$/), '20261120T010000Z', 'replaced', 'dir', '0700'],
      ['/etc/kubernetes/kubeconfigs.rotate-certs-20261120T010000Z', '20261120T010000Z', 'backup', 'dir', '0700'],
      ['/etc/kubernetes/kubelet.conf.rotate-certs-20261120T010000Z', '20261120T010000Z', 'backup', 'file', '0600'],
      [expect.stringMatching(/^\/etc\/kubernetes\/kubelet\.conf\.rotate-certs-20261120T010000Z\.replaced-\d+$/), '20261120T010000Z', 'replaced', 'file', '0600'],
      ['/etc/etcd/pki.rotate-certs-20261125T020000Z', '20261125T020000Z', 'backup', 'dir', '0700'],
      ['/etc/etcd/pki.rotate-certs-20261126T030000Z.partial', '20261126T030000Z', 'partial', 'dir', '0700'],
    ]);
    for (const e of entries) expect(e.sizeKiB, e.path).toBeGreaterThanOrEqual(0);
    expect(entries.find((e) => e.runId === '20261120T010000Z')?.runAt).toBe('2026-11-20T01:00:00.000Z');
  });

  it('an empty node lists nothing and still completes', () => {
    const empty = localProfiles(join(dir, 'empty'), { ubuntu: join(dir, 'empty', 'node') });
    const parsed = parseBackupListing(runLocal(listScript(empty, node)).stdout);
    expect(parsed).toEqual({ entries: [], complete: true });
  });

  it('check reads the certificates and the backups in one script; the listing never breaks the read', () => {
    const script = checkScript({ files: [{ path: join(etcdPki, 'ca.crt'), optional: false }], kubeconfigs: [] }, listScript(profiles, node));
    expect(script.match(/\bfind /g)).toHaveLength(1);
    const r = runLocal(script);
    expect(r.code).toBe(0);
    const certs = parseCheckOutput(r.stdout);
    expect(certs.complete).toBe(true);
    expect(certs.items.map((i) => i.path)).toEqual([join(etcdPki, 'ca.crt')]);
    const listing = parseBackupListing(r.stdout);
    expect(listing.complete).toBe(true);
    expect(summarizeBackups('lab-cp-1', listing.entries)).toMatchObject({ node: 'lab-cp-1', runs: 3, oldestRun: '20261120T010000Z', oldest: '2026-11-20T01:00:00.000Z' });
    // Its own listing failing (find missing on the node) leaves the certificate read whole.
    const broken = runLocal(script.replace(/\bfind \$seen/, 'nosuchfind $seen'));
    expect(broken.code).toBe(0);
    expect(parseCheckOutput(broken.stdout).complete).toBe(true);
  });

  it('parses what it can trust: run ids, modes and types checked, sizes joined by path, a cut-off listing noticed', () => {
    const out = [
      '@@file\t/x/ca.crt',
      '12\t/not/in/the/listing',
      '@@end',
      '@@backups',
      '@@backup\t700\td\t/etc/etcd/pki.rotate-certs-20261120T010000Z',
      '@@backup\t755\td\t/etc/kubernetes/pki.rotate-certs-20261121T010000Z.replaced-1764000000',
      '@@backup\t600\tf\t/etc/kubernetes/kubelet.conf.rotate-certs-20261121T010000Z',
      '@@backup\t777\tl\t/etc/etcd/pki.rotate-certs-20261122T010000Z',
      '@@backup\t700\td\t/etc/etcd/pki.rotate-certs-20261399T010000Z',
      '@@backup\tx\td\t/etc/etcd/pki.rotate-certs-20261123T010000Z',
      '24\t/etc/etcd/pki.rotate-certs-20261120T010000Z',
      '8\t/etc/kubernetes/kubelet.conf.rotate-certs-20261121T010000Z',
      '@@backups-done',
      '@@done',
    ].join('\n');
    const parsed = parseBackupListing(out);
    expect(parsed.complete).toBe(true);
    expect(parsed.entries.map((e) => [e.path, e.mode, e.kind, e.sizeKiB])).toEqual([
      ['/etc/etcd/pki.rotate-certs-20261120T010000Z', '0700', 'backup', 24],
      ['/etc/kubernetes/kubelet.conf.rotate-certs-20261121T010000Z', '0600', 'backup', 8],
      ['/etc/kubernetes/pki.rotate-certs-20261121T010000Z.replaced-1764000000', '0755', 'replaced', undefined],
    ]);
    expect(parseBackupListing(out.slice(0, out.indexOf('@@backups-done'))).complete).toBe(false);
    expect(parseBackupListing('@@file\t/x\n@@end\n@@done\n')).toEqual({ entries: [], complete: false });
    expect(runIdTime('20261126T010203Z')?.toISOString()).toBe('2026-11-26T01:02:03.000Z');
    expect(runIdTime('pre-check')).toBeUndefined();
  });
});

describe('removeBackups', () => {
  it('refuses anything but a backup beside a backed-up folder, removing nothing; removes the backups it is given', () => {
    const keep = `${etcdPki}.rotate-certs-20261125T020000Z`;
    const older = `${etcdPki}.rotate-certs-20261120T010000Z`;
    // Also what a restore or an install is writing at that moment: no run id after .rotate-certs-.
    for (const bad of [join(root, 'etc/etcd/other.rotate-certs-20261120T010000Z'), etcdPki, `${older}/../../pki`, `${older}/sub`, `${etcdPki}.bak`, `${older} x`, `${etcdPki}.rotate-certs-restoring`, `${kubeletConf}.rotate-certs-new`, `${etcdPki}.rotate-certs-2026`]) {
      const r = run('removeBackups', { paths: `${older}\n${bad}` });
      expect(r.code, bad).toBe(1);
      expect(r.stderr).toMatch(/refusing to remove .*: not a rotate-certs backup/);
      expect(existsSync(older), `${bad}: nothing removed`).toBe(true);
    }
    const r = run('removeBackups', { paths: `${older}\n${kubeletConf}.rotate-certs-20261120T010000Z` });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`removed ${older}`);
    expect(existsSync(older)).toBe(false);
    expect(existsSync(`${kubeletConf}.rotate-certs-20261120T010000Z`)).toBe(false);
    expect(existsSync(keep)).toBe(true);
    expect(existsSync(etcdPki)).toBe(true);
  });
});

const entry = (runId: string, path = `/etc/etcd/pki.rotate-certs-${runId}`, kind: BackupEntry['kind'] = 'backup'): BackupEntry => ({
  path,
  runId,
  runAt: runIdTime(runId)!.toISOString(),
  kind,
  type: 'dir',
  mode: '0700',
  sizeKiB: 4,
});

describe('the prune decision', () => {
  const a = entry('20261101T000000Z');
  const aside = entry('20261101T000000Z', '/etc/etcd/pki.rotate-certs-20261101T000000Z.replaced-1', 'replaced');
  const b = entry('20261105T000000Z');
  const bConf = entry('20261105T000000Z', '/etc/kubernetes/kubeconfigs.rotate-certs-20261105T000000Z');
  const c = entry('20261110T000000Z');
  const d = entry('20261120T000000Z');
  const all = [d, a, c, bConf, aside, b];

  it('keeps the newest N runs (each run\'s copies together) and removes the older ones with their set-aside copies', () => {
    const r = decidePrune(all, new Set(), 2);
    expect(r.kept.map((k) => [k.runId, k.because])).toEqual([
      ['20261120T000000Z', 'recent'],
      ['20261110T000000Z', 'recent'],
    ]);
    expect(r.remove.map((e) => e.path).sort()).toEqual([a.path, aside.path, b.path, bConf.path].sort());
  });

  it('never removes a run that did not finish, whatever its age', () => {
    const r = decidePrune(all, new Set(['20261101T000000Z']), 1);
    expect(r.kept.map((k) => [k.runId, k.because])).toEqual([
      ['20261120T000000Z', 'recent'],
      ['20261101T000000Z', 'unfinished'],
    ]);
    expect(r.remove.map((e) => e.runId)).toEqual(['20261110T000000Z', '20261105T000000Z', '20261105T000000Z']);
  });

  it('never removes the newest, even asked to keep none; fewer runs than N remove nothing', () => {
    expect(decidePrune(all, new Set(), 0).kept.map((k) => k.runId)).toEqual(['20261120T000000Z']);
    expect(decidePrune([a], new Set(), 0).remove).toEqual([]);
    expect(decidePrune(all, new Set(), 4).remove).toEqual([]);
    expect(decidePrune([], new Set(), 3)).toEqual({ remove: [], kept: [] });
  });
});

describe('the nodes a run verified', () => {
  const step = (id: string) => ({ id, title: id, effect: 'mutate', with: {} });
  const plan = {
    phases: [
      { phase: 'etcd', nodes: [{ name: 'lab-etcd-1', steps: [step('backup'), step('health')] }, { name: 'lab-etcd-2', steps: [step('backup'), step('health')] }] },
      { phase: 'control-plane', nodes: [{ name: 'lab-cp-1', steps: [step('backup-pki'), step('wait-ready')] }] },
      { phase: 'kubelet', nodes: [{ name: 'lab-cp-1', steps: [step('backup'), step('ready')] }] },
    ],
  } as unknown as Plan;
  const done = (phase: string, node: string, s: string): JournalEntry => ({ t: '', runId: 'r', event: 'step-done', phase, node, step: s });

  it('are those whose every step of every phase ran to the end, in this attempt or an earlier one', () => {
    const entries: JournalEntry[] = [
      done('etcd', 'lab-etcd-1', 'backup'),
      done('etcd', 'lab-etcd-1', 'health'),
      done('etcd', 'lab-etcd-2', 'backup'),
      { t: '', runId: 'r', event: 'step-failed', phase: 'etcd', node: 'lab-etcd-2', step: 'health' },
      done('control-plane', 'lab-cp-1', 'backup-pki'),
      done('control-plane', 'lab-cp-1', 'wait-ready'),
      done('kubelet', 'lab-cp-1', 'backup'),
    ];
    expect(verifiedNodes(plan, entries)).toEqual(['lab-etcd-1']);
    expect(verifiedNodes(plan, [...entries, done('kubelet', 'lab-cp-1', 'ready')])).toEqual(['lab-etcd-1', 'lab-cp-1']);
  });
});
