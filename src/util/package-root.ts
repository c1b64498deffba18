import { isSea } from 'node:sea';
import { fileURLToPath } from 'node:url';

/**
 * The package's root folder, from src/ (tests) and dist/ (installed) alike. The single executable
 * has no folder: its embedded files are named as if under the executable's own path, which no
 * real file can be, so messages still say where a file came from (src/util/package-files.ts).
 */
export const PACKAGE_ROOT = isSea() ? `${process.execPath}/` : fileURLToPath(new URL('../../', import.meta.url));
