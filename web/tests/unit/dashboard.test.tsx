// @vitest-environment happy-dom
import { act } from 'react';
import { describe, expect, it, vi } from 'vitest';
import { SafelightError, createClient, type ProcessingQueue, type RetryAllFailed } from '@safelight/client';
import { ProcessingQueueDashboard, SafelightProvider } from '@safelight/react';
import { until, setupTestRoot } from './dom';

const queue: ProcessingQueue = {
  generated_at: '2026-11-30T23:05:00.000Z',
  counts: { pending: 1, processing: 2, completed: 30, failed: 4 },
  queues: [
    { stage: 'thumbnail', visible: 1, in_flight: 0, delayed: 0, dlq: { visible: 2, in_flight: 0, delayed: 0 } },
    { stage: 'variant', visible: 0, in_flight: 1, delayed: 0, dlq: { visible: 0, in_flight: 0, delayed: 0 } },
  ],
  circuits: [
    { stage: 'thumbnail', state: 'open', opened_at: '2026-11-30T23:04:00.000Z', failures_in_window: 5, threshold: 5, next_probe_in_secs: 42, reset_at: null, reset_by: null },
    { stage: 'variant', state: 'closed', opened_at: null, failures_in_window: 0, threshold: 5, next_probe_in_secs: null, reset_at: null, reset_by: null },
  ],
  oldest_pending: { image_id: '01KB', age_secs: 12 },
  recent_failures: [{ image_id: '01KBXYZ123', owner_id: 'u-1', stage: 'thumbnail', error: 'corrupt', error_kind: 'permanent', at: '2026-11-30T23:03:00.000Z' }],
  throughput: [{ minute: '2026-11-30T23:04:00.000Z', processed: 7, failed: 1 }],
};

const dom = setupTestRoot();

function mount(client: ReturnType<typeof createClient>, onMessage = vi.fn()) {
  dom.render(
    <SafelightProvider client={client}>
      <ProcessingQueueDashboard refreshMs={0} onMessage={onMessage} />
    </SafelightProvider>,
  );
  return onMessage;
}

const text = (sel: string) => dom.container.querySelector(sel)?.textContent ?? '';

describe('<ProcessingQueueDashboard>', () => {
  it('shows counts, depths, breakers and failures, and retries all failed page by page', async () => {
    const client = createClient({ apiUrl: 'http://api.test', wsUrl: 'ws://x', getToken: () => 't', fetch: vi.fn() });
    client.admin.processingQueue = vi.fn(async () => queue);
    const pages: RetryAllFailed[] = [
      { dry_run: false, images_requeued: 3, messages_redriven: 1, next_cursor: 'c1', done: false },
      { dry_run: false, images_requeued: 1, messages_redriven: 1, next_cursor: null, done: true },
    ];
    const retryAll = vi.fn(async () => pages.shift()!);
    client.admin.retryAllFailed = retryAll;
    const reset = vi.fn(async (stage: string) => ({ stage, state: 'closed', reset_at: 'now', reset_by: 'admin' }));
    client.admin.resetCircuit = reset;
    const onMessage = mount(client);
    await until(() => expect(dom.container.querySelector('[data-testid=status-counts]')).not.toBeNull());
    expect(['pending', 'processing', 'completed', 'failed'].map((s) => text(`[data-testid=count-${s}]`))).toEqual(['1', '2', '30', '4']);
    expect(text('[data-testid=queue-thumbnail]')).toContain('2');
    expect(text('[data-testid=circuit-thumbnail]')).toContain('open');
    expect(text('[data-testid=recent-failures]')).toContain('corrupt');
    expect(dom.container.querySelector('svg[role=img]')?.getAttribute('aria-label')).toContain('7 processed, 1 failed');

    const retryButton = [...dom.container.querySelectorAll('button')].find((b) => b.textContent === 'Retry all failed')!;
    act(() => retryButton.click());
    await until(() => expect(onMessage).toHaveBeenCalled());
    expect(retryAll.mock.calls.map((c) => (c as unknown as [{ cursor: string | null }])[0].cursor)).toEqual([null, 'c1']);
    expect(onMessage).toHaveBeenCalledWith('Re-queued 4 failed images, redrove 2 messages', 'info');

    const resetButton = dom.container.querySelector<HTMLButtonElement>('button[aria-label="Reset the thumbnail breaker"]')!;
    expect(dom.container.querySelector<HTMLButtonElement>('button[aria-label="Reset the variant breaker"]')!.disabled).toBe(true);
    act(() => resetButton.click());
    await until(() => expect(reset).toHaveBeenCalledWith('thumbnail'));
  });

  it('shows a refusal and no data to someone who is not an admin', async () => {
    const client = createClient({ apiUrl: 'http://api.test', wsUrl: 'ws://x', getToken: () => 't', fetch: vi.fn() });
    client.admin.processingQueue = vi.fn(async () => {
      throw new SafelightError('forbidden', 'admins only', 403);
    });
    mount(client);
    await until(() => expect(dom.container.querySelector('[data-testid=dashboard-error]')).not.toBeNull());
    expect(text('[data-testid=dashboard-error]')).toContain('administrators');
    expect(dom.container.querySelector('table')).toBeNull();
  });
});
