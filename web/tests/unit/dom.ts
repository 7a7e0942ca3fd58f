/** A React root in happy-dom for each test (the files using it set `@vitest-environment happy-dom`). */
import { act, type ReactNode } from 'react';
import { createRoot, type Root } from 'react-dom/client';
import { afterEach, beforeEach, vi } from 'vitest';

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

export interface TestRoot {
  /** The element the test renders into. */
  readonly container: HTMLElement;
  render(node: ReactNode): void;
  unmount(): void;
}

/** A fresh container and root before each test, unmounted and removed after it. */
export function setupTestRoot(): TestRoot {
  let container!: HTMLElement;
  let root: Root | null = null;
  beforeEach(() => {
    container = document.createElement('div');
    document.body.append(container);
    root = createRoot(container);
  });
  afterEach(() => {
    const r = root;
    root = null;
    if (r) act(() => r.unmount());
    container.remove();
  });
  return {
    get container() {
      return container;
    },
    render(node) {
      act(() => root!.render(node));
    },
    unmount() {
      const r = root;
      root = null;
      if (r) act(() => r.unmount());
    },
  };
}

/** Polls `check`, letting React commit between tries (updates inside act land when it exits). */
export async function until(check: () => void): Promise<void> {
  await vi.waitFor(async () => {
    await act(async () => {});
    check();
  });
}
