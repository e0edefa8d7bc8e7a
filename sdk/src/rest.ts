import type { AdminOverview, ChildView, CommandType, CommandView, NotificationView } from './generated/wire.js';
import { SafeStreamError, errorFromResponse } from './errors.js';
import type { ClaimResult, CommandsQuery, DeviceWithPresence, NotificationsQuery } from './types.js';

/** Where REST calls get their bearer token. */
export interface TokenSource {
  /** The token to use now (asks getToken() when there is none, or it has expired). */
  current(): Promise<string>;
  /** After a 401 with `used`: a different token to retry with, or null. */
  renew(used: string): Promise<string | null>;
}

/** Body of `POST /api/dashboard/remote-control`. */
export interface CreateCommandBody {
  /** The child. */
  childId: string;
  /** What to do. */
  commandType: CommandType;
  /** A JSON object. */
  payload: Record<string, unknown>;
  /** Only this device. */
  deviceId?: string;
  /** Lifetime, seconds. */
  expiresInSeconds?: number;
}

const enc = encodeURIComponent;

function query(q: Record<string, string | number | undefined>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(q)) {
    if (v !== undefined) parts.push(`${enc(k)}=${enc(String(v))}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

/** The relay's REST API as a parent: every call throws [`SafeStreamError`] on an error. */
export class RestClient {
  private readonly base: string;

  /** `baseUrl` '' means same origin. */
  constructor(
    baseUrl: string,
    private readonly fetchFn: typeof fetch,
    private readonly tokens: TokenSource,
    private readonly timeoutMs: number = 30_000,
  ) {
    this.base = baseUrl.replace(/\/+$/, '');
  }

  /** One call: JSON in and out, Bearer token, one retry after a 401 with a renewed token. */
  async request<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    let token = await this.tokens.current();
    for (let attempt = 0; ; attempt += 1) {
      const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'application/json' };
      if (body !== undefined) headers['content-type'] = 'application/json';
      let res: Response;
      try {
        // A relay that accepted the connection and went silent (stopped, partitioned) must not
        // hold a call, and the sendCommand waiting on it, forever.
        res = await this.fetchFn(`${this.base}${path}`, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (e) {
        throw networkError(e, this.timeoutMs);
      }
      let text: string;
      try {
        text = await res.text();
      } catch (e) {
        throw networkError(e, this.timeoutMs);
      }
      if (res.status === 401 && attempt === 0) {
        const fresh = await this.tokens.renew(token).catch(() => null);
        if (fresh !== null && fresh !== token) {
          token = fresh;
          continue;
        }
      }
      if (res.status < 200 || res.status >= 300) {
        throw errorFromResponse(res.status, res.headers.get('retry-after'), text);
      }
      let parsed: unknown = null;
      if (text !== '') {
        try {
          parsed = JSON.parse(text);
        } catch {
          throw new SafeStreamError(res.status, 'internal', `${method} ${path}: the answer is not JSON`);
        }
      }
      return { status: res.status, body: parsed as T };
    }
  }

  /** GET /api/children. */
  async children(): Promise<ChildView[]> {
    return (await this.request<{ children: ChildView[] }>('GET', '/api/children')).body.children;
  }

  /** GET /api/children/{id}. */
  async child(childId: string): Promise<ChildView> {
    return (await this.request<{ child: ChildView }>('GET', `/api/children/${enc(childId)}`)).body.child;
  }

  /** GET /api/children/{id}/devices. */
  async devices(childId: string): Promise<DeviceWithPresence[]> {
    return (await this.request<{ devices: DeviceWithPresence[] }>('GET', `/api/children/${enc(childId)}/devices`)).body
      .devices;
  }

  /** DELETE /api/devices/{id}. */
  async revokeDevice(deviceId: string): Promise<void> {
    await this.request('DELETE', `/api/devices/${enc(deviceId)}`);
  }

  /** POST /api/dashboard/remote-control. */
  async createCommand(b: CreateCommandBody): Promise<CommandView> {
    return (await this.request<{ command: CommandView }>('POST', '/api/dashboard/remote-control', b)).body.command;
  }

  /** GET /api/dashboard/remote-control. */
  async commands(q: CommandsQuery = {}): Promise<CommandView[]> {
    const path = `/api/dashboard/remote-control${query({ childId: q.childId, status: q.status, limit: q.limit, before: q.before })}`;
    return (await this.request<{ commands: CommandView[] }>('GET', path)).body.commands;
  }

  /** GET /api/dashboard/remote-control/{id}. */
  async command(id: string): Promise<CommandView> {
    return (await this.request<{ command: CommandView }>('GET', `/api/dashboard/remote-control/${enc(id)}`)).body.command;
  }

  /** GET /api/dashboard/notifications. */
  async notifications(q: NotificationsQuery = {}): Promise<NotificationView[]> {
    const path = `/api/dashboard/notifications${query({ limit: q.limit, before: q.before })}`;
    return (await this.request<{ notifications: NotificationView[] }>('GET', path)).body.notifications;
  }

  /** POST /api/dashboard/notifications/{id}/read. */
  async markNotificationRead(id: string): Promise<void> {
    await this.request('POST', `/api/dashboard/notifications/${enc(id)}/read`);
  }

  /** POST /api/pairing/claim: 200 claimed, 201 claimed and approved for `childId`. */
  async claimPairing(code: string, childId?: string): Promise<ClaimResult> {
    const body: { code: string; childId?: string } = { code };
    if (childId !== undefined) body.childId = childId;
    type Claimed = { pairing: { id: string; deviceName: string; status: string; expiresAt: string } };
    type Approved = { deviceId: string; childId: string; pairingId: string };
    const r = await this.request<Claimed | Approved>('POST', '/api/pairing/claim', body);
    if ('pairing' in r.body) return { kind: 'claimed', pairing: r.body.pairing };
    return { kind: 'approved', deviceId: r.body.deviceId, childId: r.body.childId, pairingId: r.body.pairingId };
  }

  /** POST /api/pairing/{id}/approve. */
  async approvePairing(pairingId: string, childId: string, name?: string): Promise<{ deviceId: string; childId: string }> {
    const body: { childId: string; name?: string } = { childId };
    if (name !== undefined) body.name = name;
    const r = await this.request<{ deviceId: string; childId: string }>('POST', `/api/pairing/${enc(pairingId)}/approve`, body);
    return { deviceId: r.body.deviceId, childId: r.body.childId };
  }

  /** POST /api/pairing/{id}/reject. */
  async rejectPairing(pairingId: string): Promise<void> {
    await this.request('POST', `/api/pairing/${enc(pairingId)}/reject`);
  }

  /** GET /api/admin/overview. */
  async adminOverview(): Promise<AdminOverview> {
    return (await this.request<AdminOverview>('GET', '/api/admin/overview')).body;
  }
}

function networkError(e: unknown, timeoutMs: number): SafeStreamError {
  if (e instanceof Error && e.name === 'TimeoutError') {
    return new SafeStreamError(0, 'network', `no answer in ${timeoutMs} ms`);
  }
  return new SafeStreamError(0, 'network', e instanceof Error ? e.message : String(e));
}
