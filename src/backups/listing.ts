/**
 * The backups rotate-certs leaves on a node, as the OS profiles' `listBackups` prints them, and the
 * per-node summary `check` reports. Pure.
 */

/** What a backup path is, by its name. */
export type BackupKind =
  /** NAME.rotate-certs-RUN: a run's verified copy of a folder or file. */
  | 'backup'
  /** NAME.rotate-certs-RUN.replaced-TIME: what a restore from that backup set aside. */
  | 'replaced'
  /** NAME.rotate-certs-RUN.partial: a backup a run was cut off while making. */
  | 'partial';

export interface BackupEntry {
  path: string;
  /** The run that made it; run ids are UTC start times (plan/compile.ts newRunId). */
  runId: string;
  /** When that run started (ISO), from its id. */
  runAt: string;
  kind: BackupKind;
  type: 'dir' | 'file';
  /** Permission bits, four octal digits ("0700"). */
  mode: string;
  /** du -sk; absent when du could not size it. */
  sizeKiB?: number;
}

export interface BackupListing {
  entries: BackupEntry[];
  /** False when the output stopped before the listing's last line. */
  complete: boolean;
}

const NAME = /\.rotate-certs-(\d{8}T\d{6}Z)(?:\.(replaced-\d+|partial))?$/;

/** When a run started, from its id (20261126T010000Z), or undefined for anything else. */
export function runIdTime(runId: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(runId);
  if (!m) return undefined;
  const d = new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/**
 * Reads the lines between @@backups and @@backups-done (other output around them, such as the
 * certificate read of `check`, is ignored). Names that are not a run's backup are left out.
 */
export function parseBackupListing(stdout: string): BackupListing {
  const found: Array<Omit<BackupEntry, 'sizeKiB'>> = [];
  const sizes = new Map<string, number>();
  let inside = false;
  let complete = false;
  for (const line of stdout.split('\n')) {
    if (line === '@@backups') {
      inside = true;
      continue;
    }
    if (!inside) continue;
    if (line === '@@backups-done') {
      complete = true;
      break;
    }
    const fields = line.split('\t');
    if (fields[0] === '@@backup' && fields.length >= 4) {
      const [, mode = '', type, ...rest] = fields;
      const path = rest.join('\t');
      const m = NAME.exec(path);
      const at = m ? runIdTime(m[1] as string) : undefined;
      if (!m || !at || !/^[0-7]{1,4}$/.test(mode) || (type !== 'd' && type !== 'f')) continue;
      const suffix = m[2];
      found.push({
        path,
        runId: m[1] as string,
        runAt: at.toISOString(),
        kind: suffix === undefined ? 'backup' : suffix === 'partial' ? 'partial' : 'replaced',
        type: type === 'd' ? 'dir' : 'file',
        mode: mode.padStart(4, '0'),
      });
      continue;
    }
    const du = /^(\d+)\t(.+)$/.exec(line);
    if (du) sizes.set(du[2] as string, Number(du[1]));
  }
  const entries = found.map((e): BackupEntry => {
    const size = sizes.get(e.path);
    return size === undefined ? e : { ...e, sizeKiB: size };
  });
  // Oldest run first; within a run, by path.
  entries.sort((a, b) => a.runId.localeCompare(b.runId) || a.path.localeCompare(b.path));
  return { entries, complete };
}

/** What `check` reports of a node's backups. */
export interface NodeBackups {
  node: string;
  /** Runs with a backup on the node: each run's copies (PKI folder, kubeconfigs, ...) count once. */
  runs: number;
  /** Backup paths, set-aside copies included. */
  paths: number;
  sizeKiB: number;
  /** The oldest of those runs and when it started; absent when there is none. */
  oldestRun?: string;
  oldest?: string;
}

export function summarizeBackups(node: string, entries: readonly BackupEntry[]): NodeBackups {
  const runs = [...new Set(entries.map((e) => e.runId))].sort();
  const oldestRun = runs[0];
  const oldest = entries.find((e) => e.runId === oldestRun)?.runAt;
  return {
    node,
    runs: runs.length,
    paths: entries.length,
    sizeKiB: entries.reduce((n, e) => n + (e.sizeKiB ?? 0), 0),
    ...(oldestRun && oldest ? { oldestRun, oldest } : {}),
  };
}

/** 48 KiB, 1.5 MiB. */
export function kib(n: number): string {
  return n < 1024 ? `${n} KiB` : `${(n / 1024).toFixed(1)} MiB`;
}
