/** Runs `fn` over `items` with at most `limit` in flight; results keep the input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

/** Runs a task when one of the limiter's slots is free; tasks start in the order they were given. */
export type Limiter = <R>(task: () => Promise<R>) => Promise<R>;

/**
 * A limit several callers share, so that independent runs (one per cluster) stay within one
 * budget of `slots` tasks in flight together.
 */
export function limiter(slots: number): Limiter {
  let free = Math.max(1, slots);
  const waiting: Array<() => void> = [];
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else free++;
  };
  return async <R>(task: () => Promise<R>): Promise<R> => {
    if (free > 0) free--;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await task();
    } finally {
      release();
    }
  };
}
