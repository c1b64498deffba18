/**
 * `rotate-certs --version`: the package version and the revision of the runbooks and OS profiles
 * it would run, so two installs (npm package, single executable) can be compared at a glance.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { listPackageFolder, readPackageFile } from '../util/package-files.js';
import { PACKAGE_ROOT } from '../util/package-root.js';

/** The folders whose files make the runbook revision. */
export const REVISION_FOLDERS = ['os-profiles', 'runbooks'] as const;

/**
 * The first 12 hex digits of the sha256 of `sha256sum`'s listing of the runbook files, so a user
 * can recompute it in the package folder: `LC_ALL=C sha256sum os-profiles/* runbooks/* | sha256sum`.
 */
export function runbookRevision(root = PACKAGE_ROOT): string {
  let listing = '';
  for (const folder of REVISION_FOLDERS) {
    for (const name of listPackageFolder(join(root, folder))) {
      const digest = createHash('sha256').update(readPackageFile(join(root, folder, name))).digest('hex');
      listing += `${digest}  ${folder}/${name}\n`;
    }
  }
  return createHash('sha256').update(listing).digest('hex').slice(0, 12);
}

/** `rotate-certs 0.1.0 (runbooks 1a2b3c4d5e6f)` */
export function versionLine(root = PACKAGE_ROOT): string {
  const { version } = JSON.parse(readPackageFile(join(root, 'package.json'))) as { version: string };
  return `rotate-certs ${version} (runbooks ${runbookRevision(root)})`;
}
