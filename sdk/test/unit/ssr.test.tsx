// Node environment on purpose: no `window`, no `document`, as when Next.js renders a client
// component on the server before hydrating it.
import { renderToString } from 'react-dom/server';
import { describe, expect, it } from 'vitest';

import { SocketProvider, useCommand, useCommands, useDevices, useNotifications, useSocket } from '../../src/react.js';
import { fakeFetch, fakeIo, tokenFor } from './fakes.js';

describe('server rendering (Next.js client components)', () => {
  it('renders the provider and every hook without a window, opening no socket and sending no request', () => {
    expect(typeof (globalThis as { window?: unknown }).window).toBe('undefined');
    const fio = fakeIo();
    const f = fakeFetch(() => ({ status: 200, body: {} }));
    function Dashboard() {
      const { socket, isConnected, state } = useSocket();
      const { notifications, unread } = useNotifications();
      const { devices } = useDevices('kid1');
      const { commands } = useCommands('kid1');
      const lock = useCommand();
      return (
        <p>
          {`socket=${socket === null ? 'none' : 'some'} connected=${String(isConnected)} state=${state} `}
          {`notifications=${notifications.length} unread=${unread} devices=${devices.length} `}
          {`commands=${commands.length} lock=${lock.status ?? 'none'} pending=${String(lock.pending)}`}
        </p>
      );
    }
    const html = renderToString(
      <SocketProvider url="http://relay.test" getToken={() => tokenFor('u1')} options={{ io: fio.io, fetch: f.fetch }}>
        <Dashboard />
      </SocketProvider>,
    );
    expect(html.replace(/<!-- -->/g, '')).toContain(
      'socket=none connected=false state=idle notifications=0 unread=0 devices=0 commands=0 lock=none pending=false',
    );
    // Effects do not run on the server: nothing connected, nothing fetched.
    expect(fio.sockets.length).toBe(0);
    expect(f.calls.length).toBe(0);
  });
});
