/**
 * `rotate-certs check` against the emulated cluster: real sshd per node, real etcd on TLS,
 * certificates made by openssl. Assertions compare what check reports with what the nodes hold.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { runCli } from '../../src/cli/program.js';
import type { CliIo } from '../../src/cli/io.js';
import type { CheckReport } from '../../src/check/run.js';
import { inspectCertificate, pemCertificates } from '../../src/certs/inspect.js';
import { startLab, type Lab } from '../lab/lab.js';

async function check(args: string[], env: NodeJS.ProcessEnv = {}) {
  let out = '';
  let err = '';
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const io: CliIo = { out: (t) => void (out += t), err: (t) => void (err += t), color: false, env: process.env, cwd: process.cwd() };
    const code = await runCli(['check', ...args], io);
    return { code, out, err };
  } finally {
    process.env = saved;
  }
}

function json(out: string): CheckReport {
  return JSON.parse(out) as CheckReport;
}

/** An inventory next to the lab's, with some fields changed. */
function variant(lab: Lab, name: string, edit: (inv: Record<string, any>) => void): string {
  const inv = parse(readFileSync(lab.inventoryPath, 'utf8')) as Record<string, any>;
  edit(inv);
  const file = join(lab.dir, `${name}.yaml`);
  writeFileSync(file, stringify(inv));
  return file;
}

