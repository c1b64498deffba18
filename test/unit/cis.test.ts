import 'reflect-metadata';
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cisProbesFor, evaluateCis, loadCisRunbook, parseCisRunbook, type CisProbe, type CisStat } from '../../src/check/cis.js';
import { cisScript, parseCisOutput } from '../../src/check/cis-script.js';
import { checkExitCode } from '../../src/check/exit-code.js';
import { planCheck, runCheck } from '../../src/check/run.js';
import { requireKnownOs } from '../../src/profiles/detect-os.js';
import { loadInventory } from '../../src/inventory/load.js';
import { loadProfile, ProfileSet } from '../../src/profiles/profile.js';
import { loadCheckRunbook } from '../../src/runbook/check-sources.js';
import type { Connector, NodeSession } from '../../src/transport/session.js';
import { LoadError } from '../../src/util/errors.js';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';
import { loadErr } from './load-error.js';

const cisText = readFileSync(join(PACKAGE_ROOT, 'runbooks', 'cis.yaml'), 'utf8');


/** A probe's expansion as "item(s) path[pattern]" lines, for readable assertions. */
const show = (probes: CisProbe[]) =>
  probes.map((p) => `${[p.mode?.item, p.owner?.item].filter(Boolean).join('/')} ${p.path}${p.pattern ? `/${p.pattern}` : ''}${p.recursive ? ' (recursive)' : ''}`);

describe('runbooks/cis.yaml', () => {
  const rb = loadCisRunbook();

  it('loads, and every rule names a CIS item', () => {
    expect(rb.rules.length).toBeGreaterThan(10);
    for (const r of rb.rules) expect(r.mode ?? r.owner).toBeDefined();
  });

  it('expands per role, OS and etcd topology with the profile paths', () => {
    const ubuntu = loadProfile('ubuntu');
    expect(show(cisProbesFor(rb, 'control-plane', ubuntu, true))).toEqual([
      '1.1.1/1.1.2 /etc/kubernetes/manifests/kube-apiserver.yaml',
      '1.1.3/1.1.4 /etc/kubernetes/manifests/kube-controller-manager.yaml',
      '1.1.5/1.1.6 /etc/kubernetes/manifests/kube-scheduler.yaml',
      '1.1.7/1.1.8 /etc/kubernetes/manifests/etcd.yaml',
      '1.1.13/1.1.14 /etc/kubernetes/admin.conf',
      '1.1.13/1.1.14 /etc/kubernetes/super-admin.conf',
      '1.1.15/1.1.16 /etc/kubernetes/scheduler.conf',
      '1.1.17/1.1.18 /etc/kubernetes/controller-manager.conf',
      '1.1.19 /etc/kubernetes/pki (recursive)',
      '1.1.20 /etc/kubernetes/pki/*.crt (recursive)',
      '1.1.21 /etc/kubernetes/pki/*.key (recursive)',
      '4.1.5/4.1.6 /etc/kubernetes/kubelet.conf',
      '4.1.7/4.1.8 /etc/kubernetes/pki/ca.crt',
      '1.1.19 /var/lib/kubelet/pki (recursive)',
      '1.1.20 /var/lib/kubelet/pki/*.crt',
      '1.1.21 /var/lib/kubelet/pki/*.key',
      '1.1.21 /var/lib/kubelet/pki/*.pem',
    ]);
    // Stacked etcd adds the data directory on the control plane.
    expect(show(cisProbesFor(rb, 'control-plane', ubuntu, false))).toContain('1.1.11/1.1.12 /var/lib/etcd');
    expect(show(cisProbesFor(rb, 'etcd', ubuntu, true)).slice(0, 4)).toEqual([
      '1.1.11/1.1.12 /var/lib/etcd',
      '1.1.19 /etc/etcd/pki (recursive)',
      '1.1.20 /etc/etcd/pki/*.crt (recursive)',
      '1.1.21 /etc/etcd/pki/*.key (recursive)',
    ]);
    const br = loadProfile('bottlerocket');
    const brEtcd = show(cisProbesFor(rb, 'etcd', br, true));
    expect(brEtcd).toContain('1.1.11/1.1.12 /var/lib/etcd/data');
    expect(brEtcd).toContain('1.1.19 /var/lib/etcd/pki (recursive)');
    expect(brEtcd).not.toContain('1.1.11/1.1.12 /var/lib/etcd');
    expect(show(cisProbesFor(rb, 'worker', br, true))).toEqual([
      '4.1.5/4.1.6 /etc/kubernetes/kubelet/kubeconfig',
      '4.1.7/4.1.8 /var/lib/kubeadm/pki/ca.crt',
      '4.1.7/4.1.8 /etc/kubernetes/pki/ca.crt',
      '1.1.19 /var/lib/kubelet/pki (recursive)',
      '1.1.20 /var/lib/kubelet/pki/*.crt',
      '1.1.21 /var/lib/kubelet/pki/*.key',
      '1.1.21 /var/lib/kubelet/pki/*.pem',
    ]);
    expect(show(cisProbesFor(rb, 'control-plane', br, true))).toContain('1.1.13/1.1.14 /var/lib/kubeadm/admin.conf');
  });

  it('the issue\'s posture: keys 0600, certificates 0644, kubeconfigs 0600, etcd data 0700', () => {
    const probes = cisProbesFor(rb, 'control-plane', loadProfile('ubuntu'), false);
    const max = (item: string) => probes.find((p) => p.mode?.item === item)?.mode?.max.toString(8);
    expect([max('1.1.1'), max('1.1.11'), max('1.1.13'), max('1.1.20'), max('1.1.21'), max('4.1.5'), max('4.1.7')]).toEqual(['600', '700', '600', '644', '600', '600', '644']);
    expect(probes.find((p) => p.owner?.item === '1.1.12')?.owner?.is).toEqual(['etcd:etcd', 'root:root']);
  });
});

