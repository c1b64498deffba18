/** A rotation's scope from what the user typed: `--only` as given, `--nodes a,b` as names. */
import { UsageError } from '../util/errors.js';
import type { Scope } from './types.js';

export interface ScopeFlags {
  only?: Scope['only'];
  nodes?: string;
}

export function scopeOf(flags: ScopeFlags): Scope {
  const nodes = flags.nodes
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (flags.nodes !== undefined && nodes?.length === 0) throw new UsageError('--nodes: no node names given (comma-separated names from the inventory)');
  return { ...(flags.only ? { only: flags.only } : {}), ...(nodes && nodes.length > 0 ? { nodes } : {}) };
}
