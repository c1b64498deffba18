/**
 * etcd recovery on the emulated cluster: every certificate already expired (3 external etcd,
 * 2 control plane, 1 worker, Ubuntu), so the real etcd 3.4 members cannot handshake with each
 * other, have no quorum and serve no clients, and the kube-apiservers are not ready. The rotation is
 * the way back. Assertions are about the end state: renewed files, CA bytes, what each endpoint
 * serves, etcd health with the new client certificate, the secret, the kubelets.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { startLab, type Lab } from '../lab/lab.js';
import { cert, cli, clusterState, etcdHealthy, etcdPkiLines, expectRotated, expectScopeRefused, fileState, MIXED_NODES, serials } from './rotation-state.js';

describe('rotate a cluster whose etcd certificates have already expired', () => {
  let lab: Lab;
  let stateDir: string;
  beforeAll(async () => {
    lab = await startLab({ etcd: 3, controlPlane: 2, workers: 1, certs: 'expired' });
    stateDir = join(lab.dir, 'state');
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('starts broken: etcd is not healthy', async () => {
    expect(await etcdHealthy(lab)).toBe(false);
  });

  it('a scope that leaves an expired member out is refused before anything changes', async () => {
    await expectScopeRefused(lab, stateDir, 'lab-etcd-1', /etcd members lab-etcd-2, lab-etcd-3 have expired certificates: etcd cannot be healthy until every such member is renewed/);
  });

  it('the plan says it is a recovery, and which gates wait for the last member', async () => {
    const r = await cli(['plan', '-i', lab.inventoryPath, '--state-dir', stateDir]);
    // Without quorum no member serves clients: those endpoints are unread, so exit 3, plan made.
    expect(r.err).toMatch(/warning: lab-etcd-1: endpoint \S+:2379: no TLS handshake/);
    expect(r.code).toBe(3);
    expect(r.out).toContain('etcd members with expired certificates: lab-etcd-1, lab-etcd-2, lab-etcd-3.');
    // health and serving on etcd-1 and etcd-2, and each member's restore-health
    expect(r.out.match(/\[deferred\]/g)).toHaveLength(7);
    expect(r.out.match(/\[retried\]/g)).toHaveLength(2); // both on etcd-3
  });

  it('rotate --yes renews etcd member by member; a failure mid-way restores that member, and --resume finishes', async () => {
    const before = await serials(lab);
    const beforeState = await clusterState(lab);
    const kubelets = await Promise.all(['lab-cp-1', 'lab-cp-2', 'lab-md-1'].map(async (n) => (await cert(lab.node(n), '/var/lib/kubelet/pki/kubelet-client-current.pem')).serial));
    const etcd2 = lab.node('lab-etcd-2');
    await etcd2.exec('mkdir -p /etc/rotate-certs-lab && touch /etc/rotate-certs-lab/fail-etcdadm');

    const failed = await cli(['rotate', '-i', lab.inventoryPath, '--yes', '--state-dir', stateDir]);
    expect(failed.err).toMatch(/etcd is not healthy \(checked from lab-etcd-1\), as expected with expired certificates on lab-etcd-1, lab-etcd-2, lab-etcd-3/);
    expect(failed.code).toBe(1);
    expect(failed.out).toMatch(/Rotation FAILED on lab-etcd-2, step renew: command etcdadmCertificates exited 1/);
    // Restored to its expired certificates without waiting for a health etcd cannot have yet.
    expect(failed.err).toMatch(/lab-etcd-2 restore-health: ok \(deferred: etcd recovery/);
    expect(failed.out).toMatch(/lab-etcd-2 was restored from its backup/);
    expect(etcdPkiLines(await fileState(etcd2))).toBe(etcdPkiLines(beforeState['lab-etcd-2']!));
    for (const n of ['lab-etcd-3', 'lab-cp-1', 'lab-cp-2', 'lab-md-1']) expect(await fileState(lab.node(n)), n).toBe(beforeState[n]);
    expect((await cert(lab.node('lab-etcd-1'), '/etc/etcd/pki/server.crt')).serial).not.toBe(before['lab-etcd-1:/etc/etcd/pki/server.crt']);
    const resume = /continue with: (rotate-certs apply (\S+) --resume)/.exec(failed.out);
    expect(resume, failed.out).not.toBeNull();

    await etcd2.exec('rm /etc/rotate-certs-lab/fail-etcdadm');
    const r = await cli(['apply', resume![2]!, '--resume', '--state-dir', stateDir]);
    expect(r.err).toMatch(/lab-etcd-1: etcd already done in this run, skipped/);
    expect(r.err).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    // Renewed leaves a year out, CA bytes untouched, endpoints serving the renewed certificates,
    // etcd healthy with the new client certificate, the secret and pairs in place.
    await expectRotated(lab, before, beforeState);
    expect(await etcdHealthy(lab)).toBe(true);
    for (const [i, n] of ['lab-cp-1', 'lab-cp-2', 'lab-md-1'].entries()) {
      const c = await cert(lab.node(n), '/var/lib/kubelet/pki/kubelet-client-current.pem');
      expect(c.serial, `${n} kubelet client renewed`).not.toBe(kubelets[i]);
      expect(c.notAfter.getTime()).toBeGreaterThan(Date.now() + 360 * 86_400_000);
    }
    // The backups hold the expired certificates, should the operator want them. (etcd-2 also
    // keeps the folder its restore replaced, as *.replaced-N.)
    for (const n of lab.nodes.filter((n) => n.role === 'etcd')) {
      const backup = (await n.exec('ls -d /etc/etcd/pki.rotate-certs-*Z')).stdout.trim();
      expect((await cert(n, `${backup}/server.crt`)).serial).toBe(before[`${n.name}:/etc/etcd/pki/server.crt`]);
    }
    // The gates that need a healthy cluster were deferred on the first two and passed on the last.
    expect(r.err).toMatch(/lab-etcd-2 health: ok \(deferred: etcd recovery: waits for lab-etcd-3/);
    expect(r.err).toMatch(/lab-etcd-3 health: ok \([^)]*started/);
    expect(r.err).toMatch(/lab-etcd-3 serving: ok \(serves serial/);
  }, 600_000); // two rotations: the failed one and its resume

  it('check afterwards: every certificate a rotation renews is valid', async () => {
    const r = await cli(['check', '-i', lab.inventoryPath, '-o', 'json']);
    const report = JSON.parse(r.out) as { certificates: Array<{ node: string; role: string; path?: string; status: string }>; errors: unknown[] };
    expect(report.errors).toEqual([]);
    // External etcd machines are not Nodes: their kubelet certificates are not rotated (docs/rotate.md).
    const bad = report.certificates.filter((c) => c.status !== 'ok' && !(c.role === 'etcd' && c.path?.startsWith('/var/lib/kubelet/')));
    expect(bad).toEqual([]);
  });
});

describe('etcd recovery on a mixed cluster (Bottlerocket, RHEL and Ubuntu etcd members)', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab({
      certs: 'expired',
      nodes: MIXED_NODES,
    });
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('rotate --yes brings etcd back, each member in its own OS spelling', async () => {
    expect(await etcdHealthy(lab)).toBe(false);
    const before = await serials(lab);
    const beforeState = await clusterState(lab);
    const r = await cli(['rotate', '-i', lab.inventoryPath, '--yes', '--state-dir', join(lab.dir, 'state')]);
    expect(r.err).toMatch(/etcd is not healthy \(checked from lab-etcd-1\), as expected with expired certificates on lab-etcd-1, lab-etcd-2, lab-etcd-3/);
    expect(r.err).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    // The Bottlerocket member was renewed through the kubeadm-bootstrap image, its gates deferred.
    expect(r.err).toMatch(/lab-etcd-1 health: ok \(deferred: etcd recovery/);
    expect(r.err).toMatch(/lab-etcd-3 health: ok \([^)]*started/);
    await expectRotated(lab, before, beforeState);
    expect(await etcdHealthy(lab)).toBe(true);
  });
});
