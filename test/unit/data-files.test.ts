import { describe, expect, it } from 'vitest';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OS_NAMES } from '../../src/inventory/types.js';
import { expandIncludes, loadProfile, parseProfile } from '../../src/profiles/profile.js';
import { loadCheckRunbook, parseCheckRunbook, sourcesFor } from '../../src/runbook/check-sources.js';
import { loadRotationRunbooks, parsePhaseRunbook } from '../../src/runbook/runbook.js';
import { LoadError } from '../../src/util/errors.js';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';
import { loadErr } from './load-error.js';

const ubuntuText = readFileSync(join(PACKAGE_ROOT, 'os-profiles', 'ubuntu.yaml'), 'utf8');
const checkText = readFileSync(join(PACKAGE_ROOT, 'runbooks', 'check.yaml'), 'utf8');
const runbookText = (name: string) => readFileSync(join(PACKAGE_ROOT, 'runbooks', `${name}.yaml`), 'utf8');
/** The 1-based line of the first line holding `s`. */
const lineOf = (text: string, s: string) => text.split('\n').findIndex((l) => l.includes(s)) + 1;


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

describe('restore.after is the last backup step: a failure or stop before it changed nothing, after it every backup exists', () => {
  it('the shipped runbooks: after the last backup of each', () => {
    const after = Object.fromEntries(loadRotationRunbooks().flatMap((rb) => (rb.restore ? [[rb.phase, rb.restore.after]] : [])));
    expect(after).toEqual({ etcd: 'backup', 'control-plane': 'backup-kubeconfigs', kubelet: 'backup-conf' });
  });

  it('an after before a backup that a restore step puts back is refused where after is written, naming the step to set', () => {
    const text = runbookText('control-plane').replace('  after: backup-kubeconfigs', '  after: backup-pki');
    const e = loadErr(() => parsePhaseRunbook(text, 'control-plane.yaml'));
    expect(e.message).toBe(
      `control-plane.yaml:${lineOf(text, '  after: backup-pki')}: restore.after: backup-pki comes before backup-kubeconfigs, which makes the backup {{confBackup}} that restore-kubeconfigs puts back: a stop between them would restore from a backup not made yet (set after: backup-kubeconfigs, the last step that makes a backup)`,
    );
    const kubelet = runbookText('kubelet').replace('  after: backup-conf', '  after: backup');
    expect(loadErr(() => parsePhaseRunbook(kubelet, 'kubelet.yaml')).message).toMatch(/^kubelet\.yaml:\d+: restore\.after: backup comes before backup-conf, .* \(set after: backup-conf, the last step that makes a backup\)$/);
  });

  it('a restore step that puts back a backup no step makes', () => {
    const text = runbookText('kubelet').replace('      with: { file: "{{kubeletConf}}", backup: "{{confBackup}}" }\n    - id: restore-restart', '      with: { file: "{{kubeletConf}}", backup: /var/tmp/elsewhere }\n    - id: restore-restart');
    const e = loadErr(() => parsePhaseRunbook(text, 'kubelet.yaml'));
    expect(e.message).toBe(`kubelet.yaml:${lineOf(text, '/var/tmp/elsewhere')}: restore.steps[1].with.backup: no step makes the backup /var/tmp/elsewhere that restore-conf puts back (name it in the with.backup of a backup step up to backup-conf)`);
  });

  it('a backup made after restore.after, even one no restore step reads', () => {
    const text = runbookText('etcd').replace('  - id: renew\n', '  - id: backup-more\n    title: Another backup\n    run: backupFile\n    with: { file: /etc/etcd/etcd.env, backup: /etc/etcd/etcd.env.bak }\n  - id: renew\n');
    expect(loadErr(() => parsePhaseRunbook(text, 'etcd.yaml')).message).toBe(
      `etcd.yaml:${lineOf(text, '  after: backup')}: restore.after: backup comes before backup-more, which makes a backup: a failure between them would restore the node without it (set after: backup-more, the last step that makes a backup)`,
    );
  });

  it('a step that changes the node before restore.after', () => {
    const text = runbookText('kubelet').replace('  - id: backup-conf\n', '  - id: restart-early\n    title: Restart the kubelet too soon\n    run: kubeletRestart\n  - id: backup-conf\n');
    expect(loadErr(() => parsePhaseRunbook(text, 'kubelet.yaml')).message).toBe(
      `kubelet.yaml:${lineOf(text, '- id: restart-early')}: steps[2]: restart-early changes the node before restore.after (backup-conf), where a failure or a stop restores nothing (move it after backup-conf, or add effect: read if it only looks)`,
    );
  });

  it('an after that runs with one etcd topology only', () => {
    const text = runbookText('control-plane').replace('    title: Back up the kubeconfigs\n', '    title: Back up the kubeconfigs\n    when: stacked-etcd\n');
    expect(loadErr(() => parsePhaseRunbook(text, 'control-plane.yaml')).message).toMatch(/^control-plane\.yaml:\d+: restore\.after: backup-kubeconfigs runs only with stacked-etcd: in other clusters the node would never be restored/);
  });
});
