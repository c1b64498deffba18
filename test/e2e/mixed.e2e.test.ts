/**
 * A mixed cluster: Bottlerocket on one etcd node, one control-plane node and the worker, RHEL on
 * one etcd node, Ubuntu on the rest. On the lab's Bottlerocket nodes sudo allows only sheltie, kubeadm and etcdadm exist
 * only inside the bootstrap image (ctr run), ctr eats the standard input it is given (sheltie's
 * script), and /etc/os-release is the admin container's, as on a real node.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startLab, type Lab } from '../lab/lab.js';
import { cert, cli, clusterState, expectRotated, fileState, MIXED_NODES, serials } from './rotation-state.js';

const BOOTSTRAP_IMAGE = 'public.ecr.aws/eks-anywhere/bottlerocket-bootstrap:v1-28-9-eks-a-lab';

/** The lines of a plan text that belong to one node of one phase. */
function nodeSection(text: string, header: string): string {
  const start = text.indexOf(`\n  ${header}`);
  expect(start, `plan text has ${header}`).toBeGreaterThanOrEqual(0);
  const next = text.slice(start + 1).search(/\n {2}\S|\nPhase /);
  return next < 0 ? text.slice(start) : text.slice(start, start + 1 + next);
}

describe('a mixed Ubuntu, RHEL and Bottlerocket cluster', () => {
  let lab: Lab;
  let stateDir: string;
  let autoInventory: string;
  beforeAll(async () => {
    // Kubernetes 1.30: the first control-plane node holds super-admin.conf, renewed by name too.
    lab = await startLab({ nodes: MIXED_NODES, kubernetes: '1.30' });
    stateDir = join(lab.dir, 'state');
    // The same cluster with every OS left to detection.
    autoInventory = join(lab.dir, 'inventory-auto.yaml');
    writeFileSync(autoInventory, readFileSync(lab.inventoryPath, 'utf8').replace(/^os: ubuntu$/m, 'os: auto').replace(/^ {4}os: [a-z]+\n/gm, ''));
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('check reads the Bottlerocket paths through sheltie and reports them beside the Ubuntu ones', async () => {
    const r = await cli(['check', '-i', lab.inventoryPath, '--output', 'json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out) as { certificates: Array<{ node: string; path?: string; serial: string }>; errors: unknown[] };
    expect(report.errors).toEqual([]);
    const expectSame = async (node: string, path: string, file = path) => {
      const c = report.certificates.find((x) => x.node === node && x.path === path);
      expect(c, `${node} ${path} reported`).toBeDefined();
      expect(c!.serial).toBe((await cert(lab.node(node), file)).serial);
    };
    await expectSame('lab-etcd-1', '/var/lib/etcd/pki/server.crt');
    await expectSame('lab-etcd-2', '/etc/etcd/pki/server.crt');
    await expectSame('lab-cp-2', '/var/lib/kubeadm/pki/apiserver.crt');
    await expectSame('lab-cp-2', '/var/lib/kubeadm/pki/server-etcd-client.crt');
    await expectSame('lab-md-1', '/var/lib/kubelet/pki/kubelet-client-current.pem');
    expect(report.certificates.some((x) => x.node === 'lab-cp-2' && x.path === '/var/lib/kubeadm/admin.conf')).toBe(true);
  });

  it('a Bottlerocket host as sheltie shows it: a script on standard input or the arguments themselves, and no sed, awk, cmp or openssl', async () => {
    const cp2 = lab.node('lab-cp-2');
    const ssh = (remote: string, input?: string) =>
      new Promise<{ code: number; out: string }>((resolve) => {
        const p = spawn('ssh', ['-i', lab.identityFile, '-o', `UserKnownHostsFile=${lab.knownHostsFile}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', `ec2-user@${cp2.host}`, remote]);
        let out = '';
        p.stdout.on('data', (d: Buffer) => (out += d.toString()));
        p.stderr.on('data', (d: Buffer) => (out += d.toString()));
        p.on('close', (code) => resolve({ code: code ?? -1, out }));
        p.stdin.end(input ?? '');
      });
    // The admin container, where SSH lands, has the usual tools.
    expect((await ssh('command -v sed awk openssl')).code).toBe(0);
    const host = await ssh('sudo sheltie', 'for t in sed awk cmp diff tar jq openssl sudo etcdctl sha256sum ctr apiclient; do command -v $t >/dev/null && echo "has $t"; done; sed -n 1p /etc/hostname; echo "exit $?"\n');
    expect(host.out).toMatch(/^has sha256sum\nhas ctr\nhas apiclient\n/);
    expect(host.out).toContain('sed: command not found');
    expect(host.out).toContain('exit 127');
    // With arguments, sheltie runs them on the host, no shell in between.
    expect((await ssh("sudo sheltie cat /etc/os-release")).out).toContain('Amazon Linux');
    expect((await ssh("sudo sheltie sed -n 1p /etc/os-release")).code).not.toBe(0);
  });

  it('pre-flight names a Bottlerocket node whose host lacks a command its steps run, and changes nothing', async () => {
    const cp2 = lab.node('lab-cp-2');
    const before = await clusterState(lab);
    await cp2.exec('mv /usr/local/bin/apiclient /usr/local/bin/apiclient.off');
    try {
      const r = await cli(['rotate', '-i', lab.inventoryPath, '--yes', '--state-dir', join(lab.dir, 'state-missing')]);
      expect(r.code).toBe(69);
      expect(r.err).toMatch(/lab-cp-2: apiclient is not on the node, and os-profiles\/bottlerocket\.yaml runs it \(as root, through sudo sheltie\)/);
    } finally {
      await cp2.exec('mv /usr/local/bin/apiclient.off /usr/local/bin/apiclient');
    }
    expect(await clusterState(lab)).toEqual(before);
  });

  it('--dry-run prints each node in its own OS spelling; os: auto is refused there and detected by plan', async () => {
    const dry = await cli(['rotate', '-i', lab.inventoryPath, '--dry-run']);
    expect(dry.code).toBe(0);
    const etcd1 = nodeSection(dry.out, 'lab-etcd-1 (etcd, bottlerocket');
    expect(etcd1).toContain("sudo sheltie <<'ROTATE_CERTS'");
    expect(etcd1).toContain('/opt/bin/etcdadm join phase certificates http://eks-a-etcd-dumb-url --init-system kubelet </dev/null');
    expect(etcd1).toContain('ctr -n k8s.io c rm');
    expect(etcd1).not.toContain('sudo -n env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin bash -s');
    const etcd2 = nodeSection(dry.out, 'lab-etcd-2 (etcd, ubuntu');
    expect(etcd2).toContain("sudo -n env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin bash -s <<'ROTATE_CERTS'");
    expect(etcd2).not.toMatch(/sheltie|ctr /);
    const cp2 = nodeSection(dry.out, 'lab-cp-2 (control-plane, bottlerocket');
    expect(cp2).toContain('apiclient set "settings.kubernetes.static-pods.$p.enabled=false"');
    expect(cp2).toContain('/opt/bin/kubeadm certs renew "$n" </dev/null');
    expect(cp2).not.toContain('/opt/bin/kubeadm certs renew all');
    // The gates' own commands are shown too: how the static pods' containers are seen.
    expect(cp2).toContain('runs staticPods: sudo sheltie');

    const autoDry = await cli(['rotate', '-i', autoInventory, '--dry-run']);
    expect(autoDry.code).toBe(64);
    expect(autoDry.err).toMatch(/lab-etcd-1, lab-etcd-2, lab-etcd-3, lab-cp-1, lab-cp-2, lab-md-1 have os: auto, which needs a connection to detect, and --dry-run connects to nothing/);

    const plan = await cli(['plan', '-i', autoInventory, '--state-dir', stateDir]);
    expect(plan.code).toBe(0);
    expect(plan.out).toContain('Detected (os: auto): lab-etcd-1 bottlerocket, lab-etcd-2 ubuntu, lab-etcd-3 rhel, lab-cp-1 ubuntu, lab-cp-2 bottlerocket, lab-md-1 bottlerocket');
    expect(nodeSection(plan.out, 'lab-cp-2 (control-plane, bottlerocket detected')).toContain('sudo sheltie');
  });

  it('rotate with os: auto renews every node, removes the stale etcd container, and roots only through sheltie on Bottlerocket', async () => {
    const etcd1 = lab.node('lab-etcd-1');
    const cp2 = lab.node('lab-cp-2');
    // A stale etcd container a month old beside the running one (the runbook's "multiple etcd containers").
    const stale = await lab.leakContainer('lab-etcd-1', 'etcd', 30 * 86400);
    const etcdIds = async () => (await etcd1.exec("ctr -n k8s.io c ls | grep -w etcd-io | cut -d' ' -f1")).stdout.split('\n').filter(Boolean);
    const idsBefore = await etcdIds();
    expect(idsBefore).toHaveLength(2);
    for (const n of [etcd1, cp2]) await n.exec('rm -f /var/log/sheltie.log /var/log/apiclient.log /var/log/ctr.log');
    const before = await serials(lab);
    const beforeState = await clusterState(lab);

    const r = await cli(['rotate', '-i', autoInventory, '--yes', '--state-dir', stateDir]);
    expect(r.err).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/lab-etcd-1: 2 etcd containers; the older are stale/); // pre-flight says so
    await expectRotated(lab, before, beforeState);

    // The older etcd container was stopped and removed; the running one was never touched.
    const idsAfter = await etcdIds();
    expect(idsAfter).toEqual(idsBefore.filter((id) => id !== stale));
    const ctrLog = (await etcd1.exec('cat /var/log/ctr.log')).stdout;
    expect(ctrLog).toContain(`removed container ${stale} (etcd)`);
    expect(ctrLog).not.toContain('KILLED');

    // sudo allows nothing but sheltie there, and sheltie got every script on standard input.
    for (const n of [etcd1, cp2]) {
      expect((await n.exec('sudo -l -U ec2-user')).stdout).toMatch(/\(root\) NOPASSWD: \/usr\/local\/bin\/sheltie\s*$/);
      const log = (await n.exec('cat /var/log/sheltie.log')).stdout;
      expect(log.split('\n').filter(Boolean).length, `${n.name} ran its root scripts through sheltie`).toBeGreaterThan(5);
      expect(log, 'every script on standard input, none as arguments').not.toContain(' ARGS ');
      expect((await n.exec('cat /var/lib/rotate-certs-lab/images')).stdout).toContain(BOOTSTRAP_IMAGE);
    }
    // Static pods were disabled, then enabled again, through apiclient.
    const toggles = (await cp2.exec('cat /var/log/apiclient.log')).stdout.split('\n').filter(Boolean).map((l) => l.split(' ')[2]);
    const pods = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-vip'];
    expect(toggles).toEqual([...pods.map((p) => `static-pods.${p}.enabled=false`), ...pods.map((p) => `static-pods.${p}.enabled=true`)]);
    // The Bottlerocket backups sit beside their own PKI folders and hold the old certificates.
    const backup = (await etcd1.exec('ls -d /var/lib/etcd/pki.rotate-certs-*')).stdout.trim();
    expect((await cert(etcd1, `${backup}/server.crt`)).serial).toBe(before['lab-etcd-1:/var/lib/etcd/pki/server.crt']);
    // The worker is not part of this rotation.
    expect(await fileState(lab.node('lab-md-1'))).toBe(beforeState['lab-md-1']);
  });

  it('os: auto on a node of an unknown OS: plan stops naming it and changes nothing; check reports it and reads the rest', async () => {
    const etcd2 = lab.node('lab-etcd-2');
    await etcd2.exec(`printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\\nID=debian\\n' >/etc/os-release`);
    const before = await clusterState(lab);
    const plan = await cli(['rotate', '-i', autoInventory, '--yes', '--state-dir', stateDir]);
    expect(plan.code).toBe(69);
    expect(plan.err).toContain('lab-etcd-2: OS detection (os: auto) failed: os: auto found Debian GNU/Linux 12 (bookworm) (os-release ID=debian), which rotate-certs has no profile for');
    expect(plan.err).not.toMatch(/\n\s+at /); // no stack trace
    expect(await clusterState(lab)).toEqual(before);
    const check = await cli(['check', '-i', autoInventory, '--output', 'json']);
    expect(check.code).toBe(3);
    const report = JSON.parse(check.out) as { certificates: Array<{ node: string }>; errors: Array<{ node: string; message: string }> };
    expect(report.errors.map((e) => e.node)).toEqual(['lab-etcd-2']);
    expect(new Set(report.certificates.map((c) => c.node))).toEqual(new Set(['lab-etcd-1', 'lab-etcd-3', 'lab-cp-1', 'lab-cp-2', 'lab-md-1']));
  });
});
