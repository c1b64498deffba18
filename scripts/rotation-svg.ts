/**
 * `npm run docs:svg`: draws the rotation order of runbooks/*.yaml as docs/rotation-order.svg, so
 * the picture in docs/rotate.md is the runbooks themselves: the phases top to bottom, each with
 * its nodes, one at a time or in parallel, the gates between nodes, its steps, and its restore.
 * Plain SVG text, no library; test/unit/rotation-svg.test.ts regenerates it and compares.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { actionDeclaration } from '../src/runbook/actions.js';
import { loadRotationRunbooks, type PhaseRunbook, type RunbookStep } from '../src/runbook/runbook.js';
import { PACKAGE_ROOT } from '../src/util/package-root.js';

export const SVG_FILE = join(PACKAGE_ROOT, 'docs', 'rotation-order.svg');
export const SVG_COMMAND = 'npm run docs:svg';

const WIDTH = 980;
const ROW = 18;
const SANS = "font-family=\"-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif\"";
const MONO = "font-family=\"ui-monospace, Menlo, Consolas, 'DejaVu Sans Mono', monospace\"";
// Columns of a phase band: what and how on the left, the steps in the middle, the restore on the right.
const LEFT = 36;
const LEFT_CHARS = 38;
const STEPS = 336;
const BRACKET = STEPS + 246;
const RESTORE = 614;
const RESTORE_CHARS = 42;

const COLOR = {
  text: '#1f2328',
  muted: '#57606a',
  band: '#f6f8fa',
  border: '#d0d7de',
  mutate: '#0969da',
  gate: '#1a7f37',
  api: '#8250df',
  restore: '#cf222e',
  restoreBand: '#fff5f5',
  flow: '#57606a',
};

const ROLE_NODES: Record<string, string> = { etcd: 'external etcd nodes', 'control-plane': 'control-plane nodes', worker: 'worker nodes' };
const TOPOLOGY: Record<string, string> = { 'external-etcd': 'external etcd', 'stacked-etcd': 'stacked etcd' };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Greedy wrap by characters: the fonts are the reader's, so widths are estimated generously. */
function wrap(text: string, chars: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > chars) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return line ? [...lines, line] : lines;
}

interface TextStyle {
  fill?: string;
  size?: number;
  weight?: number;
}

function text(x: number, y: number, s: string, style: TextStyle = {}): string {
  const weight = style.weight ? ` font-weight="${style.weight}"` : '';
  return `<text x="${x}" y="${y}" ${SANS} font-size="${style.size ?? 12}"${weight} fill="${style.fill ?? COLOR.text}">${esc(s)}</text>`;
}

type Kind = 'mutate' | 'gate' | 'api';
// An action declared runsOn: management calls the management cluster's API rather than a node.
const kindOf = (s: RunbookStep): Kind => (s.action && actionDeclaration(s.action).runsOn === 'management' ? 'api' : s.effect === 'read' ? 'gate' : 'mutate');

/** A step's marker: a filled dot changes the node, a diamond only looks, a square calls the API. */
function marker(kind: Kind, x: number, y: number): string {
  if (kind === 'gate') return `<path d="M${x} ${y - 5} l5 5 l-5 5 l-5 -5 z" fill="#fff" stroke="${COLOR.gate}" stroke-width="1.6"/>`;
  if (kind === 'api') return `<rect x="${x - 4.5}" y="${y - 4.5}" width="9" height="9" fill="${COLOR.api}"/>`;
  return `<circle cx="${x}" cy="${y}" r="4.5" fill="${COLOR.mutate}"/>`;
}

function stepRow(step: RunbookStep, x: number, y: number): string {
  const tags = [
    ...(step.when ? [`<tspan dx="7" ${SANS} font-size="10.5" fill="${COLOR.muted}">${esc(TOPOLOGY[step.when] ?? step.when)}</tspan>`] : []),
    ...(step.always ? [`<tspan dx="7" ${SANS} font-size="10.5" font-weight="700" fill="${COLOR.restore}">always</tspan>`] : []),
  ];
  const tag = tags.join('');
  return [
    `<g><title>${esc(`${step.id}: ${step.title}`)}</title>`,
    marker(kindOf(step), x + 6, y - 4),
    `<text x="${x + 18}" y="${y}" ${MONO} font-size="12" fill="${COLOR.text}">${esc(step.id)}${tag}</text>`,
    '</g>',
  ].join('');
}

