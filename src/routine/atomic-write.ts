/**
 * A file a monitor reads while we write it: written beside it under a name no collector picks up
 * (node_exporter reads only *.prom), then renamed over it, so a reader sees the old file or the
 * new one, never half of one (rename is atomic within a filesystem).
 */
import { accessSync, chmodSync, constants, existsSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { UsageError, errorMessage } from '../util/errors.js';

/** A folder that exists, or a usage error naming the flag: checked before anything is contacted. */
export function requireFolderOf(flag: string, file: string): void {
  const dir = dirname(file);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`${flag}: the folder ${dir} does not exist; create it (for a textfile: node_exporter's --collector.textfile.directory)`);
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw new UsageError(`${flag}: this user cannot write in ${dir}; give it write access, or name a file in another folder`);
  }
}

export function writeAtomic(flag: string, file: string, text: string): void {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, text, { mode: 0o644 });
    // node_exporter runs as another user and must read it, whatever our umask.
    chmodSync(tmp, 0o644);
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new UsageError(`${flag}: cannot write ${file}: ${errorMessage(err)}`);
  }
}
