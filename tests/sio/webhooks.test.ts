// Webhooks checked by the Standard Webhooks spec's own npm library (`standardwebhooks`),
// not by the relay's Rust code (issue 20): a receiver written here, as a backend team would
// write one, verifies every request, against the real relay binary. Two secrets are
// configured (a rotation): each request must verify with either alone and fail with a third.
// The Rust suites (`relay --test webhooks`, `safestream-tests --test webhooks`) cover the
// kills, parking and three nodes; this file is the cross-language check of the signatures,
// the body shape and the retries a receiver sees.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Relay, SERVER_KEY, parentToken, until } from './harness';

const secret = () => `whsec_${randomBytes(32).toString('base64')}`;
const [S1, S2, STRANGER] = [secret(), secret(), secret()];

type Delivery = { id: string; type: string; timestamp: string; data: any };

/** The receiver: verifies, records, answers 204 (or 503 + `Retry-After: 1` while down). */
class Receiver {
  down = false;
  /** Verified deliveries, in arrival order (a retried event may appear twice). */
  got: Delivery[] = [];
  /** Event ids of the requests answered 503. */
  refused: string[] = [];
  /** Requests that failed verification (must stay empty). */
  bad: string[] = [];
  private server: Server;

  constructor() {
    this.server = createServer((req, res) => this.handle(req, res));
  }

  async listen(): Promise<string> {
    await new Promise<void>((ok) => this.server.listen(0, '127.0.0.1', ok));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks`;
  }

  close(): Promise<void> {
    return new Promise((ok) => this.server.close(() => ok()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = {
        'webhook-id': String(req.headers['webhook-id'] ?? ''),
        'webhook-timestamp': String(req.headers['webhook-timestamp'] ?? ''),
        'webhook-signature': String(req.headers['webhook-signature'] ?? ''),
      };
      if (this.down) {
        this.refused.push(headers['webhook-id']);
        res.writeHead(503, { 'retry-after': '1' }).end();
        return;
      }
      try {
        // Either secret alone verifies the request; a stranger's does not.
        const one = new Webhook(S1).verify(body, headers) as Delivery;
        const two = new Webhook(S2).verify(body, headers) as Delivery;
        expect(two).toEqual(one);
        expect(() => new Webhook(STRANGER).verify(body, headers)).toThrow(WebhookVerificationError);
        if (one.id !== headers['webhook-id']) throw new Error('body id differs from webhook-id');
        this.got.push(one);
        res.writeHead(204).end();
      } catch (e) {
        this.bad.push(`${headers['webhook-id']}: ${String(e)}`);
        res.writeHead(400).end();
      }
    });
  }

  of(type: string): Delivery[] {
    return this.got.filter((d) => d.type === type);
  }
}

let relay: Relay;
let receiver: Receiver;

beforeAll(async () => {
  receiver = new Receiver();
  const url = await receiver.listen();
  relay = await Relay.start({ SAFESTREAM_WEBHOOK_URLS: url, SAFESTREAM_WEBHOOK_SECRETS: `${S1},${S2}` });
});

afterAll(async () => {
  await relay?.stop();
  await receiver?.close();
});

describe('webhooks, verified by the standardwebhooks npm library', () => {
  it('a command, a device and a notification arrive signed by both secrets, with the data the REST API shows', async () => {
    const device = await relay.family('wkid', 'wu1');
    const { command } = await relay.ok('POST', '/api/dashboard/remote-control', parentToken('wu1'), {
      childId: 'wkid',
      commandType: 'LOCK_DEVICE',
      payload: { reason: 'bedtime' },
    });
    await relay.ok('PATCH', `/api/dashboard/remote-control/${command.id}`, device.token, { status: 'EXECUTED' });
    await relay.notify('wu1', 'Time for bed');

    const statuses = () => receiver.of('command.status').filter((d) => d.data.id === command.id);
    await until('EXECUTED and the notification delivered', () =>
      statuses().some((d) => d.data.status === 'EXECUTED') && receiver.of('notification.created').length > 0,
    );
    expect(receiver.bad).toEqual([]);

    // Every status change, each its own event: created PENDING, then EXECUTED (acked over
    // REST without a socket, so no DELIVERED in between).
    expect(new Set(statuses().map((d) => d.data.status))).toEqual(new Set(['PENDING', 'EXECUTED']));
    const { command: stored } = await relay.ok('GET', `/api/dashboard/remote-control/${command.id}`, parentToken('wu1'));
    expect(statuses().find((d) => d.data.status === 'EXECUTED')!.data).toEqual(stored);

    const [registered] = receiver.of('device.registered').filter((d) => d.data.id === device.deviceId);
    expect(registered.data).toMatchObject({ childId: 'wkid', revoked: false, createdBy: 'backend' });
    const [note] = receiver.of('notification.created');
    expect(note.data).toMatchObject({ userId: 'wu1', title: 'Time for bed', read: false });

    // Envelope: an evt_ id, an RFC 3339 UTC timestamp.
    for (const d of receiver.got) {
      expect(d.id).toMatch(/^evt_[0-9a-f]{32}$/);
      expect(d.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    }
  });

  it('a receiver down for a while (503, Retry-After) gets every event afterwards, under the ids it refused', async () => {
    receiver.down = true;
    const titles = ['one', 'two', 'three', 'four', 'five'].map((t) => `while down: ${t}`);
    for (const t of titles) await relay.notify('wu1', t);
    // Each event is tried and refused at least once (ids recorded), then retried.
    await until('five events refused', () => new Set(receiver.refused).size >= 5);
    await new Promise((ok) => setTimeout(ok, 1_500));
    receiver.down = false;

    const arrived = () => receiver.of('notification.created').filter((d) => titles.includes(d.data.title));
    await until('all five delivered', () => new Set(arrived().map((d) => d.data.title)).size === 5, 30_000);
    expect(receiver.bad).toEqual([]);
    // The ids refused are the ids delivered: the same event, not a new one per attempt.
    const delivered = new Set(arrived().map((d) => d.id));
    expect(delivered.size).toBe(5);
    for (const id of new Set(receiver.refused)) expect(delivered.has(id)).toBe(true);
    // Nothing waits or is parked at the relay.
    const { endpoints } = await relay.ok('GET', '/api/webhooks/endpoints', SERVER_KEY);
    expect(endpoints).toHaveLength(1);
    expect(endpoints[0]).toMatchObject({ failed: 0 });
  });
});
