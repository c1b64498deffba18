/**
 * The package's own files (runbooks/, os-profiles/, package.json): read from the package folder,
 * or, inside the single executable, from the assets embedded in it. Every read of them goes
 * through here, so the npm package and the executable run the same code on the same files.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { isAbsolute, relative, sep } from 'node:path';
import { getAsset, isSea } from 'node:sea';
import { PACKAGE_ROOT } from './package-root.js';

/**
 * The embedded asset that lists every other asset's key (scripts/build-sea.mjs writes it):
 * Node 20 cannot list a single executable's assets.
 */
export const ASSET_INDEX = 'package-files.json';

/** The asset key (path in the package, with /) of a path under PACKAGE_ROOT, inside the executable only. */
function assetKey(path: string): string | undefined {
  if (!isSea()) return undefined;
  const rel = relative(PACKAGE_ROOT, path);
  // Any other path (a test's own runbook folder) is a real file.
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return undefined;
  return rel.split(sep).join('/');
}

/** A package file's text; throws when there is no such file, as readFileSync does. */
export function readPackageFile(path: string): string {
  const key = assetKey(path);
  return key === undefined ? readFileSync(path, 'utf8') : getAsset(key, 'utf8');
}

/** The names of the files in a package folder, sorted. */
export function listPackageFolder(dir: string): string[] {
  const key = assetKey(dir);
  if (key === undefined) {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => e.name)
      .sort();
  }
  const prefix = `${key}/`;
  return embeddedKeys()
    .filter((k) => k.startsWith(prefix) && !k.slice(prefix.length).includes('/'))
    .map((k) => k.slice(prefix.length))
    .sort();
}

let keys: string[] | undefined;
function embeddedKeys(): string[] {
  keys ??= JSON.parse(getAsset(ASSET_INDEX, 'utf8')) as string[];
  return keys;
}
