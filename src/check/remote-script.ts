/**
 * The read-only script `check` runs as root on a node, and the parser for what it prints.
 * Only certificate blocks and kubeconfigs' client-certificate-data leave the node: the key
 * halves of kubelet-client-current.pem and of kubeconfigs are never printed.
 */
import type { FileSource, NodeSources } from '../runbook/check-sources.js';
import { shq } from '../util/shell.js';

// Bash builtins only: a fork per file (sed, grep) costs more than the whole read on a busy node.
// A block is printed only once its END line is seen; a line inside it that is not base64 (another
// "-----" marker, an indented or empty line) drops it, so a block cut short before a private key
// never carries the key out with it.
const FUNCTIONS = `set -euo pipefail
RC_CCD='^[[:space:]]*client-certificate-data:[[:space:]]*["'\\'']?([A-Za-z0-9+/=]*)'
rc_file() {
  if [ -r "$1" ]; then
    printf '@@file\\t%s\\n' "$1"
    local line='' block='' inblock=0
    while IFS= read -r line || [ -n "$line" ]; do
      line=\${line%$'\\r'}
      case $line in
        '-----BEGIN CERTIFICATE-----'*) inblock=1; block=$line$'\\n' ;;
        '-----END CERTIFICATE-----'*) if [ "$inblock" = 1 ]; then printf '%s%s\\n' "$block" "$line"; fi; inblock=0 ;;
        -----* | *[!A-Za-z0-9+/=]* | '') inblock=0 ;;
        *) if [ "$inblock" = 1 ]; then block+=$line$'\\n'; fi ;;
      esac
    done <"$1"
    printf '@@end\\n'
  elif [ "$2" = required ]; then printf '@@missing\\t%s\\n' "$1"; fi
}
rc_kubeconfig() {
  if [ -r "$1" ]; then
    printf '@@kubeconfig\\t%s\\n' "$1"
    local line=''
    while IFS= read -r line || [ -n "$line" ]; do
      if [[ $line =~ $RC_CCD ]]; then printf '%s\\n' "\${BASH_REMATCH[1]}"; fi
    done <"$1"
    printf '@@end\\n'
  elif [ "$2" = required ]; then printf '@@missing\\t%s\\n' "$1"; fi
}
`;

const flag = (s: FileSource) => (s.optional ? 'optional' : 'required');

/**
 * The certificate read, then (given the OS profile's rendered `listBackups`) the listing of
 * rotate-certs' backups beside the PKI folders: one find in the same script, never a second round
 * trip. It names and sizes them only, and cannot fail the certificate read.
 */
export function checkScript(sources: Pick<NodeSources, 'files' | 'kubeconfigs'>, backupListing?: string): string {
  const lines = [FUNCTIONS];
  for (const f of sources.files) lines.push(`rc_file ${shq(f.path)} ${flag(f)}`);
  for (const k of sources.kubeconfigs) lines.push(`rc_kubeconfig ${shq(k.path)} ${flag(k)}`);
  if (backupListing?.trim()) lines.push('(', backupListing.trimEnd(), ') || true');
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
    // A block the node cut short (BEGIN without END) is dropped, not glued to the next one.
    if (l.startsWith('-----BEGIN CERTIFICATE-----')) block = [];
    block.push(l);
    if (l.startsWith('-----END CERTIFICATE-----')) {
      pems.push(block.join('\n'));
      block = [];
    }
  }
  return pems;
}
