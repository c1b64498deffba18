import { afterAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseInventory as parseSpec } from '../../src/inventory/load.js';
import { requireKnownOs } from '../../src/profiles/detect-os.js';
import { compilePlan, newRunId, planDigest } from '../../src/plan/compile.js';
import { readPlan, serializePlan, writePlan } from '../../src/plan/file.js';
import { renderPlanText } from '../../src/rotation/plan-text.js';
import { PROFILES_DIR, ProfileSet } from '../../src/profiles/profile.js';
import { loadRotationRunbooks, parsePhaseRunbook, RUNBOOKS_DIR } from '../../src/runbook/runbook.js';
import { renderDisplay, renderScript, templateNames } from '../../src/runbook/template.js';
import { LoadError, UsageError } from '../../src/util/errors.js';
import { Journal, progressOf } from '../../src/state/journal.js';
import { kubeletKubeconfig } from '../../src/apply/kubelet.js';
import { kubeletDueFrom } from '../../src/plan/kubelet-due.js';
import { nodeNamesFrom } from '../../src/plan/node-names.js';
import { etcdExpiredFrom, unexplainedEtcdTrouble } from '../../src/plan/etcd-recovery.js';

const dir = mkdtempSync(join(tmpdir(), 'rc-plan-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const invText = `cluster: lab
ssh: { user: capv, identityFile: id }
etcd:
  - { name: lab-etcd-1, host: 10.0.0.11 }
  - { name: lab-etcd-2, host: 10.0.0.12 }
controlPlane:
  - { name: lab-cp-1, host: 10.0.0.21 }
  - { name: lab-cp-2, host: 10.0.0.22 }
workers:
  - { name: lab-md-1, host: 10.0.0.31, os: bottlerocket }
`;
const parseInventory = (text: string, file: string) => requireKnownOs(parseSpec(text, file), 'the test names every OS');
const inv = parseInventory(invText, join(dir, 'inv.yaml'));
const compile = (scope = {}, inventory = inv) =>
  compilePlan({ inventory, inventoryDigest: 'x', runbooks: loadRotationRunbooks(), profiles: new ProfileSet(), runId: '20261126T000000Z', createdAt: '2026-11-26T00:00:00.000Z', scope });

describe('templates', () => {
  it('quotes variables and redacts secrets everywhere but the script sent', () => {
    const t = 'cp {{src}} {{dst}}\ncat <<EOF\n{{secret:key}}\nEOF';
    expect(templateNames(t)).toEqual({ vars: ['src', 'dst'], secrets: ['key'] });
    const vars = { src: '/etc/x', dst: "/tmp/it's here" };
    expect(renderDisplay(t, vars)).toBe("cp /etc/x '/tmp/it'\\''s here'\ncat <<EOF\n<redacted:key>\nEOF");
    expect(renderScript(t, vars, { key: 'SECRET' })).toContain('SECRET');
    expect(() => renderScript(t, vars, {})).toThrow(/secret key is not available/);
    expect(() => renderDisplay('{{nope}}', {})).toThrow(/unknown variable \{\{nope\}\}/);
  });
});

describe('plan compile', () => {
  it('orders phases and nodes as the runbook says: etcd one by one, then the pair, the control plane, the management cluster', () => {
    const plan = compile();
    expect(plan.phases.map((p) => [p.phase, p.serial, p.nodes.map((n) => n.name)])).toEqual([
      ['etcd', true, ['lab-etcd-1', 'lab-etcd-2']],
      ['etcd-client-pair', false, ['lab-etcd-1']],
      ['control-plane', true, ['lab-cp-1', 'lab-cp-2']],
      ['management', false, ['lab-cp-1']],
      // Compiled without reading the nodes (as --dry-run): every kubelet, decided at run time.
      ['kubelet', true, ['lab-cp-1', 'lab-cp-2', 'lab-md-1']],
    ]);
    const etcd1 = plan.phases[0]!.nodes[0]!;
    expect(etcd1.steps.map((s) => s.id)).toEqual(['snapshot', 'backup', 'clear', 'renew', 'verify-certs', 'stale-etcd', 'health', 'serving']);
    expect(etcd1.backups).toEqual(['/etc/etcd/pki.rotate-certs-20261126T000000Z']);
    // The backup precedes the only step that deletes anything, and clear refuses without it.
    const clear = etcd1.steps.find((s) => s.id === 'clear')!;
    expect(clear.command).toContain('[ -d "$backup" ] || { echo "no backup at $backup: refusing to delete anything');
    expect(etcd1.steps.find((s) => s.id === 'renew')!.command).toContain('etcdadm join phase certificates http://eks-a-etcd-dumb-url');
  });

  it('never puts secret text in a plan', () => {
    const plan = compile();
    const text = serializePlan(plan);
    expect(text).toContain('<redacted:etcdClientKey>');
    expect(text).not.toMatch(/PRIVATE KEY-----\n[A-Za-z0-9+/]/);
  });

  it('stacked etcd: no etcd phases, no etcd client pair step', () => {
    const stacked = parseInventory(invText.replace(/etcd:\n(  - .*\n)+/, ''), join(dir, 'inv.yaml'));
    const plan = compile({}, stacked);
    expect(plan.phases.map((p) => p.phase)).toEqual(['control-plane', 'management', 'kubelet']);
    expect(plan.phases[0]!.nodes[0]!.steps.map((s) => s.id)).not.toContain('etcd-client');
  });

  it('scopes: --only and --nodes', () => {
    expect(compile({ only: 'etcd' }).phases.map((p) => p.phase)).toEqual(['etcd', 'etcd-client-pair', 'management']);
    expect(compile({ only: 'control-plane' }).phases.map((p) => p.phase)).toEqual(['etcd-client-pair', 'control-plane', 'management']);
    const one = compile({ nodes: ['lab-cp-2'] });
    expect(one.phases.find((p) => p.phase === 'control-plane')!.nodes.map((n) => n.name)).toEqual(['lab-cp-2']);
    expect(one.phases.find((p) => p.phase === 'etcd')).toBeUndefined();
    expect(() => compile({ nodes: ['nope'] })).toThrow(UsageError);
  });

  it('an OS without the spelling of a step is refused at compile, naming the profile', () => {
    const pdir = join(dir, 'profiles-missing');
    mkdirSync(pdir, { recursive: true });
    for (const f of readdirSync(PROFILES_DIR)) copyFileSync(join(PROFILES_DIR, f), join(pdir, f));
    const brFile = join(pdir, 'bottlerocket.yaml');
    writeFileSync(brFile, readFileSync(brFile, 'utf8').replace(/\n  etcdadmCertificates: \|\n(    .*\n)+/, '\n'));
    const br = parseInventory(invText.replace('{ name: lab-etcd-2, host: 10.0.0.12 }', '{ name: lab-etcd-2, host: 10.0.0.12, os: bottlerocket }'), join(dir, 'inv.yaml'));
    expect(() => compilePlan({ inventory: br, inventoryDigest: 'x', runbooks: loadRotationRunbooks(), profiles: new ProfileSet(pdir), runId: 'r', createdAt: 'c', scope: {} })).toThrow(
      /bottlerocket\.yaml has no command etcdadmCertificates, so lab-etcd-2 \(bottlerocket\) cannot run this step/,
    );
  });

  it('a mixed cluster gets each node in its own OS spelling, with no Ubuntu command on a Bottlerocket node', () => {
    const mixed = parseInventory(
      invText.replace('{ name: lab-etcd-2, host: 10.0.0.12 }', '{ name: lab-etcd-2, host: 10.0.0.12, os: bottlerocket, ssh: { user: ec2-user } }').replace('{ name: lab-cp-2, host: 10.0.0.22 }', '{ name: lab-cp-2, host: 10.0.0.22, os: bottlerocket }'),
      join(dir, 'inv.yaml'),
    );
    const plan = compile({}, mixed);
    const node = (phase: string, name: string) => plan.phases.find((p) => p.phase === phase)!.nodes.find((n) => n.name === name)!;
    const cmd = (n: ReturnType<typeof node>, id: string) => n.steps.find((s) => s.id === id)!.command!;
    const etcd2 = node('etcd', 'lab-etcd-2');
    expect(etcd2.rootShell).toBe('sudo sheltie');
    expect(etcd2.backups).toEqual(['/var/lib/etcd/pki.rotate-certs-20261126T000000Z']);
    expect(cmd(etcd2, 'renew')).toContain('--mount type=bind,src=/var/lib/etcd/pki,dst=/etc/etcd/pki,options=rbind:rw');
    expect(cmd(etcd2, 'renew')).toMatch(/"\$IMAGE" "rotate-certs-renew-\$\$" \/opt\/bin\/etcdadm join phase certificates http:\/\/eks-a-etcd-dumb-url --init-system kubelet <\/dev\/null/);
    // The include was inlined: the image comes from apiclient and is pulled first.
    expect(cmd(etcd2, 'renew')).toContain(`apiclient exec admin jq -r '.settings["host-containers"]["kubeadm-bootstrap"].source // empty'`);
    expect(cmd(etcd2, 'renew')).not.toContain('{{');
    expect(cmd(etcd2, 'health')).toContain('ctr -n k8s.io t exec');
    expect(cmd(etcd2, 'stale-etcd')).toContain('ctr -n k8s.io c rm');
    const cp2 = node('control-plane', 'lab-cp-2');
    // External etcd: by name, one ctr run each, never `renew all` (it falls back and fails on Ubuntu).
    expect(cmd(cp2, 'renew')).toContain('names="admin.conf apiserver apiserver-kubelet-client controller-manager.conf front-proxy-client scheduler.conf"');
    expect(cmd(cp2, 'renew')).toContain('/opt/bin/kubeadm certs renew "$n" </dev/null');
    expect(cp2.steps.some((s) => s.id === 'renew-all')).toBe(false);
    expect(cmd(cp2, 'stop-pods')).toContain('apiclient set "settings.kubernetes.static-pods.$p.enabled=false"');
    // The etcd client pair goes where the kube-apiserver's manifest (its setting) says.
    expect(cmd(cp2, 'etcd-client')).toContain(`.settings.kubernetes["static-pods"]["kube-apiserver"].manifest`);
    expect(cmd(cp2, 'etcd-client')).toContain('--etcd-keyfile=');
    expect(cp2.steps.find((s) => s.id === 'etcd-client-check')!.commands!.etcdClientPairFiles).toContain('sha256sum');
    expect(cp2.vars.kubePki).toBe('/var/lib/kubeadm/pki');
    // Every ctr that runs something has its standard input closed: sheltie reads the script from it.
    for (const n of [etcd2, cp2]) {
      for (const s of [...n.steps, ...(n.restore?.steps ?? [])]) {
        for (const text of [s.command ?? '', ...Object.values(s.commands ?? {})]) {
          for (const line of text.split('\n')) if (/(?:^|\$\(|\||;|&&)\s*ctr\b.*\b(run|t exec|t ls|c ls|c info)\b/.test(line) && !line.trim().endsWith('\\')) expect(line).toContain('</dev/null');
          expect(text).not.toMatch(/^\s*(sudo |kubeadm |etcdadm |etcdctl |crictl )/m);
        }
      }
    }
    expect(cmd(node('etcd', 'lab-etcd-1'), 'renew')).toContain('etcdadm join phase certificates');
    expect(node('etcd', 'lab-etcd-1').rootShell).toBe('sudo -n env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin bash -s');
  });

  it('the text plan lists every command per node in order', () => {
    const text = renderPlanText(compile(), { full: true });
    expect(text.indexOf('lab-etcd-1 (etcd')).toBeLessThan(text.indexOf('lab-etcd-2 (etcd'));
    expect(text.indexOf('lab-etcd-2 (etcd')).toBeLessThan(text.indexOf('lab-cp-1 (control-plane'));
    expect(text).toContain("sudo -n env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin bash -s <<'ROTATE_CERTS'");
    expect(text).toContain('kubeadm certs renew all');
    expect(newRunId(new Date('2026-11-26T20:01:02.345Z'))).toBe('20261126T200102Z');
  });
});

describe('plan files', () => {
  it('round-trip, and refuse a plan edited by hand or not a plan at all', () => {
    const plan = compile();
    const file = join(dir, 'plan.yaml');
    writePlan(file, plan);
    expect(readPlan(file).digest).toBe(planDigest(plan));
    writeFileSync(file, readFileSync(file, 'utf8').replace('kubeadm certs renew all', 'rm -rf /'));
    expect(() => readPlan(file)).toThrow(/changed after it was made \(digest mismatch\)/);
    writeFileSync(file, 'hello: world\n');
    expect(() => readPlan(file)).toThrow(/not a rotate-certs plan/);
    expect(() => readPlan(join(dir, 'missing.yaml'))).toThrow(/no such file/);
  });
});

describe('runbook validation', () => {
  const base = readFileSync(join(process.cwd(), 'runbooks', 'etcd.yaml'), 'utf8');
  const err = (text: string) => {
    try {
      parsePhaseRunbook(text, 'etcd.yaml');
    } catch (e) {
      return e as LoadError;
    }
    throw new Error('expected an error');
  };
  it('names the file, line and field', () => {
    expect(err(base.replace('    run: etcdadmCertificates', '    run: etcdadmCertificates\n    action: endpoint-down')).message).toMatch(/^etcd\.yaml:\d+: steps\[3\]: a step needs exactly one of run/);
    expect(err(base.replace('action: endpoint-serves', 'action: sleep-20')).message).toMatch(/steps\[7\]\.action: expected one of snapshot-certs/);
    expect(err(base.replace('    title: Back up the etcd PKI folder', '    title: Back up the etcd PKI folder\n    retries: 3')).message).toMatch(/steps\[1\]\.retries: unknown field/);
    expect(err(base.replace('  after: backup', '  after: backupp')).message).toMatch(/restore\.after: no step with id backupp/);
    expect(err(base.replace('  - id: clear', '  - id: backup')).message).toMatch(/step id backup is used twice/);
    expect(err(base.replace('    run: etcdadmCertificates', '    run: etcdadmCertificates\n    deferWhileEtcdExpired: true')).message).toMatch(
      /^etcd\.yaml:\d+: steps\[3\]\.deferWhileEtcdExpired: only a read-only step \(a gate\) can be deferred/,
    );
  });
});

describe('journal', () => {
  it('locks one run per cluster, takes over a dead holder, and reads progress', () => {
    const j = new Journal(join(dir, 'state'), 'lab');
    j.lock('r1');
    const other = new Journal(join(dir, 'state'), 'lab');
    expect(() => other.lock('r2')).toThrow(/another rotate-certs run holds the lock for cluster lab \(pid \d+/);
    j.unlock();
    other.lock('r2');
    other.unlock();
    writeFileSync(join(dir, 'state', 'lab', 'lock'), JSON.stringify({ pid: 999999, host: hostname(), runId: 'old', since: 'x' }));
    j.lock('r3');
    j.unlock();

    j.append({ runId: 'r3', event: 'step-start', phase: 'etcd', node: 'n1', step: 'backup' });
    j.append({ runId: 'r3', event: 'step-done', phase: 'etcd', node: 'n1', step: 'backup' });
    j.append({ runId: 'r3', event: 'step-start', phase: 'etcd', node: 'n1', step: 'clear' });
    const p = progressOf(j.entries('r3'), 'etcd', 'n1');
    expect([...p.done]).toEqual(['backup']);
    expect(p.cutOff).toBe('clear');
    expect(j.runs()).toEqual(['r3']);
  });
});

describe('kubelet steps', () => {
  const cert = (node: string, path: string, status: 'ok' | 'expiring' | 'expired', source: 'file' | 'kubeconfig' = 'file') => ({ node, path, status, source });
  it('go to the nodes whose kubelet client or serving certificate is due, and only those', () => {
    const due = kubeletDueFrom({
      certificates: [
        cert('lab-cp-1', '/var/lib/kubelet/pki/kubelet-client-current.pem', 'ok'),
        cert('lab-cp-2', '/var/lib/kubelet/pki/kubelet.crt', 'expiring'),
        cert('lab-md-1', '/var/lib/kubelet/pki/kubelet-client-current.pem', 'expired'),
        cert('lab-etcd-1', '/etc/etcd/pki/server.crt', 'expired'),
        cert('lab-cp-1', '/etc/kubernetes/admin.conf', 'expired', 'kubeconfig'),
      ] as never,
    });
    expect(due).toEqual(['lab-cp-2', 'lab-md-1']);
  });

  it('control planes one at a time, then workers in parallel; --only workers, --nodes, and a dry run without facts', () => {
    const withDue = (scope: object, kubeletDue?: string[]) =>
      compilePlan({ inventory: inv, inventoryDigest: 'x', runbooks: loadRotationRunbooks(), profiles: new ProfileSet(), runId: 'r', createdAt: 'c', scope, ...(kubeletDue ? { kubeletDue } : {}) });
    const kubelet = (p: ReturnType<typeof withDue>) => p.phases.find((x) => x.phase === 'kubelet');
    const all = withDue({}, ['lab-cp-2', 'lab-md-1']);
    const md = () => kubelet(all)!.nodes[1]!;
    expect(kubelet(all)!.nodes.map((n) => n.name)).toEqual(['lab-cp-2', 'lab-md-1']);
    expect(kubelet(all)!.parallel).toEqual(['lab-md-1']);
    expect(all.kubeletDue).toEqual(['lab-cp-2', 'lab-md-1']);
    expect(kubelet(withDue({}, []))).toBeUndefined();
    expect(withDue({ only: 'workers' }, ['lab-cp-2', 'lab-md-1']).phases.map((p) => [p.phase, p.nodes.map((n) => n.name)])).toEqual([['kubelet', ['lab-md-1']]]);
    expect(kubelet(withDue({ only: 'kubelet', nodes: ['lab-cp-1'] }, []))!.nodes.map((n) => n.name)).toEqual(['lab-cp-1']);
    // A real plan marks nothing as undecided.
    expect([...all.phases.flatMap((p) => p.nodes)].some((n) => n.onlyIf)).toBe(false);
    // --dry-run: nothing read, so every node the phase could go to, each decided at run time;
    // nodes named with --nodes get it for sure.
    const dry = kubelet(withDue({}))!;
    expect(dry.nodes.map((n) => [n.name, n.onlyIf])).toEqual([
      ['lab-cp-1', 'kubelet-due'],
      ['lab-cp-2', 'kubelet-due'],
      ['lab-md-1', 'kubelet-due'],
    ]);
    expect(dry.parallel).toEqual(['lab-md-1']);
    expect(dry.nodes[2]!.steps.map((s) => s.id)).toEqual(md().steps.map((s) => s.id));
    expect(kubelet(withDue({ only: 'workers' }))!.nodes.map((n) => [n.name, n.onlyIf])).toEqual([['lab-md-1', 'kubelet-due']]);
    expect(kubelet(withDue({ nodes: ['lab-md-1'] }))!.nodes.map((n) => [n.name, n.onlyIf])).toEqual([['lab-md-1', undefined]]);
    expect(withDue({}).phases.filter((p) => p.phase !== 'kubelet').flatMap((p) => p.nodes).some((n) => n.onlyIf)).toBe(false);
    const text = renderPlanText(withDue({}), { full: true });
    expect(text).toMatch(/^ {2}lab-md-1 \(worker, bottlerocket, 10\.0\.0\.31\) \[decided at run time\]\n {4}only if, when rotate reads it, its kubelet client or serving certificate/m);
    expect(renderPlanText(all, { full: true })).not.toContain('decided at run time');
    expect(md().steps.map((s) => s.id)).toEqual(['snapshot', 'backup', 'backup-conf', 'issue', 'install', 'restart', 'wait', 'finish', 'ready']);
    expect(md().rootShell).toBe('sudo sheltie');
    expect(md().steps.find((s) => s.id === 'install')!.command).toContain('<redacted:kubeletClientKey>');
    expect(kubelet(all)!.nodes[0]!.steps.find((s) => s.id === 'install')!.command).toContain('<redacted:kubeletKubeconfig>');
  });

  it('a node whose kubelet certificate names another Node than the inventory: the plan says so, and its kubelet steps use that Node', () => {
    const kubeletCert = (node: string, subject: string, path = '/var/lib/kubelet/pki/kubelet-client-current.pem') => ({ node, path, source: 'file', subject, status: 'ok' });
    const names = nodeNamesFrom({
      certificates: [
        kubeletCert('lab-md-1', 'CN=system:node:ip-10-0-0-31.ec2.internal, O=system:nodes'),
        kubeletCert('lab-cp-1', 'CN=system:node:lab-cp-1, O=system:nodes'),
        kubeletCert('lab-cp-2', 'CN=system:node:Bad;Name, O=system:nodes'), // not a node name: never taken
        kubeletCert('lab-cp-2', 'CN=lab-cp-2-renamed@1700000000', '/var/lib/kubelet/pki/kubelet.crt'), // the serving cert says nothing
      ] as never,
    });
    expect(names).toEqual({ 'lab-md-1': 'ip-10-0-0-31.ec2.internal' });
    const make = (nodeNames?: Record<string, string>) =>
      compilePlan({ inventory: inv, inventoryDigest: 'x', runbooks: loadRotationRunbooks(), profiles: new ProfileSet(), runId: 'r', createdAt: 'c', scope: {}, kubeletDue: ['lab-md-1', 'lab-cp-1'], ...(nodeNames ? { nodeNames } : {}) });
    const plan = make(names);
    expect(plan.nodeNames).toEqual(names);
    const kubelet = plan.phases.find((p) => p.phase === 'kubelet')!;
    expect(kubelet.nodes.find((n) => n.name === 'lab-md-1')!.vars.kubeNodeName).toBe('ip-10-0-0-31.ec2.internal');
    expect(kubelet.nodes.find((n) => n.name === 'lab-cp-1')!.vars.kubeNodeName).toBeUndefined();
    expect(renderPlanText(plan, { full: false })).toContain(
      "Node name: lab-md-1's kubelet client certificate is for Node ip-10-0-0-31.ec2.internal (CN system:node:ip-10-0-0-31.ec2.internal), not lab-md-1: its kubelet certificate is issued for ip-10-0-0-31.ec2.internal, and the Node ip-10-0-0-31.ec2.internal must become Ready.",
    );
    expect(renderPlanText(make(), { full: false })).not.toContain('Node name:');
    // The name is part of what the plan's digest covers.
    expect(planDigest(plan)).not.toBe(planDigest(make()));
  });

  it('the worker kubeconfig keeps its cluster, server and CA; only the user credentials change', () => {
    const current = `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://10.0.0.21:6443
  name: lab
contexts:
- context: { cluster: lab, user: system:node:lab-md-1 }
  name: default
current-context: default
kind: Config
users:
- name: system:node:lab-md-1
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
`;
    const out = kubeletKubeconfig(current, 'generated', { cert: 'CERT', key: 'KEY' });
    expect(out).toContain('server: https://10.0.0.21:6443');
    expect(out).toContain('name: lab\n');
    expect(out).toContain(`client-certificate-data: ${Buffer.from('CERT').toString('base64')}`);
    expect(out).toContain(`client-key-data: ${Buffer.from('KEY').toString('base64')}`);
    expect(out).not.toContain('client-certificate: /var');
    expect(kubeletKubeconfig(undefined, 'generated', { cert: 'C', key: 'K' })).toBe('generated');
    expect(kubeletKubeconfig('not: [yaml', 'generated', { cert: 'C', key: 'K' })).toBe('generated');
  });
});

describe('etcd recovery (members whose certificates already expired)', () => {
  const three = parseInventory(invText.replace('  - { name: lab-etcd-2, host: 10.0.0.12 }\n', '  - { name: lab-etcd-2, host: 10.0.0.12 }\n  - { name: lab-etcd-3, host: 10.0.0.13 }\n'), join(dir, 'inv3.yaml'));
  const plan = (etcdExpired: string[], scope: object = {}) =>
    compilePlan({ inventory: three, inventoryDigest: 'x', runbooks: loadRotationRunbooks(), profiles: new ProfileSet(), runId: 'r', createdAt: 'c', scope, etcdExpired });
  const gates = (p: ReturnType<typeof plan>) =>
    p.phases
      .find((x) => x.phase === 'etcd')!
      .nodes.map((n) => [
        n.name,
        n.steps.filter((s) => s.deferred || s.retried).map((s) => `${s.id}:${s.deferred ? 'deferred' : 'retried'}`),
        n.restore!.steps.filter((s) => s.deferred).map((s) => s.id),
      ]);

  it('finds the etcd members whose own server or peer certificate expired or is not yet valid', () => {
    const c = (node: string, role: string, path: string, status: string, isCA = false) => ({ node, role, path, status, isCA, source: 'file' });
    const found = etcdExpiredFrom({
      certificates: [
        c('lab-etcd-1', 'etcd', '/etc/etcd/pki/peer.crt', 'expired'),
        c('lab-etcd-2', 'etcd', '/etc/etcd/pki/ca.crt', 'expired', true),
        c('lab-etcd-2', 'etcd', '/etc/etcd/pki/server.crt', 'expiring'),
        // Client pairs and the kubelet's files do not keep a member out of the cluster.
        c('lab-etcd-2', 'etcd', '/etc/etcd/pki/etcdctl-etcd-client.crt', 'expired'),
        c('lab-etcd-2', 'etcd', '/var/lib/kubelet/pki/kubelet-client-current.pem', 'expired'),
        c('lab-etcd-3', 'etcd', '/var/lib/etcd/pki/server.crt', 'not-yet-valid'),
        c('lab-cp-1', 'control-plane', '/etc/kubernetes/pki/apiserver-etcd-client.crt', 'expired'),
      ] as never,
    });
    expect(found).toEqual(['lab-etcd-1', 'lab-etcd-3']);
  });

  it('accepts an unhealthy etcd only when the expired members explain it', () => {
    const members = [1, 2, 3].map((i) => ({ name: `lab-etcd-${i}`, host: `10.0.0.1${i}` }));
    // etcdctl 3.4's own lines: healthy ones on stdout, unhealthy ones on stderr.
    const out = (unhealthy: number[]) =>
      [1, 2, 3]
        .map((i) => (unhealthy.includes(i) ? `https://10.0.0.1${i}:2379 is unhealthy: failed to commit proposal: context deadline exceeded` : `https://10.0.0.1${i}:2379 is healthy: successfully committed proposal: took = 2.1ms`))
        .join('\n') + '\nError: unhealthy cluster';
    // Too many expired for the rest to hold a quorum: whatever etcdctl said, they explain it.
    expect(unexplainedEtcdTrouble(members, ['lab-etcd-1', 'lab-etcd-2'], 'Error: context deadline exceeded')).toBeUndefined();
    expect(unexplainedEtcdTrouble(members, ['lab-etcd-1', 'lab-etcd-2', 'lab-etcd-3'], '')).toBeUndefined();
    // One expired, quorum kept: only it may be unhealthy.
    expect(unexplainedEtcdTrouble(members, ['lab-etcd-2'], out([2]))).toBeUndefined();
    expect(unexplainedEtcdTrouble(members, ['lab-etcd-2'], out([2, 3]))).toBe('lab-etcd-3 is unhealthy too, and its certificates have not expired');
    expect(unexplainedEtcdTrouble(members, ['lab-etcd-2'], 'Error: context deadline exceeded')).toMatch(/should hold a quorum, but etcdctl could not check them/);
    // Five members, two expired: the other three hold a quorum and must be healthy.
    const five = [...members, { name: 'lab-etcd-4', host: 'fd00::14' }, { name: 'lab-etcd-5', host: '10.0.0.15' }];
    expect(unexplainedEtcdTrouble(five, ['lab-etcd-1', 'lab-etcd-2'], `${out([1, 2])}\nhttps://[fd00::14]:2379 is unhealthy: x`)).toBe('lab-etcd-4 is unhealthy too, and its certificates have not expired');
  });

  it('defers the cluster-health gates until the last expired member, retries them there, and defers restores up to it', () => {
    const all = plan(['lab-etcd-1', 'lab-etcd-2', 'lab-etcd-3']);
    expect(all.etcdExpired).toEqual(['lab-etcd-1', 'lab-etcd-2', 'lab-etcd-3']);
    expect(gates(all)).toEqual([
      ['lab-etcd-1', ['health:deferred', 'serving:deferred'], ['restore-health']],
      ['lab-etcd-2', ['health:deferred', 'serving:deferred'], ['restore-health']],
      ['lab-etcd-3', ['health:retried', 'serving:retried'], ['restore-health']],
    ]);
    // Expired members go first: the healthy ones, which hold any quorum there is, keep every gate.
    expect(gates(plan(['lab-etcd-2']))).toEqual([
      ['lab-etcd-2', ['health:retried', 'serving:retried'], ['restore-health']],
      ['lab-etcd-1', [], []],
      ['lab-etcd-3', [], []],
    ]);
    // Nothing else changes: every step is still there, in order.
    expect(all.phases[0]!.nodes[0]!.steps.map((s) => s.id)).toEqual(plan([]).phases[0]!.nodes[0]!.steps.map((s) => s.id));
    expect(plan([]).etcdExpired).toBeUndefined();
    expect(gates(plan([])).flatMap(([, a, b]) => [...a!, ...b!])).toEqual([]);
    const text = renderPlanText(all, { full: false });
    expect(text).toContain('etcd members with expired certificates: lab-etcd-1, lab-etcd-2, lab-etcd-3.');
    expect(text).toMatch(/health: etcd members listed and healthy with the new client certificate \[read-only\] \[deferred\]\n\s+etcd recovery: waits for lab-etcd-3/);
    expect(planDigest(all)).not.toBe(planDigest(plan([])));
    // A dry run reads nothing, and says that a recovery would be planned differently.
    expect(renderPlanText(compile(), { full: false })).toMatch(/etcd certificates were not read either: a plan for etcd members whose certificates have expired \(etcd recovery\) differs/);
  });

  it('refuses a scope that leaves an expired member out: etcd could never be healthy', () => {
    expect(() => plan(['lab-etcd-1', 'lab-etcd-3'], { nodes: ['lab-etcd-1'] })).toThrow(UsageError);
    expect(() => plan(['lab-etcd-1', 'lab-etcd-3'], { nodes: ['lab-etcd-1'] })).toThrow(/etcd member lab-etcd-3 has expired certificates: etcd cannot be healthy/);
    // Naming only healthy members of a degraded cluster is refused too.
    expect(() => plan(['lab-etcd-1'], { nodes: ['lab-etcd-2'] })).toThrow(/etcd member lab-etcd-1 has expired certificates/);
    // A scope without etcd members has no etcd phase to refuse.
    expect(plan(['lab-etcd-1'], { nodes: ['lab-cp-1'] }).phases.map((p) => p.phase)).not.toContain('etcd');
    expect(() => plan(['lab-etcd-1', 'lab-etcd-3'], { nodes: ['lab-etcd-1', 'lab-etcd-3'] })).not.toThrow();
    // --only control-plane has no etcd phase to defer in: pre-flight refuses it instead (unhealthy etcd).
    expect(plan(['lab-etcd-1'], { only: 'control-plane' }).phases.map((p) => p.phase)).not.toContain('etcd');
  });
});

