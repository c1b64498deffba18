/**
 * `check` of two clusters in one run, against two emulated clusters: one with valid certificates,
 * one whose leaf certificates expire in two days. Checked in the three formats; what each cluster's
 * part says is compared with what its nodes hold.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { inspectCertificate, pemCertificates } from '../../src/certs/inspect.js';
import type { CheckReport, ClusterNotChecked, MultiCheckReport } from '../../src/check/run.js';
import type { CliIo } from '../../src/cli/io.js';
import { runCli } from '../../src/cli/program.js';
import { startLab, type Lab } from '../lab/lab.js';
import { parsePrometheus } from '../prometheus.js';

async function check(args: string[], cwd: string) {
  let out = '';
  let err = '';
  const io: CliIo = { out: (t) => void (out += t), err: (t) => void (err += t), color: false, env: process.env, cwd };
  const code = await runCli(['check', ...args], io);
  return { code, out, err };
}

/** The lab's inventory as cluster NAME, saved as DIR/NAME/rotate-certs.yaml (as --cluster NAME reads it). */
function saveAs(lab: Lab, dir: string, name: string): void {
  const inv = parse(readFileSync(lab.inventoryPath, 'utf8')) as Record<string, any>;
  inv.cluster = name;
  inv.ssh.identityFile = lab.identityFile;
  inv.ssh.knownHostsFile = lab.knownHostsFile;
  mkdirSync(join(dir, name), { recursive: true });
  writeFileSync(join(dir, name, 'rotate-certs.yaml'), stringify(inv));
}

