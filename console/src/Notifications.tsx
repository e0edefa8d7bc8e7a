import { useRef, useState } from 'react';
import type { ReactNode } from 'react';
import type { NotificationView } from '@safestream/sdk';
import { useNotifications } from '@safestream/sdk/react';
import { clip, errorText, formatTime } from './format';

const TYPE_LABELS: Record<string, string> = {
  SCREEN_TIME_LIMIT: 'Screen time',
  RESTRICTED_CONTENT: 'Restricted content',
  DEVICE_PAIRING: 'Pairing',
  COMMAND_EXECUTED: 'Command executed',
  COMMAND_FAILED: 'Command failed',
};

export function NotificationsPanel(): ReactNode {
  const { notifications, unread, loading, error, markRead, reload } = useNotifications({ limit: 50 });
  const [markError, setMarkError] = useState<string | null>(null);

  async function onMark(id: string): Promise<void> {
    setMarkError(null);
    try {
      await markRead(id);
    } catch (err) {
      setMarkError(errorText(err));
    }
  }

  return (
    <section className="panel" aria-labelledby="notif-h" data-testid="notifications">
      <div className="panel-head">
        <h2 id="notif-h">
          Notifications{' '}
          <span className="chip chip-count" data-testid="unread-count" aria-label={`${unread} unread`}>
            {unread} unread
          </span>
        </h2>
        <button type="button" className="btn-small" onClick={() => void reload()}>
          Refresh<span className="visually-hidden"> notifications</span>
        </button>
      </div>
      {error ? (
        <p className="error" role="alert">
          Could not load notifications: {errorText(error)}
        </p>
      ) : null}
      {markError ? (
        <p className="error" role="alert">
          Could not mark as read: {markError}
        </p>
      ) : null}
      {loading && notifications.length === 0 ? <p className="muted">Loading notifications…</p> : null}
      {!loading && !error && notifications.length === 0 ? <p className="muted">No notifications.</p> : null}
      {notifications.length > 0 ? (
        <ul className="notification-list">
          {notifications.map((n) => (
            <NotificationRow key={n.id} n={n} onMark={onMark} />
          ))}
        </ul>
      ) : null}
    </section>
  );
}

function NotificationRow(props: { n: NotificationView; onMark: (id: string) => Promise<void> }): ReactNode {
  const { n } = props;
  const row = useRef<HTMLLIElement>(null);
  // The button goes away once read: keyboard focus moves to the row instead of the page.
  const mark = (): void => {
    props.onMark(n.id).then(
      () => row.current?.focus(),
      () => undefined,
    );
  };
  return (
    <li
      ref={row}
      tabIndex={-1}
      className={n.read ? 'notification read' : 'notification unread'}
      data-testid={`notification-${n.id}`}
      data-read={n.read ? 'true' : 'false'}
    >
      <div className="notification-head">
        <span className="chip chip-type">{TYPE_LABELS[n.type] ?? clip(String(n.type), 40)}</span>
        {!n.read ? <span className="chip chip-unread">new</span> : null}
        <time className="muted small" dateTime={n.createdAt}>
          {formatTime(n.createdAt)}
        </time>
      </div>
      <p className="notification-title">{clip(String(n.title), 200)}</p>
      {n.message ? <p className="notification-message">{clip(String(n.message), 2000)}</p> : null}
      {!n.read ? (
        <button type="button" className="btn-small" onClick={mark}>
          Mark read<span className="visually-hidden">: {clip(String(n.title), 80)}</span>
        </button>
      ) : null}
    </li>
  );
}
