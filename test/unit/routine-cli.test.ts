/**
 * `rotate --due-within` on the command line, against fake nodes: a connector whose control-plane
 * node holds one certificate (made here, expiring when the test says) and whose :6443 nothing
 * serves. What is asserted is what a person or a timer gets: the exit code, the lines printed, the
 * textfile (parsed strictly) and JSON, and which nodes were contacted. Rotations themselves are in
 * test/e2e/routine.e2e.test.ts.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CliIo } from '../../src/cli/io.js';
import { runCli } from '../../src/cli/program.js';
import type { RoutineReport } from '../../src/routine/outcome.js';
import type { Connector } from '../../src/transport/session.js';
import { parsePrometheus } from '../prometheus.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

/** A kube-apiserver certificate that ends `days` from now. */
async function apiserverCert(days: number): Promise<string> {
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=kube-apiserver',
    notBefore: new Date(Date.now() - 300 * DAY),
    notAfter: new Date(Date.now() + days * DAY),
    keys,
    signingAlgorithm: alg,
  });
  return cert.toString('pem');
}

let dir: string;
let net = 10;
/** The inventory of a stacked cluster on loopback addresses nothing serves (a fresh /24 each). */
function inventory(cluster: string, folder = dir): string {
  net++;
  const file = join(folder, `${cluster}.yaml`);
  writeFileSync(file, [`cluster: ${cluster}`, 'ssh: { user: capv }', 'os: ubuntu', `controlPlane: [{ name: ${cluster}-cp-1, host: 127.78.${net}.21 }]`, `workers: [{ name: ${cluster}-md-1, host: 127.78.${net}.31 }]`, ''].join('\n'));
  return file;
}

interface Fake {
  /** Per control-plane node name: the certificate its apiserver.crt holds. */
  certs: Record<string, string>;
  /** Nodes whose SSH fails. */
  down?: string[];
}

async function rotate(args: string[], fake: Fake, opts: { interactive?: boolean; cwd?: string } = {}) {
  let out = '';
  let err = '';
  const io: CliIo = { out: (t) => void (out += t), err: (t) => void (err += t), color: false, env: {}, cwd: opts.cwd ?? dir };
  const contacted: string[] = [];
  const connector: Connector = {
    connect: async (node) => {
      contacted.push(node.name);
      if (fake.down?.includes(node.name)) throw new Error(`connection refused by ${node.host}:22 (is sshd running?)`);
      return {
        node,
        exec: async (_command, o) => {
          const pem = fake.certs[node.name];
          // The check script; nothing else may run on these nodes.
          if (!o?.stdin?.includes('rc_file')) throw new Error(`unexpected command on ${node.name}`);
          return { code: 0, stdout: `${pem ? `@@file\t/etc/kubernetes/pki/apiserver.crt\n${pem.trim()}\n@@end\n` : ''}@@done\n`, stderr: '' };
        },
        close: async () => {},
      };
    },
  };
  const code = await runCli(['rotate', ...args], io, { connector, ...(opts.interactive ? { interactive: true } : {}) });
  return { code, out, err, contacted };
}

