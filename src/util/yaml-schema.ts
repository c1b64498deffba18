/**
 * A small validator over parsed YAML nodes, so every error can name the file, the line and the
 * field. Combinators infer the TypeScript type of what they accept.
 */
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import { LoadError } from './errors.js';
import { plural } from './wording.js';

export interface Ctx {
  file: string;
  lines: LineCounter;
}

export interface Validator<T> {
  /** What the field should hold, for messages ("a port number 1-65535"). */
  readonly expects: string;
  parse(node: YamlNode | null | undefined, ctx: Ctx, path: string): T;
}

export function lineOf(node: YamlNode | null | undefined, ctx: Ctx): number | undefined {
  const offset = node?.range?.[0];
  return offset === undefined ? undefined : ctx.lines.linePos(offset).line;
}

export function fail(ctx: Ctx, node: YamlNode | null | undefined, path: string, problem: string, fix?: string): never {
  throw new LoadError(ctx.file, lineOf(node, ctx), path, problem, fix);
}

function scalarValue(node: YamlNode | null | undefined): unknown {
  return isScalar(node) ? node.value : undefined;
}

function describe(node: YamlNode | null | undefined): string {
  if (node == null) return 'nothing';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  const v = scalarValue(node);
  return v === null ? 'null' : JSON.stringify(v);
}

export interface StringOpts {
  pattern?: RegExp | ((value: string) => boolean);
  /** Said when the pattern does not match, e.g. "a DNS label: a-z, 0-9 and '-'". */
  patternHelp?: string;
  maxLength?: number;
  /** "" is a value (say, "no file extension"), not a missing one. */
  allowEmpty?: boolean;
}

export function str(opts: StringOpts = {}): Validator<string> {
  const expects = opts.patternHelp ?? 'a string';
  return {
    expects,
    parse(node, ctx, path) {
      const v = scalarValue(node);
      if (typeof v !== 'string' || (v === '' && !opts.allowEmpty)) fail(ctx, node, path, `expected ${expects}, got ${describe(node)}`);
      if (opts.maxLength !== undefined && v.length > opts.maxLength)
        fail(ctx, node, path, `longer than ${opts.maxLength} characters`);
      const matches = typeof opts.pattern === 'function' ? opts.pattern(v) : (opts.pattern?.test(v) ?? true);
      if (!matches) fail(ctx, node, path, `${JSON.stringify(v)} is not ${expects}`);
      return v;
    },
  };
}

export function int(min: number, max: number, what = 'a whole number'): Validator<number> {
  const expects = `${what} ${min}-${max}`;
  return {
    expects,
    parse(node, ctx, path) {
      const v = scalarValue(node);
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
        fail(ctx, node, path, `expected ${expects}, got ${describe(node)}`);
      return v;
    },
  };
}

export function bool(): Validator<boolean> {
  return {
    expects: 'true or false',
    parse(node, ctx, path) {
      const v = scalarValue(node);
      if (typeof v !== 'boolean') fail(ctx, node, path, `expected true or false, got ${describe(node)}`);
      return v;
    },
  };
}

export function oneOf<const T extends string>(values: readonly T[]): Validator<T> {
  const expects = `one of ${values.join(', ')}`;
  return {
    expects,
    parse(node, ctx, path) {
      const v = scalarValue(node);
      if (typeof v !== 'string' || !(values as readonly string[]).includes(v))
        fail(ctx, node, path, `expected ${expects}, got ${describe(node)}`);
      return v as T;
    },
  };
}

export function arr<T>(item: Validator<T>, opts: { min?: number } = {}): Validator<T[]> {
  const expects = `a list of ${item.expects}`;
  return {
    expects,
    parse(node, ctx, path) {
      if (!isSeq(node)) fail(ctx, node, path, `expected ${expects}, got ${describe(node)}`);
      if (opts.min !== undefined && node.items.length < opts.min)
        fail(ctx, node, path, `needs at least ${plural(opts.min, 'entry', 'entries')}`);
      return node.items.map((n, i) => item.parse(n as YamlNode, ctx, `${path}[${i}]`));
    },
  };
}

