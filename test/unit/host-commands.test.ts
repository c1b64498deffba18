/**
 * What each OS profile's scripts run on a node, held against its `requires` (which pre-flight checks
 * on every node) and, for Bottlerocket, against what its host has at all.
 */
import { describe, expect, it } from 'vitest';
import { commandProbe, requiredCommands } from '../../src/apply/preflight.js';
import { OS_NAMES } from '../../src/inventory/types.js';
import { loadProfile } from '../../src/profiles/profile.js';
import { commandsOf } from './shell-commands.js';

/** Commands a profile's scripts run, less the shell functions its snippets define. */
function usedBy(os: (typeof OS_NAMES)[number]): Map<string, string[]> {
  const p = loadProfile(os);
  const functions = new Set(Object.values(p.commands).flatMap((t) => [...t.matchAll(/(?:^|\s)([A-Za-z_][A-Za-z0-9_-]*)\s*\(\)\s*\{/gm)].map((m) => m[1] as string)));
  const used = new Map<string, string[]>();
  for (const [key, template] of Object.entries(p.commands)) {
    for (const c of commandsOf(template)) if (!functions.has(c)) used.set(c, [...(used.get(c) ?? []), key]);
  }
  return used;
}

/**
 * Not on a Bottlerocket host (bottlerocket-core-kit packages/release/release.spec: no diffutils,
 * sed, awk, tar, jq, openssl or sudo; etcdctl only in the etcd container, no crictl). jq runs as
 * `apiclient exec admin jq`, an argument here.
 */
const NOT_ON_BOTTLEROCKET = ['awk', 'cmp', 'crictl', 'diff', 'etcdctl', 'gawk', 'jq', 'mawk', 'openssl', 'perl', 'python3', 'sed', 'sudo', 'tar'];

describe('host commands', () => {
  it('reads the commands of a script, not its data', () => {
    const used = commandsOf(
      [
        "set -euo pipefail",
        "x=$(du -sk \"$src\" | cut -f1)   # a comment with sed in it",
        "f() { [ -f \"$1\" ] && [ \"$(sha256sum <\"$1\")\" = ok ]; }",
        "for n in kubeadm etcdadm; do f \"$n\"; done",
        "case $p in *.yaml) mv \"$p\" /tmp ;; esac",
        "cat >\"$k\" <<'EOF'\nawk is not run here\nEOF",
        "apiclient get | apiclient exec admin jq -r '.x | awk'",
      ].join('\n'),
    );
    expect([...used].sort()).toEqual(['apiclient', 'cat', 'cut', 'du', 'mv', 'sha256sum']);
  });

  it.each(OS_NAMES)('%s: every command its scripts run is in its requires', (os) => {
    const p = loadProfile(os);
    const listed = new Set(Object.values(p.requires ?? {}).flat());
    const unlisted = [...usedBy(os)].filter(([c]) => !listed.has(c)).map(([c, keys]) => `${c} (${keys.join(', ')})`);
    expect(unlisted, `add these to requires: in os-profiles/${os}.yaml`).toEqual([]);
  });

  it("Bottlerocket's scripts and requires use only what its host has", () => {
    const used = usedBy('bottlerocket');
    const bad = NOT_ON_BOTTLEROCKET.filter((c) => used.has(c)).map((c) => `${c} (${(used.get(c) ?? []).join(', ')})`);
    expect(bad).toEqual([]);
    const listed = Object.values(loadProfile('bottlerocket').requires ?? {}).flat();
    expect(listed.filter((c) => NOT_ON_BOTTLEROCKET.includes(c))).toEqual([]);
  });

  it('pre-flight probes the role\'s commands and names each missing one', () => {
    const ubuntu = loadProfile('ubuntu');
    expect(requiredCommands(ubuntu, 'etcd')).toContain('etcdadm');
    expect(requiredCommands(ubuntu, 'worker')).not.toContain('etcdadm');
    expect(requiredCommands(ubuntu, 'control-plane')).toContain('crictl');
    expect(commandProbe(['sha256sum', 'crictl'])).toBe('command -v sha256sum >/dev/null 2>&1 || echo missing-command=sha256sum\ncommand -v crictl >/dev/null 2>&1 || echo missing-command=crictl');
  });
});
