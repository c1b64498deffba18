import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../src/cli/program.js';
import type { CliIo } from '../../src/cli/io.js';
import type { Connector } from '../../src/transport/session.js';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';

async function run(args: string[]) {
  let out = '';
  let err = '';
  const io: CliIo = { out: (t) => void (out += t), err: (t) => void (err += t), color: false, env: {}, cwd: PACKAGE_ROOT };
  let contacted = 0;
  const connector: Connector = {
    connect: () => {
      contacted++;
      return Promise.reject(new Error('must not connect'));
    },
  };
  const code = await runCli(args, io, { connector });
  return { code, out, err, contacted };
}

const example = join('examples', 'lab', 'inventory.yaml');

describe('rotate-certs CLI', () => {
  it('check --dry-run prints each node\'s root script and contacts nothing', async () => {
    const r = await run(['check', '--inventory', example, '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.contacted).toBe(0);
    expect(r.out).toContain('## lab-etcd-1 (etcd, ubuntu)');
    expect(r.out).toContain("capv@198.51.100.11 sudo -n env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin bash -s <<'ROTATE_CERTS'");
    expect(r.out).toContain("ec2-user@198.51.100.32 sudo sheltie <<'ROTATE_CERTS'");
    expect(r.out).toContain('rc_file /etc/etcd/pki/server.crt required');
    expect(r.out).toContain('read the certificate served at 198.51.100.21:6443');
  });

  it.each([
    [['check'], /no inventory: give --inventory FILE or --cluster NAME/],
    [['check', '-i', example, '--output', 'xml'], /--output must be one of table, json, prometheus, got "xml"/],
    [['check', '-i', example, '--warn-days', '-1'], /--warn-days expects a whole number/],
    [['check', '-i', example, '--concurrency', '0'], /--concurrency must be between 1 and 256/],
    [['check', '-i', example, '-c', 'lab'], /cluster lab is named twice \(examples\/lab\/inventory\.yaml and lab\): check each cluster once/],
    [['check', '--cluster', 'Bad;Name'], /is not a cluster name/],
    [['check', '--cluster', 'nosuch'], /neither .*nosuch\/rotate-certs\.yaml nor .*nosuch-eks-a-cluster\.yaml exists/],
    [['check', '--bogus'], /unknown option '--bogus'/],
    [['frobnicate'], /unknown command 'frobnicate'/],
  ])('%j is a usage error (64) on one line, nothing contacted', async (args, message) => {
    const r = await run(args);
    expect(r.code).toBe(64);
    expect(r.contacted).toBe(0);
    expect(r.err).toMatch(message);
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it('a second run on a cluster whose lock is held is refused (75) before contacting anything', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'rc-lock-'));
    try {
      mkdirSync(join(stateDir, 'lab'), { recursive: true });
      // The holder is this very process: alive, on this host.
      writeFileSync(join(stateDir, 'lab', 'lock'), JSON.stringify({ pid: process.pid, host: hostname(), runId: 'other', since: 'now' }));
      const r = await run(['rotate', '-i', example, '--yes', '--state-dir', stateDir]);
      expect(r.code).toBe(75);
      expect(r.err).toMatch(/another rotate-certs run holds the lock for cluster lab \(pid \d+ on .*, run other/);
      expect(r.contacted).toBe(0);
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  it('rotate --dry-run lists every command per node in order and contacts nothing', async () => {
    const r = await run(['rotate', '-i', example, '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.contacted).toBe(0);
    expect(r.out.indexOf('lab-etcd-3 (etcd')).toBeLessThan(r.out.indexOf('lab-cp-1 (control-plane'));
    expect(r.out).toContain('kubeadm certs renew all');
  });

  it("the README's first command: rotate --dry-run names every node of the example with the kubelet commands it could get", async () => {
    const r = await run(['rotate', '--inventory', example, '--dry-run']);
    expect(r.code).toBe(0);
    const kubelet = r.out.slice(r.out.indexOf('Renew kubelet client and serving certificates'));
    expect(kubelet.length).toBeGreaterThan(100);
    // Every node that runs a kubelet as a Node (not the external etcd machines), each decided at run time.
    for (const n of ['lab-cp-1 (control-plane, ubuntu, 198.51.100.21)', 'lab-cp-2 (control-plane, ubuntu, 198.51.100.22)', 'lab-md-1 (worker, ubuntu, 198.51.100.31)', 'lab-md-2 (worker, bottlerocket, 198.51.100.32)']) {
      expect(kubelet).toContain(`  ${n} [decided at run time]\n    only if, when rotate reads it, its kubelet client or serving certificate`);
    }
    expect(kubelet).not.toContain('lab-etcd-');
    // The exact commands: the worker on Bottlerocket gets them through sheltie.
    const md2 = kubelet.slice(kubelet.indexOf('lab-md-2 (worker'));
    expect(md2).toContain("sudo sheltie <<'ROTATE_CERTS'");
    expect(md2).toContain('<redacted:kubeletClientKey>');
    expect(r.out).toMatch(/^Phase 5: Renew kubelet client and serving certificates \(one node at a time, in this order; then the workers, up to --parallel at once\)$/m);
    expect(r.out).toContain('[decided at run time]: a real run gives it to those whose kubelet client or serving certificate is expired or within --warn-days');
  });

  it('--help teaches: commands, flags, exit codes, examples', async () => {
    const top = await run(['--help']);
    expect(top.code).toBe(0);
    expect(top.out).toContain('check');
    const check = await run(['check', '--help']);
    expect(check.code).toBe(0);
    expect(check.out).toMatch(/--warn-days <days>/);
    expect(check.out).toMatch(/Exit codes:/);
    expect(check.out).toMatch(/Examples:/);
  });
});

describe('the guided run without a terminal', () => {
  it('asks nothing: a question becomes an error naming the flag or field that answers it', async () => {
    const { noPrompter } = await import('../../src/util/prompter.js');
    await expect(noPrompter.confirm({ message: 'Rotate now?', answeredBy: '--yes' })).rejects.toThrow('no terminal to ask "Rotate now?": give --yes');
    await expect(noPrompter.input({ message: 'Address of lab-cp-1 (control-plane):', answeredBy: 'the host of lab-cp-1 in ./lab/rotate-certs.yaml' })).rejects.toThrow(
      /give the host of lab-cp-1 in \.\/lab\/rotate-certs\.yaml/,
    );
  });
  it('rotate-certs with no command and no --cluster shows the help (64); --cluster with no folder names the files it looked for', async () => {
    const r = await run(['--yes']);
    expect(r.code).toBe(64);
    expect(r.out).toContain('Guided run (the default command)');
    const missing = await run(['--cluster', 'nosuch', '--yes']);
    expect(missing.code).toBe(64);
    expect(missing.err).toMatch(/neither .*nosuch\/rotate-certs\.yaml nor .*nosuch\/nosuch-eks-a-cluster\.yaml exists: run in the folder where you ran eksctl anywhere create cluster/);
    expect(missing.contacted).toBe(0);
  });
});