/** A mapping with free keys (checked by `key`) and values of one kind. */
export function record<T>(value: Validator<T>, key: StringOpts = {}): Validator<Record<string, T>> {
  const keyCheck = str(key);
  return {
    expects: `a mapping of ${value.expects}`,
    parse(node, ctx, path) {
      if (!isMap(node)) fail(ctx, node, path, `expected a mapping, got ${describe(node)}`);
      const out: Record<string, T> = {};
      for (const pair of node.items) {
        const k = keyCheck.parse(pair.key as YamlNode, ctx, `${path}.<key>`);
        out[k] = value.parse(pair.value as YamlNode, ctx, path ? `${path}.${k}` : k);
      }
      return out;
    },
  };
}

interface FieldSpec<T> {
  v: Validator<T>;
  required: boolean;
}
export function req<T>(v: Validator<T>): FieldSpec<T> {
  return { v, required: true };
}
export function opt<T>(v: Validator<T>): FieldSpec<T | undefined> {
  return { v, required: false };
}

type Shape = Record<string, FieldSpec<unknown>>;
type Out<S extends Shape> = {
  [K in keyof S as S[K] extends FieldSpec<infer V> ? (undefined extends V ? never : K) : never]: S[K] extends FieldSpec<infer V> ? V : never;
} & {
  [K in keyof S as S[K] extends FieldSpec<infer V> ? (undefined extends V ? K : never) : never]?: S[K] extends FieldSpec<infer V> ? V : never;
};

/** A mapping with known keys; an unknown key is an error that lists the known ones. */
export function obj<S extends Shape>(shape: S, what = 'a mapping'): Validator<Out<S>> {
  return {
    expects: what,
    parse(node, ctx, path) {
      if (!isMap(node)) fail(ctx, node, path, `expected ${what}, got ${describe(node)}`);
      const out: Record<string, unknown> = {};
      const seen = new Set<string>();
      for (const pair of node.items) {
        const keyNode = pair.key as YamlNode;
        const k = scalarValue(keyNode);
        const here = (name: string) => (path ? `${path}.${name}` : name);
        if (typeof k !== 'string') fail(ctx, keyNode, path, `keys must be strings, got ${describe(keyNode)}`);
        const spec = shape[k];
        if (!spec) fail(ctx, keyNode, here(k), 'unknown field', `known fields: ${Object.keys(shape).join(', ')}`);
        if (seen.has(k)) fail(ctx, keyNode, here(k), 'given twice');
        seen.add(k);
        const valueNode = pair.value as YamlNode | null;
        // An explicit `key:` with no value counts as absent for optional fields.
        if (!spec.required && (valueNode == null || scalarValue(valueNode) === null)) continue;
        out[k] = spec.v.parse(valueNode, ctx, here(k));
      }
      for (const [k, spec] of Object.entries(shape)) {
        if (spec.required && !seen.has(k)) fail(ctx, node, path ? `${path}.${k}` : k, 'required field is missing');
      }
      return out as Out<S>;
    },
  };
}

/** Parses YAML text and validates the whole document; syntax errors name the line too. */
export function parseYaml<T>(text: string, file: string, schema: Validator<T>): { value: T; ctx: Ctx; root: YamlNode } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  const ctx: Ctx = { file, lines };
  const first = doc.errors[0];
  if (first) {
    const line = lines.linePos(first.pos[0]).line;
    throw new LoadError(file, line, '', `not valid YAML: ${first.message.split('\n')[0]}`);
  }
  const root = doc.contents as YamlNode | null;
  if (root == null) throw new LoadError(file, undefined, '', 'the file is empty');
  return { value: schema.parse(root, ctx, ''), ctx, root };
}

/** A value that may be written short (a scalar) or long (a mapping); the short form is widened. */
export function shortOrLong<S, L>(short: Validator<S>, long: Validator<L>, widen: (s: S) => L): Validator<L> {
  return {
    expects: `${short.expects} or ${long.expects}`,
    parse(node, ctx, path) {
      return isMap(node) ? long.parse(node, ctx, path) : widen(short.parse(node, ctx, path));
    },
  };
}
