/**
 * Progress on a terminal with listr2: one task per phase, one subtask per node, the current step
 * as the node's output. The engine drives; this only mirrors its events, so plan, apply and the
 * plain CI output share one code path.
 */
import { Listr, type ListrTaskWrapper } from 'listr2';
import type { Reporter } from '../apply/reporter.js';
import type { Plan } from '../plan/types.js';

interface NodeTask {
  promise: Promise<void>;
  resolve(): void;
  reject(err: Error): void;
  task?: ListrTaskWrapper<unknown, never, never>;
  output: string;
  skipped: boolean;
  settled: boolean;
}

/** `finish` resolves with the warnings, which the transient task output would otherwise lose. */
export function listrReporter(plan: Plan): { reporter: Reporter; finish(): Promise<string[]> } {
  const warnings: string[] = [];
  const nodes = new Map<string, NodeTask>();
  const key = (phase: string, node: string) => `${phase}/${node}`;
  for (const p of plan.phases) {
    for (const n of p.nodes) {
      let resolve!: () => void;
      let reject!: (e: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      // A node the run never reaches is neither done nor failed; keep its rejection quiet.
      promise.catch(() => undefined);
      nodes.set(key(p.phase, n.name), { promise, resolve, reject, output: '', skipped: false, settled: false });
    }
  }
  let current: NodeTask | undefined;
  const say = (text: string) => {
    if (!current) return;
    current.output = text;
    if (current.task) current.task.output = text;
  };

  const listr = new Listr(
    plan.phases.map((p) => ({
      title: p.title,
      task: (_ctx: unknown, t: ListrTaskWrapper<unknown, never, never>) =>
        t.newListr(
          p.nodes.map((n) => ({
            title: `${n.name} (${n.os})`,
            task: (_c: unknown, nt: ListrTaskWrapper<unknown, never, never>) => {
              const entry = nodes.get(key(p.phase, n.name)) as NodeTask;
              entry.task = nt;
              if (entry.output) nt.output = entry.output;
              return entry.promise.then(() => {
                if (entry.skipped) nt.skip(`${n.name}: already done in this run`);
              });
            },
          })),
          { concurrent: false, exitOnError: true },
        ),
    })),
    // listr2's own SIGINT handler would process.exit(127) mid-step; Ctrl-C is the engine's to
    // handle (stop at the next safe point, cli/main.ts).
    { concurrent: false, exitOnError: true, registerSignalListeners: false, renderer: 'default', rendererOptions: { collapseSubtasks: false } },
  );
  const running = listr.run().catch(() => undefined);

  const reporter: Reporter = {
    phase: () => {},
    nodeStart: (phase, node) => {
      current = nodes.get(key(phase, node));
    },
    nodeEnd: (phase, node, outcome, message) => {
      const entry = nodes.get(key(phase, node));
      if (!entry) return;
      entry.settled = true;
      if (outcome === 'failed') entry.reject(new Error(message ?? 'failed'));
      else {
        entry.skipped = outcome === 'skipped';
        entry.resolve();
      }
    },
    stepStart: (_node, step, title) => say(`${step}: ${title}`),
    stepDone: (_node, step, summary) => say(`${step}: ok${summary ? ` (${summary})` : ''}`),
    stepFailed: (_node, step, message) => say(`${step}: FAILED: ${message}`),
    info: (message) => say(message),
    warn: (message) => {
      warnings.push(message);
      say(`WARNING: ${message}`);
    },
  };
  return {
    reporter,
    async finish() {
      // A stopped run leaves nodes unreached: end them as skipped so the renderer finishes.
      for (const entry of nodes.values()) {
        if (entry.settled) continue;
        entry.skipped = true;
        entry.resolve();
      }
      await running;
      return warnings;
    },
  };
}
