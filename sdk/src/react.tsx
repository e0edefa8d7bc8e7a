'use client';
/**
 * `@safestream/sdk/react`: React bindings of the parent SDK. Every hook removes its listeners
 * on unmount and sets no state after it; nothing touches `window` during a render, so they work
 * in a Next.js client component.
 */
import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useRef,
  useState,
  useSyncExternalStore,
  type JSX,
  type ReactNode,
} from 'react';
import type { Socket } from 'socket.io-client';

import { createClient } from './client.js';
import { isFinal, statusRank } from './commands.js';
import { SafeStreamError } from './errors.js';
import type {
  ChildView,
  CommandStatus,
  CommandType,
  CommandView,
  DeviceStatus,
  NotificationView,
  ServerEvents,
} from './generated/wire.js';
import type {
  CommandResult,
  ConnectionState,
  DeviceWithPresence,
  SafeStreamClient,
  SafeStreamOptions,
  SendCommandOptions,
  StatusStep,
} from './types.js';

const ClientContext = createContext<SafeStreamClient | null>(null);

/** Props of [`SocketProvider`]: a client, or what to build one with. */
export interface SocketProviderProps {
  /** A client made with createClient (not closed on unmount). */
  client?: SafeStreamClient;
  /** Relay URL for the client the provider creates ('' or absent: same origin). */
  url?: string;
  /** Parent token source for the client the provider creates (the latest one is always used). */
  getToken?: () => string | Promise<string>;
  /** Added: more options for the client the provider creates (transports, backoff, ...). */
  options?: Omit<SafeStreamOptions, 'url' | 'getToken'>;
  /** The app. */
  children: ReactNode;
}

/**
 * Provides a client to the hooks below: creates one (or uses `client`), `connect()`s on mount,
 * `close()`s on unmount if it created it.
 */
export function SocketProvider(props: SocketProviderProps): JSX.Element {
  const getTokenRef = useRef(props.getToken);
  getTokenRef.current = props.getToken;
  const [own] = useState<SafeStreamClient | null>(() => {
    if (props.client) return null;
    if (!props.getToken) throw new Error('SocketProvider needs a client or a getToken');
    return createClient({
      ...props.options,
      url: props.url,
      getToken: () => {
        const g = getTokenRef.current;
        if (!g) throw new Error('SocketProvider: getToken was removed');
        return g();
      },
    });
  });
  const client = props.client ?? own;
  if (client === null) throw new Error('SocketProvider needs a client or a getToken');
  useEffect(() => {
    client.connect();
    return () => {
      if (client === own) client.close();
    };
  }, [client, own]);
  return <ClientContext.Provider value={client}>{props.children}</ClientContext.Provider>;
}

/** The provider's client; throws outside a [`SocketProvider`]. */
export function useSafeStream(): SafeStreamClient {
  const c = useContext(ClientContext);
  if (c === null) throw new Error('useSafeStream must be used inside <SocketProvider>');
  return c;
}

/** The connection state, re-rendering on change (`'idle'` on the server). */
export function useConnectionState(): ConnectionState {
  const client = useSafeStream();
  const subscribe = useCallback((cb: () => void) => client.onState(cb), [client]);
  return useSyncExternalStore(subscribe, () => client.state, () => 'idle');
}

/** The seed plan's shape: the raw socket, whether it is connected, and the state. */
export function useSocket(): { socket: Socket | null; isConnected: boolean; state: ConnectionState } {
  const client = useSafeStream();
  const state = useConnectionState();
  return { socket: client.socket, isConnected: state === 'connected', state };
}

/** Calls `handler` for each `event`; removed on unmount; the latest handler is used. */
export function useEvent<E extends keyof ServerEvents>(event: E, handler: (data: ServerEvents[E]) => void): void {
  const client = useSafeStream();
  const ref = useRef(handler);
  useEffect(() => {
    ref.current = handler;
  });
  useEffect(() => client.on(event, (d) => ref.current(d)), [client, event]);
}

/** Whether the component is still mounted (for async results). */
function useMounted(): { current: boolean } {
  const mounted = useRef(false);
  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);
  return mounted;
}

function asSafeStreamError(e: unknown): SafeStreamError {
  if (e instanceof SafeStreamError) return e;
  return new SafeStreamError(0, 'network', e instanceof Error ? e.message : String(e));
}