const textfileOf = (file: string) => parsePrometheus(readFileSync(file, 'utf8'));
const outcomeOf = (file: string, cluster: string) => textfileOf(file).find((s) => s.name === 'rotate_certs_run_outcome' && s.labels.cluster === cluster && s.value === 1)?.labels.outcome;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rc-routine-cli-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('rotate --due-within, one cluster', () => {
  it('nothing due: changes nothing, names the first certificate to fall due and when, exit 0; textfile and JSON say so', async () => {
    const inv = inventory('quiet');
    const r = await rotate(['-i', inv, '--due-within', '30d', '--yes', '--state-dir', 'state', '--textfile', 'run.prom', '--report-json', 'run.json'], { certs: { 'quiet-cp-1': await apiserverCert(100) } });
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const due = new Date(Date.now() + 70 * DAY).toISOString().slice(0, 10);
    expect(r.out.trim()).toMatch(new RegExp(`^quiet: nothing due: nothing expires within 30d; the first certificate to fall due is /etc/kubernetes/pki/apiserver\\.crt on quiet-cp-1 \\(expires \\S+ \\S+ UTC\\), due from ${due} \\S+ UTC$`));
    expect(outcomeOf(join(dir, 'run.prom'), 'quiet')).toBe('nothing_due');
    expect(statSync(join(dir, 'run.prom')).mode & 0o777).toBe(0o644);
    const json = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as RoutineReport;
    expect(json).toMatchObject({ dueWithin: '30d', clusters: [{ cluster: 'quiet', outcome: 'nothing_due', exitCode: 0, certificatesRenewed: 0, nextExpiry: { node: 'quiet-cp-1', path: '/etc/kubernetes/pki/apiserver.crt' } }] });
  });

  it('due, but without a terminal the API must be ready: refused in one line, exit 4, the textfile says refused', async () => {
    const inv = inventory('due');
    const r = await rotate(['-i', inv, '--due-within', '30d', '--yes', '--state-dir', 'state', '--textfile', 'due.prom'], { certs: { 'due-cp-1': await apiserverCert(10) } });
    expect(r.code).toBe(4);
    expect(r.out.trim().split('\n')).toEqual([expect.stringMatching(/^due: refused, nothing changed: the API is not ready: due-cp-1: 127\.78\.\d+\.21:6443\/readyz: connection refused$/)]);
    expect(r.err).toMatch(/^due: 1 certificate due within 30d, the first \/etc\/kubernetes\/pki\/apiserver\.crt on due-cp-1 \(expires [^)]+\)$/m);
    expect(outcomeOf(join(dir, 'due.prom'), 'due')).toBe('refused');
    const next = textfileOf(join(dir, 'due.prom')).find((s) => s.name === 'rotate_certs_run_next_expiry_timestamp_seconds');
    expect(next?.value).toBeGreaterThan(Date.now() / 1000 + 9 * 86400);
    // No run started: no journal, no plan copy.
    expect(existsSync(join(dir, 'state', 'due', 'journal.jsonl'))).toBe(false);
  });

  it('a node that did not answer: unattended, refused (4); with a person at the terminal, exit 69; both change nothing', async () => {
    const inv = inventory('down');
    const fake = { certs: { 'down-cp-1': await apiserverCert(100) }, down: ['down-md-1'] };
    const unattended = await rotate(['-i', inv, '--due-within', '30d', '--yes', '--state-dir', 'state', '--textfile', 'down.prom'], fake);
    expect(unattended.code).toBe(4);
    expect(unattended.out.trim().split('\n')).toEqual([
      expect.stringMatching(/^down: refused, nothing changed: 1 node did not answer, so what is due is not known: down-md-1: connection refused by 127\.78\.\d+\.31:22 \(is sshd running\?\)$/),
    ]);
    expect(outcomeOf(join(dir, 'down.prom'), 'down')).toBe('refused');
    const attended = await rotate(['-i', inv, '--due-within', '30d', '--yes', '--state-dir', 'state', '--textfile', 'down.prom'], fake, { interactive: true });
    expect(attended.code).toBe(69);
    expect(attended.err.trim().split('\n')).toEqual([expect.stringMatching(/^rotate-certs: nothing was changed: 1 node did not answer, so what is due is not known: down-md-1: /)]);
    expect(outcomeOf(join(dir, 'down.prom'), 'down')).toBe('failed');
  });

  it('an unfinished run in the journal, or a lock held: refused before any node is contacted', async () => {
    const inv = inventory('halfway');
    const fake = { certs: { 'halfway-cp-1': await apiserverCert(10) } };
    mkdirSync(join(dir, 'state', 'halfway'), { recursive: true });
    const journal = join(dir, 'state', 'halfway', 'journal.jsonl');
    writeFileSync(
      journal,
      [
        { t: '2026-06-01T00:00:00Z', runId: '20260601T000000Z', event: 'run-start' },
        { t: '2026-06-01T00:00:09Z', runId: '20260601T000000Z', event: 'run-stopped', phase: 'control-plane', node: 'halfway-cp-1' },
      ]
        .map((e) => JSON.stringify(e))
        .join('\n') + '\n',
    );
    const r = await rotate(['-i', inv, '--due-within', '30d', '--yes', '--state-dir', 'state', '--textfile', 'halfway.prom'], fake);
    expect(r.code).toBe(4);
    expect(r.out.trim()).toBe(
      `halfway: refused, nothing changed: the last run of this cluster, 20260601T000000Z, stopped before halfway-cp-1 and did not finish: look at its report, then continue it by hand with rotate-certs rotate -i ${inv} --state-dir ${join(dir, 'state')} --resume`,
    );
    expect(r.contacted).toEqual([]);
    expect(outcomeOf(join(dir, 'halfway.prom'), 'halfway')).toBe('refused');

    // A live holder of the lock (this very process): 4 unattended, 75 at a terminal.
    rmSync(journal);
    writeFileSync(join(dir, 'state', 'halfway', 'lock'), JSON.stringify({ pid: process.pid, host: hostname(), runId: 'other', since: '2026-06-01T00:00:00Z' }));
    const locked = await rotate(['-i', inv, '--due-within', '30d', '--yes', '--state-dir', 'state'], fake);
    expect(locked.code).toBe(4);
    expect(locked.out).toMatch(/^halfway: refused, nothing changed: another rotate-certs run holds the lock for cluster halfway /m);
    expect(locked.contacted).toEqual([]);
    expect((await rotate(['-i', inv, '--due-within', '30d', '--yes', '--state-dir', 'state'], fake, { interactive: true })).code).toBe(75);
  });
});