describe('bad CIS runbooks fail at load with file, line and field', () => {
  const rule = (body: string) => `rules:\n  - what: x\n    roles: [worker]\n${body}`;
  it.each([
    [rule('    paths: ["{{kubePki}}/a.key"]\n    mode: { max: "0600", item: "1.1.21" }\n    colour: red\n'), /^c\.yaml:6: rules\[0\]\.colour: unknown field/],
    [rule('    paths: ["{{kubePkix}}/a.key"]\n    mode: { max: "0600", item: "1.1.21" }\n'), /^c\.yaml:4: rules\[0\]\.paths\[0\]: unknown variable \{\{kubePkix\}\}/],
    [rule('    paths: ["{{kubePki}}/*/a.key"]\n    mode: { max: "0600", item: "1.1.21" }\n'), /^c\.yaml:4: rules\[0\]\.paths\[0\]: .* is not an absolute path/],
    [rule('    paths: ["etc/$(id)"]\n    mode: { max: "0600", item: "1.1.21" }\n'), /rules\[0\]\.paths\[0\]: .* is not an absolute path/],
    [rule('    paths: ["/a"]\n    mode: { max: 0600, item: "1.1.21" }\n'), /^c\.yaml:5: rules\[0\]\.mode\.max: expected an octal mode in quotes/],
    [rule('    paths: ["/a"]\n    mode: { max: "0800", item: "1.1.21" }\n'), /rules\[0\]\.mode\.max: "0800" is not an octal mode/],
    [rule('    paths: ["/a"]\n    mode: { max: "0600", item: 4.1 }\n'), /rules\[0\]\.mode\.item: expected a CIS item number/],
    [rule('    paths: ["/a"]\n    owner: { is: [root], item: "1.1.2" }\n'), /rules\[0\]\.owner\.is\[0\]: "root" is not user:group/],
    [rule('    paths: ["/a"]\n'), /^c\.yaml:2: rules\[0\]: checks nothing/],
    [rule('    paths: [{ path: /a, os: [windows] }]\n    mode: { max: "0600", item: "1.1.1" }\n'), /rules\[0\]\.paths\[0\]\.os\[0\]: expected one of ubuntu, rhel, bottlerocket/],
    ['rules: []\n', /rules: needs at least 1 entry/],
  ])('%#', (text, message) => {
    expect(loadErr(() => parseCisRunbook(text, 'c.yaml')).message).toMatch(message);
  });

  it('the shipped file with a typo names its line', () => {
    const e = loadErr(() => parseCisRunbook(cisText.replace('item: "1.1.21"', 'item: "1.1.21x"'), 'cis.yaml'));
    expect(e.line).toBe(cisText.slice(0, cisText.indexOf('item: "1.1.21"')).split('\n').length);
    expect(e.field).toMatch(/^rules\[\d+\]\.mode\.item$/);
  });
});

