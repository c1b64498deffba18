/**
 * The files docs/routine.md tells people to install: the systemd units pass `systemd-analyze
 * verify` (Debian package systemd), the alert rules pass `promtool check rules` and their own
 * `promtool test rules` (Debian package prometheus), the service's command line is one rotate-certs
 * accepts, and the page shows each file as it is in the repository. .ci/run installs both tools.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CliIo } from '../../src/cli/io.js';
import { runCli } from '../../src/cli/program.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SYSTEMD = join(ROOT, 'deploy', 'systemd');
const PROMETHEUS = join(ROOT, 'deploy', 'prometheus');
const BINARY = '/usr/local/bin/rotate-certs';

function tool(command: string, args: string[], cwd: string) {
  const r = spawnSync(command, args, { cwd, encoding: 'utf8' });
  if (r.error) throw new Error(`${command} is not installed (Debian: apt-get install systemd prometheus; .ci/run does): ${r.error.message}`);
  return r;
}

/** The service's ExecStart, continuation lines joined, split into words (it quotes nothing). */
function execStart(unit: string): string[] {
  const line = /^ExecStart=((?:.*\\\n)*.*)$/m.exec(unit)?.[1];
  if (!line) throw new Error('no ExecStart');
  return line.replace(/\\\n/g, ' ').trim().split(/\s+/);
}

describe('deploy/: the routine as docs/routine.md installs it', () => {
  it('systemd-analyze verify passes the service and the timer, without a warning', { timeout: 30_000 }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'rc-units-'));
    try {
      // verify checks that ExecStart's program exists: on this machine it is a stand-in.
      const stub = join(dir, 'rotate-certs');
      writeFileSync(stub, '#!/bin/sh\n');
      chmodSync(stub, 0o755);
      const service = readFileSync(join(SYSTEMD, 'rotate-certs.service'), 'utf8');
      expect(service.split(BINARY)).toHaveLength(2);
      writeFileSync(join(dir, 'rotate-certs.service'), service.replace(BINARY, stub));
      copyFileSync(join(SYSTEMD, 'rotate-certs.timer'), join(dir, 'rotate-certs.timer'));
      const r = tool('systemd-analyze', ['verify', join(dir, 'rotate-certs.service'), join(dir, 'rotate-certs.timer')], dir);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('promtool check rules and promtool test rules pass the alert rules', { timeout: 30_000 }, () => {
    const check = tool('promtool', ['check', 'rules', 'rotate-certs.rules.yml'], PROMETHEUS);
    expect(check.stdout + check.stderr).toMatch(/SUCCESS: 5 rules found/);
    expect(check.status).toBe(0);
    const test = tool('promtool', ['test', 'rules', 'rotate-certs.rules.test.yml'], PROMETHEUS);
    expect(test.stdout + test.stderr).toMatch(/SUCCESS/);
    expect(test.status).toBe(0);
  });

  it("the service's command line is one rotate-certs accepts (here it stops at a folder this machine lacks)", async () => {
    const [binary, ...args] = execStart(readFileSync(join(SYSTEMD, 'rotate-certs.service'), 'utf8'));
    expect(binary).toBe(BINARY);
    let err = '';
    const io: CliIo = { out: () => {}, err: (t) => void (err += t), color: false, env: {}, cwd: tmpdir() };
    const code = await runCli(args, io, { connector: { connect: async () => Promise.reject(new Error('no node may be contacted')) } });
    expect(err).toMatch(/^rotate-certs: (--textfile: the folder \/var\/lib\/node_exporter\/textfile does not exist|cannot read --clusters-dir \/srv\/eksa: no such folder)/);
    expect(code).toBe(64);
  });

  it('docs/routine.md shows each file as it is here', () => {
    const doc = readFileSync(join(ROOT, 'docs', 'routine.md'), 'utf8');
    for (const file of [join(SYSTEMD, 'rotate-certs.service'), join(SYSTEMD, 'rotate-certs.timer'), join(PROMETHEUS, 'rotate-certs.rules.yml')]) {
      expect(doc, file).toContain(readFileSync(file, 'utf8').trimEnd());
    }
  });
});
