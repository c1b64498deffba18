/** How a rotation shows itself to a person: its progress, its one question, and its report. */
import { confirm } from '@inquirer/prompts';
import { plainReporter } from '../apply/reporter.js';
import { renderRotationReport, rotationExitCode } from '../rotation/report.js';
import type { RotationRun, RotationUi } from '../rotation/run.js';
import type { Io } from '../util/io.js';
import { listrReporter } from './listr-reporter.js';

/**
 * Progress on a terminal as listr2 tasks per node, otherwise plain lines fit for CI logs. A refused
 * kubeconfig is replaced with --refresh-kubeconfig, else asked about only when a person is there.
 */
export function rotationUi(answers: { refreshKubeconfig?: boolean; yes?: boolean; interactive?: boolean }, io: Io): RotationUi {
  const plain = plainReporter((l) => io.err(l));
  return {
    reporter: plain,
    progress: (plan) => (io.color ? listrReporter(plan) : { reporter: plain, finish: async () => [] }),
    refreshKubeconfig: async (kubeconfig) => {
      if (answers.refreshKubeconfig) return true;
      if (!answers.interactive || answers.yes) return false;
      return confirm({ message: `${kubeconfig} was refused; replace it with the renewed admin.conf (the old one is kept)?`, default: true });
    },
  };
}

/** Prints the run's warnings and its report; returns its exit code. */
export function printRotation(run: RotationRun, io: Io): number {
  for (const w of run.warnings) io.err(`WARNING: ${w}\n`);
  io.out(renderRotationReport(run));
  return rotationExitCode(run.result);
}
