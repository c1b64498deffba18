/**
 * `npm run bench [-- --runs N] [--warmup N] [--sizes 10,40]`: wall time of `rotate-certs check` against the
 * loop a user would otherwise run, over emulated nodes (test/lab, services off), in the same run.
 *
 *   check    node dist/cli/main.js check --inventory INV --output json      (one process, all nodes)
 *   baseline for each node, serially, in bash:
 *              ssh -i ID -o UserKnownHostsFile=KH -o StrictHostKeyChecking=yes -o BatchMode=yes \
 *                  USER@HOST sudo kubeadm certs check-expiration
 *
 * Two more series put the numbers in context, timed in the same rounds:
 *   parallel the same ssh command, 16 at a time: printf '%s\n' TARGETS | xargs -P 16 -I{} ssh ... {} sudo kubeadm ...
 *   floor    bench/ssh-floor.mjs: one ssh2 connection per node running `sudo -n true`, 16 at a time, nothing
 *            read or parsed: about what any SSH-based check pays in this lab, where every node shares these CPUs.
 *
 * Prints the median of N runs of each per size, the ratio baseline/check and PASS/MISS for the targets
 * (40 nodes under 3 s; at least 10x faster than the loop); exits 0 either way. Exits 1 when a run did not do
 * the real work (check without certificates for some node, a loop iteration that failed). Lab startup is not
 * timed. Writes bench/results.json. Needs root (the lab does).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { startLab, type Lab } from '../test/lab/lab.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const BIN = join(ROOT, 'dist', 'cli', 'main.js');
const RESULTS = join(ROOT, 'bench', 'results.json');
const PATH_ENV = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const TARGET_40_MS = 3000;
const TARGET_RATIO = 10;
/** check's default --concurrency; the parallel baseline and the floor use the same. */
const CONCURRENCY = 16;

interface Size {
  nodes: number;
  etcd: number;
  controlPlane: number;
  workers: number;
}
const SIZES: Record<number, Size> = {
  10: { nodes: 10, etcd: 0, controlPlane: 3, workers: 7 },
  40: { nodes: 40, etcd: 0, controlPlane: 3, workers: 37 },
};

type Series = 'check' | 'floor' | 'parallel' | 'loop';
const SERIES: Series[] = ['check', 'floor', 'parallel', 'loop'];

interface SizeResult {
  nodes: number;
  checkMedianMs: number;
  loopMedianMs: number;
  /** loop / check: the target's ratio. */
  ratio: number;
  parallelMedianMs: number;
  floorMedianMs: number;
  /** loop / floor: about the best ratio an SSH-based check at 16 connections could reach in this lab. */
  floorRatio: number;
  runs: number;
  checkRunsMs: number[];
  loopRunsMs: number[];
  parallelRunsMs: number[];
  floorRunsMs: number[];
  /** Median CPU time of the whole machine (tool and nodes) during one run of each series. */
  cpuMedianMs: Record<Series, number>;
  labStartMs: number;
  /** Share of all CPUs busy with something else during 1 s with the lab up, before the timed runs. */
  backgroundCpuBusyPct: number;
}

class BenchError extends Error {}

// ---------------------------------------------------------------- arguments

