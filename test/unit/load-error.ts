/** The LoadError a load throws; any other error, or none, fails the test. */
import { LoadError } from '../../src/util/errors.js';

export function loadErr(fn: () => unknown): LoadError {
  try {
    fn();
  } catch (err) {
    if (err instanceof LoadError) return err;
    throw err;
  }
  throw new Error('expected a LoadError');
}
