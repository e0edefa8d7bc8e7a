import { useCallback, useEffect, useRef, useState } from 'react';
import type { ReactNode } from 'react';
import type { AdminOverview, ChildView } from '@safestream/sdk';
import { useSafeStream } from '@safestream/sdk/react';
import { CommandRow } from './Children';
import { errorText, formatTime } from './format';

const REFRESH_MS = 10_000;

export function AdminPanel(props: { childList: ChildView[] }): ReactNode {
  const client = useSafeStream();
  const children = props.childList;
  const [overview, setOverview] = useState<AdminOverview | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [updatedAt, setUpdatedAt] = useState<string | null>(null);
  const alive = useRef(true);

  const inFlight = useRef(false);

  const load = useCallback(async () => {
    if (inFlight.current) return; // a slow relay: do not pile requests up
    inFlight.current = true;
    setLoading(true);
    try {
      const o = await client.adminOverview();
      if (!alive.current) return;
      setOverview(o);
      setError(null);
      setUpdatedAt(new Date().toISOString());
    } catch (err) {
      if (alive.current) setError(errorText(err));
    } finally {
      inFlight.current = false;
      if (alive.current) setLoading(false);
    }
  }, [client]);

  useEffect(() => {
    alive.current = true;
    void load();
    const timer = window.setInterval(() => void load(), REFRESH_MS);
    // Socket counts change with this page's own connection: read them again when it is up.
    const offState = client.onState((st) => {
      if (st === 'connected') void load();
    });
    return () => {
      alive.current = false;
      window.clearInterval(timer);
      offState();
    };
  }, [load, client]);

  const nameOf = (id: string): string => children.find((c) => c.id === id)?.name ?? id;

  return (
    <section className="panel" aria-labelledby="admin-h" data-testid="admin">
      <div className="panel-head">
        <h2 id="admin-h">Admin</h2>
        <button type="button" className="btn-small" onClick={() => void load()} aria-busy={loading}>
          Refresh<span className="visually-hidden"> overview</span>
        </button>
      </div>
      {updatedAt ? <p className="muted small">Updated {formatTime(updatedAt)}; refreshes every 10 s.</p> : null}
      {error ? (
        <p className="error" role="alert">
          Could not load the overview: {error}
        </p>
      ) : null}
      {overview ? (
        <>
          <h3>Node {overview.node.id}</h3>
          <dl className="stats">
            <div>
              <dt>Parent sockets</dt>
              <dd data-testid="admin-parents">{String(overview.node.parents)}</dd>
            </div>
            <div>
              <dt>Device sockets</dt>
              <dd data-testid="admin-devices">{String(overview.node.devices)}</dd>
            </div>
          </dl>
          <h3>Pending commands per child</h3>
          {overview.pendingByChild.length === 0 ? (
            <p className="muted">No commands waiting.</p>
          ) : (
            <table className="table">
              <thead>
                <tr>
                  <th scope="col">Child</th>
                  <th scope="col">Pending</th>
                </tr>
              </thead>
              <tbody>
                {overview.pendingByChild.map((p) => (
                  <tr key={p.childId}>
                    <td>{nameOf(p.childId)}</td>
                    <td>{String(p.pending)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <h3>Recent failures</h3>
          {overview.recentFailures.length === 0 ? (
            <p className="muted">No failed or expired commands.</p>
          ) : (
            <ul className="command-list">
              {overview.recentFailures.map((c) => (
                <CommandRow key={c.id} command={c} showChild={nameOf(c.childId)} />
              ))}
            </ul>
          )}
        </>
      ) : null}
    </section>
  );
}