describe('evaluating what a node printed', () => {
  const probes: CisProbe[] = [
    { path: '/etc/kubernetes/admin.conf', recursive: false, mode: { max: 0o600, item: '1.1.13' }, owner: { is: ['root:root'], item: '1.1.14' } },
    { path: '/var/lib/etcd', recursive: false, mode: { max: 0o700, item: '1.1.11' }, owner: { is: ['etcd:etcd', 'root:root'], item: '1.1.12' } },
    { path: '/etc/kubernetes/pki', recursive: true, owner: { is: ['root:root'], item: '1.1.19' } },
    { path: '/etc/kubernetes/pki', pattern: '*.crt', recursive: true, mode: { max: 0o644, item: '1.1.20' } },
  ];
  const stat = (probe: number, path: string, mode: number, owner = '0:0 root:root'): CisStat => {
    const [ids, names] = owner.split(' ') as [string, string];
    const [uid, gid] = ids.split(':') as [string, string];
    const [user, group] = names.split(':') as [string, string];
    return { probe, mode, uid, gid, user, group, path };
  };

  it('600 or stricter: a looser bit, a setuid bit or a group bit is a deviation, a stricter mode is not', () => {
    const d = evaluateCis('n', probes, [
      stat(0, '/etc/kubernetes/admin.conf', 0o644),
      stat(1, '/var/lib/etcd', 0o700),
      stat(3, '/etc/kubernetes/pki/ca.crt', 0o600),
      stat(3, '/etc/kubernetes/pki/a.crt', 0o4644),
      stat(3, '/etc/kubernetes/pki/b.crt', 0o664),
    ]);
    expect(d).toEqual([
      { node: 'n', path: '/etc/kubernetes/admin.conf', item: '1.1.13', expected: '0600 or stricter', found: '0644' },
      { node: 'n', path: '/etc/kubernetes/pki/a.crt', item: '1.1.20', expected: '0644 or stricter', found: '4644' },
      { node: 'n', path: '/etc/kubernetes/pki/b.crt', item: '1.1.20', expected: '0644 or stricter', found: '0664' },
    ]);
  });

  it('owners match by name or id; an id the node cannot name shows as the number', () => {
    const d = evaluateCis('n', probes, [
      stat(1, '/var/lib/etcd', 0o700, '998:998 etcd:etcd'),
      stat(2, '/etc/kubernetes/pki', 0o755, '0:0 root:root'),
      stat(2, '/etc/kubernetes/pki/a.crt', 0o644, '1000:0 UNKNOWN:root'),
      stat(3, '/etc/kubernetes/pki/a.crt', 0o644, '1000:0 UNKNOWN:root'),
      stat(0, '/etc/kubernetes/admin.conf', 0o600, '0:1001 root:capv'),
    ]);
    expect(d).toEqual([
      { node: 'n', path: '/etc/kubernetes/admin.conf', item: '1.1.14', expected: 'root:root', found: 'root:capv' },
      { node: 'n', path: '/etc/kubernetes/pki/a.crt', item: '1.1.19', expected: 'root:root', found: '1000:root' },
    ]);
    expect(evaluateCis('n', probes, [stat(1, '/var/lib/etcd', 0o750, '1000:1000 capv:capv')])).toEqual([
      { node: 'n', path: '/var/lib/etcd', item: '1.1.11', expected: '0700 or stricter', found: '0750' },
      { node: 'n', path: '/var/lib/etcd', item: '1.1.12', expected: 'etcd:etcd or root:root', found: 'capv:capv' },
    ]);
  });

  it('a file two rules report under the same item is listed once', () => {
    const twice = [...probes, { path: '/etc/kubernetes/pki/ca.crt', recursive: false, mode: { max: 0o644, item: '1.1.20' } }];
    expect(evaluateCis('n', twice, [stat(3, '/etc/kubernetes/pki/ca.crt', 0o666), stat(4, '/etc/kubernetes/pki/ca.crt', 0o666)])).toHaveLength(1);
  });
});

