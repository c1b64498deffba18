/**
 * The README's first command on a fresh copy of this tree (the files git would clone, edits
 * included): `npm ci && npx rotate-certs rotate --inventory examples/lab/inventory.yaml --dry-run`
 * prints no warning, builds the binary, and the dry run names every node. npm runs with
 * --prefer-offline, so it takes the packages from the cache `npm ci` of this tree filled and needs
 * no network beyond what that needed. No lab: nothing is contacted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';

const NPX_CACHE = join(process.env.npm_config_cache ?? join(homedir(), '.npm'), '_npx');

/** npm or npx in the copy, as a user's shell runs it; stdout and stderr together, as they would see. */
function npm(cmd: 'npm' | 'npx', args: string[], cwd: string) {
  const r = spawnSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, npm_config_prefer_offline: 'true', npm_config_fund: 'false', NO_COLOR: '1' },
    timeout: 300_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe("the README's first command on a fresh copy", () => {
  let copy: string;
  const npxBefore = existsSync(NPX_CACHE) ? new Set(readdirSync(NPX_CACHE)) : new Set<string>();
  beforeAll(() => {
    copy = mkdtempSync(join(tmpdir(), 'rc-fresh-'));
    const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: PACKAGE_ROOT, encoding: 'utf8' }).split('\0').filter(Boolean);
    for (const f of files) {
      if (!existsSync(join(PACKAGE_ROOT, f))) continue; // deleted in the work tree, not yet committed
      mkdirSync(dirname(join(copy, f)), { recursive: true });
      cpSync(join(PACKAGE_ROOT, f), join(copy, f));
    }
  });
  afterAll(() => {
    rmSync(copy, { recursive: true, force: true });
    // npx links a local package's bin through its cache: drop what it made for the copy.
    for (const d of existsSync(NPX_CACHE) ? readdirSync(NPX_CACHE) : []) {
      const manifest = join(NPX_CACHE, d, 'package.json');
      if (!npxBefore.has(d) && existsSync(manifest) && readFileSync(manifest, 'utf8').includes(JSON.stringify(copy))) rmSync(join(NPX_CACHE, d), { recursive: true, force: true });
    }
  });

  it('npm ci prints no warning and builds an executable binary; the dry run names every node and warns about nothing', () => {
    const ci = npm('npm', ['ci'], copy);
    expect(ci.code, ci.out + ci.err).toBe(0);
    expect(`${ci.out}${ci.err}`).not.toMatch(/\bwarn/i);
    // No dependency built anything: ssh2 runs on its pure-JavaScript paths.
    expect(existsSync(join(copy, 'node_modules', 'ssh2', 'lib', 'protocol', 'crypto', 'build'))).toBe(false);
    expect(statSync(join(copy, 'dist', 'cli', 'main.js')).mode & 0o111).not.toBe(0);

    const dry = npm('npx', ['rotate-certs', 'rotate', '--inventory', 'examples/lab/inventory.yaml', '--dry-run'], copy);
    expect(dry.code, dry.err).toBe(0);
    expect(dry.err).toBe('');
    for (const n of ['lab-etcd-1', 'lab-etcd-2', 'lab-etcd-3', 'lab-cp-1', 'lab-cp-2', 'lab-md-1', 'lab-md-2']) expect(dry.out).toContain(`\n  ${n} (`);
  });

  it('a rebuilt binary stays runnable through npx (the build makes it executable)', () => {
    rmSync(join(copy, 'dist'), { recursive: true, force: true });
    const build = npm('npm', ['run', 'build'], copy);
    expect(build.code, build.out + build.err).toBe(0);
    const version = npm('npx', ['rotate-certs', '--version'], copy);
    expect(version.code, version.err).toBe(0);
    const v = JSON.parse(readFileSync(join(copy, 'package.json'), 'utf8')).version as string;
    expect(version.out.trim()).toMatch(new RegExp(`^rotate-certs ${v.replaceAll('.', '\\.')} \\(runbooks [0-9a-f]{12}\\)$`));
  });
});
