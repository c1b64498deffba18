/**
 * OS profiles: how each OS spells what the runbooks ask for (paths now, command templates as the
 * runbooks grow). Files live in os-profiles/<os>.yaml and are validated at load.
 */
import { join } from 'node:path';
import { ROLES, type OsName, type Role } from '../inventory/types.js';
import { InputFileError, LoadError } from '../util/errors.js';
import { readPackageFile } from '../util/package-files.js';
import { PACKAGE_ROOT } from '../util/package-root.js';
import { SAFE_ABS_PATH } from '../util/shell.js';
import { arr, obj, oneOf, opt, parseYaml, record, req, str } from '../util/yaml-schema.js';
import { OS_NAMES } from '../inventory/types.js';

/** Paths every profile must name; runbooks refer to them as {{name}}. */
export const PATH_KEYS = ['etcdPki', 'kubePki', 'kubeconfigDir', 'manifestsDir', 'kubeletPki', 'kubeletConf'] as const;
export type PathKey = (typeof PATH_KEYS)[number];

/** Plain names (no slash) a profile must give, also usable as {{name}}. */
export const NAME_KEYS = ['etcdClientPair', 'staticPodExt'] as const;
export type NameKey = (typeof NAME_KEYS)[number];

/** What a profile's commands run on a node, by node role: pre-flight checks each is there. */
export type ProfileRequires = Record<Role | 'all', string[]>;

export interface OsProfile {
  os: OsName;
  file: string;
  /** Another profile whose commands this one inherits (its own keys win). */
  extends?: OsName;
  /** The command that runs a root script sent on its standard input. */
  rootShell: string;
  vars: Record<PathKey | NameKey, string>;
  /** Host commands the profile's commands run, by role (inherited through extends when absent). */
  requires?: ProfileRequires;
  commands: Record<string, string>;
}

const absPath = str({ pattern: SAFE_ABS_PATH, patternHelp: 'an absolute path of letters, digits, ".", "_", "-" and "/"' });
const plainName = str({ pattern: /^[A-Za-z0-9._-]+$/, patternHelp: 'a file base name (letters, digits, ".", "_", "-")' });
const extension = str({ pattern: /^(\.[a-z]+)?$/, patternHelp: 'a file extension such as ".yaml", or "" for none', allowEmpty: true });
const commandName = str({ pattern: /^[a-z][a-z0-9._+-]*$/, patternHelp: 'a command name such as sha256sum' });

const pathsShape = Object.fromEntries(PATH_KEYS.map((k) => [k, req(absPath)])) as Record<PathKey, ReturnType<typeof req<string>>>;
const namesShape = { etcdClientPair: req(plainName), staticPodExt: req(extension) } satisfies Record<NameKey, ReturnType<typeof req<string>>>;
const requiresShape = Object.fromEntries(['all', ...ROLES].map((k) => [k, req(arr(commandName))])) as Record<Role | 'all', ReturnType<typeof req<string[]>>>;

const schema = obj({
  os: req(oneOf(OS_NAMES)),
  extends: opt(oneOf(OS_NAMES)),
  description: opt(str()),
  // Sent as the SSH command line: plain words only (PATH=/a:/b assignments for env included).
  rootShell: req(str({ pattern: /^[A-Za-z0-9 ._/:=-]+$/, patternHelp: 'a plain command such as "sudo -n bash -s"' })),
  paths: req(obj(pathsShape)),
  names: req(obj(namesShape)),
  requires: opt(obj(requiresShape)),
  commands: opt(record(str(), { pattern: /^[a-z][A-Za-z0-9-]*$/, patternHelp: 'a command key (camelCase or kebab-case)' })),
});

export function parseProfile(text: string, file: string): OsProfile {
  const { value } = parseYaml(text, file, schema);
  return {
    os: value.os,
    file,
    ...(value.extends ? { extends: value.extends } : {}),
    rootShell: value.rootShell,
    vars: { ...(value.paths as Record<PathKey, string>), ...(value.names as Record<NameKey, string>) },
    ...(value.requires ? { requires: value.requires as ProfileRequires } : {}),
    commands: value.commands ?? {},
  };
}

export const PROFILES_DIR = join(PACKAGE_ROOT, 'os-profiles');

function readProfileFile(file: string): string {
  try {
    return readPackageFile(file);
  } catch {
    throw new InputFileError(`OS profile ${file} is missing: reinstall rotate-certs or add the file`);
  }
}

const commonSchema = obj({ commands: req(record(str(), { pattern: /^[a-z][A-Za-z0-9-]*$/, patternHelp: 'a command key' })) });

