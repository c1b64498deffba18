/**
 * Renewal as a routine on the emulated cluster (1 external etcd, 1 control plane, 1 worker; every
 * leaf, kubelets included, ending in 2 days), run as a timer runs it: no terminal, --yes. A due run
 * rotates; the next one finds nothing due and names when the first certificate falls due; with a
 * node's sshd stopped, with etcd unhealthy, or after a run stopped part-way, a due run changes
 * nothing (every node's files compared) and exits 4. The textfile parses strictly after each outcome.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CliEnv } from '../../src/cli/program.js';
import { startLab, type Lab } from '../lab/lab.js';
import { parsePrometheus } from '../prometheus.js';
import { cli, clusterState, expectRotated, serials } from './rotation-state.js';

describe('rotate --due-within, unattended', () => {
  let lab: Lab;
  let stateDir: string;
  let textfile: string;
  beforeAll(async () => {
    lab = await startLab({ etcd: 1, controlPlane: 1, workers: 1, certs: 'expiring' });
    stateDir = join(lab.dir, 'state');
    textfile = join(lab.dir, 'rotate-certs-run.prom');
  });
  afterAll(async () => {
    await lab?.down();
  });

  const due = (within: string, env: CliEnv = {}) => cli(['rotate', '-i', lab.inventoryPath, '--due-within', within, '--yes', '--state-dir', stateDir, '--textfile', textfile], env);
  /** The textfile, parsed strictly: the cluster's outcome and its other series. */
  const published = () => {
    const samples = parsePrometheus(readFileSync(textfile, 'utf8'));
    const value = (name: string) => samples.find((s) => s.name === name && s.labels.cluster === 'lab')?.value;
    return {
      outcome: samples.find((s) => s.name === 'rotate_certs_run_outcome' && s.labels.cluster === 'lab' && s.value === 1)?.labels.outcome,
      exitCode: value('rotate_certs_run_exit_code'),
      renewed: value('rotate_certs_run_certificates_renewed'),
      nextExpiry: value('rotate_certs_run_next_expiry_timestamp_seconds'),
    };
  };

  it('leaves ending in 2 days are due within 30d: the usual rotation runs and renews them all', async () => {
    const before = await serials(lab);
    const beforeState = await clusterState(lab);
    const r = await due('30d');
    expect(r.err).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/^lab: \d+ certificates due within 30d, the first \S+( \(embedded\))? on lab-\S+ \(expires [^)]+\)$/m);
    await expectRotated(lab, before, beforeState);
    const line = /^lab: rotated: (\d+) certificates renewed in run \S+; the next falls due (\d{4}-\d\d-\d\d)/m.exec(r.out);
    expect(line, r.out).not.toBeNull();
    // etcd and control-plane leaves, kubeconfigs, and both nodes' kubelet certificates.
    expect(Number(line?.[1])).toBeGreaterThan(Object.keys(before).length);
    expect(published()).toMatchObject({ outcome: 'rotated', exitCode: 0, renewed: Number(line?.[1]) });
    expect(published().nextExpiry).toBeGreaterThan(Date.now() / 1000 + 360 * 86400);
  });

  it('right after, nothing is due: nothing changes, exit 0, and it says when the first certificate falls due', async () => {
    const before = await clusterState(lab);
    const r = await due('30d');
    expect(r.code).toBe(0);
    const line = /^lab: nothing due: nothing expires within 30d; the first certificate to fall due is (\S+) on (\S+) \(expires [^)]+\), due from (\d{4}-\d\d-\d\d) \d\d:\d\d UTC$/m.exec(r.out);
    expect(line, r.out).not.toBeNull();
    // A year from now, less the 30 days.
    const dueFrom = Date.parse(line?.[3] ?? '');
    expect(dueFrom).toBeGreaterThan(Date.now() + 330 * 86_400_000);
    expect(dueFrom).toBeLessThan(Date.now() + 337 * 86_400_000);
    expect(await clusterState(lab)).toEqual(before);
    expect(published()).toMatchObject({ outcome: 'nothing_due', exitCode: 0, renewed: 0 });
  });

  it("a node's sshd stopped: a due run is refused in one line (exit 4) and changes nothing", async () => {
    await lab.stopSshd('lab-md-1');
    try {
      const before = await clusterState(lab);
      // Everything is due within 400 days: only the refusal keeps it from rotating.
      const r = await due('400d');
      expect(r.code).toBe(4);
      expect(r.out.trim().split('\n')).toEqual([expect.stringMatching(/^lab: refused, nothing changed: 1 node did not answer, so what is due is not known: lab-md-1: /)]);
      expect(await clusterState(lab)).toEqual(before);
      expect(published()).toMatchObject({ outcome: 'refused', exitCode: 4 });
    } finally {
      await lab.startSshd('lab-md-1');
    }
  });

  it('etcd unhealthy (its member frozen): a due run is refused in one line (exit 4) and changes nothing', async () => {
    const pid = execFileSync('pgrep', ['-f', '--', `--name=lab-etcd-1 .*--initial-cluster-token=rc-lab-${lab.id}( |$)`], { encoding: 'utf8' }).trim();
    expect(pid).toMatch(/^\d+$/);
    const before = await clusterState(lab);
    process.kill(Number(pid), 'SIGSTOP');
    try {
      const r = await due('400d');
      expect(r.code, r.out + r.err).toBe(4);
      expect(r.out.trim().split('\n')).toEqual([expect.stringMatching(/^lab: refused, nothing changed: .*(etcd|readyz)/)]);
      expect(published()).toMatchObject({ outcome: 'refused', exitCode: 4 });
    } finally {
      process.kill(Number(pid), 'SIGCONT');
    }
    expect(await clusterState(lab)).toEqual(before);
  });

  it('after a run stopped part-way, a due run is refused (exit 4) and changes nothing until the run is resumed', async () => {
    // Stopped (as Ctrl-C does) at the first safe point once it began: the journal holds a run that did not finish.
    const journal = join(stateDir, 'lab', 'journal.jsonl');
    const begun = () => existsSync(journal) && readFileSync(journal, 'utf8').trim().split('\n').at(-1)?.includes('"run-start"') === true;
    const stopped = await due('400d', { stopRequested: begun });
    expect(stopped.code).toBe(130);
    expect(stopped.out).toMatch(/^lab: failed: run (\S+) stopped at a safe point; continue it with rotate-certs rotate -i \S+ --state-dir \S+ --resume$/m);
    expect(published()).toMatchObject({ outcome: 'failed', exitCode: 130 });

    const before = await clusterState(lab);
    const r = await due('400d');
    expect(r.code).toBe(4);
    expect(r.out.trim().split('\n')).toEqual([expect.stringMatching(/^lab: refused, nothing changed: the last run of this cluster, \S+, stopped before lab-etcd-1 and did not finish: look at its report, then continue it by hand with rotate-certs rotate -i \S+ --state-dir \S+ --resume$/)]);
    expect(await clusterState(lab)).toEqual(before);
    expect(published()).toMatchObject({ outcome: 'refused', exitCode: 4 });
  });
});
