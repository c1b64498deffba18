/** How counts and lists of nodes are worded in what people read. Pure. */

/** "1 day", "2 days", "0 days"; `many` for nouns that do not just take an "s" ("entries"). */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${Math.abs(n) === 1 ? one : many}`;
}

/** "a", "a and b", "a, b and c", then "a, b and 3 more" once there are more than `shown` + 1. */
export function nodeList(names: readonly string[], shown = 2): string {
  if (names.length <= shown + 1) return names.length <= 1 ? (names[0] ?? '') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
  return `${names.slice(0, shown).join(', ')} and ${names.length - shown} more`;
}

/**
 * One line per distinct message, naming every node it hit: the same cause on five nodes reads
 * "lab-etcd-1, lab-etcd-2 and 3 more: cause" instead of five lines. First appearance order.
 * An entry without a node (a cluster-wide problem) stays as it is.
 */
export function groupByMessage(items: ReadonlyArray<{ node?: string; message: string }>): string[] {
  const byMessage = new Map<string, string[]>();
  for (const { node, message } of items) {
    const nodes = byMessage.get(message) ?? [];
    if (node !== undefined && !nodes.includes(node)) nodes.push(node);
    byMessage.set(message, nodes);
  }
  return [...byMessage].map(([message, nodes]) => (nodes.length > 0 ? `${nodeList(nodes)}: ${message}` : message));
}

/**
 * Left-aligned columns two spaces apart, each as wide as its widest cell among `rows` (the header
 * included); the last column is not padded. Returns the function that formats one row.
 */
export function columns(rows: ReadonlyArray<readonly string[]>): (cells: readonly string[]) => string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return (cells) => cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ');
}

/**
 * A message of several lines (a heading, then one item per line, as pre-flight's refusal and the
 * management API's "cannot be used:" give them) as one line: the heading, then the items.
 */
export function oneLine(message: string): string {
  const [head = '', ...rest] = message.split('\n');
  const items = rest.map((l) => l.trim().replace(/^- /, '')).filter(Boolean);
  if (items.length === 0) return head.trim();
  return `${head.trim().replace(/, nothing was changed:$|:$/, '')}: ${items.join('; ')}`;
}
