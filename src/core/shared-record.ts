/**
 * One-entry sharing of small settings records: connections made with the
 * same options (all of a server's, as a rule) hold one frozen object
 * instead of a copy of each field.
 *
 * @module
 */

/**
 * Hands out `values`, frozen, or the record it handed out last when every
 * field of `values` is the same (`===`). It keeps that last record alive.
 *
 * @example
 * ```ts
 * const limits = new SharedRecord<{ max: number }>();
 * limits.get({ max: 10 }) === limits.get({ max: 10 }); // true
 * ```
 */
export class SharedRecord<T extends object> {
  #last: Readonly<T> | null = null;

  get(values: T): Readonly<T> {
    const last = this.#last;
    if (last !== null && sameFields(last, values)) return last;
    return (this.#last = Object.freeze(values));
  }
}

function sameFields<T extends object>(a: T, b: T): boolean {
  for (const key of Object.keys(b) as Array<keyof T>) if (a[key] !== b[key]) return false;
  return true;
}
