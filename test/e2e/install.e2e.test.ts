/**
 * Both ways in, as docs/install.md gives them, each from an empty folder outside the repository:
 * the packed tarball installed with `npm install -g --ignore-scripts` into a temporary prefix
 * (fresh HOME and npm cache; the npm registry is reachable), and the single executable of
 * `npm run build:sea`, run alone with no `node` on PATH: `--version`, the README's dry run, and
 * (the executable) a `check` of a small emulated cluster. Then the installed command takes that
 * cluster from its EKS Anywhere folder to rotated, as the README's quick start does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { versionLine } from '../../src/cli/version.js';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';
import { startLab, type Lab } from '../lab/lab.js';

const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
const LAB_NODES = ['lab-etcd-1', 'lab-etcd-2', 'lab-etcd-3', 'lab-cp-1', 'lab-cp-2', 'lab-md-1', 'lab-md-2'];

/**
 * The environment of a user's shell: nothing npm or vitest set for this run; this machine's way
 * to the registry (proxy, extra CA) kept.
 */
function userEnv(home: string, path: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { HOME: home, PATH: path, LANG: 'C.UTF-8', NO_COLOR: '1' };
  const keep = ['TMPDIR', 'NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'SSL_CERT_DIR', 'http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'no_proxy', 'NO_PROXY'];
  for (const k of keep) if (process.env[k]) env[k] = process.env[k];
  return env;
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeout = 120_000) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Package names under a node_modules folder, nested ones included. */
function installedPackages(nodeModules: string): string[] {
  const names: string[] = [];
  if (!existsSync(nodeModules)) return names;
  for (const e of readdirSync(nodeModules)) {
    if (e.startsWith('.')) continue;
    const dirs = e.startsWith('@') ? readdirSync(join(nodeModules, e)).map((s) => `${e}/${s}`) : [e];
    for (const name of dirs) names.push(name, ...installedPackages(join(nodeModules, name, 'node_modules')));
  }
  return names;
}

/** The example cluster's folder copied outside the repository: the README's dry run reads it. */
function exampleCluster(dir: string): string {
  cpSync(join(PACKAGE_ROOT, 'examples', 'lab'), dir, { recursive: true });
  return join(dir, 'inventory.yaml');
}

function expectDryRun(r: { code: number | null; out: string; err: string }): void {
  expect(r.code, r.err).toBe(0);
  expect(r.err).toBe('');
  for (const n of LAB_NODES) expect(r.out).toContain(`\n  ${n} (`);
}

