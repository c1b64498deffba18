/**
 * What each command's --help ends with: its exit codes, built from the constants the commands
 * return, then examples. Light on purpose: --help loads nothing else.
 */
import { ExitCode } from '../util/errors.js';
import { ApplyExit, BackupsExit, CheckExit, PlanExit, RotateExit, TrustExit } from '../util/exit-codes.js';

export type CommandName = 'check' | 'plan' | 'apply' | 'rotate' | 'restore' | 'backups' | 'inventory' | 'trust' | 'guided';

type ExitRow = readonly [code: number, meaning: string];

// A runbook or OS profile file missing from the installation (runbook/runbook.ts, profiles/profile.ts).
const installation: ExitRow = [ExitCode.noInput, 'a runbook or OS profile of this installation is missing: reinstall rotate-certs'];
const lock: ExitRow = [ExitCode.tempFail, 'another run holds the cluster lock'];

function rotation(done: string, resume: string): ExitRow[] {
  return [
    [ApplyExit.done, done],
    [ApplyExit.failedRestored, 'a step failed; that node was restored and the run stopped (failing workers: each restored, the other workers finished)'],
    [ApplyExit.failedNotRestored, 'a step failed and the restore failed too: act now (see docs/troubleshooting.md)'],
    [ExitCode.usage, 'bad usage, inventory, plan, runbook or profile, or SSH settings no node could use (nothing changed)'],
    installation,
    [ExitCode.unavailable, 'pre-flight failed, or the jump host does not answer (nothing changed)'],
    lock,
    [ApplyExit.stopped, `stopped by Ctrl-C at a safe point; ${resume} continues`],
  ];
}

/** rotate's rows: a due run that did not start comes after the failures, in the order of the codes. */
function withRefused(rows: ExitRow[]): ExitRow[] {
  const refused: ExitRow = [
    RotateExit.refused,
    '--due-within without a terminal: not started, nothing changed (a node did not answer, etcd or the API not healthy, an unfinished run, the lock held, an etcd recovery without --allow-recovery); one line says why',
  ];
  const at = rows.findIndex(([code]) => code > RotateExit.refused);
  return [...rows.slice(0, at), refused, ...rows.slice(at)];
}

export const EXIT_CODES: Record<CommandName, readonly ExitRow[]> = {
  check: [
    [CheckExit.ok, 'every certificate ok (and, with --cis, no file deviates)'],
    [CheckExit.expiring, 'something expires within --warn-days, or (--cis) a file mode or owner deviates from the CIS benchmark'],
    [CheckExit.expired, 'something expired or not yet valid'],
    [CheckExit.notChecked, 'some node, endpoint or cluster could not be checked (the rest are still reported)'],
    [ExitCode.usage, 'bad usage, a bad inventory, or SSH settings no node could use: missing key, no known_hosts (nothing contacted)'],
    installation,
    [ExitCode.unavailable, 'the jump host does not answer (no node contacted)'],
  ],
  plan: [
    [PlanExit.done, 'the plan was written (--out) or printed'],
    [PlanExit.notRead, 'some node or endpoint could not be read (each cause is printed); --out writes no plan when a node it could change is among them'],
    [ExitCode.usage, 'bad usage or inventory, or SSH settings no node could use (nothing contacted)'],
    installation,
    [ExitCode.unavailable, "the jump host does not answer, or a node's OS (os: auto) could not be told"],
  ],
  apply: rotation('rotation finished (or declined at the prompt: nothing changed)', 'apply PLAN --resume'),
  rotate: withRefused(rotation('rotation finished (or nothing changed: --dry-run, declined at the prompt, or --due-within found nothing due)', 'rotate --resume (or apply PLAN --resume)')),
  restore: [
    [ExitCode.ok, 'the node was restored, or declined at the prompt, or its last run left no finished backup'],
    [ApplyExit.failedNotRestored, 'the restore failed: act now (see docs/troubleshooting.md)'],
    [ExitCode.usage, 'bad usage or inventory, no backup of the node in the journal, or SSH settings no node could use'],
    installation,
    [ExitCode.unavailable, 'the jump host does not answer'],
    lock,
  ],
  backups: [
    [BackupsExit.done, 'listed (with --prune: pruned, or nothing to prune, or declined at the prompt)'],
    [BackupsExit.notRead, 'some node could not be read or pruned (each cause is printed; the others are listed)'],
    [ExitCode.usage, 'bad usage or inventory, --prune without --yes and no terminal, or SSH settings no node could use (nothing contacted)'],
    installation,
    [ExitCode.unavailable, 'the jump host does not answer (no node contacted)'],
    lock,
  ],
  inventory: [
    [ExitCode.ok, 'the inventory was printed (and, with --write, written)'],
    [
      ExitCode.usage,
      'bad usage, no EKS Anywhere folder ./NAME/ or a spec that cannot be read, --write onto an existing file without --force, or (no terminal) nodes the API did not list (nothing written)',
    ],
    [TrustExit.stopped, 'stopped at a prompt; nothing written'],
  ],
  trust: [
    [TrustExit.done, 'every host key read is in known_hosts: known, or recorded now (or declined at the prompt: nothing recorded)'],
    [ExitCode.usage, 'bad usage or inventory, SSH settings no node could use, or (no terminal, no --yes or --accept-new) new keys nobody confirmed: those not recorded'],
    [TrustExit.refused, 'a changed or revoked host key (never recorded), or a node or jump host whose key could not be read; the other keys are still settled'],
    [TrustExit.stopped, 'stopped at a prompt'],
  ],
  guided: [
    [ApplyExit.done, 'rotation finished, or nothing to do, or declined at the prompt (nothing changed)'],
    [ApplyExit.failedRestored, 'a step failed; that node was restored and the run stopped'],
    [ApplyExit.failedNotRestored, 'a step failed and the restore failed too: act now (see docs/troubleshooting.md)'],
    [ExitCode.usage, 'bad usage, no cluster spec or inventory, SSH settings no node could use, or (no terminal) a question nothing answered'],
    installation,
    [ExitCode.unavailable, 'some nodes could not be read, pre-flight failed, or the jump host does not answer (nothing changed)'],
    lock,
    [ApplyExit.stopped, 'stopped at a prompt, or by Ctrl-C at a safe point (rotate-certs apply PLAN --resume continues)'],
  ],
};

/** "Exit codes:" and one line per code, as every command's --help ends. */
export function exitCodesText(command: CommandName): string {
  return `Exit codes:\n${EXIT_CODES[command].map(([code, meaning]) => `${String(code).padStart(3)}  ${meaning}`).join('\n')}`;
}

/** The text after the options: notes, the exit codes, then the examples. */
export function helpEnd(command: CommandName, examples: readonly string[], notes?: string): string {
  return `\n${notes ? `${notes}\n\n` : ''}${exitCodesText(command)}\n\nExamples:\n${examples.map((e) => `  ${e}`).join('\n')}`;
}
