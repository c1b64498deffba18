/**
 * Ctrl-C at a question: one line and exit 130, never an internal error. The terminal prompts are
 * replaced by one that fails as @inquirer/prompts does when the user presses Ctrl-C.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CliIo } from '../../src/cli/io.js';
import { runCli } from '../../src/cli/program.js';
import { parseInventory } from '../../src/inventory/load.js';
import { requireKnownOs } from '../../src/profiles/detect-os.js';
import { compilePlan, planDigest, sha256 } from '../../src/plan/compile.js';
import { writePlan } from '../../src/plan/file.js';
import { ProfileSet } from '../../src/profiles/profile.js';
import { loadRotationRunbooks } from '../../src/runbook/runbook.js';

vi.mock('@inquirer/prompts', () => {
  const ctrlC = async () => {
    const err = new Error('User force closed the prompt with SIGINT');
    err.name = 'ExitPromptError';
    throw err;
  };
  return { confirm: ctrlC, select: ctrlC, checkbox: ctrlC, input: ctrlC, password: ctrlC };
});

const dir = mkdtempSync(join(tmpdir(), 'rc-prompt-exit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('Ctrl-C at a question', () => {
  it('apply PLAN asked to confirm: stopped at a prompt, exit 130, the state folder untouched', async () => {
    const inventory = `cluster: lab
ssh: { user: capv, identityFile: id_rsa, knownHostsFile: known_hosts }
os: ubuntu
etcd:
  - { name: lab-etcd-1, host: 192.0.2.11 }
controlPlane:
  - { name: lab-cp-1, host: 192.0.2.21 }
`;
    writeFileSync(join(dir, 'inv.yaml'), inventory);
    const inv = requireKnownOs(parseInventory(inventory, join(dir, 'inv.yaml')), 'every OS is set');
    const plan = compilePlan({ inventory: inv, inventoryDigest: sha256(inventory), runbooks: loadRotationRunbooks(), profiles: new ProfileSet(), runId: '20261206T000000Z', createdAt: '2026-12-06T00:00:00.000Z', scope: {} });
    writePlan(join(dir, 'plan.yaml'), { ...plan, digest: planDigest(plan) });
    let out = '';
    let err = '';
    const io: CliIo = { out: (t) => void (out += t), err: (t) => void (err += t), color: false, env: process.env, cwd: dir };
    const code = await runCli(['apply', 'plan.yaml', '--state-dir', 'state'], io, { interactive: true });
    expect(code).toBe(130);
    expect(err.trim()).toBe('rotate-certs: stopped at a prompt; nothing was changed');
    expect(out).toBe('');
    expect(() => readFileSync(join(dir, 'state', 'lab', 'journal.jsonl'))).toThrow();
  });
});
