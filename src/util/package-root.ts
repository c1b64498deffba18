import { fileURLToPath } from 'node:url';

/** The package's root folder, from src/ (tests) and dist/ (installed) alike. */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
