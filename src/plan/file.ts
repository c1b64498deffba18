/** Plan files: YAML with a digest, so a plan edited by hand is refused instead of run. */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { UsageError } from '../util/errors.js';
import { planDigest } from './compile.js';
import type { Plan } from './types.js';

export function serializePlan(plan: Plan): string {
  const withDigest: Plan = { ...plan, digest: planDigest(plan) };
  return `# rotate-certs plan: review it, then run: rotate-certs apply <this file>\n# Edits make apply refuse it (digest); make a new plan instead.\n${stringify(withDigest, { lineWidth: 0 })}`;
}

export function writePlan(file: string, plan: Plan): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, serializePlan(plan), { mode: 0o600 });
  renameSync(tmp, file);
}

export function readPlan(file: string): Plan {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`cannot read plan ${file}: ${code === 'ENOENT' ? 'no such file' : code}`);
  }
  let plan: Plan;
  try {
    plan = parse(text) as Plan;
  } catch (err) {
    throw new UsageError(`${file}: not a plan file (not valid YAML: ${(err as Error).message.split('\n')[0]})`);
  }
  if (!plan || typeof plan !== 'object' || plan.kind !== 'rotate-certs/plan') throw new UsageError(`${file}: not a rotate-certs plan (kind: rotate-certs/plan is missing)`);
  if (plan.version !== 1) throw new UsageError(`${file}: plan version ${String(plan.version)} is not supported by this rotate-certs; make a new plan`);
  if (typeof plan.digest !== 'string' || plan.digest !== planDigest(plan)) {
    throw new UsageError(`${file}: the plan was changed after it was made (digest mismatch); make a new one with rotate-certs plan`);
  }
  return plan;
}
