/**
 * `rotate-certs --version`: the package version and the runbook revision, which a user can
 * recompute with sha256sum (docs/install.md), and which follows every runbook and profile file.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../src/cli/program.js';
import { runbookRevision, versionLine } from '../../src/cli/version.js';
import { listPackageFolder } from '../../src/util/package-files.js';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';

const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };

/** A copy of the package's versioned files, to change. */
function packageCopy(): string {
  const root = mkdtempSync(join(tmpdir(), 'rc-version-'));
  for (const f of ['package.json', 'runbooks', 'os-profiles']) cpSync(join(PACKAGE_ROOT, f), join(root, f), { recursive: true });
  return root;
}

/** The command docs/install.md gives for the revision. */
function shellRevision(root: string): string {
  return execFileSync('bash', ['-c', 'LC_ALL=C sha256sum os-profiles/* runbooks/* | sha256sum | cut -c1-12'], { cwd: root, encoding: 'utf8' }).trim();
}

describe('--version', () => {
  it('prints one line: the version of package.json and the runbook revision, exit 0', async () => {
    let out = '';
    let err = '';
    const code = await runCli(['--version'], { out: (t) => void (out += t), err: (t) => void (err += t), color: false, env: {}, cwd: PACKAGE_ROOT });
    expect(code).toBe(0);
    expect(err).toBe('');
    expect(out).toMatch(new RegExp(`^rotate-certs ${pkg.version.replaceAll('.', '\\.')} \\(runbooks [0-9a-f]{12}\\)\\n$`));
    expect(out).toBe(`${versionLine()}\n`);
  });

  it('the revision is what sha256sum of the runbooks and OS profiles gives, as docs/install.md says', () => {
    const root = packageCopy();
    try {
      expect(runbookRevision(root)).toBe(shellRevision(root));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('changes with any runbook or profile file: edited, added or removed', () => {
    const root = packageCopy();
    try {
      const seen = new Set([runbookRevision(root)]);
      appendFileSync(join(root, 'runbooks', 'etcd.yaml'), '# edited\n');
      seen.add(runbookRevision(root));
      writeFileSync(join(root, 'os-profiles', 'extra.yaml'), 'os: extra\n');
      seen.add(runbookRevision(root));
      rmSync(join(root, 'runbooks', 'cis.yaml'));
      seen.add(runbookRevision(root));
      expect(seen.size).toBe(4);
      expect(runbookRevision(root)).toBe(shellRevision(root));
      // The version comes from the package.json beside them.
      writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'rotate-certs', version: '9.8.7' }));
      expect(versionLine(root)).toBe(`rotate-certs 9.8.7 (runbooks ${runbookRevision(root)})`);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('package folders list their files only, sorted as sha256sum sees them under LC_ALL=C', () => {
    const root = packageCopy();
    try {
      cpSync(join(root, 'runbooks', 'etcd.yaml'), join(root, 'runbooks', 'etcd-a.yaml'));
      cpSync(join(root, 'os-profiles'), join(root, 'runbooks', 'sub'), { recursive: true });
      const names = listPackageFolder(join(root, 'runbooks'));
      expect(names).not.toContain('sub');
      expect(names.indexOf('etcd-a.yaml')).toBeLessThan(names.indexOf('etcd.yaml'));
      expect(names).toEqual([...names].sort());
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