interface Options {
  runs: number;
  warmup: number;
  sizes: number[];
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { runs: 5, warmup: 1, sizes: [10, 40] };
  const int = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < min) throw new BenchError(`${flag} wants an integer >= ${min}, got ${v ?? 'nothing'}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const [flag, inline] = arg.startsWith('--') && eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--runs':
        opts.runs = int('--runs', value(), 1);
        break;
      case '--warmup':
        opts.warmup = int('--warmup', value(), 0);
        break;
      case '--sizes': {
        const v = value() ?? '';
        opts.sizes = v.split(',').map((s) => int('--sizes', s.trim(), 1));
        for (const s of opts.sizes) if (!SIZES[s]) throw new BenchError(`--sizes: known sizes are ${Object.keys(SIZES).join(', ')}, got ${s}`);
        break;
      }
      case '-h':
      case '--help':
        process.stdout.write('usage: npm run bench [-- --runs N (5)] [--warmup N (1)] [--sizes 10,40]\n');
        process.exit(0);
        break;
      default:
        throw new BenchError(`unknown argument ${arg} (try --help)`);
    }
  }
  return opts;
}

// ---------------------------------------------------------------- processes, interruption

let currentChild: ChildProcess | undefined;
let currentLab: Lab | undefined;
let labStarting: Promise<Lab> | undefined;
let interrupted = false;

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command to completion; `ms` is its wall time from spawn to exit. */
function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<Ran> {
  return new Promise((resolve, reject) => {
    if (interrupted) return reject(new BenchError('interrupted'));
    const start = performance.now();
    const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    currentChild = child;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e) => {
      currentChild = undefined;
      reject(e);
    });
    child.on('close', (code, signal) => {
      const ms = performance.now() - start;
      currentChild = undefined;
      if (interrupted) return reject(new BenchError('interrupted'));
      resolve({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), ms });
    });
  });
}

function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: process.env.PATH ?? PATH_ENV, LANG: 'C', NO_COLOR: '1' };
  delete env.NODE_OPTIONS; // the CLI runs as installed: plain node, no loader
  return env;
}

async function tearDown(): Promise<void> {
  const starting = labStarting;
  if (starting) {
    try {
      currentLab ??= await starting;
    } catch {
      /* startLab removes what it made when it fails */
    }
  }
  const lab = currentLab;
  currentLab = undefined;
  labStarting = undefined;
  if (lab) await lab.down();
}

function onSignal(sig: NodeJS.Signals): void {
  if (interrupted) {
    process.stderr.write(`\n${sig} again: exiting without waiting for lab teardown (npm run lab -- down --all cleans up)\n`);
    process.exit(130);
  }
  interrupted = true;
  process.stderr.write(`\n${sig}: stopping, tearing the lab down...\n`);
  currentChild?.kill('SIGTERM');
  tearDown()
    .catch((e: unknown) => process.stderr.write(`lab teardown failed: ${String(e)}\n`))
    .finally(() => process.exit(130));
}

// ---------------------------------------------------------------- build

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

function ensureBuilt(): void {
  if (existsSync(BIN) && statSync(BIN).mtimeMs >= newestMtime(join(ROOT, 'src'))) return;
  process.stdout.write(`${existsSync(BIN) ? 'dist/ is older than src/' : 'dist/cli/main.js is missing'}: npx tsc -p tsconfig.build.json\n`);
  const r = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new BenchError(`build failed (exit ${r.status ?? r.signal})`);
  if (!existsSync(BIN)) throw new BenchError(`build did not produce ${BIN}`);
}

/** USER_HZ: the unit of /proc/stat; 100 on every Linux this runs on. */
const CLOCK_TICKS = 100;

/** [busy, total] jiffies of all CPUs together, from /proc/stat. */
function cpuTicks(): [number, number] {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return [total - f[3]! - f[4]!, total]; // minus idle and iowait
}

/** How busy the machine is with other work (other labs, test runs): the timings share these CPUs. */
async function backgroundLoad(ms = 1000): Promise<number> {
  const [b0, t0] = cpuTicks();
  await new Promise((r) => setTimeout(r, ms));
  const [b1, t1] = cpuTicks();
  return t1 > t0 ? Math.round(((b1 - b0) / (t1 - t0)) * 100) : 0;
}

// ---------------------------------------------------------------- the two contenders

interface CheckJson {
  certificates: Array<{ node: string; source: string }>;
  errors: Array<{ node: string; message: string }>;
}

/** One `rotate-certs check` of the whole lab; throws unless every node reported certificates it read over SSH. */
async function runCheckOnce(lab: Lab): Promise<number> {
  const r = await timed(process.execPath, [BIN, 'check', '--inventory', lab.inventoryPath, '--output', 'json'], childEnv());
  const fail = (why: string) => new BenchError(`rotate-certs check (exit ${r.code}): ${why}\nstderr: ${r.stderr.trim().slice(0, 2000)}\nstdout: ${r.stdout.slice(0, 2000)}`);
  // 3 is expected: with services off nothing serves :6443 / :2379, so those probes are errors.
  if (r.code < 0 || r.code > 3) throw fail('unexpected exit code');
  let report: CheckJson;
  try {
    report = JSON.parse(r.stdout) as CheckJson;
  } catch (e) {
    throw fail(`output is not JSON (${String(e)})`);
  }
  if (!Array.isArray(report.certificates) || !Array.isArray(report.errors)) throw fail('JSON lacks certificates/errors');
  if (report.certificates.length === 0) throw fail('no certificates at all');
  for (const n of lab.nodes) {
    const read = report.certificates.filter((c) => c.node === n.name && c.source !== 'endpoint').length;
    if (read === 0) throw fail(`no certificates read from node ${n.name}`);
  }
  const unexpected = report.errors.filter((e) => !/^endpoint \S+:(6443|2379): connection refused/.test(e.message));
  if (unexpected.length) throw fail(`errors other than the refused endpoint probes: ${unexpected.map((e) => `${e.node}: ${e.message}`).join('; ')}`);
  return r.ms;
}

/**
 * The baseline: a serial bash loop, one ssh + sudo + kubeadm per node, exactly as typed at a prompt. Each
 * iteration's exit status goes to fd 3 so it can be checked without touching what ssh prints.
 */
const LOOP = `
id=$1 kh=$2; shift 2
for target in "$@"; do
  echo "@@node $target"
  ssh -i "$id" -o UserKnownHostsFile="$kh" -o StrictHostKeyChecking=yes -o BatchMode=yes "$target" sudo kubeadm certs check-expiration
  echo "$target $?" >&3
done 3>&2
`;

async function runLoopOnce(lab: Lab): Promise<number> {
  const targets = lab.nodes.map((n) => `${n.user}@${n.host}`);
  const r = await timed('bash', ['-c', LOOP, 'loop', lab.identityFile, lab.knownHostsFile, ...targets], childEnv());
  const fail = (why: string) => new BenchError(`baseline loop: ${why}\nstderr: ${r.stderr.trim().slice(0, 2000)}`);
  if (r.code !== 0) throw fail(`bash exited ${r.code}`);
  const status = new Map<string, number>();
  for (const line of r.stderr.split('\n')) {
    const m = /^(\S+@\S+) (\d+)$/.exec(line);
    if (m) status.set(m[1]!, Number(m[2]));
  }
  const chunks = r.stdout.split(/^@@node /m).slice(1);
  for (const [i, t] of targets.entries()) {
    const code = status.get(t);
    if (code !== 0) throw fail(`${t} (${lab.nodes[i]!.name}): ssh ... sudo kubeadm certs check-expiration exited ${code ?? '(no status)'}`);
    const chunk = chunks[i] ?? '';
    if (!chunk.startsWith(`${t}\n`) || !/^CERTIFICATE AUTHORITY\s+EXPIRES/m.test(chunk)) throw fail(`${t}: no certificate table in the output:\n${chunk.slice(0, 1000)}`);
  }
  return r.ms;
}

/** The loop's command, CONCURRENCY nodes at a time, as an operator in a hurry would type it. */
const PARALLEL = `
id=$1 kh=$2 n=$3; shift 3
printf '%s\\n' "$@" | xargs -P "$n" -I{} ssh -i "$id" -o UserKnownHostsFile="$kh" -o StrictHostKeyChecking=yes -o BatchMode=yes {} sudo kubeadm certs check-expiration
`;

async function runParallelOnce(lab: Lab): Promise<number> {
  const targets = lab.nodes.map((n) => `${n.user}@${n.host}`);
  const r = await timed('bash', ['-c', PARALLEL, 'parallel', lab.identityFile, lab.knownHostsFile, String(CONCURRENCY), ...targets], childEnv());
  // xargs exits 123 when any ssh failed; every node prints one table.
  const tables = r.stdout.match(/^CERTIFICATE AUTHORITY\s+EXPIRES/gm)?.length ?? 0;
  if (r.code !== 0 || tables !== targets.length) throw new BenchError(`parallel baseline: exit ${r.code}, ${tables} certificate tables for ${targets.length} nodes\nstderr: ${r.stderr.trim().slice(0, 2000)}`);
  return r.ms;
}

async function runFloorOnce(lab: Lab): Promise<number> {
  const targets = lab.nodes.map((n) => `${n.user}@${n.host}`);
  const r = await timed(process.execPath, [join(ROOT, 'bench', 'ssh-floor.mjs'), lab.identityFile, lab.knownHostsFile, String(CONCURRENCY), ...targets], childEnv());
  if (r.code !== 0) throw new BenchError(`floor (ssh2 + sudo -n true): exit ${r.code}\nstderr: ${r.stderr.trim().slice(0, 2000)}`);
  return r.ms;
}

const RUNNERS: Record<Series, (lab: Lab) => Promise<number>> = { check: runCheckOnce, floor: runFloorOnce, parallel: runParallelOnce, loop: runLoopOnce };

/** Wall time of one run, and the CPU time the whole machine spent meanwhile (the nodes run here too). */
async function runWithCpu(series: Series, lab: Lab): Promise<{ ms: number; cpuMs: number }> {
  const [b0] = cpuTicks();
  const ms = await RUNNERS[series](lab);
  const [b1] = cpuTicks();
  return { ms, cpuMs: ((b1 - b0) * 1000) / CLOCK_TICKS };
}

// ---------------------------------------------------------------- measuring

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function measure(size: Size, opts: Options): Promise<SizeResult> {
  process.stdout.write(`\n${size.nodes} nodes (${size.controlPlane} control plane, ${size.workers} workers): starting lab... `);
  const t = performance.now();
  labStarting = startLab({ etcd: size.etcd, controlPlane: size.controlPlane, workers: size.workers, services: false });
  currentLab = await labStarting;
  labStarting = undefined;
  const lab = currentLab;
  const labStartMs = performance.now() - t;
  process.stdout.write(`up in ${sec(labStartMs)} (not timed)\n`);
  if (lab.nodes.length !== size.nodes) throw new BenchError(`lab has ${lab.nodes.length} nodes, wanted ${size.nodes}`);
  const backgroundCpuBusyPct = await backgroundLoad();
  process.stdout.write(`  CPUs busy with other work before the runs: ${backgroundCpuBusyPct}% (load average ${loadavg()[0]!.toFixed(2)})\n`);
  if (backgroundCpuBusyPct > 15) process.stdout.write('  warning: the machine is not idle; the timings below include that contention\n');

  const fmt = (r: Record<Series, { ms: number }>) => SERIES.map((k) => `${k} ${sec(r[k].ms)}`).join('   ');
  const round = async (n: number) => {
    const r = {} as Record<Series, { ms: number; cpuMs: number }>;
    // In turn within each round, each round starting one further, so drift on the machine and
    // whatever the previous series left behind hit all alike.
    for (let j = 0; j < SERIES.length; j++) {
      const k = SERIES[(n + j) % SERIES.length]!;
      r[k] = await runWithCpu(k, lab);
    }
    return r;
  };
  for (let i = 0; i < opts.warmup; i++) process.stdout.write(`  warm-up      ${fmt(await round(i))}   (not counted)\n`);
  const runs: Array<Record<Series, { ms: number; cpuMs: number }>> = [];
  for (let i = 0; i < opts.runs; i++) {
    const r = await round(i);
    runs.push(r);
    process.stdout.write(`  run ${String(i + 1).padStart(2)}/${opts.runs}    ${fmt(r)}\n`);
  }
  currentLab = undefined;
  await lab.down();

  const ms = (k: Series) => runs.map((r) => Math.round(r[k].ms));
  const med = (k: Series) => Math.round(median(ms(k)));
  const ratio = (a: number, b: number) => Math.round((a / b) * 10) / 10;
  const cpuMedianMs = Object.fromEntries(SERIES.map((k) => [k, Math.round(median(runs.map((r) => r[k].cpuMs)))])) as Record<Series, number>;
  return {
    nodes: size.nodes,
    checkMedianMs: med('check'),
    loopMedianMs: med('loop'),
    ratio: ratio(med('loop'), med('check')),
    parallelMedianMs: med('parallel'),
    floorMedianMs: med('floor'),
    floorRatio: ratio(med('loop'), med('floor')),
    runs: opts.runs,
    checkRunsMs: ms('check'),
    loopRunsMs: ms('loop'),
    parallelRunsMs: ms('parallel'),
    floorRunsMs: ms('floor'),
    cpuMedianMs,
    labStartMs: Math.round(labStartMs),
    backgroundCpuBusyPct,
  };
}

function report(results: SizeResult[]): Array<{ target: string; value: string; pass: boolean }> {
  const rows = [
    ['nodes', 'runs', 'check', 'loop', 'loop/check', 'parallel', 'floor', 'loop/floor', 'CPU s: check', 'floor', 'parallel', 'loop'],
    ...results.map((r) => [
      String(r.nodes),
      String(r.runs),
      sec(r.checkMedianMs),
      sec(r.loopMedianMs),
      `${r.ratio.toFixed(1)}x`,
      sec(r.parallelMedianMs),
      sec(r.floorMedianMs),
      `${r.floorRatio.toFixed(1)}x`,
      ...SERIES.map((k) => (r.cpuMedianMs[k] / 1000).toFixed(1)),
    ]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const line = (row: string[]) => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('   ');
  process.stdout.write(`\n(medians; CPU s is the whole machine's CPU time during one run, nodes included)\n${line(rows[0]!)}\n${widths.map((w) => '-'.repeat(w)).join('   ')}\n${rows.slice(1).map(line).join('\n')}\n\n`);

  const targets: Array<{ target: string; value: string; pass: boolean }> = [];
  const r40 = results.find((r) => r.nodes === 40);
  if (r40) targets.push({ target: 'check of 40 nodes under 3 s', value: sec(r40.checkMedianMs), pass: r40.checkMedianMs < TARGET_40_MS });
  for (const r of results) targets.push({ target: `check at least ${TARGET_RATIO}x faster than the loop (${r.nodes} nodes)`, value: `${r.ratio.toFixed(1)}x`, pass: r.ratio >= TARGET_RATIO });
  const w = Math.max(...targets.map((t) => t.target.length));
  for (const t of targets) process.stdout.write(`${t.pass ? 'PASS' : 'MISS'}  ${t.target.padEnd(w)}  ${t.value}\n`);
  // What the lab allows at all: the floor is SSH and sudo alone, on CPUs the nodes share with the tool.
  if (r40) process.stdout.write(`\nfloor at 40 nodes: ${sec(r40.floorMedianMs)}; ${r40.floorMedianMs >= TARGET_40_MS ? 'the 3 s target is below what SSH and sudo alone take here' : 'the 3 s target is above the floor'}\n`);
  for (const r of results) process.stdout.write(`loop/floor, about the best ratio an SSH-based check at ${CONCURRENCY} connections could reach here (${r.nodes} nodes): ${r.floorRatio.toFixed(1)}x\n`);
  return targets;
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new BenchError('the lab needs root (network and mount namespaces, an sshd per node)');
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  ensureBuilt();
  process.stdout.write(`rotate-certs check vs serial ssh loop (with the parallel loop and the SSH floor): ${opts.runs} run(s) per size (+${opts.warmup} warm-up), node ${process.version}, ${cpus().length} CPUs\n`);

  const results: SizeResult[] = [];
  try {
    for (const n of opts.sizes) results.push(await measure(SIZES[n]!, opts));
  } finally {
    await tearDown();
  }
  const targets = report(results);
  const cpuList = cpus();
  writeFileSync(
    RESULTS,
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        nodeVersion: process.version,
        cpus: cpuList.length,
        cpuModel: cpuList[0]?.model.trim() ?? 'unknown',
        sizes: results,
        targets: targets.map((t) => ({ ...t, result: t.pass ? 'PASS' : 'MISS' })),
      },
      null,
      2,
    )}\n`,
  );
  process.stdout.write(`\nwrote ${RESULTS}\n`);
  return 0;
}

main().then(
  (code) => {
    if (!interrupted) process.exit(code);
  },
  (e: unknown) => {
    if (interrupted) return; // onSignal exits once the lab is down
    process.stderr.write(`\nbench failed: ${e instanceof BenchError ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
