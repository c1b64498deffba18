/**
 * Issue 7's fault matrix on the emulated cluster (3 external etcd, 2 control plane, 1 worker,
 * Ubuntu), one lab for the whole file, each fault leaving the cluster as the next one needs it.
 * Every assertion is about the end state: certificate serials (files and `check -o json`), the
 * files on the nodes, etcd health with the client certificate on the node, what :6443 serves.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import type { CheckReport } from '../../src/check/run.js';
import { inspectCertificate } from '../../src/certs/inspect.js';
import { servedCertificate } from '../../src/check/probe.js';
import { startLab, type Lab } from '../lab/lab.js';
import { cli, clusterState, duplicateStarts, etcdHealthy, fileState, journal, serials } from './rotation-state.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 120_000, pollMs = 50): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(pollMs);
  }
}

/** Lines of a fileState listing for the files directly in /etc/etcd/pki. */
function etcdPkiLines(state: string): string {
  return state.split('\n').filter((l) => / \/etc\/etcd\/pki\/[^/]+$/.test(l)).join('\n');
}

/** `check -o json`: node:path (files) or node:host:port (endpoints) -> serial. */
async function checkSerials(lab: Lab): Promise<Record<string, string>> {
  const r = await cli(['check', '-i', lab.inventoryPath, '-o', 'json']);
  const report = JSON.parse(r.out) as CheckReport;
  expect(report.errors, 'check reached every node and endpoint').toEqual([]);
  const out: Record<string, string> = {};
  for (const c of report.certificates) out[`${c.node}:${c.source === 'endpoint' ? c.endpoint : c.path}`] = c.serial;
  return out;
}

/** /readyz of a node's kube-apiserver (anonymous). */
function readyz(host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port: 6443, path: '/readyz', rejectUnauthorized: false, timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString('utf8')));
      res.on('end', () => resolve(`${res.statusCode} ${body.trim()}`));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** The host pid of one etcd member of this lab. */
function etcdPidOf(lab: Lab, name: string): number {
  const out = execFileSync('pgrep', ['-f', '--', `--name=${name} .*--initial-cluster-token=rc-lab-${lab.id}( |$)`], { encoding: 'utf8' }).trim().split('\n');
  expect(out).toHaveLength(1);
  return Number(out[0]);
}

