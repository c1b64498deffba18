/** Prometheus text exposition shared by check's and the due run's outputs: gauges only. Pure. */

/** A label value, quoted and escaped as the exposition format wants. */
export function label(v: string): string {
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

/** One metric: its HELP and TYPE lines once, then its samples (of every cluster). */
export interface Family {
  name: string;
  help: string;
  samples: string[];
}

export function exposition(families: Family[]): string {
  return `${families.flatMap((f) => [`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} gauge`, ...f.samples]).join('\n')}\n`;
}
