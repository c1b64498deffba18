/** The report a rotation prints when it ends, and the exit code its outcome gives. */
import type { ApplyResult } from '../apply/engine.js';
import { renderRetention } from './retention.js';
import type { CheckReport } from '../check/run.js';
import { ApplyExit } from '../util/exit-codes.js';
import type { RotationRun } from './run.js';

/** done 0; stopped 130; failed: 1 when every failing node was restored, else 2. */
export function rotationExitCode(result: ApplyResult): number {
  if (result.outcome === 'done') return ApplyExit.done;
  if (result.outcome === 'stopped') return ApplyExit.stopped;
  return (result.failures ?? [result.failure]).every((f) => f?.restored) ? ApplyExit.failedRestored : ApplyExit.failedNotRestored;
}

/** The outcome, the certificates' old and new expiry, the management cluster's notes, the backups, the downtime, and what the retention removed. */
export function renderRotationReport(run: RotationRun): string {
  const { plan, result, before, after, planCopy: planFile, notes } = run;
  const out: string[] = [''];
  if (result.outcome === 'done') out.push(`Rotation ${plan.runId} of cluster ${plan.cluster} finished.`);
  else if (result.outcome === 'stopped') out.push(`Stopped at a safe point. Continue with: rotate-certs apply ${planFile} --resume`);
  else {
    const failures = result.failures ?? (result.failure ? [result.failure] : []);
    for (const f of failures) {
      out.push(`Rotation FAILED on ${f.node}, step ${f.step}: ${f.message}`);
      out.push(f.restored ? `${f.node} was restored from its backup.` : `${f.node} could NOT be restored automatically: its backups are listed below; see docs/troubleshooting.md.`);
    }
    const parallel = failures.length > 0 && plan.phases.some((p) => p.parallel?.includes(failures[0]?.node ?? ''));
    out.push(parallel ? 'The other workers of that phase finished; later phases were not run.' : 'Nodes after it were not touched.');
    out.push(`Fix the cause, then continue with: rotate-certs apply ${planFile} --resume`);
  }
  const nodes = new Set(plan.phases.flatMap((p) => p.nodes.map((n) => n.name)));
  if (before && after) {
    out.push('', 'Certificates (old expiry -> new expiry):');
    const key = (c: CheckReport['certificates'][number]) => `${c.node} ${c.path}`;
    const old = new Map(before.certificates.filter((c) => c.source !== 'endpoint').map((c) => [key(c), c]));
    const when = (iso: string) => iso.slice(0, 16).replace('T', ' ');
    for (const c of after.certificates.filter((c) => c.source !== 'endpoint' && nodes.has(c.node) && c.kind !== 'ca')) {
      const was = old.get(key(c));
      const changed = was?.serial !== c.serial;
      out.push(`  ${c.node} ${c.path}${c.source === 'kubeconfig' ? ' (embedded)' : ''}: ${was ? when(was.notAfter) : '?'} -> ${when(c.notAfter)}${changed ? '' : ' (unchanged)'}`);
    }
  }
  if (notes.length > 0) out.push('', 'Management cluster:', ...notes.map((n) => `  ${n}`));
  const backups = Object.entries(result.backups);
  if (backups.length > 0) {
    out.push('', 'Backups on the nodes:');
    for (const [node, paths] of backups) out.push(`  ${node}: ${paths.join(', ')}`);
  }
  const downtime = Object.entries(result.downtimeMs);
  if (downtime.length > 0) {
    out.push('', 'kube-apiserver unavailable during its restart:');
    for (const [node, ms] of downtime) out.push(`  ${node}: ${(ms / 1000).toFixed(1)} s`);
  }
  return `${out.join('\n')}\n${run.retention ? renderRetention(run.retention) : ''}`;
}
