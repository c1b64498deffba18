/**
 * `--cluster NAME` means one thing in every command: ./NAME/rotate-certs.yaml when it exists, else
 * the inventory built from the EKS Anywhere folder ./NAME/ (its Machines listed by a local stand-in
 * for the management cluster's API). And `rotate-certs inventory`, which builds, prints and writes it.
 * Work folders are copies of test/fixtures/eksa; no node is ever contacted (the nodes' addresses
 * are TEST-NET ones nothing answers on, and a connector that fails the test guards every command).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { clusterInventorySource } from '../../src/eksa/cluster-inventory.js';
import type { CliIo } from '../../src/cli/io.js';
import { runCli } from '../../src/cli/program.js';
import { loadInventory } from '../../src/inventory/load.js';
import type { Connector } from '../../src/transport/session.js';
import { UsageError } from '../../src/util/errors.js';
import { json, startLocalApi, type LocalApi } from './local-api.js';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'eksa', 'ubuntu-external-etcd', 'prod');

const machine = (name: string, labels: Record<string, string>, address: string) => ({
  apiVersion: 'cluster.x-k8s.io/v1beta2',
  kind: 'Machine',
  metadata: { name, namespace: 'eksa-system', labels: { 'cluster.x-k8s.io/cluster-name': 'prod', ...labels } },
  status: { nodeRef: { name }, addresses: [{ type: 'ExternalIP', address }] },
});
/** The cluster the fixture's spec asks for: 3 etcd, 2 control-plane and 2 worker Machines. */
const MACHINES = [
  ...[1, 2, 3].map((i) => machine(`prod-etcd-${i}`, { 'cluster.x-k8s.io/etcd-cluster': 'prod-etcd' }, `192.0.2.1${i}`)),
  ...[1, 2].map((i) => machine(`prod-cp-${i}`, { 'cluster.x-k8s.io/control-plane': '' }, `192.0.2.2${i}`)),
  ...[1, 2].map((i) => machine(`prod-md-${i}`, { 'cluster.x-k8s.io/deployment-name': 'prod-md-0' }, `192.0.2.3${i}`)),
];

let api: LocalApi;
let apiUp = true;
let work: string;
const prod = (f = '') => join(work, 'prod', f);

/** The CLI in-process in the work folder; any node contact fails the command (and the test). */
async function run(args: string[]) {
  let out = '';
  let err = '';
  const io: CliIo = { out: (t) => void (out += t), err: (t) => void (err += t), color: false, env: {}, cwd: work };
  let contacted = 0;
  const connector: Connector = {
    prepare: async () => undefined,
    connect: async (node) => {
      contacted++;
      throw new Error(`${node.name} contacted`);
    },
  };
  const asked = api.seen.length;
  const code = await runCli(args, io, { connector });
  return { code, out, err, contacted, apiCalls: api.seen.length - asked };
}

/** A fresh copy of the EKS Anywhere folder, its kubeconfig pointing at the local API. */
function freshFolder(): void {
  rmSync(prod(), { recursive: true, force: true });
  cpSync(FIXTURE, prod(), { recursive: true });
  writeFileSync(prod('prod-eks-a-cluster.kubeconfig'), readFileSync(api.adminKubeconfig()), { mode: 0o600 });
}

beforeAll(async () => {
  api = await startLocalApi((req) => (apiUp && req.path.includes('/machines') ? json(200, { kind: 'MachineList', items: MACHINES }) : json(503, { kind: 'Status', message: 'the API is down' })));
  work = mkdtempSync(join(tmpdir(), 'rc-cluster-inv-'));
});
afterAll(async () => {
  await api.close();
  rmSync(work, { recursive: true, force: true });
});
beforeEach(() => {
  apiUp = true;
  freshFolder();
});

