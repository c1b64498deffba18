/**
 * The one rule of docs/architecture.md: every import points down the list of rooms. A room may
 * import any room below it, never one above it (or a file of the command line from elsewhere).
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/** Top to bottom, as docs/architecture.md lists them. */
export const ROOMS = ['cli', 'ui', 'routine', 'rotation', 'apply', 'plan', 'report', 'check', 'backups', 'state', 'eksa', 'runbook', 'profiles', 'kube', 'transport', 'certs', 'inventory', 'util'];

const SRC = resolve(import.meta.dirname, '../../src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

const roomOf = (file: string) => relative(SRC, file).split('/')[0]!;

/** Every relative import (static, type-only or dynamic) of every source file, as room pairs. */
function arrows(): Array<{ from: string; to: string; file: string; spec: string }> {
  return files(SRC).flatMap((file) => {
    const text = readFileSync(file, 'utf8');
    return [...text.matchAll(/(?:from\s+|import\(\s*)'(\.{1,2}\/[^']+)'/g)].map((m) => ({ from: roomOf(file), to: roomOf(resolve(dirname(file), m[1]!)), file: relative(SRC, file), spec: m[1]! }));
  });
}

describe('architecture: the arrows point down', () => {
  it('every folder of src/ is a room of the list', () => {
    const rooms = readdirSync(SRC).filter((f) => statSync(join(SRC, f)).isDirectory());
    expect(rooms.filter((r) => !ROOMS.includes(r))).toEqual([]);
  });

  it('no file imports a room above its own', () => {
    const up = arrows().filter((a) => a.from !== a.to && ROOMS.indexOf(a.to) < ROOMS.indexOf(a.from));
    expect(up.map((a) => `${a.file} imports ${a.spec} (${a.from} -> ${a.to})`)).toEqual([]);
  });

  it('the command line holds no use case: nothing in cli/ drives the engine, reads nodes or makes plans itself', () => {
    const forbidden = /\bnew Applier\b|\bgatherReport\(|\brunCheck\(|\bcompilePlan\(|\bdetectInventoryOs\(|\bresolveInventoryOs\(|\.connect\(/;
    const hits = files(join(SRC, 'cli')).flatMap((f) => (forbidden.test(readFileSync(f, 'utf8')) ? [relative(SRC, f)] : []));
    expect(hits).toEqual([]);
  });
});
