/** Where a command writes, and what it runs in; tests pass buffers, the binary passes the process streams (cli/io.ts). */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Colours and progress only when a person is watching. */
  color: boolean;
  env: NodeJS.ProcessEnv;
  cwd: string;
}
