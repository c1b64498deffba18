/**
 * Error classes that carry their process exit code. Only `cli/main.ts` turns them into an exit;
 * everything else throws. User mistakes print one line, never a stack trace.
 */

/** Exit codes, following sysexits(3) where one fits. `check` adds 1, 2 and 3 of its own. */
export const ExitCode = {
  ok: 0,
  usage: 64, // bad flags, bad inventory, bad runbook/profile
  noInput: 66, // a file named by the user does not exist or cannot be read
  unavailable: 69, // a node or service could not be reached
  software: 70, // a bug of ours
  tempFail: 75, // a lock is held by another run
} as const;

export class RotateCertsError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad command-line usage or a bad input file: exit 64, nothing contacted. */
export class UsageError extends RotateCertsError {
  constructor(message: string) {
    super(message, ExitCode.usage);
  }
}

/** A YAML input file that does not validate; names the file, the line and the field. */
export class LoadError extends UsageError {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly field: string,
    readonly problem: string,
    readonly fix?: string,
  ) {
    const where = line === undefined ? file : `${file}:${line}`;
    const what = field ? `${field}: ${problem}` : problem;
    super(`${where}: ${what}${fix ? ` (${fix})` : ''}`);
  }
}

/** A file the user named is missing or unreadable. */
export class InputFileError extends RotateCertsError {
  constructor(message: string) {
    super(message, ExitCode.noInput);
  }
}

/** A remote node or endpoint failed: names the node and what was being done. */
export class NodeError extends RotateCertsError {
  constructor(
    readonly node: string,
    /** What went wrong, without the node's name: for lists that already say which node. */
    readonly detail: string,
  ) {
    super(`${node}: ${detail}`, ExitCode.unavailable);
  }
}

/** An error's message for a line that already names `node`: a NodeError's detail, else the message without a leading "node: ". */
export function nodeErrorDetail(err: unknown, node: string): string {
  if (err instanceof NodeError && err.node === node) return err.detail;
  const message = errorMessage(err);
  return message.startsWith(`${node}: `) ? message.slice(node.length + 2) : message;
}

/** The last lines of a command's error output, on one line, for a message; `none` when it printed nothing. */
export function outputTail(text: string, lines = 3, none = 'no error output'): string {
  return text.trim().split('\n').slice(-lines).join(' | ') || none;
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