/**
 * A list loaded over REST: `load` runs on mount and when `key` changes; `reload()` again. Only
 * the newest load's answer is kept, and none after unmount. `merge` combines the answer with
 * the list as it is now (live items that arrived while loading).
 */
function useList<T>(
  key: string | null,
  load: (() => Promise<T[]>) | null,
  merge: (loaded: T[], current: T[]) => T[] = (loaded) => loaded,
): {
  items: T[];
  /** The list as last rendered (for event handlers). */
  itemsRef: { readonly current: T[] };
  setItems: (f: (prev: T[]) => T[]) => void;
  loading: boolean;
  error: SafeStreamError | null;
  reload: () => Promise<void>;
} {
  const mounted = useMounted();
  const [items, setItemsState] = useState<T[]>([]);
  const itemsRef = useRef(items);
  itemsRef.current = items;
  const [loading, setLoading] = useState(load !== null);
  const [error, setError] = useState<SafeStreamError | null>(null);
  const gen = useRef(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  const mergeRef = useRef(merge);
  mergeRef.current = merge;

  const reload = useCallback(async () => {
    const l = loadRef.current;
    const mine = ++gen.current;
    if (l === null) {
      setItemsState([]);
      setLoading(false);
      return;
    }
    setLoading(true);
    try {
      const got = await l();
      if (!mounted.current || mine !== gen.current) return;
      setItemsState((prev) => mergeRef.current(got, prev));
      setError(null);
    } catch (e) {
      if (!mounted.current || mine !== gen.current) return;
      setError(asSafeStreamError(e));
    } finally {
      if (mounted.current && mine === gen.current) setLoading(false);
    }
  }, [mounted]);

  useEffect(() => {
    setItemsState([]);
    void reload();
  }, [key, reload]);

  const setItems = useCallback(
    (f: (prev: T[]) => T[]) => {
      if (mounted.current) setItemsState(f);
    },
    [mounted],
  );
  return { items, itemsRef, setItems, loading, error, reload };
}

/**
 * Calls `reload` when the client reaches 'connected' for the first time after `since` (the
 * hook's mount): a list loaded before the socket was up may have missed events that no
 * replay will bring. Returns the unsubscribe.
 */
function reloadOnFirstConnect(client: SafeStreamClient, reload: () => Promise<void>): () => void {
  if (client.state === 'connected') return () => undefined;
  let off: (() => void) | null = null;
  off = client.onState((s) => {
    if (s !== 'connected') return;
    off?.();
    off = null;
    void reload();
  });
  return () => off?.();
}

/** Commands by id, keeping whichever copy is further in its life (a load can be older than an event). */
function newerCommands(loaded: CommandView[], current: CommandView[]): CommandView[] {
  const live = new Map(current.map((c) => [c.id, c]));
  return loaded.map((c) => {
    const l = live.get(c.id);
    return l !== undefined && statusRank(l.status) > statusRank(c.status) ? l : c;
  });
}

function byIdFirst<T extends { id: string }>(front: T[], rest: T[]): T[] {
  const seen = new Set(front.map((x) => x.id));
  return [...front, ...rest.filter((x) => !seen.has(x.id))];
}

/**
 * Notifications: loaded over REST, `notification:new` prepended live (deduplicated by id),
 * reloaded on resync.
 */
export function useNotifications(opts: { limit?: number } = {}): {
  notifications: NotificationView[];
  unread: number;
  loading: boolean;
  error: SafeStreamError | null;
  markRead(id: string): Promise<void>;
  reload(): Promise<void>;
} {
  const client = useSafeStream();
  const limit = opts.limit;
  const list = useList<NotificationView>(
    `${limit ?? ''}`,
    () => client.notifications(limit === undefined ? {} : { limit }),
    // Live ones newer than the answer's newest stay on top.
    (loaded, current) => {
      const newest = loaded[0]?.createdAt ?? '';
      return byIdFirst(current.filter((n) => n.createdAt > newest), loaded);
    },
  );
  const { setItems, reload } = list;
  useEffect(() => {
    // A notification already listed (a replay, or one the load returned) keeps its place.
    const offNew = client.on('notification:new', (n) =>
      setItems((prev) => (prev.some((x) => x.id === n.id) ? prev : [n, ...prev])),
    );
    const offResync = client.onResync(() => void reload());
    const offFirst = reloadOnFirstConnect(client, reload);
    return () => {
      offNew();
      offResync();
      offFirst();
    };
  }, [client, setItems, reload]);
  const markRead = useCallback(
    async (id: string) => {
      await client.markNotificationRead(id);
      setItems((prev) => prev.map((n) => (n.id === id ? { ...n, read: true } : n)));
    },
    [client, setItems],
  );
  return {
    notifications: list.items,
    unread: list.items.filter((n) => !n.read).length,
    loading: list.loading,
    error: list.error,
    markRead,
    reload,
  };
}

/**
 * Commands of one child (or of every child for `null`): loaded over REST, `command:sent` and
 * `command:status` merged live, reloaded on resync.
 */
export function useCommands(
  childId: string | null,
  opts: { limit?: number } = {},
): { commands: CommandView[]; loading: boolean; error: SafeStreamError | null; reload(): Promise<void> } {
  const client = useSafeStream();
  const limit = opts.limit;
  const mounted = useMounted();
  const list = useList<CommandView>(`${childId ?? '*'}|${limit ?? ''}`, () => {
    const q: { childId?: string; limit?: number } = {};
    if (childId !== null) q.childId = childId;
    if (limit !== undefined) q.limit = limit;
    return client.commands(q);
  }, (loaded, current) => {
    const newest = loaded[0]?.createdAt ?? '';
    return byIdFirst(current.filter((c) => c.createdAt > newest), newerCommands(loaded, current)).slice(
      0,
      Math.max(limit ?? 50, loaded.length),
    );
  });
  const { setItems, reload, itemsRef } = list;
  useEffect(() => {
    const mine = (c: string) => childId === null || c === childId;
    // Cleared at cleanup: an answer for the previous child (or after unmount) is dropped.
    let active = true;
    const fetchOne = (id: string) => {
      client.command(id).then(
        (cmd) => {
          if (!active || !mounted.current || !mine(cmd.childId)) return;
          setItems((prev) => {
            const i = prev.findIndex((c) => c.id === id);
            if (i < 0) return [cmd, ...prev].slice(0, Math.max(limit ?? 50, prev.length));
            const old = prev[i];
            if (old === undefined || statusRank(cmd.status) < statusRank(old.status)) return prev;
            const next = [...prev];
            next[i] = cmd;
            return next;
          });
        },
        () => undefined,
      );
    };
    const offSent = client.on('command:sent', (d) => {
      if (mine(d.childId)) fetchOne(d.commandId);
    });
    const offStatus = client.on('command:status', (d) => {
      if (!mine(d.childId)) return;
      if (!itemsRef.current.some((c) => c.id === d.commandId)) {
        // Unknown here (sent before the list loaded, or by another guardian): read it.
        fetchOne(d.commandId);
        return;
      }
      setItems((prev) =>
        prev.map((c) => {
          if (c.id !== d.commandId) return c;
          if (statusRank(d.status) <= statusRank(c.status)) return c;
          const next: CommandView = { ...c, status: d.status };
          if (d.status === 'DELIVERED') next.deliveredAt ??= new Date().toISOString();
          else {
            next.executedAt = d.executedAt;
            next.error = d.error;
          }
          if (d.deviceId !== null && (isFinal(d.status) || next.ackDeviceId === null)) next.ackDeviceId = d.deviceId;
          return next;
        }),
      );
    });
    const offResync = client.onResync(() => void reload());
    const offFirst = reloadOnFirstConnect(client, reload);
    return () => {
      active = false;
      offSent();
      offStatus();
      offResync();
      offFirst();
    };
  }, [client, childId, limit, setItems, reload, mounted, itemsRef]);
  return { commands: list.items, loading: list.loading, error: list.error, reload };
}

/**
 * Devices of a child with their presence: loaded over REST, `device:status` merged live,
 * reloaded on resync and on every reconnection.
 */
export function useDevices(
  childId: string | null,
): { devices: DeviceWithPresence[]; loading: boolean; error: SafeStreamError | null; reload(): Promise<void> } {
  const client = useSafeStream();
  // The newest `device:status` per device with its arrival number: a load's answer may be
  // older than a status that came while it was out, so those are applied on top of it.
  const live = useRef({ n: 0, byDevice: new Map<string, { n: number; d: DeviceStatus }>() });
  const list = useList<DeviceWithPresence>(
    childId,
    childId === null
      ? null
      : () => {
          const mark = live.current.n;
          return client.devices(childId).then((devices) =>
            devices.map((dev) => {
              const e = live.current.byDevice.get(dev.id);
              return e !== undefined && e.n > mark ? withStatus(dev, e.d) : dev;
            }),
          );
        },
  );
  const { setItems, reload, itemsRef } = list;
  useEffect(() => {
    if (childId === null) return undefined;
    live.current.byDevice.clear();
    let wasConnected = client.state === 'connected';
    const offStatus = client.on('device:status', (d) => {
      if (d.childId !== childId) return;
      const l = live.current;
      l.n += 1;
      l.byDevice.set(d.deviceId, { n: l.n, d });
      if (!itemsRef.current.some((dev) => dev.id === d.deviceId)) {
        // A device this list does not have yet (just paired): read the list again.
        void reload();
        return;
      }
      setItems((prev) => prev.map((dev) => (dev.id === d.deviceId ? withStatus(dev, d) : dev)));
    });
    const offState = client.onState((s) => {
      // Presence is live only: after a gap, read it again.
      if (s === 'connected' && !wasConnected) void reload();
      wasConnected = s === 'connected';
    });
    const offResync = client.onResync(() => void reload());
    return () => {
      offStatus();
      offState();
      offResync();
    };
  }, [client, childId, setItems, reload, itemsRef]);
  return { devices: list.items, loading: list.loading, error: list.error, reload };
}

function withStatus(dev: DeviceWithPresence, d: DeviceStatus): DeviceWithPresence {
  return { ...dev, online: d.online, activeViewing: d.activeViewing, currentVideo: d.currentVideo, lastSeen: d.lastSeen ?? dev.lastSeen };
}

/** The parent's children, loaded over REST, reloaded on resync. */
export function useChildren(): { children: ChildView[]; loading: boolean; error: SafeStreamError | null; reload(): Promise<void> } {
  const client = useSafeStream();
  const list = useList<ChildView>('children', () => client.children());
  const { reload } = list;
  useEffect(() => client.onResync(() => void reload()), [client, reload]);
  return { children: list.items, loading: list.loading, error: list.error, reload };
}

/**
 * Sends commands and follows the latest one's status. The wait is aborted on unmount (the
 * command is not cancelled on the relay); no state is set after unmount. `send` never rejects:
 * it gives `undefined` when it failed (see `error`) or was aborted.
 */
export function useCommand(): {
  send(
    childId: string,
    type: CommandType,
    payload?: Record<string, unknown>,
    opts?: Omit<SendCommandOptions, 'signal' | 'onStatus'>,
  ): Promise<CommandResult | undefined>;
  status: CommandStatus | null;
  trail: StatusStep[];
  error: Error | null;
  pending: boolean;
  command: CommandView | null;
} {
  const client = useSafeStream();
  const mounted = useMounted();
  const controllers = useRef(new Set<AbortController>());
  const gen = useRef(0);
  const [status, setStatus] = useState<CommandStatus | null>(null);
  const [trail, setTrail] = useState<StatusStep[]>([]);
  const [error, setError] = useState<Error | null>(null);
  const [pending, setPending] = useState(false);
  const [command, setCommand] = useState<CommandView | null>(null);

  useEffect(() => {
    const set = controllers.current;
    return () => {
      for (const c of set) c.abort();
      set.clear();
    };
  }, []);

  const send = useCallback(
    async (
      childId: string,
      type: CommandType,
      payload?: Record<string, unknown>,
      opts: Omit<SendCommandOptions, 'signal' | 'onStatus'> = {},
    ): Promise<CommandResult | undefined> => {
      if (!mounted.current) return undefined;
      const mine = ++gen.current;
      const ctl = new AbortController();
      controllers.current.add(ctl);
      const live = () => mounted.current && mine === gen.current;
      setStatus(null);
      setTrail([]);
      setError(null);
      setCommand(null);
      setPending(true);
      try {
        const result = await client.sendCommand(childId, type, payload ?? {}, {
          ...opts,
          signal: ctl.signal,
          onStatus: (step, cmd) => {
            if (!live()) return;
            setStatus(step.status);
            setTrail((t) => [...t, step]);
            setCommand(cmd);
          },
        });
        if (live()) {
          setCommand(result.command);
          setTrail(result.trail);
          setStatus(result.command.status);
        }
        return result;
      } catch (e) {
        if (live() && !ctl.signal.aborted) setError(e instanceof Error ? e : new Error(String(e)));
        return undefined;
      } finally {
        controllers.current.delete(ctl);
        if (live()) setPending(false);
      }
    },
    [client, mounted],
  );
  return { send, status, trail, error, pending, command };
}
