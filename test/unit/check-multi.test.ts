/**
 * `check` of several clusters on the command line: how clusters are named, what a cluster that
 * does not load gives, and one concurrency budget shared by all clusters. The merged outputs
 * themselves are tested in check-output.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CheckReport, MultiCheckReport } from '../../src/check/run.js';
import type { CliIo } from '../../src/cli/io.js';
import { runCli } from '../../src/cli/program.js';
import type { Connector } from '../../src/transport/session.js';
import { UsageError } from '../../src/util/errors.js';
import { parsePrometheus } from '../prometheus.js';

describe('several clusters on the command line', () => {
  let dir: string;
  /** An inventory of `workers` workers (plus one control-plane node) on loopback addresses nothing serves. */
  const inventory = (cluster: string, net: number, workers = 2) =>
    [
      `cluster: ${cluster}`,
      'ssh: { user: capv, knownHostsFile: known_hosts }',
      'os: ubuntu',
      `controlPlane: [{ name: ${cluster}-cp-1, host: 127.77.${net}.21 }]`,
      `workers: [${Array.from({ length: workers }, (_, i) => `{ name: ${cluster}-md-${i + 1}, host: 127.77.${net}.${31 + i} }`).join(', ')}]`,
      '',
    ].join('\n');

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'rc-multi-'));
    for (const [name, net] of [['site-a', 1], ['site-b', 2]] as const) {
      mkdirSync(join(dir, 'sites', name), { recursive: true });
      writeFileSync(join(dir, 'sites', name, 'rotate-certs.yaml'), inventory(name, net));
    }
    // eksctl's folder, no inventory saved yet; and a folder that is no cluster.
    mkdirSync(join(dir, 'sites', 'site-c'));
    writeFileSync(join(dir, 'sites', 'site-c', 'site-c-eks-a-cluster.yaml'), 'kind: Cluster\n');
    mkdirSync(join(dir, 'sites', 'logs'));
    writeFileSync(join(dir, 'other.yaml'), inventory('other', 3));
    writeFileSync(join(dir, 'broken.yaml'), 'cluster: broken\ncontrolPlane: []\n');
    writeFileSync(join(dir, 'same-name.yaml'), inventory('site-a', 4));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** `check` with a connector whose sessions answer at once with an empty read, counting them. */
  async function run(args: string[], delayMs = 0, prepare?: Connector['prepare']) {
    let out = '';
    let err = '';
    const io: CliIo = { out: (t) => void (out += t), err: (t) => void (err += t), color: false, env: {}, cwd: dir };
    const connected: string[] = [];
    let open = 0;
    let maxOpen = 0;
    const connector: Connector = {
      ...(prepare ? { prepare } : {}),
      connect: async (node) => {
        connected.push(node.name);
        maxOpen = Math.max(maxOpen, ++open);
        await new Promise((r) => setTimeout(r, delayMs));
        return {
          node,
          exec: async () => ({ code: 0, stdout: '@@done\n', stderr: '' }),
          close: async () => void open--,
        };
      },
    };
    const code = await runCli(['check', ...args], io, { connector });
    return { code, out, err, connected, maxOpen };
  }

  it('--dry-run prints every cluster named by --inventory, --cluster and --clusters-dir; a folder without an inventory is named (64)', async () => {
    const r = await run(['-i', 'other.yaml', '--clusters-dir', 'sites', '--dry-run', '--cis']);
    expect(r.connected).toEqual([]);
    expect(r.out.match(/^# ===== cluster \S+/gm)).toEqual(['# ===== cluster other', '# ===== cluster site-a', '# ===== cluster site-b']);
    expect(r.out).toContain('## site-b-md-2 (worker, ubuntu)');
    expect(r.out).toContain('rc_cis_path'); // --cis scripts too
    // A folder without rotate-certs.yaml is built from its EKS Anywhere spec, here a stub that names no cluster.
    expect(r.err).toBe(`rotate-certs: cluster site-c not checked: ${join(dir, 'sites', 'site-c', 'site-c-eks-a-cluster.yaml')}:1: metadata.name: no Cluster named "site-c" (kind: Cluster, apiVersion: anywhere.eks.amazonaws.com/v1alpha1); the file has "(no name)" (use the cluster name (no name), or the folder of cluster site-c)\n`);
    expect(r.code).toBe(64);
    const badName = await run(['-c', 'site-a', 'sites/site-a', '--dry-run']);
    expect(badName.err).toBe('rotate-certs: --cluster "sites/site-a" is not a cluster name (a DNS label)\n');
    expect(badName.code).toBe(64);
  });

  it('one --concurrency budget for all clusters together, and the highest exit code', async () => {
    const r = await run(['--inventory', 'other.yaml', 'sites/site-a/rotate-certs.yaml', 'sites/site-b/rotate-certs.yaml', '-o', 'json', '--concurrency', '3'], 20);
    // Three clusters of three nodes: nine sessions, never more than three open at once.
    expect(r.connected.sort()).toEqual(['other', 'site-a', 'site-b'].flatMap((c) => [`${c}-cp-1`, `${c}-md-1`, `${c}-md-2`]).sort());
    expect(r.maxOpen).toBe(3);
    const parsed = JSON.parse(r.out) as MultiCheckReport;
    expect(parsed.clusters.map((c) => c.cluster)).toEqual(['other', 'site-a', 'site-b']);
    // Nothing serves :2379 or :6443 (stacked etcd) on those loopback addresses: endpoint errors, exit 3.
    for (const c of parsed.clusters) expect((c as CheckReport).errors.map((e) => e.message)).toEqual([expect.stringMatching(/^endpoint 127\.77\.\d\.21:2379: /), expect.stringMatching(/^endpoint 127\.77\.\d\.21:6443: /)]);
    expect(r.code).toBe(3);
  });

  it('an inventory that does not load is one line on stderr and a not-checked entry; the others are checked', async () => {
    const r = await run(['-i', 'broken.yaml', '-c', 'nosuch', '--clusters-dir', 'sites', '-o', 'prometheus']);
    expect(r.err.trim().split('\n')).toEqual([
      expect.stringMatching(/^rotate-certs: cluster broken\.yaml not checked: .*broken\.yaml:2: controlPlane: /),
      expect.stringMatching(/^rotate-certs: cluster nosuch not checked: neither \S+nosuch\/rotate-certs\.yaml nor \S+nosuch\/nosuch-eks-a-cluster\.yaml exists/),
      expect.stringMatching(/^rotate-certs: cluster site-c not checked: \S+site-c-eks-a-cluster\.yaml:1: metadata\.name: no Cluster named "site-c"/),
    ]);
    const errors = parsePrometheus(r.out).filter((s) => s.name === 'x509_read_errors');
    expect(errors.map((s) => [s.labels.cluster, s.value])).toEqual([
      ['broken.yaml', 1],
      ['nosuch', 1],
      ['site-a', 2], // :2379 and :6443 refused
      ['site-b', 2],
      ['site-c', 1],
    ]);
    expect(r.connected.filter((n) => n.startsWith('site-a') || n.startsWith('site-b'))).toHaveLength(6);
    expect(r.code).toBe(3);
  });

  it('a cluster whose SSH settings no node could use is not checked, without contacting it; the others are checked', async () => {
    // The real connector's prepare() refuses such settings before any contact (a missing key here).
    const prepare: Connector['prepare'] = async (inv) => {
      if (inv.file.endsWith('other.yaml')) throw new UsageError(`${inv.file}: ssh.identityFile: cannot read /nosuch/id_ed25519: no such file`);
    };
    const r = await run(['-i', 'other.yaml', 'sites/site-a/rotate-certs.yaml', '-o', 'json'], 0, prepare);
    expect(r.err).toBe(`rotate-certs: cluster other not checked: ${join(dir, 'other.yaml')}: ssh.identityFile: cannot read /nosuch/id_ed25519: no such file\n`);
    const multi = JSON.parse(r.out) as MultiCheckReport;
    expect(multi.clusters.map((c) => [c.cluster, 'error' in c])).toEqual([
      ['other', true],
      ['site-a', false],
    ]);
    expect(r.connected.some((n) => n.startsWith('other'))).toBe(false);
    expect(r.connected.filter((n) => n.startsWith('site-a'))).toHaveLength(3);
    expect(r.code).toBe(3);
  });

  it.each([
    [['-i', 'other.yaml', 'same-name.yaml', '--clusters-dir', 'sites'], /cluster site-a is named twice \(same-name\.yaml and site-a\): check each cluster once/],
    [['-i', 'other.yaml', 'other.yaml'], /cluster other is named twice/],
    [['--clusters-dir', 'nosuch'], /cannot read --clusters-dir nosuch: no such folder/],
    [['--clusters-dir', 'other.yaml'], /--clusters-dir other.yaml is not a folder/],
    [['--clusters-dir', 'sites/logs'], /--clusters-dir sites\/logs holds no cluster folder/],
  ])('%j is a usage error (64), nothing contacted', async (args, message) => {
    const r = await run(args);
    expect(r.code).toBe(64);
    expect(r.connected).toEqual([]);
    expect(r.err).toMatch(message);
    expect(r.err.trim().split('\n')).toHaveLength(1);
  });

  it('one --inventory or --cluster keeps the single-cluster output', async () => {
    const missing = await run(['-c', 'other', '-o', 'json']);
    expect(missing.err).toMatch(/^rotate-certs: neither \S+other\/rotate-certs\.yaml nor \S+other\/other-eks-a-cluster\.yaml exists: /);
    expect(missing.code).toBe(64); // one cluster: a bad inventory stays a usage error, as before
    const single = await run(['-i', 'other.yaml', '-o', 'json']);
    expect(Object.keys(JSON.parse(single.out) as object)).toEqual(['cluster', 'checkedAt', 'warnDays', 'certificates', 'errors']);
  });
});
