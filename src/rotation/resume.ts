/** `rotate --resume`: the cluster's last run, when it did not finish. */
import { join } from 'node:path';
import { Journal } from '../state/journal.js';
import { UsageError } from '../util/errors.js';

/** The plan copy of the cluster's last run, refused when there is none or it finished: there is nothing to continue. */
export function lastUnfinishedRun(stateDir: string, cluster: string): { runId: string; planFile: string } {
  const journal = new Journal(stateDir, cluster);
  const runId = journal.entries().at(-1)?.runId;
  if (!runId) throw new UsageError(`--resume: the journal ${journal.file} holds no run of cluster ${journal.cluster}; nothing to resume: run without --resume`);
  if (journal.entries(runId).some((e) => e.event === 'run-done')) {
    throw new UsageError(`--resume: the last run of cluster ${journal.cluster}, ${runId}, finished (see ${journal.file}); nothing to resume: run without --resume`);
  }
  return { runId, planFile: join(journal.dir, `plan-${runId}.yaml`) };
}
