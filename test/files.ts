/** Test helper shared by unit and end-to-end tests: the files on this machine under a folder. */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Every file (not folder) under root, recursively, sorted; [] when root does not exist. */
export function filesUnder(root: string): string[] {
  if (!existsSync(root)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(root);
  return out.sort();
}
