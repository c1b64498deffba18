/**
 * The read-only script `check` runs as root on a node, and the parser for what it prints.
 * Only certificate blocks and kubeconfigs' client-certificate-data leave the node: the key
 * halves of kubelet-client-current.pem and of kubeconfigs are never printed.
 */
import type { FileSource, NodeSources } from '../runbook/check-sources.js';
import { shq } from '../util/shell.js';

const FUNCTIONS = String.raw`set -euo pipefail
rc_file() {
  if [ -r "$1" ]; then
    printf '@@file\t%s\n' "$1"
    sed -n '/^-----BEGIN CERTIFICATE-----/,/^-----END CERTIFICATE-----/p' "$1"
    printf '@@end\n'
  elif [ "$2" = required ]; then printf '@@missing\t%s\n' "$1"; fi
}
rc_kubeconfig() {
  if [ -r "$1" ]; then
    printf '@@kubeconfig\t%s\n' "$1"
    sed -n 's/^[[:space:]]*client-certificate-data:[[:space:]]*["'\'']\{0,1\}\([A-Za-z0-9+/=]*\).*/\1/p' "$1"
    printf '@@end\n'
  elif [ "$2" = required ]; then printf '@@missing\t%s\n' "$1"; fi
}
`;

const flag = (s: FileSource) => (s.optional ? 'optional' : 'required');

export function checkScript(sources: Pick<NodeSources, 'files' | 'kubeconfigs'>): string {
  const lines = [FUNCTIONS];
  for (const f of sources.files) lines.push(`rc_file ${shq(f.path)} ${flag(f)}`);
  for (const k of sources.kubeconfigs) lines.push(`rc_kubeconfig ${shq(k.path)} ${flag(k)}`);
  lines.push(`printf '@@done\\n'`, '');
  return lines.join('\n');
}

export type ReadItem =
  | { kind: 'file'; path: string; pems: string[] }
  | { kind: 'kubeconfig'; path: string; pems: string[] }
  | { kind: 'missing'; path: string };

export interface ParsedCheckOutput {
  items: ReadItem[];
  /** False when the output stopped before the script's last line: something cut it short. */
  complete: boolean;
}

export function parseCheckOutput(stdout: string): ParsedCheckOutput {
  const items: ReadItem[] = [];
  let current: { kind: 'file' | 'kubeconfig'; path: string; body: string[] } | undefined;
  let complete = false;
  for (const line of stdout.split('\n')) {
    if (current) {
      if (line === '@@end') {
        const pems =
          current.kind === 'file'
            ? splitPem(current.body)
            : current.body.filter((l) => l.trim() !== '').map((b64) => Buffer.from(b64.trim(), 'base64').toString('utf8'));
        items.push({ kind: current.kind, path: current.path, pems });
        current = undefined;
      } else {
        current.body.push(line);
      }
      continue;
    }
    const [tag, path] = line.split('\t');
    if ((tag === '@@file' || tag === '@@kubeconfig') && path) current = { kind: tag === '@@file' ? 'file' : 'kubeconfig', path, body: [] };
    else if (tag === '@@missing' && path) items.push({ kind: 'missing', path });
    else if (tag === '@@done') complete = true;
  }
  return { items, complete };
}

function splitPem(lines: string[]): string[] {
  const pems: string[] = [];
  let block: string[] = [];
  for (const l of lines) {
    block.push(l);
    if (l.startsWith('-----END CERTIFICATE-----')) {
      pems.push(block.join('\n'));
      block = [];
    }
  }
  return pems;
}