/** Which nodes a phase goes to, and how: the left column of its band. */
function describe(rb: PhaseRunbook): { who: string[]; how: string[] } {
  const roles = rb.roles.map((r) => ROLE_NODES[r] ?? r);
  const who: string[] = [];
  if (rb.targets === 'first') who.push(`the first of the ${roles.join(' and ')}, once`);
  else who.push(roles.length > 1 ? `${roles.slice(0, -1).join(', ')} and ${roles.at(-1)}` : (roles[0] ?? ''));
  if (rb.when) who.push(`only with ${TOPOLOGY[rb.when]}`);
  if (rb.select === 'kubelet-due') who.push('only nodes whose kubelet certificates are expired or within --warn-days, or named with --nodes');
  const how: string[] = [];
  const parallel = rb.parallel.map((r) => ROLE_NODES[r] ?? r);
  if (rb.serial && parallel.length > 0) {
    const serial = rb.roles.filter((r) => !rb.parallel.includes(r)).map((r) => ROLE_NODES[r] ?? r);
    how.push(`${serial.join(', ')} one at a time, then ${parallel.join(', ')} up to --parallel at once`);
    how.push('the next node starts only when every gate of this one passed; a failing worker is restored and the others finish');
  } else if (rb.serial) {
    how.push('one node at a time');
    how.push('the next node starts only when every gate of this one passed');
  } else if (parallel.length > 0) {
    how.push(`up to --parallel at once`);
  }
  return { who, how };
}

interface Block {
  height: number;
  svg: string;
}

function phaseBand(rb: PhaseRunbook, index: number, y: number): Block {
  const out: string[] = [];
  const { who, how } = describe(rb);
  // Left column: number, name, title, nodes, order.
  const left: string[] = [];
  let ly = y + 26;
  left.push(`<text x="${LEFT}" y="${ly}" ${SANS} font-size="16" font-weight="700" fill="${COLOR.text}">${index}. ${esc(rb.phase)}</text>`);
  ly += 18;
  for (const l of wrap(rb.title, LEFT_CHARS)) {
    left.push(text(LEFT, ly, l, { fill: COLOR.muted }));
    ly += 16;
  }
  ly += 6;
  for (const [i, item] of [...who, ...how].entries()) {
    const lines = wrap(item, LEFT_CHARS - 2);
    const style = i === who.length && how.length > 0 ? { weight: 600 } : {};
    lines.forEach((l, j) => left.push(text(LEFT + 10, ly + j * 16, l, style)));
    left.push(`<circle cx="${LEFT + 3}" cy="${ly - 4}" r="2" fill="${COLOR.muted}"/>`);
    ly += lines.length * 16 + 4;
  }
  const leftBottom = ly;

  // Middle: the steps in order.
  const steps: string[] = [];
  const firstY = y + 26;
  rb.steps.forEach((s, i) => steps.push(stepRow(s, STEPS, firstY + i * ROW)));
  const lastY = firstY + (rb.steps.length - 1) * ROW;
  const stepsBottom = lastY + 14;
  if (rb.serial && rb.targets !== 'first') {
    // The loop back to the first step: the next node, only after this one's gates.
    const x = STEPS - 14;
    steps.push(
      `<path d="M${STEPS - 2} ${lastY - 4} H${x} V${firstY - 4} H${STEPS - 4}" fill="none" stroke="${COLOR.flow}" stroke-width="1.4" marker-end="url(#arrow)"/>`,
      `<text transform="translate(${x - 5} ${(firstY + lastY) / 2}) rotate(-90)" text-anchor="middle" ${SANS} font-size="11" fill="${COLOR.muted}">next node</text>`,
    );
  }

  // Right: the restore path.
  const right: string[] = [];
  let ry = y + 26;
  if (rb.restore) {
    const after = rb.steps.findIndex((s) => s.id === rb.restore?.after);
    const fromY = firstY + (after + 1) * ROW - 12;
    const bx = BRACKET;
    right.push(
      `<path d="M${bx - 6} ${fromY} H${bx} V${lastY + 2} H${bx - 6}" fill="none" stroke="${COLOR.restore}" stroke-width="1.4"/>`,
      `<path d="M${bx} ${(fromY + lastY) / 2} H${RESTORE - 6}" fill="none" stroke="${COLOR.restore}" stroke-width="1.4" stroke-dasharray="4 3" marker-end="url(#arrow-red)"/>`,
    );
    const lines = wrap(`a step after ${rb.restore.after} fails: restore this node`, RESTORE_CHARS);
    const boxTop = y + 10;
    let inner = boxTop + 18;
    const body: string[] = [];
    for (const l of lines) {
      body.push(text(RESTORE + 10, inner, l, { weight: 600, fill: COLOR.restore }));
      inner += 16;
    }
    inner += 4;
    const always = rb.restore.steps.some((s) => s.always);
    rb.restore.steps.forEach((s) => {
      body.push(stepRow(s, RESTORE + 8, inner));
      inner += ROW;
    });
    const then = [
      ...(always ? ['always: runs even when a restore step before it failed'] : []),
      rb.parallel.length > 0 ? 'then: a failing worker is reported and the other workers finish; otherwise the run stops' : 'then the run stops: later nodes are not touched',
    ];
    for (const t of then) {
      for (const l of wrap(t, RESTORE_CHARS)) {
        body.push(text(RESTORE + 10, inner + 2, l, { fill: COLOR.muted, size: 11 }));
        inner += 15;
      }
    }
    const boxHeight = inner - boxTop + 4;
    right.push(`<rect x="${RESTORE}" y="${boxTop}" width="${WIDTH - 36 - RESTORE}" height="${boxHeight}" rx="6" fill="${COLOR.restoreBand}" stroke="${COLOR.restore}" stroke-width="1"/>`, ...body);
    ry = boxTop + boxHeight + 8;
  } else {
    const mutates = rb.steps.some((s) => s.effect === 'mutate');
    const note = mutates ? 'no restore: a failing step stops the run; --resume continues it' : 'changes nothing: nothing to restore';
    for (const l of wrap(note, RESTORE_CHARS)) {
      right.push(text(RESTORE + 10, ry, l, { fill: COLOR.muted }));
      ry += 16;
    }
  }

  const height = Math.max(leftBottom, stepsBottom, ry) - y + 10;
  out.push(`<rect x="20" y="${y}" width="${WIDTH - 40}" height="${height}" rx="8" fill="${COLOR.band}" stroke="${COLOR.border}"/>`);
  out.push(...left, ...steps, ...right);
  return { height, svg: out.join('\n') };
}

