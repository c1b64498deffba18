/**
 * The read-only root script `check --cis` runs on a node, and the parser for what it prints. It
 * prints, per file, only its mode bits, owner (ids and names) and path: no file content leaves
 * the node. Plain bash, coreutils stat and find; no awk (Bottlerocket hosts may lack it).
 */
import { shq } from '../util/shell.js';
import type { CisProbe, CisStat } from './cis.js';

// Each line: @@cis PROBE MODE UID:GID USER:GROUP PATH (the path last: it may hold spaces).
const FUNCTIONS = String.raw`set -uo pipefail
rc_cis_fmt() { printf '@@cis %s %%a %%u:%%g %%U:%%G %%n' "$1"; }
rc_cis_fail() { printf '@@cis-error\t%s\n' "$1"; }
# One path, through a symbolic link; absent is fine.
rc_cis_path() {
  if [ -e "$2" ]; then stat -L -c "$(rc_cis_fmt "$1")" -- "$2" || rc_cis_fail "$2"; fi
}
# A folder and everything below it, symbolic links left out.
rc_cis_tree() {
  if [ -e "$2" ]; then find -H "$2" ! -type l -exec stat -c "$(rc_cis_fmt "$1")" -- {} + || rc_cis_fail "$2"; fi
}
# Regular files named like $3 in folder $2: directly in it ($4 = 1) or at any depth ($4 = any).
rc_cis_match() {
  [ -d "$2" ] || return 0
  if [ "$4" = 1 ]; then
    find -H "$2" -mindepth 1 -maxdepth 1 -type f -name "$3" -exec stat -c "$(rc_cis_fmt "$1")" -- {} + || rc_cis_fail "$2/$3"
  else
    find -H "$2" -type f -name "$3" -exec stat -c "$(rc_cis_fmt "$1")" -- {} + || rc_cis_fail "$2/$3"
  fi
}
`;

export function cisScript(probes: CisProbe[]): string {
  const lines = [FUNCTIONS];
  probes.forEach((p, i) => {
    if (p.pattern !== undefined) lines.push(`rc_cis_match ${i} ${shq(p.path)} ${shq(p.pattern)} ${p.recursive ? 'any' : '1'}`);
    else if (p.recursive) lines.push(`rc_cis_tree ${i} ${shq(p.path)}`);
    else lines.push(`rc_cis_path ${i} ${shq(p.path)}`);
  });
  lines.push(`printf '@@done\\n'`, '');
  return lines.join('\n');
}

export interface ParsedCisOutput {
  stats: CisStat[];
  /** Paths the node could not read the modes of. */
  failed: string[];
  /** False when the output stopped before the script's last line. */
  complete: boolean;
}

const LINE = /^@@cis (\d+) ([0-7]{1,5}) (\d+):(\d+) (\S+):(\S+) (.+)$/;

export function parseCisOutput(stdout: string): ParsedCisOutput {
  const stats: CisStat[] = [];
  const failed: string[] = [];
  let complete = false;
  for (const line of stdout.split('\n')) {
    const m = LINE.exec(line);
    if (m) {
      const [, probe, mode, uid, gid, user, group, path] = m as unknown as [string, string, string, string, string, string, string, string];
      stats.push({ probe: Number(probe), mode: parseInt(mode, 8), uid, gid, user, group, path });
    } else if (line.startsWith('@@cis-error\t')) {
      failed.push(line.slice('@@cis-error\t'.length));
    } else if (line === '@@done') {
      complete = true;
    }
  }
  return { stats, failed, complete };
}
