/** A plan read back from a file: still what this version would run, for an inventory unchanged since. */
import { readFileSync } from 'node:fs';
import { withDetected } from '../profiles/detect-os.js';
import { loadInventory, parseInventory } from '../inventory/load.js';
import type { Inventory, InventorySpec } from '../inventory/types.js';
import { planDigest, sha256 } from '../plan/compile.js';
import type { Plan } from '../plan/types.js';
import { UsageError } from '../util/errors.js';
import { makePlan } from './plan.js';

/** Checks that a plan still matches its inventory and this version's runbooks; returns that inventory. */
export function verifyPlan(plan: Plan): Inventory {
  const inv = withDetected(readPlanInventory(plan), plan.detected ?? {});
  const again = makePlan(inv, plan.scope, plan.runId, plan.createdAt, plan);
  const expected = planDigest({ ...again, ...(plan.facts ? { facts: plan.facts } : {}) });
  if (expected !== plan.digest) throw new UsageError('the plan does not match what this rotate-certs would run from its inventory and runbooks (made by another version?); make a new plan');
  return inv;
}

/** The plan's inventory: the one it carries, or its file, unchanged since the plan was made. */
export function readPlanInventory(plan: Plan): InventorySpec {
  if (plan.inventoryText !== undefined) {
    // The digest check of readPlan covers the text; relative paths resolve from where it was built.
    return { ...parseInventory(plan.inventoryText, plan.inventory), unsaved: true };
  }
  let text: string;
  try {
    text = readFileSync(plan.inventory, 'utf8');
  } catch {
    throw new UsageError(`the plan's inventory ${plan.inventory} cannot be read`);
  }
  if (sha256(text) !== plan.inventoryDigest) throw new UsageError(`the inventory ${plan.inventory} changed since the plan was made; make a new plan`);
  const inv = loadInventory(plan.inventory);
  if (inv.cluster !== plan.cluster) throw new UsageError(`the plan is for cluster ${plan.cluster} but ${plan.inventory} describes ${inv.cluster}`);
  return inv;
}