/** A box with a line or two: pre-flight before the phases, the report after them. */
function plainBand(y: number, title: string, body: string): Block {
  const lines = wrap(body, 120);
  const height = 34 + lines.length * 16;
  return {
    height,
    svg: [
      `<rect x="20" y="${y}" width="${WIDTH - 40}" height="${height}" rx="8" fill="#fff" stroke="${COLOR.border}" stroke-dasharray="5 3"/>`,
      `<text x="${LEFT}" y="${y + 22}" ${SANS} font-size="14" font-weight="700" fill="${COLOR.text}">${esc(title)}</text>`,
      ...lines.map((l, i) => text(LEFT, y + 40 + i * 16, l, { fill: COLOR.muted })),
    ].join('\n'),
  };
}

function flowArrow(y: number, label: string): string {
  return [
    `<path d="M${LEFT + 120} ${y + 2} V${y + 24}" stroke="${COLOR.flow}" stroke-width="1.6" marker-end="url(#arrow)"/>`,
    text(LEFT + 132, y + 18, label, { fill: COLOR.muted, size: 11 }),
  ].join('\n');
}

function legend(y: number): string {
  const items: Array<[Kind, string]> = [
    ['mutate', 'changes the node'],
    ['gate', 'a gate: reads and checks, changes nothing'],
    ['api', "calls the management cluster's API"],
  ];
  let x = LEFT;
  const out: string[] = [];
  for (const [kind, label] of items) {
    out.push(marker(kind, x + 6, y - 4), text(x + 18, y, label));
    x += 18 + label.length * 6.6 + 28;
  }
  const notes = [
    'Step ids as in runbooks/*.yaml: docs/runbook-mapping.md gives the commands of each (open the SVG itself to see titles on hover).',
    '"external etcd", "stacked etcd": the step runs only in clusters with that etcd.',
  ];
  notes.forEach((n, i) => out.push(text(LEFT, y + 20 + i * 15, n, { fill: COLOR.muted, size: 11 })));
  return out.join('\n');
}

/** The whole picture for these runbooks, in rotate.yaml's order. */
export function rotationSvg(runbooks: PhaseRunbook[]): string {
  const body: string[] = [];
  let y = 20;
  body.push(`<text x="${LEFT - 16}" y="${y + 18}" ${SANS} font-size="20" font-weight="700" fill="${COLOR.text}">rotate-certs: the order of a rotation</text>`);
  body.push(text(LEFT - 16, y + 38, `Drawn from runbooks/rotate.yaml and the phase runbooks it names by ${SVG_COMMAND}; do not edit by hand.`, { fill: COLOR.muted }));
  y += 66;
  body.push(legend(y));
  y += 50;
  const pre = plainBand(y, 'Pre-flight: every node, changes nothing', 'reachable with working root, every command the steps run is there, certificates as the plan recorded them, CAs valid, etcd healthy, room for backups, clocks in sync, no other run holding the lock. Any failure stops here (exit 69).');
  body.push(pre.svg);
  y += pre.height;
  for (const [i, rb] of runbooks.entries()) {
    body.push(flowArrow(y, i === 0 ? 'then' : 'when every node of the phase above is done'));
    y += 30;
    const band = phaseBand(rb, i + 1, y);
    body.push(band.svg);
    y += band.height;
  }
  body.push(flowArrow(y, 'done'));
  y += 30;
  const report = plainBand(y, 'Report', 'per certificate the old and new expiry, what changed in the management cluster, the backup paths, and how long each kube-apiserver was down.');
  body.push(report.svg);
  y += report.height + 20;
  const defs = [
    '<defs>',
    `<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" fill="${COLOR.flow}"/></marker>`,
    `<marker id="arrow-red" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" fill="${COLOR.restore}"/></marker>`,
    '</defs>',
  ].join('\n');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" viewBox="0 0 ${WIDTH} ${y}" role="img" aria-label="The order of a rotation: pre-flight, then each phase of runbooks/rotate.yaml with its steps and restore">`,
    defs,
    // An opaque background, so the picture reads the same on a dark page.
    `<rect width="${WIDTH}" height="${y}" fill="#ffffff"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync(SVG_FILE, rotationSvg(loadRotationRunbooks()));
  console.log(`wrote ${SVG_FILE}`);
}
