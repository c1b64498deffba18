/**
 * npm's install-script policy for this package (npm 11: package.json allowScripts). Every
 * dependency the lock file says has an install script has an entry, so `npm ci` runs none it was
 * not told about and prints no "install-scripts ... not yet covered by allowScripts" warning. The
 * whole README command is run in test/e2e/fresh-clone.e2e.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';
import { filesUnder } from '../files.js';

const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { allowScripts?: Record<string, boolean>; bin: Record<string, string>; scripts: Record<string, string> };
const lock = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string; hasInstallScript?: boolean; dev?: boolean }> };

describe('install scripts', () => {
  const withScripts = Object.entries(lock.packages)
    .filter(([path, p]) => path !== '' && p.hasInstallScript)
    .map(([path, p]) => ({ name: path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length), version: p.version }));

  it('every dependency with an install script is decided in allowScripts (name or name@version)', () => {
    expect(withScripts.length).toBeGreaterThan(0);
    for (const { name, version } of withScripts) {
      const entry = pkg.allowScripts?.[name] ?? pkg.allowScripts?.[`${name}@${version}`];
      expect(entry, `${name}@${version} has an install script and no allowScripts entry`).toBeTypeOf('boolean');
    }
  });

  it('none of them runs: ssh2 (and its optional cpu-features) and esbuild work without their build steps', () => {
    expect(pkg.allowScripts).toEqual({ ssh2: false, 'cpu-features': false, esbuild: false });
  });
});

describe('installing the packed tarball (npm install -g, docs/install.md)', () => {
  it('runs no script of rotate-certs: dist/ is built when packing (prepack), and npm ci in the repository builds it (dependencies)', () => {
    // A tarball is no registry package: npm would list its prepare, like install scripts, as unreviewed.
    for (const s of ['preinstall', 'install', 'postinstall', 'prepare']) expect(pkg.scripts[s], `scripts.${s}`).toBeUndefined();
    expect(pkg.scripts.prepack).toBe('npm run build');
    expect(pkg.scripts.dependencies).toBe('npm run build');
    expect(pkg.bin['rotate-certs']).toBe('dist/cli/main.js');
  });

  it('the single executable\'s build tools (esbuild, postject) are pinned to exact versions, as the lock has them', () => {
    const dev = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies;
    for (const name of ['esbuild', 'postject']) {
      expect(dev[name], name).toMatch(/^\d+\.\d+\.\d+(-[\w.]+)?$/);
      expect(lock.packages[`node_modules/${name}`]?.version, `${name} in package-lock.json`).toBe(dev[name]);
    }
    expect(pkg.scripts['build:sea']).toBe('node scripts/build-sea.mjs');
  });
});

describe('runtime dependencies', () => {
  const deps = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };

  /** The packages src/ loads at run time: import and export ... from, import(), not `import type`. */
  function runtimeImports(): Set<string> {
    const found = new Set<string>();
    for (const file of filesUnder(join(PACKAGE_ROOT, 'src')).filter((f) => f.endsWith('.ts'))) {
      const text = readFileSync(file, 'utf8');
      const specifiers = [
        ...[...text.matchAll(/^\s*(?:import|export)\s+(?!type\s)(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm)].map((m) => m[1]!),
        ...[...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]!),
      ];
      for (const s of specifiers) {
        if (s.startsWith('.') || s.startsWith('node:')) continue;
        found.add(s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!);
      }
    }
    return found;
  }

  it('are exactly what src/ imports: anything only tests use is a devDependency', () => {
    expect(Object.keys(deps.dependencies).sort()).toEqual([...runtimeImports()].sort());
  });

  it('the certificate libraries the tests build certificates with are devDependencies', () => {
    for (const name of ['@peculiar/x509', 'reflect-metadata']) {
      expect(deps.dependencies[name], name).toBeUndefined();
      expect(deps.devDependencies[name], name).toBeDefined();
      expect(lock.packages[`node_modules/${name}`], `${name} in package-lock.json`).toMatchObject({ dev: true });
    }
  });
});