describe('the --cis script, run by a real bash over real files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rc-cis-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const pki = join(dir, 'pki');
  mkdirSync(join(pki, 'etcd'), { recursive: true });
  const file = (p: string, mode: number, body = 'x') => {
    writeFileSync(join(dir, p), body);
    chmodSync(join(dir, p), mode);
  };
  file('pki/ca.crt', 0o644, '-----BEGIN CERTIFICATE-----');
  file('pki/ca.key', 0o600, '-----BEGIN EC PRIVATE KEY-----\nSECRETKEYMATERIAL');
  file('pki/etcd/ca.crt', 0o666);
  file("pki/it's odd.key", 0o640);
  file('kubelet-client-2025.pem', 0o644, 'SECRETKEYMATERIAL');
  symlinkSync(join(dir, 'kubelet-client-2025.pem'), join(dir, 'kubelet-client-current.pem'));
  file('admin.conf', 0o644, 'client-key-data: SECRETKEYMATERIAL');
  const probes: CisProbe[] = [
    { path: pki, recursive: true, owner: { is: ['nobody-here:nobody-here'], item: '1.1.19' } },
    { path: pki, pattern: '*.crt', recursive: true, mode: { max: 0o644, item: '1.1.20' } },
    { path: pki, pattern: '*.key', recursive: true, mode: { max: 0o600, item: '1.1.21' } },
    { path: dir, pattern: '*.pem', recursive: false, mode: { max: 0o600, item: '1.1.21' } },
    { path: join(dir, 'admin.conf'), recursive: false, mode: { max: 0o600, item: '1.1.13' } },
    { path: join(dir, 'kubelet-client-current.pem'), recursive: false, mode: { max: 0o600, item: '4.1.x' } },
    { path: join(dir, 'absent.conf'), recursive: false, mode: { max: 0o600, item: '1.1.15' } },
    { path: join(dir, 'absent'), pattern: '*.key', recursive: true, mode: { max: 0o600, item: '1.1.21' } },
    { path: join(dir, 'absent'), recursive: true, owner: { is: ['root:root'], item: '1.1.19' } },
  ];
  const script = cisScript(probes);
  const out = execFileSync('bash', ['-s'], { input: script, encoding: 'utf8' });
  const parsed = parseCisOutput(out);

  it('prints modes, owners and paths only: no file content leaves', () => {
    expect(parsed.complete).toBe(true);
    expect(parsed.failed).toEqual([]);
    expect(out).not.toMatch(/SECRETKEYMATERIAL|BEGIN/);
    for (const line of out.trimEnd().split('\n')) expect(line).toMatch(/^@@cis \d+ [0-7]+ \d+:\d+ \S+:\S+ \/|^@@done$/);
  });

  it('uses only bash, stat and find: no awk, no sed, nothing that reads file content', () => {
    expect(script).not.toMatch(/\b(awk|sed|cat|head|grep|xargs|perl|python)\b/);
  });

  it('follows a plain path through its link, skips links in folders and patterns, and ignores what is absent', () => {
    const seen = (probe: number) => parsed.stats.filter((s) => s.probe === probe).map((s) => s.path.slice(dir.length + 1)).sort();
    expect(seen(0)).toEqual(['pki', 'pki/ca.crt', 'pki/ca.key', 'pki/etcd', 'pki/etcd/ca.crt', "pki/it's odd.key"]);
    expect(seen(1)).toEqual(['pki/ca.crt', 'pki/etcd/ca.crt']);
    expect(seen(3)).toEqual(['kubelet-client-2025.pem']);
    expect(seen(5)).toEqual(['kubelet-client-current.pem']);
    expect(parsed.stats.find((s) => s.probe === 5)?.mode).toBe(0o644);
    expect(seen(6)).toEqual([]);
    expect(seen(7)).toEqual([]);
    expect(seen(8)).toEqual([]);
  });

  it('the deviations of that tree', () => {
    const d = evaluateCis('n', probes, parsed.stats).map((x) => `${x.item} ${x.path.slice(dir.length + 1)} ${x.found}`);
    expect(d.filter((x) => !x.startsWith('1.1.19'))).toEqual([
      '1.1.13 admin.conf 0644',
      '1.1.21 kubelet-client-2025.pem 0644',
      '4.1.x kubelet-client-current.pem 0644',
      '1.1.20 pki/etcd/ca.crt 0666',
      "1.1.21 pki/it's odd.key 0640",
    ]);
    // Nobody owns these files as nobody-here: every entry under pki is an owner deviation.
    expect(d.filter((x) => x.startsWith('1.1.19'))).toHaveLength(6);
  });

  it('a cut-short output is noticed', () => {
    expect(parseCisOutput(out.replace('@@done\n', '')).complete).toBe(false);
    expect(parseCisOutput('@@cis-error\t/x/pki\n@@done\n')).toEqual({ stats: [], failed: ['/x/pki'], complete: true });
  });
});

