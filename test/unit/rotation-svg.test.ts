import { afterAll, describe, expect, it } from 'vitest';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rotationSvg, SVG_COMMAND, SVG_FILE } from '../../scripts/rotation-svg.js';
import { loadRotationRunbooks, RUNBOOKS_DIR } from '../../src/runbook/runbook.js';

const dir = mkdtempSync(join(tmpdir(), 'rc-svg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The step ids in the order the picture shows them. */
const idsIn = (svg: string) => [...svg.matchAll(/<title>([a-z0-9-]+): /g)].map((m) => m[1]);

describe('docs/rotation-order.svg', () => {
  it('is what the runbooks draw now', () => {
    const fresh = rotationSvg(loadRotationRunbooks());
    const committed = existsSync(SVG_FILE) ? readFileSync(SVG_FILE, 'utf8') : '';
    expect(committed === fresh, `${SVG_FILE} does not match runbooks/*.yaml: run \`${SVG_COMMAND}\` and commit the file`).toBe(true);
  });

  it('shows every phase in order, every step and restore step, and how the nodes go', () => {
    const runbooks = loadRotationRunbooks();
    const svg = rotationSvg(runbooks);
    expect(idsIn(svg)).toEqual(runbooks.flatMap((rb) => [...rb.steps.map((s) => s.id), ...(rb.restore?.steps.map((s) => s.id) ?? [])]));
    const phases = [...svg.matchAll(/font-size="16" font-weight="700"[^>]*>(\d+)\. ([a-z-]+)</g)].map((m) => `${m[1]} ${m[2]}`);
    expect(phases).toEqual(runbooks.map((rb, i) => `${i + 1} ${rb.phase}`));
    expect(svg).toContain('>one node at a time<');
    expect(svg).toContain('control-plane nodes one at a time,');
    expect(svg).toContain('then worker nodes up to --parallel');
    expect(svg).toContain('>next node<');
    expect(svg).toContain('a step after backup-kubeconfigs fails:');
    expect(svg).toContain('Any failure stops here (exit 69).');
  });

  it('follows the runbooks: a step added to one is drawn, in its place', () => {
    const runbooks = join(dir, 'runbooks');
    cpSync(RUNBOOKS_DIR, runbooks, { recursive: true });
    const file = join(runbooks, 'etcd.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('  - id: renew\n', '  - id: look-around\n    title: A step only this test has\n    run: etcdHealth\n    effect: read\n  - id: renew\n'));
    const ids = idsIn(rotationSvg(loadRotationRunbooks(runbooks)));
    expect(ids.slice(ids.indexOf('clear'), ids.indexOf('clear') + 3)).toEqual(['clear', 'look-around', 'renew']);
  });

  it('is well-formed: no attribute twice in a tag, every text closed, text escaped', () => {
    const svg = rotationSvg(loadRotationRunbooks());
    for (const tag of svg.match(/<[a-z]+\s[^>]*>/g) ?? []) {
      const names = [...tag.matchAll(/\s([a-z-]+)=/g)].map((m) => m[1]);
      expect(new Set(names).size, tag).toBe(names.length);
    }
    expect(svg.match(/<text\b/g)?.length).toBe(svg.match(/<\/text>/g)?.length);
    // The management step's title names eksa-system/<cluster>-...: escaped, not a tag.
    expect(svg).toContain('eksa-system/&lt;cluster&gt;-apiserver-etcd-client');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
  });
});
