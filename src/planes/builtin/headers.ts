/**
 * A service's header edits (addReqHeader .. delResHeader) in the form the hot path uses: the
 * lower-cased names whose fields are dropped (deleted, or replaced by a set), and the fields
 * written after the others. Same order as the HAProxy plane: delete, set, add.
 */
import type { HeaderRules } from '../../routes/model.js';

export interface HeaderEdits {
  readonly dropped: ReadonlySet<string>;
  /** [name, value] pairs: the set fields, then the added ones. */
  readonly appended: readonly (readonly [string, string])[];
}

export function compileHeaderEdits(rules: HeaderRules | undefined): HeaderEdits | undefined {
  if (rules === undefined) return undefined;
  return {
    dropped: new Set([...rules.del, ...rules.set.map((field) => field.name)].map((name) => name.toLowerCase())),
    appended: [...rules.set, ...rules.add].map(({ name, value }) => [name, value] as const),
  };
}

/** Applies `edits` to a flat [name, value, name, value, ...] list, in place. */
export function editFlatHeaders(headers: string[], edits: HeaderEdits): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) if (edits.dropped.has((headers[i] as string).toLowerCase())) headers.splice(i, 2);
  for (const [name, value] of edits.appended) headers.push(name, value);
}
