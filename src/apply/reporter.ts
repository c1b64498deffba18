/** Progress output for apply. The plain reporter prints one line per event, fit for CI logs. */
export interface Reporter {
  phase(title: string): void;
  /** A node's block of a phase starts, and ends: ok, skipped (done in an earlier run) or failed. */
  nodeStart?(phase: string, node: string): void;
  nodeEnd?(phase: string, node: string, outcome: 'ok' | 'skipped' | 'failed', message?: string): void;
  stepStart(node: string, step: string, title: string): void;
  stepDone(node: string, step: string, summary: string): void;
  stepFailed(node: string, step: string, message: string): void;
  info(message: string): void;
  warn(message: string): void;
  /** An outcome the final report repeats (what changed in the management cluster); optional. */
  note?(message: string): void;
}

export function plainReporter(write: (line: string) => void, clock: () => Date = () => new Date()): Reporter {
  const ts = () => clock().toISOString().slice(11, 19);
  const line = (text: string) => write(`${ts()} ${text}\n`);
  return {
    phase: (title) => line(`== ${title}`),
    stepStart: (node, step, title) => line(`${node} ${step}: ${title}`),
    stepDone: (node, step, summary) => line(`${node} ${step}: ok${summary ? ` (${summary})` : ''}`),
    stepFailed: (node, step, message) => line(`${node} ${step}: FAILED: ${message}`),
    info: (message) => line(message),
    warn: (message) => line(`WARNING: ${message}`),
  };
}