describe('rotate --due-within, several clusters', () => {
  it('a management cluster goes first; a workload cluster whose management cluster was refused is skipped; one line each', async () => {
    const sites = join(dir, 'sites');
    // alpha (a workload of zeta) sorts first by name; zeta must still go first.
    for (const [name, spec] of [
      ['alpha', 'kind: Cluster\nmetadata: { name: alpha }\nspec: { managementCluster: { name: zeta } }\n'],
      ['zeta', 'kind: Cluster\nmetadata: { name: zeta }\nspec: { managementCluster: { name: zeta } }\n'],
      ['solo', undefined],
    ] as const) {
      mkdirSync(join(sites, name), { recursive: true });
      writeFileSync(join(sites, name, 'rotate-certs.yaml'), readFileSync(inventory(name), 'utf8'));
      if (spec) writeFileSync(join(sites, name, `${name}-eks-a-cluster.yaml`), spec);
    }
    const certs = { 'alpha-cp-1': await apiserverCert(100), 'zeta-cp-1': await apiserverCert(200), 'solo-cp-1': await apiserverCert(300) };
    const args = ['--clusters-dir', 'sites', '--due-within', '30d', '--yes', '--state-dir', 'state', '--textfile', 'sites.prom', '--report-json', 'sites.json'];
    const r = await rotate(args, { certs });
    expect(r.code).toBe(0);
    expect(r.out.trim().split('\n').map((l) => l.replace(/;.*/, ''))).toEqual(['zeta: nothing due: nothing expires within 30d', 'alpha: nothing due: nothing expires within 30d', 'solo: nothing due: nothing expires within 30d', '3 clusters: 3 nothing due']);
    expect(r.err.match(/^== cluster \S+/gm)).toEqual(['== cluster zeta', '== cluster alpha', '== cluster solo']);

    const refused = await rotate(args, { certs, down: ['zeta-md-1'] });
    expect(refused.code).toBe(4);
    expect(refused.contacted.some((n) => n.startsWith('alpha'))).toBe(false);
    expect(refused.out.trim().split('\n')).toEqual([
      expect.stringMatching(/^zeta: refused, nothing changed: 1 node did not answer/),
      "alpha: skipped: not tried: its management cluster zeta was refused, and it holds this cluster's secrets",
      expect.stringMatching(/^solo: nothing due: /),
      '3 clusters: 1 nothing due, 1 refused (zeta), 1 skipped (alpha)',
    ]);
    expect(['zeta', 'alpha', 'solo'].map((c) => outcomeOf(join(dir, 'sites.prom'), c))).toEqual(['refused', 'skipped', 'nothing_due']);
    expect((JSON.parse(readFileSync(join(dir, 'sites.json'), 'utf8')) as RoutineReport).clusters.map((c) => c.cluster)).toEqual(['zeta', 'alpha', 'solo']);
  });
});

describe('rotate --due-within: usage mistakes are one line, exit 64, nothing contacted', () => {
  it.each([
    [['--due-within', '30'], /^rotate-certs: --due-within expects a number of days or hours, such as 30d or 12h, got "30"$/],
    [['--due-within', '30d', '--dry-run'], /^rotate-certs: --due-within reads the cluster to decide what is due; --dry-run reads nothing\. Drop one of them$/],
    [['--textfile', 'x.prom', '--yes'], /^rotate-certs: --textfile is for due runs: add --due-within \(such as --due-within 30d\)$/],
    [['--due-within', '30d', '--yes', '--textfile', 'nope/x.prom'], /^rotate-certs: --textfile: the folder \S+\/nope does not exist; create it \(for a textfile: node_exporter's --collector\.textfile\.directory\)$/],
    [['--due-within', '30d'], /^rotate-certs: refusing to change the cluster without confirmation: pass --yes \(no terminal to ask on\), or --dry-run to see the commands$/],
  ])('%j', async (args, message) => {
    const inv = inventory('usage');
    const r = await rotate(['-i', inv, ...args], { certs: {} });
    expect(r.code).toBe(64);
    expect(r.err.trim().split('\n')).toEqual([expect.stringMatching(message)]);
    expect(r.contacted).toEqual([]);
  });

  it('several clusters need --due-within', async () => {
    const r = await rotate(['-c', 'a', '-c', 'b', '--yes'], { certs: {} });
    expect(r.err).toBe('rotate-certs: --cluster given more than once is for due runs: add --due-within (such as --due-within 30d)\n');
    expect(r.code).toBe(64);
  });
});
