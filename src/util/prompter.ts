/**
 * Questions the interactive flow asks, behind one narrow interface. On a terminal they are
 * @inquirer/prompts; without one (or with --yes) every question fails with the flag or inventory
 * field that answers it, so unattended runs never hang on a prompt.
 */
import { UsageError } from './errors.js';

export interface Choice<T> {
  name: string;
  value: T;
  description?: string;
}

export interface Prompter {
  readonly interactive: boolean;
  /** `answeredBy` names the flag or inventory field that gives the answer without a prompt. */
  confirm(q: { message: string; default?: boolean; answeredBy: string }): Promise<boolean>;
  select<T>(q: { message: string; choices: Choice<T>[]; answeredBy: string }): Promise<T>;
  checkbox<T>(q: { message: string; choices: Choice<T>[]; answeredBy: string; required?: boolean }): Promise<T[]>;
  input(q: { message: string; answeredBy: string; validate?: (v: string) => true | string }): Promise<string>;
  password(q: { message: string; answeredBy: string }): Promise<string>;
}

/** Without a terminal: every question is an error that says how to answer it up front. */
export const noPrompter: Prompter = {
  interactive: false,
  confirm: async (q) => missing(q.message, q.answeredBy),
  select: async (q) => missing(q.message, q.answeredBy),
  checkbox: async (q) => missing(q.message, q.answeredBy),
  input: async (q) => missing(q.message, q.answeredBy),
  password: async (q) => missing(q.message, q.answeredBy),
};

function missing(question: string, answeredBy: string): never {
  throw new UsageError(`no terminal to ask "${question.replace(/\s+/g, ' ').trim()}": give ${answeredBy}`);
}

/** The terminal prompts; loaded only when a person is there to answer. */
export async function terminalPrompter(): Promise<Prompter> {
  const p = await import('@inquirer/prompts');
  return {
    interactive: true,
    confirm: (q) => p.confirm({ message: q.message, default: q.default ?? false }),
    select: <T>(q: { message: string; choices: Choice<T>[] }) => p.select<T>({ message: q.message, choices: q.choices, loop: false }),
    checkbox: <T>(q: { message: string; choices: Choice<T>[]; required?: boolean }) => p.checkbox<T>({ message: q.message, choices: q.choices, required: q.required ?? false, loop: false }),
    input: (q) => p.input({ message: q.message, ...(q.validate ? { validate: q.validate } : {}) }),
    password: (q) => p.password({ message: q.message, mask: '*' }),
  };
}

/** A prompt ended by Ctrl-C or a closed terminal. */
export function isPromptExit(err: unknown): boolean {
  return err instanceof Error && (err.name === 'ExitPromptError' || err.name === 'AbortPromptError');
}
