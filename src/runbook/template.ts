/**
 * Command templates: {{name}} is replaced by the shell-quoted value of a variable, and
 * {{secret:name}} by a secret's raw text (only inside quoted heredocs), which every printed,
 * planned or journaled copy shows as <redacted:name>. Pure.
 */
import { shq } from '../util/shell.js';

const PLACEHOLDER = /\{\{(secret:)?([A-Za-z][A-Za-z0-9]*)\}\}/g;

export class TemplateError extends Error {}

/** Names a template uses, split by kind; for load-time validation. */
export function templateNames(template: string): { vars: string[]; secrets: string[] } {
  const vars = new Set<string>();
  const secrets = new Set<string>();
  for (const m of template.matchAll(PLACEHOLDER)) (m[1] ? secrets : vars).add(m[2] as string);
  return { vars: [...vars], secrets: [...secrets] };
}

function substitute(template: string, vars: Record<string, string>, secrets: Record<string, string> | undefined): string {
  return template.replace(PLACEHOLDER, (_m, secret: string | undefined, name: string) => {
    if (secret) {
      if (!secrets) return `<redacted:${name}>`;
      const value = secrets[name];
      if (value === undefined) throw new TemplateError(`secret ${name} is not available yet`);
      return value;
    }
    const value = vars[name];
    if (value === undefined) throw new TemplateError(`unknown variable {{${name}}}`);
    return shq(value);
  });
}

/** The command as plans, logs and journals show it: secrets replaced by <redacted:name>. */
export function renderDisplay(template: string, vars: Record<string, string>): string {
  return substitute(template, vars, undefined);
}

/** The command as sent to the node, secrets included. Never print or store the result. */
export function renderScript(template: string, vars: Record<string, string>, secrets: Record<string, string>): string {
  return substitute(template, vars, secrets);
}
