/** The latest value of a prop or callback for code that runs later (effects, events, promises). */

import { useLayoutEffect, useRef } from 'react';

/**
 * A ref that holds `value` as of the last commit. It is written after render (in a layout effect,
 * never during render), so read it from effects and callbacks only.
 */
export function useLatest<T>(value: T): { readonly current: T } {
  const ref = useRef(value);
  useLayoutEffect(() => {
    ref.current = value;
  });
  return ref;
}
