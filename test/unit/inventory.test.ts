import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadInventory, parseInventory } from '../../src/inventory/load.js';
import { parseOsProbe, requireKnownOs, withDetected } from '../../src/profiles/detect-os.js';
import { LoadError, UsageError } from '../../src/util/errors.js';

const FILE = '/inv/lab.yaml';
const base = `cluster: lab
ssh:
  user: capv
  identityFile: id_ed25519
controlPlane:
  - { name: lab-cp-1, host: 10.200.0.21 }
`;

function errorOf(text: string): LoadError {
  try {
    parseInventory(text, FILE, { home: '/home/u' });
  } catch (err) {
    if (err instanceof LoadError) return err;
    throw err;
  }
  throw new Error('expected a LoadError');
}

describe('inventory: valid files', () => {
  it('resolves defaults, relative paths and per-node overrides', () => {
    const inv = parseInventory(
      `cluster: lab
kubeconfig: lab-eks-a-cluster.kubeconfig
ssh:
  user: capv
  identityFile: id_ed25519
  knownHostsFile: known_hosts
  jumpHost: jump@bastion.example:2222
os: ubuntu
etcd:
  - { name: lab-etcd-1, host: 10.200.0.11 }
controlPlane:
  - { name: lab-cp-1, host: 10.200.0.21 }
workers:
  - { name: lab-md-1, host: 10.200.0.31, os: bottlerocket, ssh: { user: ec2-user, port: 2200 } }
`,
      FILE,
    );
    expect(inv.cluster).toBe('lab');
    expect(inv.kubeconfig).toBe('/inv/lab-eks-a-cluster.kubeconfig');
    expect(inv.externalEtcd).toBe(true);
    expect(inv.nodes.map((n) => [n.name, n.role, n.os])).toEqual([
      ['lab-etcd-1', 'etcd', 'ubuntu'],
      ['lab-cp-1', 'control-plane', 'ubuntu'],
      ['lab-md-1', 'worker', 'bottlerocket'],
    ]);
    const worker = inv.nodes[2]!;
    expect(worker.ssh).toMatchObject({ user: 'ec2-user', port: 2200, identityFile: '/inv/id_ed25519', knownHostsFile: '/inv/known_hosts', hostKeyPolicy: 'strict' });
    expect(worker.ssh.jumpHost).toEqual({ user: 'jump', host: 'bastion.example', port: 2222 });
    expect(inv.nodes[0]!.ssh.user).toBe('capv');
  });

  it('defaults known_hosts to ~/.ssh/known_hosts and has no etcd when none is listed', () => {
    const inv = parseInventory(base, FILE, { home: '/home/u' });
    expect(inv.nodes[0]!.ssh.knownHostsFile).toBe('/home/u/.ssh/known_hosts');
    expect(inv.externalEtcd).toBe(false);
    expect(inv.nodes[0]!.ssh.connectTimeoutMs).toBe(10_000);
  });

  it('takes the SSH user from each node when there is no ssh.user for all of them', () => {
    const inv = parseInventory('cluster: lab\ncontrolPlane:\n  - { name: lab-cp-1, host: 10.200.0.21, ssh: { user: capv } }\nworkers:\n  - { name: lab-md-1, host: 10.200.0.31, ssh: { user: ec2-user } }\n', FILE);
    expect(inv.nodes.map((n) => n.ssh.user)).toEqual(['capv', 'ec2-user']);
  });

  it('accepts IPv6 hosts and host names', () => {
    const inv = parseInventory(base.replace('10.200.0.21', 'fd00::21') + '  - { name: lab-cp-2, host: cp2.example.internal }\n', FILE);
    expect(inv.nodes.map((n) => n.host)).toEqual(['fd00::21', 'cp2.example.internal']);
  });
});