describe('--cluster NAME: the saved inventory, else the EKS Anywhere folder, else one line naming both', () => {
  it('the resolution order', () => {
    expect(clusterInventorySource('prod', work)).toEqual({ kind: 'eksa', folder: prod(), saved: prod('rotate-certs.yaml') });
    writeFileSync(prod('rotate-certs.yaml'), 'cluster: prod\n');
    expect(clusterInventorySource('prod', work)).toEqual({ kind: 'saved', file: prod('rotate-certs.yaml') });
    // The saved inventory alone is enough; the spec is not needed.
    rmSync(prod('prod-eks-a-cluster.yaml'));
    expect(clusterInventorySource('prod', work)).toEqual({ kind: 'saved', file: prod('rotate-certs.yaml') });
    rmSync(prod('rotate-certs.yaml'));
    expect(() => clusterInventorySource('prod', work)).toThrow(UsageError);
    expect(() => clusterInventorySource('prod', work)).toThrow(`neither ${prod('rotate-certs.yaml')} nor ${prod('prod-eks-a-cluster.yaml')} exists: run in the folder where you ran eksctl anywhere create cluster`);
    expect(() => clusterInventorySource('Prod;id', work)).toThrow('--cluster "Prod;id" is not a cluster name (a DNS label)');
  });

  it.each([
    ['check --dry-run', ['check', '--cluster', 'prod', '--dry-run']],
    ['plan --dry-run', ['plan', '--cluster', 'prod', '--dry-run']],
    ['rotate --dry-run', ['rotate', '--cluster', 'prod', '--dry-run']],
  ])('%s straight after eksctl anywhere create cluster: built from the folder, contacting no node, saving nothing', async (_, args) => {
    const r = await run(args);
    expect(r.code, r.err).toBe(0);
    expect(r.contacted).toBe(0);
    expect(r.apiCalls).toBeGreaterThan(0);
    // The nodes the Machines name, at their addresses.
    for (const m of MACHINES) expect(r.out).toContain(m.metadata.name);
    expect(r.out).toContain('192.0.2.21');
    expect(r.err).toMatch(/^Built the inventory of prod from \S+\/prod\/ \(7 machines listed through \S+prod-eks-a-cluster\.kubeconfig\); not saved: rotate-certs inventory --cluster prod --write saves it$/m);
    expect(existsSync(prod('rotate-certs.yaml'))).toBe(false);
  });

  it('a saved ./NAME/rotate-certs.yaml wins: the API is not asked, its nodes are used', async () => {
    writeFileSync(prod('rotate-certs.yaml'), 'cluster: prod\nssh: { user: capv }\nos: ubuntu\ncontrolPlane: [{ name: saved-cp-1, host: 198.51.100.21 }]\n');
    for (const args of [['check', '--cluster', 'prod', '--dry-run'], ['plan', '--cluster', 'prod', '--dry-run'], ['rotate', '--cluster', 'prod', '--dry-run']]) {
      const r = await run(args);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toContain('saved-cp-1');
      expect(r.out).not.toContain('prod-cp-1');
      expect(r.apiCalls).toBe(0);
    }
  });

  it('several clusters in check (--cluster a b, --clusters-dir) follow the same rule per cluster', async () => {
    cpSync(prod(), join(work, 'sites', 'prod'), { recursive: true });
    cpSync(prod(), join(work, 'sites', 'saved'), { recursive: true });
    writeFileSync(join(work, 'sites', 'saved', 'rotate-certs.yaml'), 'cluster: saved\nssh: { user: capv }\nos: ubuntu\ncontrolPlane: [{ name: saved-cp-1, host: 198.51.100.21 }]\n');
    try {
      const dir = await run(['check', '--clusters-dir', 'sites', '--dry-run']);
      expect(dir.code, dir.err).toBe(0);
      expect(dir.out.match(/^# ===== cluster \S+/gm)).toEqual(['# ===== cluster prod', '# ===== cluster saved']);
      expect(dir.out).toContain('## prod-md-2 (worker, ubuntu)');
      expect(dir.out).toContain('## saved-cp-1 (control-plane, ubuntu)');
      // A name with no folder is not checked; the built cluster still is.
      const names = await run(['check', '--cluster', 'prod', 'nosuch', '--dry-run']);
      expect(names.code).toBe(64);
      expect(names.out).toContain('## prod-etcd-3 (etcd, ubuntu)');
      expect(names.err).toMatch(/^rotate-certs: cluster nosuch not checked: neither \S+\/nosuch\/rotate-certs\.yaml nor \S+\/nosuch\/nosuch-eks-a-cluster\.yaml exists/m);
    } finally {
      rmSync(join(work, 'sites'), { recursive: true, force: true });
    }
  });

  it('the API down and no terminal: one line saying what gives the nodes (64), nothing contacted', async () => {
    apiUp = false;
    for (const args of [['check', '--cluster', 'prod'], ['plan', '--cluster', 'prod', '--dry-run'], ['inventory', '--cluster', 'prod', '--write']]) {
      const r = await run(args);
      expect(r.code, args.join(' ')).toBe(64);
      expect(r.err.split('\n')).toEqual([expect.any(String), '']);
      expect(r.err).toContain(`rotate-certs: cannot list the nodes of prod: the management cluster did not list the Machines of prod through ${prod('prod-eks-a-cluster.kubeconfig')} (GET /apis/`);
      expect(r.err).toContain(
        `503 the API is down); give --management-kubeconfig FILE (a kubeconfig whose API lists them), run rotate-certs inventory --cluster prod --write on a terminal to type their addresses, or write ${prod('rotate-certs.yaml')} by hand (see docs/inventory.md)\n`,
      );
      expect(r.contacted).toBe(0);
      expect(existsSync(prod('rotate-certs.yaml'))).toBe(false);
    }
  });
});

describe('rotate-certs inventory --cluster NAME', () => {
  it('prints the inventory as it would be saved, writes nothing; the YAML loads with every Machine', async () => {
    const r = await run(['inventory', '--cluster', 'prod']);
    expect(r.code, r.err).toBe(0);
    expect(r.contacted).toBe(0);
    expect(existsSync(prod('rotate-certs.yaml'))).toBe(false);
    expect(r.err).toMatch(/not written: add --write to save it as \S+\/prod\/rotate-certs\.yaml$/m);
    const doc = parse(r.out) as { cluster: string; ssh: { identityFile: string; user: string } };
    expect(doc).toMatchObject({ cluster: 'prod', ssh: { identityFile: 'eks-a-id_rsa', user: 'capv' } });
    expect(r.out).toMatch(/^# Host keys are checked strictly against ~\/\.ssh\/known_hosts: record them with rotate-certs trust --cluster prod\.$/m);
  });

  it('--write saves ./NAME/rotate-certs.yaml, which --cluster then reads; a second --write is refused, --force replaces it', async () => {
    const r = await run(['inventory', '--cluster', 'prod', '--write']);
    expect(r.code, r.err).toBe(0);
    expect(readFileSync(prod('rotate-certs.yaml'), 'utf8')).toBe(r.out);
    expect(r.err).toMatch(/^Wrote \S+\/prod\/rotate-certs\.yaml \(7 machines listed through \S+\)\. Next, check and record the nodes' host keys: rotate-certs trust --cluster prod$/m);
    const inv = loadInventory(prod('rotate-certs.yaml'));
    expect(inv.nodes.map((n) => [n.name, n.host, n.role])).toEqual(MACHINES.map((m, i) => [m.metadata.name, m.status.addresses[0]!.address, i < 3 ? 'etcd' : i < 5 ? 'control-plane' : 'worker']));
    expect(statSync(prod('rotate-certs.yaml')).mode & 0o777).toBe(0o644);

    writeFileSync(prod('rotate-certs.yaml'), '# edited by hand\n');
    const again = await run(['inventory', '--cluster', 'prod', '--write']);
    expect(again.code).toBe(64);
    expect(again.err).toBe(`rotate-certs: ${prod('rotate-certs.yaml')} already exists and --write does not replace it: add --force to replace it, or leave out --write to print the inventory it would be\n`);
    expect(again.apiCalls).toBe(0);
    expect(readFileSync(prod('rotate-certs.yaml'), 'utf8')).toBe('# edited by hand\n');

    const forced = await run(['inventory', '--cluster', 'prod', '--write', '--force']);
    expect(forced.code, forced.err).toBe(0);
    expect(readFileSync(prod('rotate-certs.yaml'), 'utf8')).toBe(forced.out);
  });

  it('usage mistakes: one line, 64, the API not asked', async () => {
    for (const [args, message] of [
      [['inventory', '--cluster', 'nosuch'], `rotate-certs: no EKS Anywhere folder ./nosuch/: ${join(work, 'nosuch', 'nosuch-eks-a-cluster.yaml')} does not exist: run in the folder where you ran eksctl anywhere create cluster\n`],
      [['inventory', '--cluster', 'prod', '--force'], 'rotate-certs: --force replaces the file --write writes: give both, or neither to only print the inventory\n'],
      [['inventory', '--cluster', 'Prod'], 'rotate-certs: --cluster "Prod" is not a cluster name (a DNS label)\n'],
    ] as const) {
      const r = await run([...args]);
      expect(r.err, args.join(' ')).toBe(message);
      expect(r.code).toBe(64);
      expect(r.apiCalls).toBe(0);
    }
    const none = await run(['inventory']);
    expect(none.code).toBe(64);
    expect(none.err).toMatch(/required option '-c, --cluster <name>' not specified/);
  });
});
