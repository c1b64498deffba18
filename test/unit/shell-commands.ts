/**
 * The commands a bash script runs, by name: a test helper, so each OS profile's `requires` list (what
 * pre-flight checks on a node) can be held to what its scripts really use. A reader of the scripts
 * we write, not of bash at large: heredoc bodies and comments are dropped, quoted text is data but a
 * $( ) inside double quotes is a command, and a command is the first word of a segment that is not
 * an assignment, a keyword, a builtin or a function the script defines.
 */
const KEYWORDS = new Set(['if', 'then', 'else', 'elif', 'fi', 'do', 'done', 'while', 'until', 'esac', 'function', '{', '}', '!', '[[', ']]', 'time']);
const BUILTINS = new Set([
  '.', ':', '[', 'alias', 'bg', 'break', 'builtin', 'cd', 'command', 'continue', 'declare', 'echo', 'eval', 'exec', 'exit', 'export', 'false',
  'fg', 'getopts', 'hash', 'jobs', 'kill', 'let', 'local', 'mapfile', 'printf', 'pwd', 'read', 'readarray', 'readonly', 'return', 'set', 'shift',
  'source', 'test', 'trap', 'true', 'type', 'typeset', 'ulimit', 'umask', 'unset', 'wait',
]);

function dropHeredocs(script: string): string {
  const kept: string[] = [];
  let heredoc: string | undefined;
  for (const line of script.split('\n')) {
    if (heredoc !== undefined) {
      if (line.trim() === heredoc) heredoc = undefined;
      continue;
    }
    const h = /<<-?\s*['"]?([A-Za-z_][A-Za-z0-9_]*)['"]?/.exec(line);
    if (h) heredoc = h[1];
    kept.push(line);
  }
  return kept.join('\n');
}

/** Splits at command boundaries; quoted text and ${...} become one placeholder word. */
function segments(text: string): string[] {
  const segs: string[] = [];
  const stack: Array<'"' | '$('> = [];
  let cur = '';
  const cut = () => {
    segs.push(cur);
    cur = '';
  };
  const skipTo = (from: number, open: string, close: string): number => {
    let depth = 0;
    for (let j = from; j < text.length; j++) {
      if (text.startsWith(open, j)) depth++;
      else if (text.startsWith(close, j) && --depth === 0) return j + close.length;
    }
    return text.length;
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    const top = stack[stack.length - 1];
    if (top === '"') {
      if (c === '\\') i += 2;
      else if (c === '"') {
        stack.pop();
        cur += 'Q';
        i++;
      } else if (text.startsWith('$((', i)) i = skipTo(i + 1, '(', ')');
      else if (text.startsWith('$(', i)) {
        stack.push('$(');
        cut();
        i += 2;
      } else i++;
      continue;
    }
    if (c === "'") {
      const j = text.indexOf("'", i + 1);
      cur += 'Q';
      i = j < 0 ? text.length : j + 1;
    } else if (c === '"') {
      stack.push('"');
      i++;
    } else if (c === '\\') {
      cur += ' ';
      i += 2;
    } else if (c === '#' && (i === 0 || /\s/.test(text[i - 1] as string))) {
      const j = text.indexOf('\n', i);
      i = j < 0 ? text.length : j;
    } else if (text.startsWith('$((', i)) {
      cur += 'A';
      i = skipTo(i + 1, '(', ')');
    } else if (text.startsWith('${', i)) {
      cur += 'V';
      i = skipTo(i + 1, '{', '}');
    } else if (text.startsWith('$(', i)) {
      stack.push('$(');
      cut();
      i += 2;
    } else if (c === ')' && top === '$(') {
      stack.pop();
      cut();
      i++;
    } else if ('\n;|&()`'.includes(c)) {
      cut();
      i++;
    } else {
      cur += c;
      i++;
    }
  }
  cut();
  return segs;
}

export function commandsOf(script: string): Set<string> {
  const text = dropHeredocs(script);
  const functions = new Set([...text.matchAll(/(?:^|\s)([A-Za-z_][A-Za-z0-9_-]*)\s*\(\)\s*\{/gm)].map((m) => m[1] as string));
  const out = new Set<string>();
  for (const segment of segments(text)) {
    const words = segment.trim().split(/\s+/).filter(Boolean);
    if (words[0] === 'for' || words[0] === 'case') continue; // a list or a subject: data
    let i = 0;
    while (i < words.length && (/^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=/.test(words[i] as string) || KEYWORDS.has(words[i] as string))) i++;
    const w = words[i];
    if (!w || BUILTINS.has(w) || functions.has(w)) continue;
    // redirections, expansions, quoted or computed names, case patterns, function definitions
    if (/^[<>&0-9]/.test(w) || /[$"'=*{}[\]\\/]/.test(w) || /^[QAV]+$/.test(w) || w.endsWith('()')) continue;
    out.add(w);
  }
  return out;
}