describe('inventory: every error names the file, the line and the field', () => {
  const cases: Array<[string, string, RegExp, number | undefined]> = [
    ['malformed YAML', 'cluster: lab\ncontrolPlane: [ {name: a\n', /not valid YAML/, undefined],
    ['empty file', '', /empty/, undefined],
    ['not a mapping', '- a\n- b\n', /expected a mapping/, 1],
    ['missing cluster', base.replace('cluster: lab\n', ''), /cluster: required field is missing/, 1],
    ['cluster not a DNS label', base.replace('cluster: lab', 'cluster: Lab_1'), /cluster: "Lab_1" is not a DNS label/, 1],
    ['unknown top-level field', base + 'extra: 1\n', /extra: unknown field \(known fields: cluster/, 7],
    ['unknown node field', base.replace('host: 10.200.0.21 }', 'host: 10.200.0.21, role: x }'), /controlPlane\[0\]\.role: unknown field/, 6],
    ['unknown ssh field', base.replace('  user: capv\n', '  user: capv\n  password: x\n'), /ssh\.password: unknown field/, 4],
    ['missing control plane', 'cluster: lab\n', /controlPlane: required field is missing/, 1],
    ['empty control plane', 'cluster: lab\ncontrolPlane: []\n', /controlPlane: needs at least 1 entry/, 2],
    ['unknown OS', base + 'os: windows\n', /os: expected one of ubuntu, rhel, bottlerocket, auto, got "windows"/, 7],
    ['node name with shell metacharacters', base.replace('name: lab-cp-1', 'name: "x;touch /tmp/pwned"'), /controlPlane\[0\]\.name: "x;touch \/tmp\/pwned" is not a node name/, 6],
    ['host with command substitution', base.replace('host: 10.200.0.21', 'host: "$(id)"'), /controlPlane\[0\]\.host: "\$\(id\)" is not an IP address or a host name/, 6],
    ['host with a newline', base.replace('host: 10.200.0.21', 'host: "a\\nb"'), /controlPlane\[0\]\.host:/, 6],
    ['host with quotes', base.replace('host: 10.200.0.21', `host: "a'b"`), /controlPlane\[0\]\.host:/, 6],
    ['user with shell metacharacters', base.replace('user: capv', 'user: "root;id"'), /ssh\.user: "root;id" is not a user name/, 3],
    ['port out of range', base + '', /./, undefined],
    ['bad host key policy', base.replace('  user: capv\n', '  user: capv\n  hostKeyPolicy: yes-please\n'), /ssh\.hostKeyPolicy: expected one of strict, accept-new/, 4],
    ['bad jump host', base.replace('  user: capv\n', '  user: capv\n  jumpHost: "bastion;id"\n'), /ssh\.jumpHost: "bastion;id" is not user@host/, 4],
    ['duplicate node names', base + '  - { name: lab-cp-1, host: 10.200.0.22 }\n', /controlPlane\[1\]\.name: node name "lab-cp-1" is already used by controlPlane\[0\]/, 7],
    ['duplicate hosts', base + '  - { name: lab-cp-2, host: 10.200.0.21 }\n', /controlPlane\[1\]\.host: host 10\.200\.0\.21 is already used/, 7],
    ['a list where a node is expected', base + 'workers: [ [a] ]\n', /workers\[0\]: expected a node/, 7],
    ['a string where a list is expected', base + 'etcd: lab-etcd-1\n', /etcd: expected a list/, 7],
    ['duplicate key', base + 'cluster: other\n', /cluster: given twice/, 7],
    // No default user: EKS Anywhere's differs by provider and OS, and a guess fails on every node later.
    ['no ssh.user', base.replace('  user: capv\n', ''), /:2: ssh\.user: required field is missing \(the user to log in as on every node: spec\.users\[0\]\.name of the cluster's machine configs, e\.g\. capv on vSphere, ec2-user on Bottlerocket; a node may set its own\)$/, 2],
    ['no ssh mapping at all', 'cluster: lab\ncontrolPlane:\n  - { name: lab-cp-1, host: 10.200.0.21 }\n', /:1: ssh\.user: required field is missing/, 1],
    [
      'no ssh.user, and a node without its own',
      base.replace('  user: capv\n', '').replace('host: 10.200.0.21 }', 'host: 10.200.0.21, ssh: { user: capv } }') + 'workers:\n  - { name: lab-md-1, host: 10.200.0.31 }\n',
      /:7: workers\[0\]\.ssh\.user: required field is missing \(no ssh\.user applies to every node: set ssh\.user, or one for this node; e\.g\. capv on vSphere, ec2-user on Bottlerocket\)$/,
      7,
    ],
  ];
  cases[16] = ['port out of range', base.replace('  user: capv\n', '  user: capv\n  port: 70000\n'), /ssh\.port: expected a port number 1-65535, got 70000/, 4];

  for (const [name, text, message, line] of cases) {
    it(name, () => {
      const err = errorOf(text);
      expect(err).toBeInstanceOf(UsageError);
      expect(err.exitCode).toBe(64);
      expect(err.message).toMatch(message);
      expect(err.message.startsWith(FILE)).toBe(true);
      if (line !== undefined) expect(err.line).toBe(line);
      expect(err.message).not.toMatch(/\n/);
    });
  }

  it('a missing or unreadable file is a usage error naming it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rc-inv-'));
    expect(() => loadInventory(join(dir, 'nope.yaml'))).toThrow(/cannot read inventory .*nope\.yaml: no such file/);
    expect(() => loadInventory(dir)).toThrow(/is a folder/);
    const f = join(dir, 'ok.yaml');
    writeFileSync(f, base);
    expect(loadInventory(f).file).toBe(f);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('os: auto', () => {
  const text = `cluster: lab
ssh: { user: capv }
os: auto
controlPlane:
  - { name: lab-cp-1, host: 10.200.0.21 }
workers:
  - { name: lab-md-1, host: 10.200.0.31, os: ubuntu }
`;
  it('tells the OS from the probe: sheltie or /.bottlerocket wins over the admin container os-release', () => {
    expect(parseOsProbe('bottlerocket=yes\nid=amzn\npretty=Amazon Linux 2\n')).toEqual({ os: 'bottlerocket' });
    expect(parseOsProbe('id=ubuntu\npretty=Ubuntu 22.04.3 LTS\n')).toEqual({ os: 'ubuntu' });
    expect(parseOsProbe('id=rhel\npretty=Red Hat Enterprise Linux 8.8 (Ootpa)\n')).toEqual({ os: 'rhel' });
    expect(parseOsProbe('id=amzn\npretty=Amazon Linux 2\n')).toEqual({ unknown: 'Amazon Linux 2 (os-release ID=amzn)' });
    expect(parseOsProbe('')).toEqual({ unknown: 'no /etc/os-release and no Bottlerocket admin container' });
  });
  it('loads as auto per node; --dry-run refuses it naming the nodes; a plan records what was found', () => {
    const spec = parseInventory(text, '/x/inv.yaml');
    expect(spec.nodes.map((n) => n.os)).toEqual(['auto', 'ubuntu']);
    expect(() => requireKnownOs(spec, '--dry-run connects to nothing')).toThrow(/^lab-cp-1 has os: auto, which needs a connection to detect, and --dry-run connects to nothing\. Set os: for it in \/x\/inv\.yaml/);
    expect(withDetected(spec, { 'lab-cp-1': 'bottlerocket' }).nodes.map((n) => n.os)).toEqual(['bottlerocket', 'ubuntu']);
    expect(() => withDetected(spec, {})).toThrow(/lab-cp-1 has os: auto but the plan records no detected OS/);
  });
});