describe('stacked etcd: the control planes are the members', () => {
  const cps = (n: number) => Array.from({ length: n }, (_, i) => `  - { name: lab-cp-${i + 1}, host: 10.0.0.2${i + 1}${i === 1 ? ', os: bottlerocket' : ''} }\n`).join('');
  const stacked = (n: number) => parseInventory(invText.replace(/etcd:\n(  - .*\n)+/, '').replace(/controlPlane:\n(  - .*\n)+/, `controlPlane:\n${cps(n)}`), join(dir, `stacked${n}.yaml`));
  const plan = (etcdExpired: string[], scope: object = {}, members = 3) =>
    compilePlan({ inventory: stacked(members), inventoryDigest: 'x', runbooks: loadRotationRunbooks(), profiles: new ProfileSet(), runId: 'r', createdAt: 'c', scope, etcdExpired });
  const controlPlane = (p: ReturnType<typeof plan>) => p.phases.find((x) => x.phase === 'control-plane')!;
  const gates = (p: ReturnType<typeof plan>) =>
    controlPlane(p).nodes.map((n) => [
      n.name,
      n.steps.filter((s) => s.deferred || s.retried).map((s) => `${s.id}:${s.deferred ? 'deferred' : 'retried'}`),
      n.restore!.steps.filter((s) => s.deferred).map((s) => s.id),
    ]);
  const restored = ['restore-wait-ready', 'restore-etcd-health'];

  it('renews, verifies and gates on the etcd member of every control plane', () => {
    const cp = controlPlane(plan([])).nodes;
    expect(cp[0]!.steps.map((s) => s.id)).toEqual([
      'snapshot', 'snapshot-etcd', 'pods-found', 'backup-pki', 'backup-kubeconfigs', 'renew-all', 'verify-certs', 'verify-etcd-certs',
      'dedupe-before', 'stop-pods', 'wait-down', 'wait-stopped', 'start-pods', 'wait-running', 'dedupe-after', 'wait-ready', 'etcd-serving', 'etcd-health',
    ]);
    expect(cp[0]!.restore!.steps.map((s) => s.id).slice(-2)).toEqual(['restore-wait-ready', 'restore-etcd-health']);
    const verify = cp[0]!.steps.find((s) => s.id === 'verify-etcd-certs')!;
    expect(verify.with).toEqual({
      dir: '/etc/kubernetes/pki',
      renewed: ['etcd/server.crt', 'etcd/peer.crt', 'etcd/healthcheck-client.crt', 'apiserver-etcd-client.crt'],
      unchanged: ['etcd/ca.crt'],
      sansKept: ['etcd/server.crt', 'etcd/peer.crt'],
    });
    expect(cp[0]!.steps.find((s) => s.id === 'etcd-serving')!.with).toEqual({ port: '2379', file: '/etc/kubernetes/pki/etcd/server.crt' });
    // etcdctl in the node's own etcd container, with its healthcheck-client pair: the key stays on the node.
    const ubuntu = cp[0]!.steps.find((s) => s.id === 'etcd-health')!.commands!.stackedEtcdHealth!;
    expect(ubuntu).toContain(`crictl exec "$1" etcdctl $flags endpoint health --cluster`);
    expect(ubuntu).toContain('--cert=$pki/healthcheck-client.crt --key=$pki/healthcheck-client.key');
    const br = cp[1]!.steps.find((s) => s.id === 'etcd-health')!.commands!.stackedEtcdHealth!;
    expect(br).toContain('ctr -n k8s.io t exec --exec-id "rotate-certs-$$-health" "$id" etcdctl $flags endpoint health --cluster </dev/null');
    expect(br).toContain('pki=/var/lib/kubeadm/pki/etcd');
    // External etcd: none of it.
    const external = compile().phases.find((p) => p.phase === 'control-plane')!.nodes[0]!;
    expect(external.steps.map((s) => s.id).filter((id) => /etcd-(serving|health|certs)|snapshot-etcd/.test(id))).toEqual([]);
  });

  it('finds the control planes whose etcd server or peer certificate expired', () => {
    const c = (node: string, path: string, status: string) => ({ node, role: 'control-plane', path, status, isCA: false, source: 'file' });
    const found = etcdExpiredFrom({
      certificates: [
        c('lab-cp-1', '/etc/kubernetes/pki/etcd/server.crt', 'expired'),
        c('lab-cp-2', '/var/lib/kubeadm/pki/etcd/peer.crt', 'not-yet-valid'),
        // The clients' certificates do not keep a member out of the cluster.
        c('lab-cp-3', '/etc/kubernetes/pki/etcd/healthcheck-client.crt', 'expired'),
        c('lab-cp-3', '/etc/kubernetes/pki/apiserver-etcd-client.crt', 'expired'),
        c('lab-cp-3', '/etc/kubernetes/pki/apiserver.crt', 'expired'),
      ] as never,
    });
    expect(found).toEqual(['lab-cp-1', 'lab-cp-2']);
  });

  it('every member expired: the quorum gates wait for the second node, the every-member gate for the last', () => {
    const all = plan(['lab-cp-1', 'lab-cp-2', 'lab-cp-3']);
    expect(gates(all)).toEqual([
      ['lab-cp-1', ['wait-ready:deferred', 'etcd-serving:deferred', 'etcd-health:deferred'], restored],
      ['lab-cp-2', ['wait-ready:retried', 'etcd-serving:retried', 'etcd-health:deferred'], restored],
      ['lab-cp-3', ['etcd-health:retried'], restored],
    ]);
    const cp1 = controlPlane(all).nodes[0]!;
    expect(cp1.steps.find((s) => s.id === 'wait-ready')!.deferred).toMatch(/waits for lab-cp-2, whose renewal gives a majority of the 3 members valid peer certificates/);
    expect(cp1.steps.find((s) => s.id === 'etcd-health')!.deferred).toMatch(/waits for lab-cp-3, the last member with expired certificates/);
    const text = renderPlanText(all, { full: false });
    expect(text).toContain('etcd members (stacked on the control plane) with expired certificates: lab-cp-1, lab-cp-2, lab-cp-3.');
    expect(text).not.toContain('etcd members with expired certificates');
    // Five members: a majority is three.
    expect(gates(plan(['lab-cp-1', 'lab-cp-2', 'lab-cp-3', 'lab-cp-4', 'lab-cp-5'], {}, 5)).map(([n, steps]) => [n, (steps as string[]).filter((s) => s.startsWith('wait-ready'))])).toEqual([
      ['lab-cp-1', ['wait-ready:deferred']],
      ['lab-cp-2', ['wait-ready:deferred']],
      ['lab-cp-3', ['wait-ready:retried']],
      ['lab-cp-4', []],
      ['lab-cp-5', []],
    ]);
  });

  it('some expired: they go first; where the others keep a quorum only the every-member gate waits', () => {
    expect(gates(plan(['lab-cp-2']))).toEqual([
      ['lab-cp-2', ['etcd-health:retried'], restored],
      ['lab-cp-1', [], []],
      ['lab-cp-3', [], []],
    ]);
    // Two of three: the first one renewed makes the majority with the valid member.
    expect(gates(plan(['lab-cp-1', 'lab-cp-3']))).toEqual([
      ['lab-cp-1', ['wait-ready:retried', 'etcd-serving:retried', 'etcd-health:deferred'], restored],
      ['lab-cp-3', ['etcd-health:retried'], restored],
      ['lab-cp-2', [], []],
    ]);
    // The other phases are not recoveries: the kubelets and the management cluster keep every step.
    for (const p of plan(['lab-cp-1', 'lab-cp-3']).phases.filter((x) => x.phase !== 'control-plane')) {
      expect(p.nodes.flatMap((n) => n.steps.filter((s) => s.deferred || s.retried))).toEqual([]);
    }
  });

  it('refuses a scope that leaves an expired member out', () => {
    expect(() => plan(['lab-cp-1', 'lab-cp-2'], { nodes: ['lab-cp-1'] })).toThrow(/etcd member lab-cp-2 has expired certificates: etcd cannot be healthy/);
    expect(() => plan(['lab-cp-1'], { nodes: ['lab-cp-3'] })).toThrow(UsageError);
    expect(() => plan(['lab-cp-1'], { nodes: ['lab-cp-1', 'lab-md-1'] })).not.toThrow();
    // An external etcd's expired members change nothing on its control planes.
    const three = parseInventory(invText.replace('  - { name: lab-etcd-2, host: 10.0.0.12 }\n', '  - { name: lab-etcd-2, host: 10.0.0.12 }\n  - { name: lab-etcd-3, host: 10.0.0.13 }\n'), join(dir, 'inv3.yaml'));
    const external = compilePlan({ inventory: three, inventoryDigest: 'x', runbooks: loadRotationRunbooks(), profiles: new ProfileSet(), runId: 'r', createdAt: 'c', scope: {}, etcdExpired: ['lab-etcd-1', 'lab-etcd-2', 'lab-etcd-3'] });
    expect(external.phases.find((p) => p.phase === 'control-plane')!.nodes.flatMap((n) => [...n.steps, ...n.restore!.steps].filter((s) => s.deferred || s.retried))).toEqual([]);
  });

  it('deferWhileEtcdExpired takes true or quorum, and nothing else', () => {
    const text = readFileSync(join(RUNBOOKS_DIR, 'control-plane.yaml'), 'utf8');
    expect(parsePhaseRunbook(text, 'control-plane.yaml').steps.find((s) => s.id === 'wait-ready')!.deferWhileEtcdExpired).toBe('quorum');
    expect(parsePhaseRunbook(text, 'control-plane.yaml').steps.find((s) => s.id === 'etcd-health')!.deferWhileEtcdExpired).toBe('all');
    expect(() => parsePhaseRunbook(text.replace('deferWhileEtcdExpired: quorum', 'deferWhileEtcdExpired: majority'), 'control-plane.yaml')).toThrow(
      /^control-plane\.yaml:\d+: steps\[\d+\]\.deferWhileEtcdExpired: expected true \(every member renewed\) or quorum \(a majority of members renewed\), got "majority"/,
    );
  });
});