describe('faults (issue 7)', { timeout: 240_000 }, () => {
  let lab: Lab;
  let stateDir: string;
  /** Serials and files when the lab came up: every failed run below must leave these. */
  let before: Record<string, string>;
  let beforeState: Record<string, string>;
  let checkBefore: Record<string, string>;
  /** Journal entries appended since `mark()`. */
  let markAt = 0;
  const entries = () => {
    try {
      return journal(stateDir);
    } catch {
      return [];
    }
  };
  const mark = () => void (markAt = entries().length);
  const since = () => entries().slice(markAt);

  beforeAll(async () => {
    lab = await startLab({ etcd: 3, controlPlane: 2, workers: 1 });
    stateDir = join(lab.dir, 'state');
    before = await serials(lab);
    beforeState = await clusterState(lab);
    checkBefore = await checkSerials(lab);
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('no room for the backup: pre-flight refuses naming the node, nothing is deleted', async () => {
    const etcd3 = lab.node('lab-etcd-3');
    // A 512 KiB tmpfs over /etc/etcd holding a copy of what was there: less than the 1 MiB margin.
    const m = await etcd3.exec('set -e; rm -rf /root/etcd-copy; cp -a /etc/etcd /root/etcd-copy; mount -t tmpfs -o size=512k tmpfs /etc/etcd; cp -a /root/etcd-copy/. /etc/etcd/');
    expect(m.code, m.stderr).toBe(0);
    try {
      expect(await fileState(etcd3)).toBe(beforeState['lab-etcd-3']);
      const r = await cli(['rotate', '-i', lab.inventoryPath, '--yes', '--state-dir', stateDir]);
      expect(r.code).toBe(69);
      expect(`${r.out}${r.err}`).toMatch(/lab-etcd-3: no room to back up \/etc\/etcd\/pki: needs \d+ KiB plus 1 MiB, \d+ KiB free/);
      // Nothing deleted or added anywhere, on the tmpfs either.
      expect(await clusterState(lab)).toEqual(beforeState);
    } finally {
      const u = await etcd3.exec('umount /etc/etcd && rm -rf /root/etcd-copy');
      expect(u.code, u.stderr).toBe(0);
    }
    expect(await clusterState(lab)).toEqual(beforeState);
    expect(await etcdHealthy(lab)).toBe(true);
    expect(await checkSerials(lab)).toEqual(checkBefore);
  });

  it('a command the steps need is missing on a node: pre-flight names the node and the command, nothing changes', async () => {
    const cp2 = lab.node('lab-cp-2');
    await cp2.exec('mv /usr/local/bin/crictl /usr/local/bin/crictl.off');
    try {
      const r = await cli(['rotate', '-i', lab.inventoryPath, '--yes', '--state-dir', stateDir]);
      expect(r.code).toBe(69);
      expect(r.err).toMatch(/lab-cp-2: crictl is not on the node, and os-profiles\/ubuntu\.yaml runs it \(as root, through sudo -n env PATH=\/usr\/local\/sbin:\/usr\/local\/bin:\/usr\/sbin:\/usr\/bin:\/sbin:\/bin bash -s\)/);
      expect(await clusterState(lab)).toEqual(beforeState);
    } finally {
      await cp2.exec('mv /usr/local/bin/crictl.off /usr/local/bin/crictl');
    }
  });

  it('a remote command that hangs: the step times out (ssh.commandTimeoutSeconds), the node is restored, the run stops', async () => {
    const etcd1 = lab.node('lab-etcd-1');
    // etcdadm that never finishes; its sleep keeps the channel's output open, as a hung command does.
    const h = await etcd1.exec('set -e; mv /usr/local/bin/etcdadm /usr/local/bin/etcdadm.real; printf "#!/bin/bash\\nsleep 617\\n" >/usr/local/bin/etcdadm; chmod 0755 /usr/local/bin/etcdadm');
    expect(h.code, h.stderr).toBe(0);
    const inventory = join(lab.dir, 'inventory-timeout.yaml');
    writeFileSync(inventory, readFileSync(lab.inventoryPath, 'utf8').replace(/^ssh:\n/m, 'ssh:\n  commandTimeoutSeconds: 8\n'));
    try {
      const started = Date.now();
      const r = await cli(['rotate', '-i', inventory, '--only', 'etcd', '--yes', '--state-dir', join(lab.dir, 'state-timeout')]);
      expect(r.code, r.out + r.err).toBe(1);
      expect(r.out).toMatch(/Rotation FAILED on lab-etcd-1, step renew: etcdadmCertificates command did not finish within 8 s/);
      expect(r.out).toContain('lab-etcd-1 was restored from its backup.');
      // Reported when the timeout fired, not when the hung command ended by itself (617 s).
      expect(Date.now() - started).toBeLessThan(120_000);
    } finally {
      await etcd1.exec('mv /usr/local/bin/etcdadm.real /usr/local/bin/etcdadm');
      execFileSync('pkill', ['-f', '^sleep 617$'], { stdio: 'ignore' });
    }
    // The node has its old certificates back (its backup and the replaced copy aside); the rest untouched.
    expect(etcdPkiLines(await fileState(etcd1))).toBe(etcdPkiLines(beforeState['lab-etcd-1']!));
    for (const n of ['lab-etcd-2', 'lab-etcd-3', 'lab-cp-1', 'lab-cp-2']) expect(await fileState(lab.node(n)), n).toBe(beforeState[n]);
    expect(await etcdHealthy(lab)).toBe(true);
    const now = await checkSerials(lab);
    for (const [k, v] of Object.entries(checkBefore)) if (!k.includes('rotate-certs-')) expect(now[k], k).toBe(v);
  });

  it('etcd losing health after the first node is renewed: that node is restored, the next one untouched', async () => {
    const etcd3Pid = etcdPidOf(lab, 'lab-etcd-3');
    mark();
    let stopped = false;
    const fault = (async () => {
      await waitFor('lab-etcd-1 renewed', () => since().some((e) => e.event === 'step-done' && e.node === 'lab-etcd-1' && e.step === 'renew'));
      process.kill(etcd3Pid, 'SIGSTOP');
      stopped = true;
      // Back once the health gate has failed, so that the restore finds a healthy cluster.
      await waitFor('the health gate to fail', () => since().some((e) => e.event === 'step-failed' && e.node === 'lab-etcd-1'));
      process.kill(etcd3Pid, 'SIGCONT');
      stopped = false;
    })();
    let r;
    try {
      r = await cli(['rotate', '-i', lab.inventoryPath, '--only', 'etcd', '--yes', '--state-dir', stateDir]);
      await fault;
    } finally {
      if (stopped) process.kill(etcd3Pid, 'SIGCONT');
    }
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/Rotation FAILED on lab-etcd-1, step health: command etcdHealth exited 1/);
    expect(r.out).toMatch(/lab-etcd-1 was restored from its backup/);
    expect(etcdPkiLines(await fileState(lab.node('lab-etcd-1')))).toBe(etcdPkiLines(beforeState['lab-etcd-1']!));
    expect(await fileState(lab.node('lab-etcd-2'))).toBe(beforeState['lab-etcd-2']);
    expect(await etcdHealthy(lab)).toBe(true);
    expect(await checkSerials(lab)).toEqual(checkBefore);
  });

  it('a kube-apiserver not ready within --pod-timeout: restored, restarted on the old certificate, and the run stops', async () => {
    const cp1 = lab.node('lab-cp-1');
    mark();
    // Once the PKI folder is backed up: an etcd CA that did not sign the etcd client pair (the
    // cluster CA), so the restarted kube-apiserver never becomes ready. The gates do not check it.
    const fault = (async () => {
      await waitFor('lab-cp-1 backed up', () => since().some((e) => e.event === 'step-done' && e.node === 'lab-cp-1' && e.step === 'backup-pki'));
      const w = await cp1.exec('cp /etc/kubernetes/pki/ca.crt /etc/kubernetes/pki/etcd/ca.crt');
      expect(w.code, w.stderr).toBe(0);
    })();
    // Long enough for the old containers to go (kube-vip takes 4 s), short for /readyz.
    const r = await cli(['rotate', '-i', lab.inventoryPath, '--only', 'control-plane', '--pod-timeout', '15', '--yes', '--state-dir', stateDir]);
    await fault;
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/Rotation FAILED on lab-cp-1, step wait-ready:/);
    expect(r.out).toMatch(/lab-cp-1 was restored from its backup/);
    // The restore restarted the pod: :6443 serves the OLD certificate again, and is ready.
    const served = inspectCertificate(await servedCertificate({ host: cp1.host, port: 6443, timeoutMs: 3000 }));
    expect(served.serial).toBe(before['lab-cp-1:/etc/kubernetes/pki/apiserver.crt']);
    expect(await readyz(cp1.host)).toBe('200 ok');
    const ls = (await cp1.exec('ls /etc/kubernetes/manifests')).stdout.split('\n').filter(Boolean).sort();
    expect(ls).toEqual(['kube-apiserver.yaml', 'kube-controller-manager.yaml', 'kube-scheduler.yaml', 'kube-vip.yaml']);
    expect(duplicateStarts(lab)).toEqual([]);
    expect(await fileState(lab.node('lab-cp-2'))).toBe(beforeState['lab-cp-2']);
    expect(await etcdHealthy(lab)).toBe(true);
    expect(await checkSerials(lab)).toEqual(checkBefore);
  });

  it('the SSH connection drops in the middle of a node: the run stops naming it, no PKI folder is left empty, and --resume restores and finishes', async () => {
    const etcd2 = lab.node('lab-etcd-2');
    const state = join(lab.dir, 'state-drop');
    const beforeDrop = await serials(lab);
    // etcdadm hangs on lab-etcd-2, so the cut lands after its PKI folder was emptied.
    const h = await etcd2.exec('set -e; mv /usr/local/bin/etcdadm /usr/local/bin/etcdadm.real; printf "#!/bin/bash\\nsleep 618\\n" >/usr/local/bin/etcdadm; chmod 0755 /usr/local/bin/etcdadm');
    expect(h.code, h.stderr).toBe(0);
    const run = cli(['rotate', '-i', lab.inventoryPath, '--only', 'etcd', '--yes', '--state-dir', state]);
    // Cut only once the hanging etcdadm runs: the journal says renew started before the command
    // reaches the node.
    const hanging = () => {
      try {
        execFileSync('pgrep', ['-f', '^sleep 618$'], { stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    };
    await waitFor('lab-etcd-2 to start renew', () => {
      try {
        return journal(state).some((e) => e.event === 'step-start' && e.node === 'lab-etcd-2' && e.step === 'renew') && hanging();
      } catch {
        return false;
      }
    });
    // The node's sshd goes away with every session it serves (only this node's network namespace).
    await lab.stopSshd('lab-etcd-2');
    const pids = execFileSync('ip', ['netns', 'pids', etcd2.netns], { encoding: 'utf8' }).split('\n').filter(Boolean);
    for (const pid of pids) {
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      if (comm === 'sshd' || comm.startsWith('sshd')) execFileSync('kill', ['-9', pid], { stdio: 'ignore' });
    }
    // The orphaned etcdadm, unless it went down with its session.
    if (hanging()) execFileSync('pkill', ['-f', '^sleep 618$'], { stdio: 'ignore' });
    const failed = await run;
    expect(failed.code, failed.out + failed.err).toBeGreaterThanOrEqual(1);
    expect(failed.out).toMatch(/Rotation FAILED on lab-etcd-2, step renew/);
    // Never an empty PKI folder: at least the CA pair is there for etcdadm.
    const left = await etcd2.exec('ls /etc/etcd/pki');
    expect(left.stdout.split('\n')).toEqual(expect.arrayContaining(['ca.crt', 'ca.key']));

    await lab.startSshd('lab-etcd-2');
    await etcd2.exec('mv /usr/local/bin/etcdadm.real /usr/local/bin/etcdadm');
    const planFile = /rotate-certs apply (\S+) --resume/.exec(failed.out)?.[1];
    expect(planFile, failed.out).toBeDefined();
    const resumed = await cli(['apply', planFile!, '--resume', '--yes', '--state-dir', state]);
    expect(resumed.code, resumed.out + resumed.err).toBe(0);
    const after = await serials(lab);
    for (const [k, v] of Object.entries(beforeDrop)) if (k.startsWith('lab-etcd-')) expect(after[k], k).not.toBe(v);
    expect(await etcdHealthy(lab)).toBe(true);
  });

  it('an etcd member renamed since its certificates were made: the renewal would lose its old name, so it is restored, naming the SAN', async () => {
    const etcd3 = lab.node('lab-etcd-3');
    // The runs before this one renewed the cluster: compare with the state right before this run.
    const stateBefore = await fileState(etcd3);
    const serialsBefore = await checkSerials(lab);
    // etcdadm names the new certificates after the host as it is now.
    await etcd3.exec('hostname lab-etcd-3b && echo "127.0.1.1 lab-etcd-3b" >>/etc/hosts');
    try {
      const r = await cli(['rotate', '-i', lab.inventoryPath, '--only', 'etcd', '--nodes', 'lab-etcd-3', '--yes', '--state-dir', join(lab.dir, 'state-san')]);
      expect(r.code).toBe(1);
      expect(r.out).toMatch(/Rotation FAILED on lab-etcd-3, step verify-certs: \/etc\/etcd\/pki\/server\.crt lost DNS:lab-etcd-3 \(now DNS:lab-etcd-3b, IP:\S+, IP:127\.0\.0\.1\): etcdadm takes the host's current name/);
      expect(r.out).toContain('lab-etcd-3 was restored from its backup.');
    } finally {
      await etcd3.exec('hostname lab-etcd-3');
    }
    expect(etcdPkiLines(await fileState(etcd3))).toBe(etcdPkiLines(stateBefore));
    expect(await etcdHealthy(lab)).toBe(true);
    expect(await checkSerials(lab)).toEqual(serialsBefore);
  });
});
