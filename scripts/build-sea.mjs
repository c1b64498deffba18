#!/usr/bin/env node
/**
 * `npm run build:sea`: the single executable for admin machines without Node, in dist-sea/:
 * src/cli/main.ts bundled by esbuild into one CommonJS script, that script and the package's
 * files (runbooks/, os-profiles/, package.json) made into a blob by Node's single executable
 * applications (sea-config.json), and the blob injected into a copy of this node binary by
 * postject. Writes dist-sea/rotate-certs and dist-sea/rotate-certs.sha256 (for `sha256sum -c`).
 */
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import postject from 'postject';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist-sea');
const config = JSON.parse(readFileSync(join(root, 'sea-config.json'), 'utf8'));
const bundle = join(root, config.main);
const blob = join(root, config.output);
const exe = join(out, 'rotate-certs');
// Node's fixed marker for where the blob goes (docs: single executable applications, Node 20).
const SENTINEL_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
// The files src/util/package-files.ts serves; the index lists them (Node 20 cannot list assets).
const ASSET_INDEX = 'package-files.json';
const FOLDERS = ['runbooks', 'os-profiles'];

/**
 * ssh2's optional native crypto (cpu-features, sshcrypto.node) stays out: each require of it
 * throws, ssh2 catches that and uses its pure-JavaScript paths, as after `npm install
 * --ignore-scripts`. (Left as a real require, the executable would print Node's warning that it
 * loads built-in modules only.)
 */
const leaveOutNative = {
  name: 'leave-out-native',
  setup(b) {
    b.onResolve({ filter: /^cpu-features$|\.node$/ }, (args) => ({ path: args.path, namespace: 'left-out' }));
    b.onLoad({ filter: /.*/, namespace: 'left-out' }, (args) => ({ contents: `throw new Error(${JSON.stringify(`${args.path} is left out of the single executable`)});`, loader: 'js' }));
  },
};

// macOS and Windows need more steps (a Mach-O segment and signing; a PE resource): not done here.
if (process.platform !== 'linux') {
  process.stderr.write(`build:sea makes Linux executables only (this is ${process.platform}): use the npm package there (docs/install.md)\n`);
  process.exit(1);
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

await build({
  entryPoints: [join(root, 'src', 'cli', 'main.ts')],
  outfile: bundle,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  plugins: [leaveOutNative],
  // package-root.ts resolves ../../ from its own URL in src/util/; run by plain node (not as the
  // executable), the bundle in dist-sea/ gives it the URL that file would have, so the files
  // come from this folder.
  define: { 'import.meta.url': '__packageRootModuleUrl' },
  banner: { js: '"use strict";\nvar __packageRootModuleUrl = require("node:url").pathToFileURL(require("node:path").join(__dirname, "..", "src", "util", "package-root.js")).href;' },
  logLevel: 'warning',
});

const assets = { [ASSET_INDEX]: join(out, ASSET_INDEX), 'package.json': join(root, 'package.json') };
for (const folder of FOLDERS) {
  for (const name of readdirSync(join(root, folder))) {
    if (statSync(join(root, folder, name)).isFile()) assets[`${folder}/${name}`] = join(root, folder, name);
  }
}
writeFileSync(assets[ASSET_INDEX], `${JSON.stringify(Object.keys(assets).filter((k) => k !== ASSET_INDEX).sort())}\n`);
const seaConfig = join(out, 'sea-config.json');
// Paths relative to the package folder (the command runs there): the executable's stack traces
// then name dist-sea/rotate-certs.cjs, not the build machine's folders.
const rel = (p) => relative(root, p);
writeFileSync(seaConfig, `${JSON.stringify({ ...config, assets: Object.fromEntries(Object.entries(assets).map(([k, p]) => [k, rel(p)])) }, null, 2)}\n`);
// Its one line of output is noise on success; a failure's message carries it.
execFileSync(process.execPath, ['--experimental-sea-config', seaConfig], { cwd: root, stdio: 'pipe' });

copyFileSync(process.execPath, exe);
chmodSync(exe, 0o755);
// postject's ELF reader warns about every section of node's binary whose name it cannot place
// ("Can't find string offset for section name '.note.100'"): harmless, known upstream; drop
// those lines and keep any other.
const warn = console.warn;
console.warn = (...args) => {
  if (!/^warning: Can't find string offset for section name/.test(String(args[0]))) warn(...args);
};
try {
  await postject.inject(exe, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: SENTINEL_FUSE });
} finally {
  console.warn = warn;
}
rmSync(blob);

const sha = createHash('sha256').update(readFileSync(exe)).digest('hex');
writeFileSync(join(out, 'rotate-certs.sha256'), `${sha}  rotate-certs\n`);
process.stdout.write(`${exe} (${process.version} ${process.platform}-${process.arch})\nsha256 ${sha}\n`);
