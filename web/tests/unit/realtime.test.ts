import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CLOSE_SILENT, Realtime, backoffDelay, createClient, type Notice, type RealtimeOptions } from '@safelight/client';
import { FakeSocket, notice } from './fakes';

function setup(extra: Partial<RealtimeOptions> = {}) {
  let tokens = 0;
  const getToken = vi.fn(async ({ fresh }: { fresh: boolean }) => `tok-${++tokens}${fresh ? '-fresh' : ''}`);
  const rt = new Realtime({
    wsUrl: 'ws://example.test/live',
    getToken,
    socket: (url) => new FakeSocket(url),
    backoff: { baseMs: 1000, capMs: 8000 },
    pingIntervalMs: 30_000,
    pongTimeoutMs: 5_000,
    random: () => 0.5,
    ...extra,
  });
  const got: Array<{ n: Notice; replayed: boolean }> = [];
  const states: string[] = [];
  const off = rt.subscribe({ notice: (n, i) => got.push({ n, replayed: i.replayed }), state: (s) => states.push(s) });
  return { rt, got, states, getToken, off };
}

beforeEach(() => {
  vi.useFakeTimers();
  FakeSocket.reset();
});
afterEach(() => vi.useRealTimers());

describe('backoff', () => {
  it('doubles up to the cap and keeps half of each delay random', () => {
    expect(backoffDelay(1, 1000, 8000, () => 0)).toBe(500);
    expect(backoffDelay(1, 1000, 8000, () => 1)).toBe(1000);
    expect(backoffDelay(3, 1000, 8000, () => 0)).toBe(2000);
    expect(backoffDelay(3, 1000, 8000, () => 1)).toBe(4000);
    expect(backoffDelay(10, 1000, 8000, () => 1)).toBe(8000);
    expect(backoffDelay(10, 1000, 8000, () => 0)).toBe(4000);
  });
});

