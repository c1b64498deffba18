/**
 * By hand: `npm run lab -- up [--etcd 3 --cp 2 --workers 1 --os ubuntu --certs valid --kubernetes 1.28 --nodes spec --services|--no-services] [--dir D]`,
 * `npm run lab -- down [--dir D | --all]`, `npm run lab -- status`.
 * --nodes spec: comma list of name:role[:os], e.g. "e1:etcd,cp1:control-plane:bottlerocket,w1:worker".
 */
import { existsSync } from 'node:fs';
import { cleanupStaleLabs, destroyLabDir, listLabs, probeTcp, startLab, type LabNodeSpec, type LabOptions, type LabOs, type LabRole } from './lab.js';

function flags(argv: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const [k, v] = a.slice(2).split('=', 2) as [string, string | undefined];
    if (v !== undefined) m.set(k, v);
    else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) m.set(k, argv[++i]!);
    else m.set(k, 'true');
  }
  return m;
}

function num(f: Map<string, string>, k: string): number | undefined {
  const v = f.get(k);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${k} wants a number, got ${v}`);
  return n;
}

async function main(): Promise<number> {
  const [cmd, ...rest] = process.argv.slice(2);
  const f = flags(rest);
  if (cmd === 'up') {
    const opts: LabOptions = { persistent: true };
    opts.etcd = num(f, 'etcd');
    opts.controlPlane = num(f, 'cp') ?? num(f, 'control-plane');
    opts.workers = num(f, 'workers');
    opts.subnet = num(f, 'subnet');
    if (f.has('id')) opts.id = f.get('id');
    if (f.has('os')) opts.os = f.get('os') as LabOs;
    if (f.has('certs')) opts.certs = f.get('certs') as LabOptions['certs'];
    if (f.has('kubernetes')) opts.kubernetes = f.get('kubernetes') as LabOptions['kubernetes'];
    if (f.has('dir')) opts.dir = f.get('dir');
    if (f.has('no-services')) opts.services = false;
    if (f.has('services')) opts.services = f.get('services') !== 'false';
    if (f.has('nodes')) {
      opts.nodes = f
        .get('nodes')!
        .split(',')
        .map((s): LabNodeSpec => {
          const [name, role, os] = s.split(':');
          if (!name || !role) throw new Error(`bad node spec ${s} (name:role[:os])`);
          return { name, role: role as LabRole, ...(os ? { os: os as LabOs } : {}) };
        });
    }
    const t = Date.now();
    const lab = await startLab(opts);
    process.stdout.write(`lab ${lab.id} up in ${Date.now() - t} ms\nstate dir: ${lab.dir}\ninventory: ${lab.inventoryPath}\n\n`);
    for (const n of lab.nodes) {
      process.stdout.write(
        `${n.name.padEnd(14)} ${n.role.padEnd(14)} ${n.os.padEnd(13)} ssh -i ${lab.identityFile} -o UserKnownHostsFile=${lab.knownHostsFile} -o StrictHostKeyChecking=yes ${n.user}@${n.host}\n`,
      );
    }
    process.stdout.write(`\nroot shell in a node: nsenter -t <holderPid from ${lab.dir}/lab.json> -m -n bash\ndown: npm run lab -- down --dir ${lab.dir}\n`);
    return 0;
  }
  if (cmd === 'down') {
    if (f.has('all')) {
      await cleanupStaleLabs({ all: true });
      process.stdout.write('all labs removed\n');
      return 0;
    }
    const dir = f.get('dir');
    if (!dir) {
      const labs = listLabs();
      if (labs.length !== 1) throw new Error(`${labs.length} labs exist: say --dir D or --all`);
      await destroyLabDir(labs[0]!.dir);
      process.stdout.write(`lab ${labs[0]!.id} removed\n`);
      return 0;
    }
    if (!existsSync(dir)) throw new Error(`${dir} does not exist`);
    await destroyLabDir(dir);
    process.stdout.write(`lab in ${dir} removed\n`);
    return 0;
  }
  if (cmd === 'status') {
    const labs = listLabs();
    if (!labs.length) process.stdout.write('no labs\n');
    for (const l of labs) {
      process.stdout.write(`lab ${l.id} dir ${l.dir} subnet 10.201.${l.subnet}.0/24 ${l.persistent ? '(cli)' : `(owner pid ${l.ownerPid})`}\n`);
      for (const n of l.nodes) {
        const ssh = await probeTcp(n.host, 22, 300);
        const svc = n.role === 'etcd' ? `:2379 ${await probeTcp(n.host, 2379, 300)}` : n.role === 'control-plane' ? `:6443 ${await probeTcp(n.host, 6443, 300)}` : '';
        process.stdout.write(`  ${n.name.padEnd(14)} ${n.host.padEnd(14)} ${n.role.padEnd(14)} ssh ${ssh} ${svc}\n`);
      }
    }
    return 0;
  }
  process.stderr.write('usage: lab up [--etcd N --cp N --workers N --os ubuntu|rhel|bottlerocket --certs valid|expiring|expired --nodes spec --no-services --dir D] | down [--dir D | --all] | status\n');
  return 2;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`lab: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