describe('install: npm tarball and single executable, outside the repository', () => {
  let tmp: string;
  /** The installed rotate-certs command and the PATH it was run with. */
  let installedBin: string;
  let userPath: string;
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'rc-install-'));
  });
  afterAll(() => {
    rmSync(tmp, { recursive: true, force: true });
  });

  it('npm install -g --ignore-scripts of the packed tarball prints no warning, installs no devDependency, and works from any folder', () => {
    const home = join(tmp, 'home');
    const prefix = join(tmp, 'prefix');
    const empty = join(tmp, 'empty');
    for (const d of [home, prefix, empty]) mkdirSync(d, { recursive: true });
    const path = `${dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`;

    // npm pack runs prepack (the build): the tarball ships dist/.
    const pack = run('npm', ['pack', '--pack-destination', tmp], PACKAGE_ROOT, { ...userEnv(home, path), npm_config_cache: join(home, '.npm') });
    expect(pack.code, pack.err).toBe(0);
    const tarball = join(tmp, pack.out.trim().split('\n').at(-1)!);
    const packed = versionLine(); // of the files packed (others may edit the tree meanwhile)
    expect(existsSync(tarball), pack.out).toBe(true);

    // The command of docs/install.md, run by a user with an empty npm cache.
    const install = run('npm', ['install', '-g', '--ignore-scripts', '--prefix', prefix, tarball], empty, userEnv(home, path));
    expect(install.code, install.out + install.err).toBe(0);
    expect(`${install.out}\n${install.err}`).not.toMatch(/warn/i);

    const lib = join(prefix, 'lib', 'node_modules', 'rotate-certs');
    const installed = installedPackages(join(lib, 'node_modules'));
    expect(installed).toContain('ssh2');
    for (const dev of Object.keys(pkg.devDependencies)) expect(installed, `devDependency ${dev} installed`).not.toContain(dev);
    // ssh2's native binding was not built: it runs on its JavaScript paths.
    expect(existsSync(join(lib, 'node_modules', 'ssh2', 'lib', 'protocol', 'crypto', 'build'))).toBe(false);

    const bin = join(prefix, 'bin', 'rotate-certs');
    installedBin = bin;
    userPath = path;
    const version = run(bin, ['--version'], empty, userEnv(home, path));
    expect(version.code, version.err).toBe(0);
    expect(version.out).toBe(`${packed}\n`);

    const inventory = exampleCluster(join(tmp, 'npm-cluster'));
    expectDryRun(run(bin, ['rotate', '--inventory', inventory, '--dry-run'], empty, userEnv(home, path)));
  });

  describe('the single executable, alone, with no node on PATH', () => {
    let lab: Lab;
    let exe: string;
    let folder: string;
    let env: NodeJS.ProcessEnv;
    let built: string;
    beforeAll(async () => {
      execFileSync('npm', ['run', 'build:sea'], { cwd: PACKAGE_ROOT, stdio: 'pipe' });
      built = versionLine();
      // The checksum file docs/install.md verifies the download with.
      execFileSync('sha256sum', ['--check', '--status', 'rotate-certs.sha256'], { cwd: join(PACKAGE_ROOT, 'dist-sea') });
      folder = join(tmp, 'sea');
      mkdirSync(folder);
      exe = join(folder, 'rotate-certs');
      copyFileSync(join(PACKAGE_ROOT, 'dist-sea', 'rotate-certs'), exe);
      const bin = join(tmp, 'sea-bin'); // a PATH with nothing on it
      mkdirSync(bin);
      mkdirSync(join(tmp, 'sea-home'));
      env = userEnv(join(tmp, 'sea-home'), bin);
      lab = await startLab({ etcd: 1, controlPlane: 1, workers: 0 });
    });
    afterAll(async () => {
      await lab?.down();
    });

    it('there is no node on that PATH', () => {
      expect(run('/bin/sh', ['-c', 'command -v node'], folder, env).code).not.toBe(0);
      expect(readdirSync(folder)).toEqual(['rotate-certs']);
    });

    it('--version: the same line as the npm package (version and runbook revision)', () => {
      const r = run(exe, ['--version'], folder, env);
      expect(r.code, r.err).toBe(0);
      expect(r.err).toBe('');
      expect(r.out).toBe(`${built}\n`);
      expect(r.out).toMatch(/^rotate-certs \d+\.\d+\.\d+\S* \(runbooks [0-9a-f]{12}\)\n$/);
    });

    it("the README's dry run, from its embedded runbooks and OS profiles", () => {
      const inventory = exampleCluster(join(tmp, 'sea-cluster'));
      expectDryRun(run(exe, ['rotate', '--inventory', inventory, '--dry-run'], folder, env));
    });

    it('check of the emulated cluster reads the certificates of every node over SSH (ssh2 without its native parts)', async () => {
      const r = run(exe, ['check', '--inventory', lab.inventoryPath, '--output', 'json'], folder, env, 120_000);
      expect([0, 1], r.err).toContain(r.code);
      expect(r.err).toBe('');
      const report = JSON.parse(r.out) as { errors: unknown[]; certificates: Array<{ node: string; source: string; path: string; notAfter: string }> };
      expect(report.errors).toEqual([]);
      expect(lab.nodes.map((n) => n.name).sort()).toEqual(['lab-cp-1', 'lab-etcd-1']);
      for (const n of lab.nodes) {
        const read = report.certificates.filter((c) => c.node === n.name && c.source !== 'endpoint');
        expect(read.length, `certificates read on ${n.name}`).toBeGreaterThan(0);
      }
      // The dates are the ones the node holds.
      const file = '/etc/etcd/pki/server.crt';
      const held = new X509Certificate(await lab.node('lab-etcd-1').readFile(file));
      const reported = report.certificates.find((c) => c.node === 'lab-etcd-1' && c.path === file);
      expect(reported, `${file} of lab-etcd-1 in the report`).toBeDefined();
      expect(new Date(reported!.notAfter).getTime()).toBe(new Date(held.validTo).getTime());
    });

    it('the installed command, from a copy of the EKS Anywhere folder and a fresh HOME: inventory --write, trust --accept-new, check, plan --dry-run, rotate --yes', async () => {
      expect(installedBin, 'the npm install test ran first').toBeDefined();
      const parent = join(tmp, 'eksa');
      mkdirSync(parent);
      await lab.writeEksaFolder(parent);
      const home = join(tmp, 'eksa-home');
      mkdirSync(home);
      const env = userEnv(home, userPath);
      const rc = (args: string[]) => run(installedBin, args, parent, env, 240_000);
      const before = new X509Certificate(await lab.node('lab-cp-1').readFile('/etc/kubernetes/pki/apiserver.crt'));

      const inv = rc(['inventory', '--cluster', 'lab', '--write']);
      expect(inv.code, inv.err).toBe(0);
      expect(existsSync(join(parent, 'lab', 'rotate-certs.yaml'))).toBe(true);
      const trust = rc(['trust', '--cluster', 'lab', '--accept-new']);
      expect(trust.code, trust.out + trust.err).toBe(0);
      expect(readFileSync(join(home, '.ssh', 'known_hosts'), 'utf8').trim().split('\n')).toHaveLength(lab.nodes.length);
      const check = rc(['check', '--cluster', 'lab']);
      expect([0, 1], check.out + check.err).toContain(check.code);
      const dry = rc(['plan', '--cluster', 'lab', '--dry-run']);
      expect(dry.code, dry.err).toBe(0);
      for (const n of lab.nodes) expect(dry.out).toContain(`\n  ${n.name} (`);
      const rotate = rc(['rotate', '--cluster', 'lab', '--yes', '--state-dir', join(home, 'state')]);
      expect(rotate.err).not.toMatch(/FAILED/);
      expect(rotate.code, rotate.out + rotate.err).toBe(0);
      const after = new X509Certificate(await lab.node('lab-cp-1').readFile('/etc/kubernetes/pki/apiserver.crt'));
      expect(after.serialNumber).not.toBe(before.serialNumber);
      expect(new Date(after.validTo).getTime()).toBeGreaterThan(new Date(before.validTo).getTime());
    });
  });
});