describe('check on a healthy cluster (3 etcd, 2 control plane, 1 worker)', () => {
  let lab: Lab;
  beforeAll(async () => {
    // Kubernetes 1.29: the first control-plane node holds super-admin.conf.
    lab = await startLab({ etcd: 3, controlPlane: 2, workers: 1, certs: 'valid', kubernetes: '1.29' });
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('reports every expected certificate with the dates the nodes hold, exit 0', async () => {
    const r = await check(['--inventory', lab.inventoryPath, '--output', 'json']);
    const report = json(r.out);
    expect(report.errors).toEqual([]);
    expect(r.code).toBe(0);
    expect(report.cluster).toBe('lab');
    const paths = (node: string) => report.certificates.filter((c) => c.node === node && c.source !== 'endpoint').map((c) => c.path).sort();
    expect(paths('lab-etcd-1')).toEqual(
      [
        '/etc/etcd/pki/apiserver-etcd-client.crt',
        '/etc/etcd/pki/ca.crt',
        '/etc/etcd/pki/etcdctl-etcd-client.crt',
        '/etc/etcd/pki/peer.crt',
        '/etc/etcd/pki/server.crt',
        '/var/lib/kubelet/pki/kubelet-client-current.pem',
        '/var/lib/kubelet/pki/kubelet.crt',
        '/var/lib/kubelet/pki/kubelet.crt[1]',
      ].sort(),
    );
    expect(paths('lab-cp-1')).toEqual(
      expect.arrayContaining([
        '/etc/kubernetes/admin.conf',
        '/etc/kubernetes/controller-manager.conf',
        '/etc/kubernetes/scheduler.conf',
        '/etc/kubernetes/super-admin.conf',
        '/etc/kubernetes/pki/apiserver.crt',
        '/etc/kubernetes/pki/apiserver-etcd-client.crt',
        '/etc/kubernetes/pki/apiserver-kubelet-client.crt',
        '/etc/kubernetes/pki/ca.crt',
        '/etc/kubernetes/pki/etcd/ca.crt',
        '/etc/kubernetes/pki/front-proxy-ca.crt',
        '/etc/kubernetes/pki/front-proxy-client.crt',
        '/var/lib/kubelet/pki/kubelet-client-current.pem',
      ]),
    );
    expect(paths('lab-cp-2')).not.toContain('/etc/kubernetes/super-admin.conf');
    expect(paths('lab-md-1')).toEqual(expect.arrayContaining(['/var/lib/kubelet/pki/kubelet-client-current.pem']));

    // Every file entry matches the certificate on the node, byte for byte in its dates and serial
    // (FILE[n]: the n-th certificate of a bundle).
    for (const c of report.certificates.filter((c) => c.source === 'file')) {
      const [, file, index] = /^(.*?)(?:\[(\d+)\])?$/.exec(c.path!)!;
      const pem = pemCertificates((await lab.node(c.node).readFile(file!)).toString('utf8'))[Number(index ?? 0)]!;
      const onNode = inspectCertificate(pem);
      expect({ path: c.path, serial: c.serial, notAfter: c.notAfter }).toEqual({ path: c.path, serial: onNode.serial, notAfter: onNode.notAfter.toISOString() });
    }
    // Cluster CAs are ten years out; leaves (and the kubelet's own serving CA) about a year, all ok.
    for (const c of report.certificates) {
      expect(c.status, `${c.node} ${c.path ?? c.endpoint}`).toBe('ok');
      if (c.kind === 'ca') expect(c.daysLeft).toBeGreaterThan(3000);
      else expect(c.daysLeft).toBeLessThan(400);
    }
    // Every kubelet.crt is the kubelet's bundle: the serving certificate, then its one-off CA.
    for (const n of lab.nodes) {
      const mine = (p: string) => report.certificates.find((c) => c.node === n.name && c.path === p);
      expect(mine('/var/lib/kubelet/pki/kubelet.crt')).toMatchObject({ kind: 'leaf', subject: expect.stringMatching(new RegExp(`^CN=${n.name}@\\d+$`)) });
      expect(mine('/var/lib/kubelet/pki/kubelet.crt[1]')).toMatchObject({ kind: 'kubelet-serving-ca', isCA: true, subject: expect.stringMatching(new RegExp(`^CN=${n.name}-ca@\\d+$`)) });
    }
    // Kubelet client certs are the node's own identity.
    expect(report.certificates.find((c) => c.node === 'lab-md-1' && c.path?.endsWith('kubelet-client-current.pem'))?.subject).toMatch(/CN=system:node:lab-md-1/);
  });

  it('reads the served certificate of every :6443 and :2379', async () => {
    const report = json((await check(['-i', lab.inventoryPath, '-o', 'json'])).out);
    const endpoints = report.certificates.filter((c) => c.source === 'endpoint');
    expect(endpoints.map((e) => e.node).sort()).toEqual(['lab-cp-1', 'lab-cp-2', 'lab-etcd-1', 'lab-etcd-2', 'lab-etcd-3']);
    for (const e of endpoints) {
      const file = e.role === 'etcd' ? '/etc/etcd/pki/server.crt' : '/etc/kubernetes/pki/apiserver.crt';
      const onNode = inspectCertificate((await lab.node(e.node).readFile(file)).toString('utf8'));
      expect(e.serial).toBe(onNode.serial);
      expect(e.endpoint).toBe(`${lab.node(e.node).host}:${e.role === 'etcd' ? 2379 : 6443}`);
    }
  });

  it('prometheus output carries one sample per certificate', async () => {
    const r = await check(['-i', lab.inventoryPath, '-o', 'prometheus']);
    expect(r.code).toBe(0);
    const notAfter = r.out.split('\n').filter((l) => l.startsWith('x509_cert_not_after{'));
    const count = json((await check(['-i', lab.inventoryPath, '-o', 'json'])).out).certificates.length;
    expect(notAfter).toHaveLength(count);
    for (const l of notAfter) expect(l).toMatch(/^x509_cert_not_after\{cluster="lab",node="[^"]+",role="[^"]+",source="[^"]+",path="[^"]+",subject_CN="[^"]*",issuer_CN="[^"]*",serial_number="[0-9a-f]+",kind="(leaf|ca|kubelet-serving-ca)"\} \d+$/);
    expect(r.out).toContain('x509_read_errors{cluster="lab"} 0');
  });

  it('goes through a jump host, for SSH and for the endpoint probes', async () => {
    const jump = lab.nodes.find((n) => n.role === 'worker')!;
    const file = variant(lab, 'via-jump', (inv) => {
      inv.ssh.jumpHost = `${jump.user}@${jump.host}`;
    });
    const r = await check(['-i', file, '-o', 'json']);
    expect(json(r.out).errors).toEqual([]);
    expect(r.code).toBe(0);
  });

  it('an unreachable jump host is one line naming ssh.jumpHost, before any node (exit 69), not an error per node', async () => {
    const dead = lab.nodes[0]!.host.replace(/\.\d+$/, '.250');
    const file = variant(lab, 'bad-jump', (inv) => {
      inv.ssh.jumpHost = `capv@${dead}`;
      inv.ssh.connectTimeoutSeconds = 2;
    });
    const r = await check(['-i', file, '-o', 'json']);
    expect(r.code).toBe(69);
    expect(r.out).toBe('');
    expect(r.err.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^rotate-certs: \\S+bad-jump\\.yaml: ssh\\.jumpHost: cannot reach jump host capv@${dead.replace(/\./g, '\\.')}:22: `))]);
  });

  it('accept-new records unknown host keys; strict then trusts them', async () => {
    const kh = join(lab.dir, 'known_hosts.fresh');
    writeFileSync(kh, '');
    const strict = variant(lab, 'fresh-strict', (inv) => {
      inv.ssh.knownHostsFile = 'known_hosts.fresh';
    });
    const refused = await check(['-i', strict, '-o', 'json']);
    expect(refused.code).toBe(3);
    expect(json(refused.out).errors.filter((e) => /unknown host key/.test(e.message))).toHaveLength(lab.nodes.length);

    const acceptNew = variant(lab, 'fresh-accept', (inv) => {
      inv.ssh.knownHostsFile = 'known_hosts.fresh';
      inv.ssh.hostKeyPolicy = 'accept-new';
    });
    expect((await check(['-i', acceptNew, '-o', 'json'])).code).toBe(0);
    expect(readFileSync(kh, 'utf8').trim().split('\n')).toHaveLength(lab.nodes.length);
    expect((await check(['-i', strict, '-o', 'json'])).code).toBe(0);
  });

  it('an encrypted key works with ROTATE_CERTS_SSH_PASSPHRASE and fails clearly without or with a wrong one', async () => {
    const key = join(lab.dir, 'id_encrypted');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'correct horse', '-f', key]);
    const pub = readFileSync(`${key}.pub`, 'utf8');
    for (const n of lab.nodes) await n.exec(`cat >> ~${n.user}/.ssh/authorized_keys <<'EOF'\n${pub}EOF`);
    const file = variant(lab, 'encrypted', (inv) => {
      inv.ssh.identityFile = 'id_encrypted';
    });
    const ok = await check(['-i', file, '-o', 'json'], { ROTATE_CERTS_SSH_PASSPHRASE: 'correct horse', SSH_AUTH_SOCK: '' });
    expect(json(ok.out).errors).toEqual([]);
    const missing = await check(['-i', file, '-o', 'json'], { ROTATE_CERTS_SSH_PASSPHRASE: '', SSH_AUTH_SOCK: '' });
    expect(missing.code).toBe(64);
    expect(missing.err).toMatch(/ssh\.identityFile: identity file \S+ is encrypted: set ROTATE_CERTS_SSH_PASSPHRASE/);
    const wrong = await check(['-i', file, '-o', 'json'], { ROTATE_CERTS_SSH_PASSPHRASE: 'wrong', SSH_AUTH_SOCK: '' });
    expect(wrong.code).toBe(64);
    expect(wrong.err).toMatch(/ssh\.identityFile: wrong passphrase/);
  });

  it('a key no node accepts: the table names the nodes once, JSON keeps one entry each, pre-flight one line', async () => {
    const key = join(lab.dir, 'id_stranger');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    const file = variant(lab, 'stranger', (inv) => {
      inv.ssh.identityFile = 'id_stranger';
    });
    const refused = 'ssh authentication as capv failed (the key was not accepted)';
    const json_ = json((await check(['-i', file, '-o', 'json'], { SSH_AUTH_SOCK: '' })).out);
    expect(json_.errors.filter((e) => e.message === refused).map((e) => e.node)).toEqual(lab.nodes.map((n) => n.name));
    const table = await check(['-i', file], { SSH_AUTH_SOCK: '' });
    expect(table.code).toBe(3);
    expect(table.out).toContain(`  lab-etcd-1, lab-etcd-2 and 4 more: ${refused}\n`);
    expect(table.out.split(refused)).toHaveLength(2);

    let err = '';
    const io: CliIo = { out: () => {}, err: (t) => void (err += t), color: false, env: process.env, cwd: process.cwd() };
    const saved = { ...process.env };
    process.env.SSH_AUTH_SOCK = '';
    try {
      expect(await runCli(['rotate', '-i', file, '--yes', '--state-dir', join(lab.dir, 'state-stranger')], io)).toBe(69);
    } finally {
      process.env = saved;
    }
    // The plan's nodes (etcd and control plane; no kubelet is due) in one line, not one per node.
    expect(err).toContain(`pre-flight failed, nothing was changed:\n  - lab-etcd-1, lab-etcd-2 and 3 more: ${refused}\n`);
    expect(err).not.toMatch(/^ {2}- lab-(etcd|cp)-\d: /m);
  });

  it('a user without passwordless sudo is reported per node', async () => {
    const node = lab.node('lab-md-1');
    await node.exec(`mv /etc/sudoers.d/${node.user} /root/sudoers.saved`);
    try {
      const r = await check(['-i', lab.inventoryPath, '-o', 'json']);
      expect(r.code).toBe(3);
      const errs = json(r.out).errors;
      expect(errs).toHaveLength(1);
      expect(errs[0]).toMatchObject({ node: 'lab-md-1' });
      expect(errs[0]?.message).toMatch(/passwordless sudo/);
    } finally {
      await node.exec(`mv /root/sudoers.saved /etc/sudoers.d/${node.user}`);
    }
  });

  it('an etcd node without kubelet files is no error (it is not a Node); a worker without its client certificate is', async () => {
    const etcd = lab.node('lab-etcd-1');
    const worker = lab.node('lab-md-1');
    await etcd.exec('mv /var/lib/kubelet/pki /root/kubelet-pki.saved');
    await worker.exec('mv /var/lib/kubelet/pki/kubelet-client-current.pem /root/kubelet-client.saved');
    try {
      const r = await check(['-i', lab.inventoryPath, '-o', 'json']);
      const report = json(r.out);
      expect(report.errors).toEqual([{ node: 'lab-md-1', message: 'expected certificate file /var/lib/kubelet/pki/kubelet-client-current.pem is missing' }]);
      expect(r.code).toBe(3);
      expect(report.certificates.some((c) => c.node === 'lab-etcd-1' && c.path?.startsWith('/var/lib/kubelet/'))).toBe(false);
      expect(report.certificates.some((c) => c.node === 'lab-etcd-2' && c.path === '/var/lib/kubelet/pki/kubelet-client-current.pem')).toBe(true);
    } finally {
      await etcd.exec('mv /root/kubelet-pki.saved /var/lib/kubelet/pki');
      await worker.exec('mv /root/kubelet-client.saved /var/lib/kubelet/pki/kubelet-client-current.pem');
    }
  });

  it('one node down: exit 3, that node named, the rest still reported', async () => {
    await lab.stopSshd('lab-cp-2');
    try {
      const r = await check(['-i', lab.inventoryPath, '-o', 'json']);
      expect(r.code).toBe(3);
      const report = json(r.out);
      expect(report.errors.map((e) => e.node)).toContain('lab-cp-2');
      expect(report.errors.find((e) => e.node === 'lab-cp-2' && /refused|unreachable|timed out/.test(e.message))).toBeDefined();
      for (const n of ['lab-etcd-1', 'lab-etcd-2', 'lab-etcd-3', 'lab-cp-1', 'lab-md-1']) {
        expect(report.certificates.some((c) => c.node === n && c.source === 'file')).toBe(true);
      }
    } finally {
      await lab.startSshd('lab-cp-2');
    }
  });

  it('a changed host key is refused and named as such', async () => {
    await lab.regenerateHostKey('lab-etcd-2');
    const r = await check(['-i', lab.inventoryPath, '-o', 'json']);
    expect(r.code).toBe(3);
    const err = json(r.out).errors.find((e) => e.node === 'lab-etcd-2');
    expect(err?.message).toMatch(/HOST KEY CHANGED/);
    // Nothing from that node was read.
    expect(json(r.out).certificates.some((c) => c.node === 'lab-etcd-2' && c.source === 'file')).toBe(false);
    // accept-new refuses a changed key too.
    const file = variant(lab, 'accept-new', (inv) => {
      inv.ssh.hostKeyPolicy = 'accept-new';
    });
    const r2 = await check(['-i', file, '-o', 'json']);
    expect(json(r2.out).errors.find((e) => e.node === 'lab-etcd-2')?.message).toMatch(/HOST KEY CHANGED/);
  });
});

describe('check on clusters near and past expiry', () => {
  it('leaf certificates two days from expiry: exit 1, leaves expiring, CAs ok', async () => {
    const lab = await startLab({ etcd: 1, controlPlane: 1, workers: 1, certs: 'expiring' });
    try {
      const r = await check(['-i', lab.inventoryPath, '-o', 'json']);
      const report = json(r.out);
      expect(report.errors).toEqual([]);
      expect(r.code).toBe(1);
      // The kubelet's self-signed serving CA expires with its certificate; cluster CAs are fine.
      for (const c of report.certificates.filter((c) => c.source !== 'endpoint')) {
        expect(c.status, c.path).toBe(c.kind === 'ca' ? 'ok' : 'expiring');
        if (c.kind !== 'ca') expect(c.daysLeft).toBeLessThanOrEqual(2);
      }
      expect(report.certificates.filter((c) => c.kind === 'kubelet-serving-ca')).toHaveLength(lab.nodes.length);
      expect((await check(['-i', lab.inventoryPath, '-o', 'json', '--warn-days', '1'])).code).toBe(0);
    } finally {
      await lab.down();
    }
  });

  it('expired leaf certificates: exit 2 and the table says expired', async () => {
    const lab = await startLab({ etcd: 1, controlPlane: 1, workers: 1, certs: 'expired' });
    try {
      const r = await check(['-i', lab.inventoryPath, '-o', 'json']);
      const report = json(r.out);
      const files = report.certificates.filter((c) => c.source === 'file' && !c.isCA);
      expect(files.length).toBeGreaterThan(5);
      for (const c of files) expect(c.status, c.path).toBe('expired');
      expect(r.code).toBe(report.errors.length > 0 ? 3 : 2);
      const table = await check(['-i', lab.inventoryPath]);
      expect(table.out).toMatch(/expired\s+-\d+/);
    } finally {
      await lab.down();
    }
  });
});

describe('the installed binary', () => {
  it('runs as a process and exits with the check code', async () => {
    const lab = await startLab({ etcd: 0, controlPlane: 1, workers: 0, services: false });
    try {
      let code = 0;
      let out = '';
      try {
        out = execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'check', '-i', lab.inventoryPath, '-o', 'json'], { encoding: 'utf8' });
      } catch (err) {
        const e = err as { status: number; stdout: string };
        code = e.status;
        out = e.stdout;
      }
      const report = json(out);
      // Without services nothing serves :6443 or (stacked etcd) :2379: those probes are the only errors.
      expect(report.errors.map((e) => e.message).sort()).toEqual([expect.stringMatching(/endpoint .*:2379: connection refused/), expect.stringMatching(/endpoint .*:6443: connection refused/)]);
      expect(code).toBe(3);
      expect(report.certificates.length).toBeGreaterThan(10);
    } finally {
      await lab.down();
    }
  });
});
