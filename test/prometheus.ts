/** Test helper shared by unit and end-to-end tests: Prometheus text parsed back, strictly. */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * The rules of Prometheus' text exposition format (prometheus.io, "Exposition formats") that our
 * output must keep: one HELP and one TYPE line per metric, TYPE before the metric's first sample,
 * all lines of a metric in one group, no series twice. Only the sample shapes we write (labels
 * always present, no timestamps). Throws on anything else.
 */
export function parsePrometheus(text: string): Sample[] {
  if (!text.endsWith('\n')) throw new Error('the text does not end with a newline');
  const samples: Sample[] = [];
  const help = new Set<string>();
  const type = new Set<string>();
  const done = new Set<string>();
  const series = new Set<string>();
  let current = '';
  const open = (name: string) => {
    if (name === current) return;
    if (done.has(name)) throw new Error(`samples of ${name} are not together`);
    if (current) done.add(current);
    current = name;
  };
  for (const line of text.slice(0, -1).split('\n')) {
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (meta) {
      const [, kind, name] = meta as unknown as [string, string, string];
      const seen = kind === 'HELP' ? help : type;
      if (seen.has(name)) throw new Error(`second ${kind} line for ${name}`);
      if (samples.some((s) => s.name === name)) throw new Error(`${kind} of ${name} after its samples`);
      seen.add(name);
      open(name);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (-?\d+(?:\.\d+)?)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const [, name, body, value] = m as unknown as [string, string, string, string];
    const labels: Record<string, string> = {};
    const pair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(,|$)/y;
    let at = 0;
    while (at < body.length) {
      pair.lastIndex = at;
      const p = pair.exec(body);
      if (!p) throw new Error(`bad labels in: ${line}`);
      if (p[1]! in labels) throw new Error(`label ${p[1]} twice in: ${line}`);
      labels[p[1]!] = p[2]!.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
      at = pair.lastIndex;
    }
    open(name);
    if (!type.has(name)) throw new Error(`${name} has no TYPE line before its samples`);
    const key = `${name}{${Object.entries(labels).sort().map(([k, v]) => `${k}=${v}`).join(',')}}`;
    if (series.has(key)) throw new Error(`duplicate series ${key}`);
    series.add(key);
    samples.push({ name, labels, value: Number(value) });
  }
  return samples;
}
