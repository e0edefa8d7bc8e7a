// Helpers for the SDK's tests against the real relay binary (tests/sio/harness.ts starts it).
import { existsSync } from 'node:fs';
import { io, type Socket } from 'socket.io-client';

import { createClient, type SafeStreamClient, type SafeStreamOptions } from '../../src/index.js';
import { Relay, parentToken, relayBin, until } from '../../../tests/sio/harness.js';

export { Relay, parentToken, until };
export { SERVER_KEY, sleep } from '../../../tests/sio/harness.js';

/** Fails (never skips) when the relay binary is missing, saying how to provide it. */
export function requireRelayBinary(): string {
  let bin: string;
  try {
    bin = relayBin();
  } catch (e) {
    throw new Error(
      `The relay tests need the relay binary: set SAFESTREAM_RELAY_BIN (e.g. /tmp/relay-snapshot/safestream-relay) ` +
        `or build it. ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  if (!existsSync(bin)) throw new Error(`SAFESTREAM_RELAY_BIN=${bin} does not exist`);
  return bin;
}

/** A parent client of `relay` for `user` (fresh token per getToken() unless `getToken` is given). */
export function parentClient(relay: Relay, user: string, opts: Partial<SafeStreamOptions> = {}): SafeStreamClient {
  return createClient({ url: relay.url, getToken: () => parentToken(user), ...opts });
}

/** A simulated child device: a plain socket.io-client socket with a device token that
 * answers each `command:new` by the PATCH ack (after `delayMs`). */
export interface FakeDevice {
  socket: Socket;
  /** Command ids received (with repeats). */
  received: string[];
  /** HTTP statuses of the acks. */
  acks: number[];
  close(): void;
}

export function startDevice(
  relay: Relay,
  token: string,
  answer: { status: 'EXECUTED' | 'FAILED'; error?: string; delayMs?: number } = { status: 'EXECUTED' },
): FakeDevice {
  const socket = io(relay.url, {
    path: '/api/socket',
    auth: { token },
    forceNew: true,
    reconnectionDelay: 300,
    reconnectionDelayMax: 300,
  });
  const dev: FakeDevice = { socket, received: [], acks: [], close: () => socket.disconnect() };
  socket.on('command:new', (cmd: { id: string }) => {
    dev.received.push(cmd.id);
    setTimeout(() => {
      const body: { status: string; error?: string } = { status: answer.status };
      if (answer.error !== undefined) body.error = answer.error;
      void relay.call('PATCH', `/api/dashboard/remote-control/${cmd.id}`, token, body).then(
        (r) => dev.acks.push(r.status),
        () => dev.acks.push(0),
      );
    }, answer.delayMs ?? 0);
  });
  return dev;
}

/** Resolves with `p`, or fails after `ms` naming `what`. */
export async function within<T>(what: string, p: Promise<T>, ms = 20_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
