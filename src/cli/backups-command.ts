/**
 * `rotate-certs backups`: lists the backups rotate-certs left on each node (read-only), and with
 * --prune removes all but the newest --keep runs' on each node, never an unfinished run's, and
 * applies the same retention to the state folder. Wiring only: the work is in src/backups/.
 */
import { isAbsolute, join } from 'node:path';
import { confirm } from '@inquirer/prompts';
import { defaultStateDir, Journal } from '../state/journal.js';
import type { BackupEntry } from '../backups/listing.js';
import { pruneBackups, readBackups } from '../backups/cluster.js';
import { renderBackups, type BackupsOutputFormat } from '../backups/render.js';
import { newestRuns } from '../backups/retention.js';
import { ProfileSet } from '../profiles/profile.js';
import { PooledConnector } from '../transport/pool.js';
import type { Connector } from '../transport/session.js';
import { SshConnector } from '../transport/ssh.js';
import { UsageError } from '../util/errors.js';
import { plural } from '../util/wording.js';
import { BackupsExit, FlagDefault } from '../util/exit-codes.js';
import type { CliIo } from './io.js';
import { inventorySpecFor } from '../eksa/cluster-inventory.js';
import type { InventoryFlags } from './options.js';

export interface BackupsFlags extends InventoryFlags {
  output: BackupsOutputFormat;
  concurrency: number;
  prune?: boolean;
  /** Only with --prune; FlagDefault.keepBackups when not given. */
  keep?: number;
  yes?: boolean;
  stateDir?: string;
}

export interface BackupsEnv {
  connector?: Connector;
  interactive?: boolean;
  now?: () => Date;
  /** Tests point the OS profiles' paths elsewhere. */
  profiles?: ProfileSet;
}

export async function backupsCommand(flags: BackupsFlags, io: CliIo, env: BackupsEnv = {}): Promise<number> {
  if (flags.keep !== undefined && !flags.prune) throw new UsageError('--keep says how many runs --prune keeps: add --prune, or drop --keep to only list the backups');
  if (flags.prune && !flags.yes && !env.interactive) {
    throw new UsageError('refusing to remove backups without confirmation: pass --yes (no terminal to ask on), or drop --prune to only list them');
  }
  // --cluster as every command resolves it: ./NAME/rotate-certs.yaml, else built from the EKS Anywhere folder.
  const spec = await inventorySpecFor(flags, io);
  const stateDir = flags.stateDir ? (isAbsolute(flags.stateDir) ? flags.stateDir : join(io.cwd, flags.stateDir)) : defaultStateDir(io.env);
  const journal = new Journal(stateDir, spec.cluster);
  const connector = new PooledConnector(env.connector ?? new SshConnector());
  const profiles = env.profiles ?? new ProfileSet();
  try {
    await connector.prepare?.(spec);
    // No run of this machine changes the nodes or the journal while backups are removed.
    if (flags.prune) journal.lock('backups --prune');
    try {
      const { inv, view } = await readBackups(spec, { connector, profiles, concurrency: flags.concurrency, unfinished: journal.unfinishedRuns(), now: env.now?.() ?? new Date() });
      if (flags.prune) {
        const keep = flags.keep ?? FlagDefault.keepBackups;
        const prune = await pruneBackups(inv.nodes, view, { keep, unfinished: view.unfinished, profiles, connector, concurrency: flags.concurrency }, flags.yes ? undefined : (doomed) => confirmRemoval(doomed, keep, view.cluster, io));
        if (prune === 'declined') {
          io.err('rotate-certs: nothing was removed\n');
          return BackupsExit.done;
        }
        view.prune = { keep, removed: prune, stateDir: journal.dir, state: journal.retain(keep) };
      }
      io.out(renderBackups(view, flags.output));
      return view.nodes.some((n) => n.error || n.pruneError) ? BackupsExit.notRead : BackupsExit.done;
    } finally {
      journal.unlock();
    }
  } finally {
    await connector.close();
  }
}

/** Lists what would go, then asks. */
async function confirmRemoval(doomed: Array<BackupEntry & { node: string }>, keep: number, cluster: string, io: CliIo): Promise<boolean> {
  io.err(`These ${plural(doomed.length, 'backup')} would be removed (on each node the backups of ${newestRuns(keep)}, and of any unfinished run, stay):\n`);
  for (const e of doomed) io.err(`  ${e.node}: ${e.path}\n`);
  return confirm({ message: `Remove them from the nodes of cluster ${cluster}?`, default: false });
}