describe('check of two clusters in one run', () => {
  let valid: Lab;
  let expiring: Lab;
  let sites: string;
  beforeAll(async () => {
    valid = await startLab({ etcd: 1, controlPlane: 1, workers: 1, certs: 'valid' });
    expiring = await startLab({ etcd: 1, controlPlane: 1, workers: 1, certs: 'expiring' });
    sites = join(valid.dir, 'sites');
    saveAs(valid, sites, 'site-a');
    saveAs(expiring, sites, 'site-b');
  });
  afterAll(async () => {
    await Promise.all([valid?.down(), expiring?.down()]);
  });

  const labOf = (cluster: string) => (cluster === 'site-a' ? valid : expiring);

  it('JSON: one document, each cluster as its own check reports it; exit is the highest (1)', async () => {
    const r = await check(['--clusters-dir', sites, '-o', 'json'], valid.dir);
    expect(r.err).toBe('');
    const multi = JSON.parse(r.out) as MultiCheckReport;
    expect(multi.clusters.map((c) => c.cluster)).toEqual(['site-a', 'site-b']);
    for (const c of multi.clusters as CheckReport[]) {
      const lab = labOf(c.cluster);
      expect(c.errors).toEqual([]);
      // Every node of that lab, and only its nodes; files match what the node holds.
      expect([...new Set(c.certificates.map((x) => x.node))].sort()).toEqual(lab.nodes.map((n) => n.name).sort());
      expect(new Set(c.certificates.map((x) => x.source))).toEqual(new Set(['file', 'kubeconfig', 'endpoint']));
      // FILE[n]: the n-th certificate of a bundle (the kubelet's kubelet.crt holds its own CA).
      for (const x of c.certificates.filter((y) => y.source === 'file')) {
        const [, file, index] = /^(.*?)(?:\[(\d+)\])?$/.exec(x.path!)!;
        const onNode = inspectCertificate(pemCertificates((await lab.node(x.node).readFile(file!)).toString('utf8'))[Number(index ?? 0)]!);
        expect({ path: x.path, serial: x.serial, notAfter: x.notAfter }).toEqual({ path: x.path, serial: onNode.serial, notAfter: onNode.notAfter.toISOString() });
      }
      for (const x of c.certificates) expect(x.status, `${c.cluster} ${x.node} ${x.path ?? x.endpoint}`).toBe(c.cluster === 'site-b' && x.kind !== 'ca' ? 'expiring' : 'ok');
    }
    // The two labs' nodes share names (lab-cp-1...): the reports keep them apart by cluster.
    const serialOf = (c: CheckReport) => c.certificates.find((x) => x.node === 'lab-cp-1' && x.path === '/etc/kubernetes/pki/apiserver.crt')?.serial;
    expect(serialOf(multi.clusters[0] as CheckReport)).not.toBe(serialOf(multi.clusters[1] as CheckReport));
    expect(r.code).toBe(1);
  });

  it('Prometheus: one text, every sample labelled with its cluster, one sample per certificate', async () => {
    const r = await check(['-c', 'site-a', 'site-b', '-o', 'prometheus'], sites);
    expect(r.code).toBe(1);
    const samples = parsePrometheus(r.out);
    for (const s of samples) expect(['site-a', 'site-b'], `${s.name} ${JSON.stringify(s.labels)}`).toContain(s.labels.cluster);
    const json = JSON.parse((await check(['-c', 'site-a', 'site-b', '-o', 'json'], sites)).out) as MultiCheckReport;
    for (const c of json.clusters as CheckReport[]) {
      const notAfter = samples.filter((s) => s.name === 'x509_cert_not_after' && s.labels.cluster === c.cluster);
      expect(notAfter.map((s) => `${s.labels.node} ${s.labels.path} ${s.labels.serial_number} ${s.value}`).sort()).toEqual(
        c.certificates.map((x) => `${x.node} ${x.path ?? x.endpoint} ${x.serial} ${Math.floor(Date.parse(x.notAfter) / 1000)}`).sort(),
      );
      expect(samples.find((s) => s.name === 'x509_read_errors' && s.labels.cluster === c.cluster)?.value).toBe(0);
    }
  });

  it('table: one table per cluster and the outcome of each; a cluster without an inventory is reported, exit 3', async () => {
    // eksctl's folder of a third cluster, with no rotate-certs.yaml saved yet.
    mkdirSync(join(sites, 'site-c'), { recursive: true });
    writeFileSync(join(sites, 'site-c', 'site-c-eks-a-cluster.yaml'), 'kind: Cluster\n');
    onTestFinished(() => rmSync(join(sites, 'site-c'), { recursive: true, force: true }));
    const r = await check(['--clusters-dir', 'sites'], valid.dir);
    expect(r.out).toMatch(/^Cluster site-a: \d+ certificates checked/);
    expect(r.out).toMatch(/\nCluster site-b: \d+ certificates checked/);
    expect(r.out).toMatch(/\nexpiring +\d +\d{4}-\d\d-\d\d +\/etc\/kubernetes\/pki\/apiserver\.crt/);
    // Without rotate-certs.yaml the folder is built from its EKS Anywhere spec: this stub names no cluster.
    expect(r.out).toContain(`\nCluster site-c: not checked: ${join(sites, 'site-c', 'site-c-eks-a-cluster.yaml')}:1: metadata.name: no Cluster named "site-c"`);
    expect(r.out.endsWith('\n3 clusters: 1 ok, 1 expiring (site-b), 1 not fully checked (site-c)\n')).toBe(true);
    expect(r.code).toBe(3);

    // JSON and Prometheus say it on stderr and in the output, and still report the other two.
    const j = await check(['--clusters-dir', 'sites', '-o', 'json', '--cis'], valid.dir);
    expect(j.err).toMatch(/^rotate-certs: cluster site-c not checked: \S+site-c-eks-a-cluster\.yaml:1: metadata\.name: /);
    const multi = JSON.parse(j.out) as MultiCheckReport;
    expect((multi.clusters[2] as ClusterNotChecked).error).toMatch(/site-c-eks-a-cluster\.yaml:1: metadata\.name: /);
    for (const c of multi.clusters.slice(0, 2) as CheckReport[]) {
      expect(c.errors).toEqual([]);
      expect(c.cis).toEqual([]); // the lab's files keep the CIS posture
    }
    expect(j.code).toBe(3);
  });
});
