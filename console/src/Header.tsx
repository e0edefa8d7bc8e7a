import type { ReactNode } from 'react';
import type { ConnectionState } from '@safestream/sdk';
import { useSafeStream, useSocket } from '@safestream/sdk/react';
import type { TokenInfo } from './token';

const STATE_LABELS: Record<ConnectionState, string> = {
  idle: 'Not connected',
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  unauthorized: 'Token refused',
  closed: 'Disconnected',
};

export function Header(props: { info: TokenInfo; onSignOut: () => void }): ReactNode {
  const { state } = useSocket();
  const client = useSafeStream();
  const who = client.userId ?? props.info.email ?? props.info.subject;

  return (
    <header className="header">
      <div className="header-inner">
        <h1 className="brand">SafeStream console</h1>
        <div className="header-right">
          <span
            className="chip chip-conn"
            data-testid="connection-state"
            data-state={state}
            role="status"
            aria-live="polite"
          >
            <span className="dot" aria-hidden="true" />
            {STATE_LABELS[state] ?? String(state)}
          </span>
          {who ? (
            <span className="who small">
              {who}
              {client.isAdmin ? <span className="chip chip-admin">admin</span> : null}
            </span>
          ) : null}
          <button type="button" className="btn-small" onClick={props.onSignOut}>
            Sign out
          </button>
        </div>
      </div>
      {state === 'unauthorized' ? (
        <div className="banner" role="alert">
          The relay refused this token (expired or invalid).{' '}
          <button type="button" className="btn-small" onClick={props.onSignOut}>
            Sign in again
          </button>
        </div>
      ) : null}
    </header>
  );
}
