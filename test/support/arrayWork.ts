/**
 * A deterministic measure of how much work code does on arrays, for complexity properties that
 * must not depend on the clock (tests never assert wall-clock times).
 *
 * It counts the steps of every array iterator (`for…of`, spread `[...a]`, `Array.from`,
 * destructuring) and the elements `slice` and `concat` copy. Patching
 * `%ArrayIteratorPrototype%.next` also turns off V8's fast paths for spread, so every element a
 * spread copies is one counted step.
 */

/** Thrown when the measured code goes past its budget, so a quadratic run stops early. */
export class WorkBudgetExceeded extends Error {
  override readonly name = "WorkBudgetExceeded";
}

/**
 * Runs `fn` synchronously and returns its result with the array steps it took. Throws
 * {@link WorkBudgetExceeded} as soon as the count passes `budget`.
 */
export function countArrayWork<T>(fn: () => T, budget = Infinity): { result: T; steps: number } {
  const iteratorProto = Object.getPrototypeOf([][Symbol.iterator]()) as {
    next: (this: Iterator<unknown>) => IteratorResult<unknown>;
  };
  const next = iteratorProto.next;
  const slice = Array.prototype.slice;
  const concat = Array.prototype.concat;
  let steps = 0;
  const step = (n: number): void => {
    steps += n;
    if (steps > budget) throw new WorkBudgetExceeded(`more than ${budget} array steps`);
  };
  iteratorProto.next = function (this: Iterator<unknown>) {
    step(1);
    return next.call(this);
  };
  Array.prototype.slice = function (this: unknown[], ...args: [number?, number?]) {
    const out = slice.apply(this, args);
    step(out.length);
    return out;
  };
  Array.prototype.concat = function (this: unknown[], ...items: unknown[]) {
    const out = concat.apply(this, items) as unknown[];
    step(out.length);
    return out;
  } as typeof Array.prototype.concat;
  try {
    const result = fn();
    return { result, steps };
  } finally {
    iteratorProto.next = next;
    Array.prototype.slice = slice;
    Array.prototype.concat = concat;
  }
}
