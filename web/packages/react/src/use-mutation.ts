/** `useMutation`: a change sent to the API, with its in-flight calls and last failure as state. */

import { useCallback, useState } from 'react';
import { asSafelightError, type SafelightError } from '@safelight/client';
import { useLatest } from './use-latest.js';

export interface MutationOptions<V, R> {
  onSuccess?: (result: R, variables: V) => void;
  onError?: (error: SafelightError, variables: V) => void;
  /** After either. */
  onSettled?: (variables: V) => void;
}

/** What one call of `mutate` ended with (it never throws). */
export type MutationOutcome<R> = { ok: true; data: R } | { ok: false; error: SafelightError };

export interface Mutation<V, R> {
  mutate: (variables: V) => Promise<MutationOutcome<R>>;
  /** The variables of the calls in flight, oldest first. */
  pending: readonly V[];
  /** The last call's failure, `null` after a success. */
  error: SafelightError | null;
}

/**
 * Runs `run(variables)` on demand. Any number of calls may be in flight (`pending` lists them);
 * `run` and the callbacks are the ones of the latest render.
 */
export function useMutation<V, R>(run: (variables: V) => Promise<R>, opts: MutationOptions<V, R> = {}): Mutation<V, R> {
  const latest = useLatest({ run, opts });
  const [pending, setPending] = useState<readonly V[]>([]);
  const [error, setError] = useState<SafelightError | null>(null);

  const mutate = useCallback(
    async (variables: V): Promise<MutationOutcome<R>> => {
      setPending((list) => [...list, variables]);
      let outcome: MutationOutcome<R>;
      try {
        outcome = { ok: true, data: await latest.current.run(variables) };
      } catch (e) {
        outcome = { ok: false, error: asSafelightError(e) };
      }
      setPending((list) => {
        const i = list.indexOf(variables);
        return i < 0 ? list : [...list.slice(0, i), ...list.slice(i + 1)];
      });
      const { onSuccess, onError, onSettled } = latest.current.opts;
      if (outcome.ok) {
        setError(null);
        onSuccess?.(outcome.data, variables);
      } else {
        setError(outcome.error);
        onError?.(outcome.error, variables);
      }
      onSettled?.(variables);
      return outcome;
    },
    [latest],
  );

  return { mutate, pending, error };
}