describe('runCheck with --cis, over a test double', () => {
  const inv = requireKnownOs(loadInventory(join(PACKAGE_ROOT, 'examples', 'lab', 'inventory.yaml')), 'test');
  const plans = planCheck(inv, new ProfileSet(), loadCheckRunbook(), loadCisRunbook()).map((p) => ({ ...p, endpoints: [] }));
  const run = (cisOut: (node: string) => { code: number; stdout: string }) => {
    const scripts: Record<string, string[]> = {};
    const connector: Connector = {
      connect: async (node) => {
        const session: NodeSession = {
          node,
          exec: async (_cmd, opts) => {
            (scripts[node.name] ??= []).push(opts?.stdin ?? '');
            if (opts?.stdin?.includes('rc_cis_')) return { ...cisOut(node.name), stderr: 'boom' };
            return { code: 0, stdout: '@@done\n', stderr: '' };
          },
          close: async () => {},
        };
        return session;
      },
    };
    return runCheck(inv, plans, { connector, clock: { now: () => new Date('2026-01-01T00:00:00Z') }, concurrency: 4, warnDays: 30 }).then((report) => ({ report, scripts }));
  };

  it('runs the second script on the same session, reports deviations per node, and exits 1', async () => {
    const { report, scripts } = await run((node) => ({
      code: 0,
      stdout:
        node === 'lab-cp-1'
          ? '@@cis 4 644 0:0 root:root /etc/kubernetes/admin.conf\n@@cis 10 644 0:0 root:root /etc/kubernetes/pki/apiserver.key\n@@done\n'
          : node === 'lab-md-2'
            ? '@@cis 0 600 1000:0 ec2-user:root /etc/kubernetes/kubelet/kubeconfig\n@@done\n'
            : '@@done\n',
    }));
    expect(scripts['lab-cp-1']).toHaveLength(2);
    expect(scripts['lab-md-2']![1]).toContain('rc_cis_path 0 /etc/kubernetes/kubelet/kubeconfig');
    expect(report.errors.filter((e) => !/missing/.test(e.message))).toEqual([]);
    expect(report.cis).toEqual([
      { node: 'lab-cp-1', path: '/etc/kubernetes/admin.conf', item: '1.1.13', expected: '0600 or stricter', found: '0644' },
      { node: 'lab-cp-1', path: '/etc/kubernetes/pki/apiserver.key', item: '1.1.21', expected: '0600 or stricter', found: '0644' },
      { node: 'lab-md-2', path: '/etc/kubernetes/kubelet/kubeconfig', item: '4.1.6', expected: 'root:root', found: 'ec2-user:root' },
    ]);
    expect(checkExitCode({ ...report, errors: [] })).toBe(1);
    expect(checkExitCode({ ...report, errors: [], cis: [] })).toBe(0);
  });

  it('a failing or cut-short CIS read is an error for that node (exit 3)', async () => {
    const { report } = await run((node) => (node === 'lab-etcd-2' ? { code: 1, stdout: '' } : node === 'lab-md-1' ? { code: 0, stdout: '@@cis 0 600 0:0 root:root /x\n' } : { code: 0, stdout: '@@done\n' }));
    const errs = report.errors.filter((e) => /mode/.test(e.message));
    expect(errs).toEqual([
      { node: 'lab-etcd-2', message: 'reading file modes as root failed (exit 1): boom' },
      { node: 'lab-md-1', message: 'the file mode read (--cis) was cut short; some deviations may be missing from this report' },
    ]);
    expect(checkExitCode(report)).toBe(3);
  });

  it('without --cis the report has no cis field and no second script runs', async () => {
    const plain = planCheck(inv, new ProfileSet(), loadCheckRunbook()).map((p) => ({ ...p, endpoints: [] }));
    expect(plain.every((p) => p.cis === undefined)).toBe(true);
    const report = await runCheck(inv, plain, {
      connector: { connect: async (node) => ({ node, exec: async () => ({ code: 0, stdout: '@@done\n', stderr: '' }), close: async () => {} }) },
      clock: { now: () => new Date() },
      concurrency: 2,
      warnDays: 30,
    });
    expect('cis' in report).toBe(false);
  });
});

describe('check --cis --dry-run', () => {
  it('prints both root scripts per node and contacts nothing', async () => {
    const { runCli } = await import('../../src/cli/program.js');
    let out = '';
    let contacted = 0;
    const code = await runCli(['check', '-i', join('examples', 'lab', 'inventory.yaml'), '--cis', '--dry-run'], { out: (t) => void (out += t), err: () => {}, color: false, env: {}, cwd: PACKAGE_ROOT }, {
      connector: {
        connect: () => {
          contacted++;
          return Promise.reject(new Error('must not connect'));
        },
      },
    });
    expect(code).toBe(0);
    expect(contacted).toBe(0);
    expect(out).toContain('rc_file /etc/etcd/pki/server.crt required');
    expect(out).toContain("rc_cis_match 2 /etc/etcd/pki '*.crt' any");
    expect(out).toContain('rc_cis_path 0 /etc/kubernetes/kubelet/kubeconfig'); // the Bottlerocket worker
    expect(out.match(/sudo sheltie <<'ROTATE_CERTS'/g)).toHaveLength(2);
  });
});
