// @vitest-environment jsdom
import { act, StrictMode, type ReactNode } from 'react';
import { createRoot, type Root } from 'react-dom/client';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

import { createClient, type SafeStreamClient } from '../../src/index.js';
import {
  SocketProvider,
  useCommand,
  useCommands,
  useDevices,
  useEvent,
  useNotifications,
  useSafeStream,
  useSocket,
} from '../../src/react.js';
import { commandView, deferred, fakeFetch, fakeIo, flush, statusEvent, tokenFor, type Answer, type FakeSocket, type FetchCall } from './fakes.js';

beforeAll(() => {
  (globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;
});

let root: Root | null = null;
let host: HTMLElement | null = null;
afterEach(() => {
  act(() => root?.unmount());
  host?.remove();
  root = null;
  host = null;
});

function render(node: ReactNode): void {
  host = document.createElement('div');
  document.body.append(host);
  root = createRoot(host);
  act(() => root!.render(node));
}

/** Renders `use` inside a provider of `client`; `.current` is its latest result. */
function mountHook<T>(client: SafeStreamClient, use: () => T): { readonly current: T } {
  const box: { value: T | null } = { value: null };
  function Host(): null {
    box.value = use();
    return null;
  }
  render(
    <SocketProvider client={client}>
      <Host />
    </SocketProvider>,
  );
  return {
    get current(): T {
      if (box.value === null) throw new Error('the hook has not rendered');
      return box.value;
    },
  };
}

function makeClient(route: (c: FetchCall) => Answer | Promise<Answer>) {
  const fio = fakeIo();
  const f = fakeFetch(route);
  const client = createClient({ url: 'http://relay.test', getToken: () => tokenFor('u1'), io: fio.io, fetch: f.fetch });
  return { client, fio, calls: f.calls };
}

/** Lets effects, fetches and state updates settle inside act. */
async function settle(): Promise<void> {
  await act(async () => {
    await flush(30);
  });
}

function notification(id: string, title: string, createdAt: string, read = false) {
  return { id, type: 'RESTRICTED_CONTENT', title, message: title, metadata: {}, createdAt, read };
}

describe('useSocket', () => {
  it("has the seed's shape ({ socket, isConnected }) plus the state, following the connection", async () => {
    const { client, fio } = makeClient(() => ({ status: 200, body: {} }));
    const seen: { socket: unknown; isConnected: boolean; state: string }[] = [];
    function Probe() {
      const v = useSocket();
      seen.push(v);
      return <span>{v.state}</span>;
    }
    render(
      <SocketProvider client={client}>
        <Probe />
      </SocketProvider>,
    );
    await settle();
    const s = fio.sockets[0]!;
    expect(seen.at(-1)).toEqual({ socket: s, isConnected: false, state: 'connecting' });
    act(() => s.serverReady());
    expect(seen.at(-1)).toEqual({ socket: s, isConnected: true, state: 'connected' });
    expect(host!.textContent).toBe('connected');
    act(() => s.serverDisconnect('transport close'));
    expect(seen.at(-1)).toMatchObject({ isConnected: false, state: 'reconnecting' });
    expect(Object.keys(seen[0]!).sort()).toEqual(['isConnected', 'socket', 'state']);
  });

  it('a provider that created its client connects it, and closes it on unmount (StrictMode remount included)', async () => {
    const fio = fakeIo();
    const { fetch } = fakeFetch(() => ({ status: 200, body: {} }));
    let client: SafeStreamClient | null = null;
    function Grab() {
      client = useSafeStream();
      return null;
    }
    render(
      <StrictMode>
        <SocketProvider url="http://relay.test" getToken={() => tokenFor('u1')} options={{ io: fio.io, fetch }}>
          <Grab />
        </SocketProvider>
      </StrictMode>,
    );
    await settle();
    // StrictMode mounted, unmounted (close) and mounted again (connect with a new socket).
    expect(fio.sockets.length).toBe(2);
    expect(fio.sockets[0]!.listenerCount()).toBe(0);
    expect(fio.sockets[1]!.connectCalls).toBe(1);
    expect(client!.state).toBe('connecting');
    act(() => fio.sockets[1]!.serverReady());
    expect(client!.state).toBe('connected');
    act(() => root!.unmount());
    root = null;
    expect(client!.state).toBe('closed');
    expect(fio.sockets[1]!.listenerCount()).toBe(0);
  });
});


describe('useNotifications', () => {
  it('loads over REST, prepends notification:new live, deduplicates by id, counts unread, marks read', async () => {
    const { client, fio, calls } = makeClient((c) =>
      c.method === 'POST'
        ? { status: 200, body: {} }
        : { status: 200, body: { notifications: [notification('n1', 'first', '2030-01-01T00:00:01.000Z', true), notification('n0', 'zero', '2030-01-01T00:00:00.000Z')] } },
    );
    let api: ReturnType<typeof useNotifications> | null = null;
    function List() {
      api = useNotifications({ limit: 20 });
      return <ul>{api.notifications.map((n) => <li key={n.id}>{n.title}</li>)}</ul>;
    }
    render(
      <SocketProvider client={client}>
        <List />
      </SocketProvider>,
    );
    expect(api!.loading).toBe(true);
    await settle();
    expect(calls[0]!.path).toBe('/api/dashboard/notifications?limit=20');
    expect(api!.loading).toBe(false);
    expect(api!.notifications.map((n) => n.id)).toEqual(['n1', 'n0']);
    expect(api!.unread).toBe(1);
    const s = fio.sockets[0]!;
    act(() => s.serverReady());
    act(() => s.serverEvent('notification:new', notification('n2', 'second', '2030-01-01T00:00:02.000Z'), '5'));
    act(() => s.serverEvent('notification:new', notification('n2', 'second', '2030-01-01T00:00:02.000Z'), '5'));
    act(() => s.serverEvent('notification:new', notification('n1', 'first', '2030-01-01T00:00:01.000Z', true), '2'));
    expect(api!.notifications.map((n) => n.id)).toEqual(['n2', 'n1', 'n0']);
    expect(host!.textContent).toBe('secondfirstzero');
    expect(api!.unread).toBe(2);
    await act(async () => {
      await api!.markRead('n2');
    });
    expect(calls.at(-1)).toMatchObject({ method: 'POST', path: '/api/dashboard/notifications/n2/read' });
    expect(api!.unread).toBe(1);
    // A resync reloads the list.
    const gets = calls.filter((c) => c.method === 'GET').length;
    act(() => s.serverEvent('resync', { reason: 'history_gap', seq: 9 }));
    await settle();
    expect(calls.filter((c) => c.method === 'GET').length).toBe(gets + 1);
  });

  it('a live notification that arrives while the list is loading is kept', async () => {
    const answer = deferred<Answer>();
    const { client, fio } = makeClient(() => answer.promise);
    const api = mountHook(client, () => useNotifications());
    await settle();
    const s = fio.sockets[0]!;
    act(() => s.serverEvent('notification:new', notification('n9', 'live', '2030-01-01T00:00:09.000Z'), '9'));
    answer.resolve({ status: 200, body: { notifications: [notification('n1', 'old', '2030-01-01T00:00:01.000Z')] } });
    await settle();
    expect(api.current.notifications.map((n) => n.id)).toEqual(['n9', 'n1']);
  });
});

describe('useDevices', () => {
  it('loads the devices and merges device:status (online, activeViewing, currentVideo, lastSeen)', async () => {
    const device = (id: string) => ({ id, childId: 'kid1', name: id, createdAt: 'x', revoked: false, online: false, lastSeen: null, activeViewing: false, currentVideo: null });
    const { client, fio, calls } = makeClient(() => ({ status: 200, body: { devices: [device('d1'), device('d2')] } }));
    const api = mountHook(client, () => useDevices('kid1'));
    await settle();
    expect(calls.map((c) => c.path)).toEqual(['/api/children/kid1/devices']);
    const s = fio.sockets[0]!;
    act(() => s.serverReady());
    await settle();
    const loads = calls.length; // (a reconnection reloads: presence is live only)
    act(() =>
      s.serverEvent('device:status', { deviceId: 'd2', childId: 'kid1', online: true, activeViewing: true, currentVideo: { title: 'Cartoons' }, lastSeen: null }),
    );
    act(() => s.serverEvent('device:status', { deviceId: 'dX', childId: 'other', online: true, activeViewing: true, currentVideo: null, lastSeen: null }));
    expect(api.current.devices.map((d) => [d.id, d.online, d.activeViewing, d.currentVideo])).toEqual([
      ['d1', false, false, null],
      ['d2', true, true, { title: 'Cartoons' }],
    ]);
    act(() =>
      s.serverEvent('device:status', { deviceId: 'd2', childId: 'kid1', online: false, activeViewing: false, currentVideo: null, lastSeen: '2030-01-01T00:00:00.000Z' }),
    );
    expect(api.current.devices[1]).toMatchObject({ online: false, lastSeen: '2030-01-01T00:00:00.000Z' });
    expect(calls.length).toBe(loads);
    // Back after a gap: the list is read again.
    act(() => s.serverDisconnect('transport close'));
    await act(async () => {
      await new Promise((ok) => setTimeout(ok, 700));
    });
    act(() => s.serverReady(true));
    await settle();
    expect(calls.length).toBe(loads + 1);
  });
});

describe('lists reloaded while events arrive', () => {
  const device = (id: string, online = false) => ({ id, childId: 'kid1', name: id, createdAt: 'x', revoked: false, online, lastSeen: null, activeViewing: false, currentVideo: null });

  it('useDevices: a device:status that comes while a load is out is applied on top of its (older) answer', async () => {
    const answers: ReturnType<typeof deferred<Answer>>[] = [];
    const { client, fio } = makeClient(() => {
      const d = deferred<Answer>();
      answers.push(d);
      return d.promise;
    });
    const api = mountHook(client, () => useDevices('kid1'));
    await settle();
    answers[0]!.resolve({ status: 200, body: { devices: [device('d1')] } });
    await settle();
    const s = fio.sockets[0]!;
    act(() => s.serverReady()); // first connection: the list is read again
    await settle();
    expect(answers.length).toBe(2);
    // The device comes online while that load is out; its answer was read before that.
    act(() => s.serverEvent('device:status', { deviceId: 'd1', childId: 'kid1', online: true, activeViewing: true, currentVideo: null, lastSeen: null }));
    expect(api.current.devices.map((d) => [d.id, d.online, d.activeViewing])).toEqual([['d1', true, true]]);
    answers[1]!.resolve({ status: 200, body: { devices: [device('d1')] } });
    await settle();
    expect(api.current.devices.map((d) => [d.id, d.online, d.activeViewing])).toEqual([['d1', true, true]]);
  });

  it('useCommands: a reload answer older than a live status does not take it back', async () => {
    const answers: ReturnType<typeof deferred<Answer>>[] = [];
    const { client, fio } = makeClient(() => {
      const d = deferred<Answer>();
      answers.push(d);
      return d.promise;
    });
    const api = mountHook(client, () => useCommands('kid1', { limit: 10 }));
    await settle();
    answers[0]!.resolve({ status: 200, body: { commands: [commandView('c1', { status: 'DELIVERED' })] } });
    await settle();
    const s = fio.sockets[0]!;
    act(() => s.serverReady()); // first connection: read again
    await settle();
    expect(answers.length).toBe(2);
    act(() => s.serverEvent('command:status', statusEvent('c1', 'EXECUTED'), '4'));
    expect(api.current.commands[0]!.status).toBe('EXECUTED');
    // The reload's answer was read before the device acknowledged.
    answers[1]!.resolve({ status: 200, body: { commands: [commandView('c1', { status: 'DELIVERED' })] } });
    await settle();
    expect(api.current.commands.map((c) => [c.id, c.status])).toEqual([['c1', 'EXECUTED']]);
  });

  it('useNotifications: loaded before the socket was up, read again at the first connection only', async () => {
    let n = 0;
    const { client, fio, calls } = makeClient(() => {
      n += 1;
      const list = n === 1 ? [] : [notification('n1', 'came before the socket', '2030-01-01T00:00:01.000Z')];
      return { status: 200, body: { notifications: list } };
    });
    const api = mountHook(client, () => useNotifications());
    await settle();
    expect(api.current.notifications).toEqual([]);
    const s = fio.sockets[0]!;
    act(() => s.serverReady());
    await settle();
    expect(api.current.notifications.map((x) => x.id)).toEqual(['n1']);
    const loads = calls.length;
    // A recovered reconnection replays what it missed: no reload.
    act(() => s.serverDisconnect('transport close'));
    await act(async () => {
      await new Promise((ok) => setTimeout(ok, 700));
    });
    act(() => s.serverReady(true));
    await settle();
    expect(calls.length).toBe(loads);
  });
});

describe('unmount', () => {
  it('removes every listener the hooks added, and sets no state afterwards', async () => {
    const answer = deferred<Answer>();
    const { client, fio } = makeClient((c) => (c.path.startsWith('/api/dashboard/notifications') ? answer.promise : { status: 200, body: { devices: [] } }));
    client.connect();
    await flush();
    const baseline = client.listenerCount();
    let events = 0;
    function All() {
      useNotifications();
      useDevices('kid1');
      useEvent('screentime:alert', () => (events += 1));
      return null;
    }
    render(
      <SocketProvider client={client}>
        <All />
      </SocketProvider>,
    );
    await settle();
    expect(client.listenerCount()).toBeGreaterThan(baseline + 4);
    fio.sockets[0]!.serverEvent('screentime:alert', { childId: 'kid1', childName: 'Mia', minutesUsed: 60, limit: 60 }, '3');
    expect(events).toBe(1);
    act(() => root!.unmount());
    root = null;
    expect(client.listenerCount()).toBe(baseline);
    fio.sockets[0]!.serverEvent('screentime:alert', { childId: 'kid1', childName: 'Mia', minutesUsed: 61, limit: 60 }, '4');
    expect(events).toBe(1);
    // A load that answers after unmount sets nothing (React would warn through console.error).
    const errors: unknown[] = [];
    const orig = console.error;
    console.error = (...a: unknown[]) => errors.push(a);
    try {
      answer.resolve({ status: 200, body: { notifications: [] } });
      await flush(30);
    } finally {
      console.error = orig;
    }
    expect(errors).toEqual([]);
    expect(client.state).toBe('connecting'); // a client passed in is not closed by the provider
  });

  it('useCommand: follows the status, and unmount aborts the wait (the command stays on the relay)', async () => {
    const { client, fio, calls } = makeClient(() => ({ status: 201, body: { command: commandView('c1') } }));
    let api: ReturnType<typeof useCommand> | null = null;
    function Button() {
      api = useCommand();
      return <span>{api.status ?? '-'}</span>;
    }
    render(
      <SocketProvider client={client}>
        <Button />
      </SocketProvider>,
    );
    await settle();
    const baseline = client.listenerCount();
    let result: unknown = 'unset';
    await act(async () => {
      void api!.send('kid1', 'PAUSE').then((r) => (result = r));
      await flush(30);
    });
    expect(api!.pending).toBe(true);
    expect(api!.status).toBe('PENDING');
    act(() => fio.sockets[0]!.serverEvent('command:status', statusEvent('c1', 'DELIVERED'), '3'));
    expect(host!.textContent).toBe('DELIVERED');
    expect(api!.trail.map((s) => s.status)).toEqual(['PENDING', 'DELIVERED']);
    expect(client.listenerCount()).toBe(baseline + 2);
    act(() => root!.unmount());
    root = null;
    await flush(10);
    expect(result).toBeUndefined();
    expect(client.listenerCount()).toBe(baseline);
    expect(calls.map((c) => c.method)).toEqual(['POST']);
  });
});
