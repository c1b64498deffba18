import { describe, expect, it } from 'vitest';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OS_NAMES } from '../../src/inventory/types.js';
import { expandIncludes, loadProfile, parseProfile } from '../../src/profiles/profile.js';
import { loadCheckRunbook, parseCheckRunbook, sourcesFor } from '../../src/runbook/check-sources.js';
import { LoadError } from '../../src/util/errors.js';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';
import { loadErr } from './load-error.js';

const ubuntuText = readFileSync(join(PACKAGE_ROOT, 'os-profiles', 'ubuntu.yaml'), 'utf8');
const checkText = readFileSync(join(PACKAGE_ROOT, 'runbooks', 'check.yaml'), 'utf8');


describe('shipped OS profiles and runbooks load', () => {
  it.each(OS_NAMES)('%s profile', (os) => {
    const p = loadProfile(os);
    expect(p.os).toBe(os);
    expect(p.vars.kubePki).toMatch(/^\//);
  });

  it('Bottlerocket reads its own paths and sends scripts to sheltie', () => {
    const br = loadProfile('bottlerocket');
    expect(br.rootShell).toBe('sudo sheltie');
    const s = sourcesFor(loadCheckRunbook(), 'control-plane', br, true);
    expect(s.files.map((f) => f.path)).toContain('/var/lib/kubeadm/pki/server-etcd-client.crt');
    expect(s.kubeconfigs.map((f) => f.path)).toContain('/var/lib/kubeadm/admin.conf');
  });

  it('expands the certificate table per role and etcd topology', () => {
    const rb = loadCheckRunbook();
    const ubuntu = loadProfile('ubuntu');
    const etcd = sourcesFor(rb, 'etcd', ubuntu, true);
    const worker = () => sourcesFor(rb, 'worker', ubuntu, true);
    expect(etcd.files.map((f) => f.path)).toEqual([
      '/etc/etcd/pki/ca.crt',
      '/etc/etcd/pki/server.crt',
      '/etc/etcd/pki/peer.crt',
      '/etc/etcd/pki/etcdctl-etcd-client.crt',
      '/etc/etcd/pki/apiserver-etcd-client.crt',
      '/var/lib/kubelet/pki/kubelet-client-current.pem',
      '/var/lib/kubelet/pki/kubelet.crt',
      '/var/lib/kubelet/pki/kubelet-server-current.pem',
    ]);
    // External etcd machines are not Nodes: their kubelet files are read when present, never required.
    expect(etcd.files.filter((f) => f.path.startsWith('/var/lib/kubelet/')).every((f) => f.optional)).toBe(true);
    expect(worker().files.find((f) => f.path.endsWith('/kubelet-client-current.pem'))!.optional).toBe(false);
    expect(etcd.ports).toEqual([2379]);
    const cpExternal = sourcesFor(rb, 'control-plane', ubuntu, true);
    expect(cpExternal.ports).toEqual([6443]);
    expect(cpExternal.files.map((f) => f.path)).not.toContain('/etc/kubernetes/pki/etcd/server.crt');
    const cpStacked = sourcesFor(rb, 'control-plane', ubuntu, false);
    expect(cpStacked.ports).toEqual([6443, 2379]);
    expect(cpStacked.files.map((f) => f.path)).toContain('/etc/kubernetes/pki/etcd/server.crt');
    expect(worker().ports).toEqual([]);
    expect(worker().kubeconfigs).toEqual([{ path: '/etc/kubernetes/kubelet.conf', optional: true }]);
  });
});

describe('bad profiles and runbooks fail at load with file and line', () => {
  it('unknown profile field', () => {
    const e = loadErr(() => parseProfile(`${ubuntuText}\nshell: zsh\n`, 'p.yaml'));
    expect(e.message).toMatch(/^p\.yaml:\d+: shell: unknown field/);
  });
  it('unknown path key', () => {
    const e = loadErr(() => parseProfile(ubuntuText.replace('  kubeletPki:', '  kubeletPkix:'), 'p.yaml'));
    expect(e.message).toMatch(/paths\.kubeletPkix: unknown field/);
  });
  it('missing path key', () => {
    const e = loadErr(() => parseProfile(ubuntuText.replace(/^ {2}etcdPki:.*\n/m, ''), 'p.yaml'));
    expect(e.message).toMatch(/paths\.etcdPki: required field is missing/);
  });
  it('a relative or odd path', () => {
    const e = loadErr(() => parseProfile(ubuntuText.replace('etcdPki: /etc/etcd/pki', 'etcdPki: "etc/$(id)"'), 'p.yaml'));
    expect(e.message).toMatch(/paths\.etcdPki: "etc\/\$\(id\)" is not an absolute path/);
    expect(e.line).toBe(ubuntuText.split('\n').findIndex((l) => l.includes('etcdPki')) + 1);
  });
  it('unknown variable in a runbook path', () => {
    const text = checkText.replace('"{{etcdPki}}/server.crt"', '"{{etcdPKI}}/server.crt"');
    const e = loadErr(() => parseCheckRunbook(text, 'check.yaml'));
    expect(e.message).toMatch(/groups\[0\]\.files\[1\]: unknown variable \{\{etcdPKI\}\} \(known: etcdPki/);
    expect(e.line).toBe(text.split('\n').findIndex((l) => l.includes('{{etcdPKI}}')) + 1);
  });
  it('{{include:key}} inlines a command at its indentation; an unknown or looping include is refused with file and line', () => {
    const file = join(tmpdir(), `rc-include-${process.pid}.yaml`);
    writeFileSync(file, 'commands:\n  a: |\n    {{include:image}}\n  b: |\n    {{include:nope}}\n');
    try {
      const ok = expandIncludes({ image: 'IMAGE=x\nctr image pull "$IMAGE"\n', a: 'set -e\n  {{include:image}}\necho done\n' }, () => file);
      expect(ok.a).toBe('set -e\n  IMAGE=x\n  ctr image pull "$IMAGE"\necho done\n');
      const e = loadErr(() => expandIncludes({ b: '{{include:nope}}\n' }, () => file));
      expect(e.message).toBe(`${file}:5: commands.b: {{include:nope}} names no command (define nope under commands: in this profile, the one it extends or common.yaml)`);
      expect(loadErr(() => expandIncludes({ a: '{{include:a}}\n' }, () => file)).message).toMatch(/commands\.a: includes loop back: a -> a/);
    } finally {
      rmSync(file, { force: true });
    }
  });
  it('unknown role, unknown key, bad topology', () => {
    expect(loadErr(() => parseCheckRunbook(checkText.replace('roles: [etcd]', 'roles: [etdc]'), 'c.yaml')).message).toMatch(/groups\[0\]\.roles\[0\]: expected one of etcd, control-plane, worker/);
    expect(loadErr(() => parseCheckRunbook(checkText.replace('    endpoints: [2379]', '    endpoint: [2379]'), 'c.yaml')).message).toMatch(/groups\[0\]\.endpoint: unknown field/);
    expect(loadErr(() => parseCheckRunbook(checkText.replace('.crt", when: external-etcd', '.crt", when: sometimes'), 'c.yaml')).message).toMatch(/when: expected one of external-etcd, stacked-etcd/);
  });
});