describe('Realtime', () => {
  it('connects with the token in the query string and sends no resume on the first connection', async () => {
    const { states } = setup();
    await vi.advanceTimersByTimeAsync(0);
    const s = FakeSocket.last();
    expect(s.url).toBe('ws://example.test/live?token=tok-1');
    s.open();
    expect(s.sent).toEqual([]);
    expect(states).toEqual(['idle', 'connecting', 'open']);
  });

  it('reconnects after a drop with growing delays and a fresh token each time', async () => {
    const { getToken } = setup();
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last().open();
    FakeSocket.last().drop();
    // attempt 1: 750 ms with random 0.5 (half of 1000 fixed + half random)
    await vi.advanceTimersByTimeAsync(749);
    expect(FakeSocket.all).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeSocket.all).toHaveLength(2);
    expect(FakeSocket.last().token).toBe('tok-2-fresh');
    // the handshake fails: attempt 2 waits 1500 ms
    FakeSocket.last().drop();
    await vi.advanceTimersByTimeAsync(1499);
    expect(FakeSocket.all).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeSocket.all).toHaveLength(3);
    expect(getToken).toHaveBeenLastCalledWith({ fresh: true });
    // a successful open resets the backoff
    FakeSocket.last().open();
    FakeSocket.last().drop();
    await vi.advanceTimersByTimeAsync(750);
    expect(FakeSocket.all).toHaveLength(4);
  });

  it('resumes from the last applied seq after a reconnect and flags replayed notices', async () => {
    const { got } = setup();
    await vi.advanceTimersByTimeAsync(0);
    const first = FakeSocket.last();
    first.open();
    first.receive(notice(3));
    first.receive(notice(7, 'img-2'));
    first.drop();
    await vi.advanceTimersByTimeAsync(1000);
    const second = FakeSocket.last();
    expect(second).not.toBe(first);
    second.open();
    expect(second.sent).toEqual([{ action: 'resume', since: 7 }]);
    second.receive(notice(8, 'img-1', 'image:processing:variant_complete'));
    second.receive({ type: 'resumed', since: 7, replayed: 1, last_seq: 8 });
    second.receive(notice(9, 'img-1', 'image:processing:complete'));
    expect(got.map((g) => [g.n.seq, g.replayed])).toEqual([
      [3, false],
      [7, false],
      [8, true],
      [9, false],
    ]);
  });

  it('delivers a notice once when a replay and a live delivery overlap', async () => {
    const { got, rt } = setup();
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last().open();
    FakeSocket.last().receive(notice(1));
    FakeSocket.last().drop();
    await vi.advanceTimersByTimeAsync(1000);
    const s = FakeSocket.last();
    s.open();
    s.receive(notice(2)); // live, while the replay is under way
    s.receive(notice(2)); // the same notice, replayed
    s.receive(notice(1)); // older than the resume point, replayed again by a retrying server
    s.receive({ type: 'resumed', since: 1, replayed: 2, last_seq: 2 });
    expect(got.map((g) => g.n.seq)).toEqual([1, 2]);
    expect(rt.lastSeq).toBe(2);
  });

  it('keeps notices of different images that share nothing but a seq gap apart', async () => {
    const { got } = setup();
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last().open();
    FakeSocket.last().receive(notice(5, 'a'));
    FakeSocket.last().receive(notice(5, 'b')); // a server bug or replay mix-up: still distinct keys
    FakeSocket.last().receive(notice(5, 'a'));
    expect(got.map((g) => `${g.n.image_id}:${g.n.seq}`)).toEqual(['a:5', 'b:5']);
  });

  it('pings an open socket and replaces one that stays silent', async () => {
    setup();
    await vi.advanceTimersByTimeAsync(0);
    const s = FakeSocket.last();
    s.open();
    await vi.advanceTimersByTimeAsync(30_000);
    expect(s.sent).toEqual([{ action: 'ping' }]);
    s.receive({ type: 'pong' });
    await vi.advanceTimersByTimeAsync(30_000);
    expect(s.sent).toEqual([{ action: 'ping' }, { action: 'ping' }]);
    // no pong this time
    await vi.advanceTimersByTimeAsync(5_000);
    expect(s.closedWith).toBe(CLOSE_SILENT);
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeSocket.all).toHaveLength(2);
  });

  it('stops reconnecting once the last listener leaves', async () => {
    const { off, rt } = setup();
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last().open();
    off();
    expect(FakeSocket.last().closedWith).toBe(1000);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeSocket.all).toHaveLength(1);
    expect(rt.state).toBe('closed');
  });

  it('ignores frames that are not JSON and reports error frames', async () => {
    const rt = new Realtime({ wsUrl: 'ws://x.test/live', getToken: () => 't', socket: (u) => new FakeSocket(u) });
    const errors: string[] = [];
    rt.subscribe({ error: (e) => errors.push(e.code) });
    await vi.advanceTimersByTimeAsync(0);
    const s = FakeSocket.last();
    s.open();
    s.onmessage?.({ data: 'not json' });
    s.receive({ type: 'error', code: 'unknown_action' });
    expect(errors).toEqual(['unknown_action']);
    rt.stop();
  });

  it('is one socket per page however many clients subscribe', async () => {
    const opts = {
      apiUrl: 'http://api.test',
      wsUrl: 'ws://shared.test/live',
      getToken: () => 't',
      realtime: { socket: (u: string) => new FakeSocket(u) },
    };
    const a = createClient(opts);
    const b = createClient(opts);
    const offA = a.subscribe({});
    const offB = b.subscribe({});
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.all).toHaveLength(1);
    expect(a.realtime).toBe(b.realtime);
    offA();
    expect(FakeSocket.last().closedWith).toBeNull();
    offB();
    expect(FakeSocket.last().closedWith).toBe(1000);
  });

  it('follows a paged replay: each resume:more asks for the next page until resumed', async () => {
    const { got, rt } = setup({ since: 0 });
    const resumed: number[] = [];
    rt.subscribe({ resumed: (f) => resumed.push(f.last_seq) });
    await vi.advanceTimersByTimeAsync(0);
    const s = FakeSocket.last();
    s.open();
    expect(s.sent).toEqual([{ action: 'resume', since: 0 }]);
    for (let seq = 1; seq <= 100; seq += 1) s.receive(notice(seq, `img-${seq}`));
    s.receive({ type: 'resume:more', since: 0, replayed: 100, after: 100 });
    expect(s.sent).toEqual([
      { action: 'resume', since: 0 },
      { action: 'resume', since: 100 },
    ]);
    for (let seq = 101; seq <= 150; seq += 1) s.receive(notice(seq, `img-${seq}`));
    s.receive({ type: 'resume:more', since: 100, replayed: 50, after: 150 });
    expect(s.sent.at(-1)).toEqual({ action: 'resume', since: 150 });
    s.receive(notice(151, 'img-151'));
    s.receive({ type: 'resumed', since: 150, replayed: 1, last_seq: 151 });
    expect(s.sent).toHaveLength(3);
    expect(resumed).toEqual([151]);
    expect(got).toHaveLength(151);
    expect(got.every((g) => g.replayed)).toBe(true);
    expect(rt.lastSeq).toBe(151);
    // A continuation that would not move forward is not followed (no loop).
    s.receive({ type: 'resume:more', since: 151, replayed: 0, after: 151 });
    expect(s.sent).toHaveLength(3);
  });

  it('a paged replay cut by a drop resumes from the last notice applied', async () => {
    setup({ since: 0 });
    await vi.advanceTimersByTimeAsync(0);
    const s = FakeSocket.last();
    s.open();
    for (let seq = 1; seq <= 40; seq += 1) s.receive(notice(seq, `img-${seq}`));
    s.drop();
    await vi.advanceTimersByTimeAsync(1000);
    FakeSocket.last().open();
    expect(FakeSocket.last().sent).toEqual([{ action: 'resume', since: 40 }]);
  });

  it('backs off when $connect refuses the handshake (429: too many sockets) instead of looping', async () => {
    const { states } = setup();
    await vi.advanceTimersByTimeAsync(0);
    // A refused handshake: the browser sees a close (1006) without an open, never the status.
    FakeSocket.last().drop();
    const delays: number[] = [];
    for (let attempt = 1; attempt <= 6; attempt += 1) {
      const before = FakeSocket.all.length;
      let waited = 0;
      while (FakeSocket.all.length === before) {
        await vi.advanceTimersByTimeAsync(250);
        waited += 250;
        expect(waited).toBeLessThanOrEqual(8000);
      }
      delays.push(waited);
      FakeSocket.last().drop();
    }
    // 750, 1500, 3000, 6000 ms, then the cap (8000 ms with random 0.5 -> 6000 ms): never faster.
    expect(delays).toEqual([750, 1500, 3000, 6000, 6000, 6000]);
    expect(states.at(-1)).toBe('reconnecting');
    expect(FakeSocket.all.every((sock) => sock.sent.length === 0)).toBe(true);
  });
});