/** Commands every OS shares (os-profiles/common.yaml), with their source file for messages. */
export function loadCommonCommands(dir = PROFILES_DIR): Record<string, string> {
  const file = join(dir, 'common.yaml');
  // Each OS profile of a mixed cluster merges it in: parsed once per run.
  let commands = commonCache.get(file);
  if (!commands) {
    commands = parseYaml(readProfileFile(file), file, commonSchema).value.commands;
    commonCache.set(file, commands);
  }
  return { ...commands };
}
const commonCache = new Map<string, Record<string, string>>();

/** A line that is only `{{include:key}}`: replaced by that command's text, at its indentation. */
const INCLUDE = /^([ \t]*)\{\{include:([^}]*)\}\}[ \t]*$/gm;

/**
 * Inlines {{include:key}} lines, so a profile spells a shared snippet (say, finding the
 * kubeadm-bootstrap image) once. Runs after merging, so a profile may include a common command.
 */
export function expandIncludes(commands: Record<string, string>, fileOf: (key: string) => string): Record<string, string> {
  const lineOf = (file: string, needle: string): number | undefined => {
    try {
      const text = readPackageFile(file);
      const i = text.indexOf(needle);
      return i < 0 ? undefined : text.slice(0, i).split('\n').length;
    } catch {
      return undefined;
    }
  };
  const expand = (key: string, stack: string[]): string =>
    (commands[key] as string).replace(INCLUDE, (whole, indent: string, name: string) => {
      // The file is read again for its line number only when there is an error to place.
      const at = () => lineOf(fileOf(key), whole.trim());
      if (!/^[a-z][A-Za-z0-9-]*$/.test(name) || commands[name] === undefined) {
        throw new LoadError(fileOf(key), at(), `commands.${key}`, `{{include:${name}}} names no command`, `define ${name} under commands: in this profile, the one it extends or common.yaml`);
      }
      if (stack.includes(name)) throw new LoadError(fileOf(key), at(), `commands.${key}`, `includes loop back: ${[...stack, name].join(' -> ')}`, 'remove one of the includes');
      return expand(name, [...stack, name])
        .replace(/\n$/, '')
        .split('\n')
        .map((l) => (l ? indent + l : l))
        .join('\n');
    });
  return Object.fromEntries(Object.keys(commands).map((k) => [k, expand(k, [k])]));
}

/** One profile with common.yaml's commands and those of the profile it extends merged in. */
export function loadProfile(os: OsName, dir = PROFILES_DIR, seen: OsName[] = []): OsProfile {
  const { profile, files } = loadMerged(os, dir, seen);
  return { ...profile, commands: expandIncludes(profile.commands, (k) => files[k] ?? profile.file) };
}

/** The profile's commands merged over what it inherits, with the file each command came from. */
function loadMerged(os: OsName, dir: string, seen: OsName[]): { profile: OsProfile; files: Record<string, string> } {
  const file = join(dir, `${os}.yaml`);
  const profile = parseProfile(readProfileFile(file), file);
  if (profile.os !== os) throw new InputFileError(`${file}: declares os: ${profile.os}, expected ${os}`);
  if (seen.includes(os)) throw new InputFileError(`${file}: extends loops back to ${os} (${[...seen, os].join(' -> ')})`);
  let inherited: { commands: Record<string, string>; files: Record<string, string>; requires?: ProfileRequires };
  if (profile.extends) {
    const base = loadMerged(profile.extends, dir, [...seen, os]);
    inherited = { commands: base.profile.commands, files: base.files, ...(base.profile.requires ? { requires: base.profile.requires } : {}) };
  } else {
    const commands = loadCommonCommands(dir);
    inherited = { commands, files: Object.fromEntries(Object.keys(commands).map((k) => [k, join(dir, 'common.yaml')])) };
  }
  const own = Object.fromEntries(Object.keys(profile.commands).map((k) => [k, file]));
  const requires = profile.requires ?? inherited.requires;
  return { profile: { ...profile, ...(requires ? { requires } : {}), commands: { ...inherited.commands, ...profile.commands } }, files: { ...inherited.files, ...own } };
}

/** Loads each profile once. */
export class ProfileSet {
  private readonly cache = new Map<OsName, OsProfile>();
  constructor(readonly dir = PROFILES_DIR) {}
  get(os: OsName): OsProfile {
    let p = this.cache.get(os);
    if (!p) {
      p = loadProfile(os, this.dir);
      this.cache.set(os, p);
    }
    return p;
  }
}
