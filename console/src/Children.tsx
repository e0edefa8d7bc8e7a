import { useEffect, useId, useRef, useState } from 'react';
import type { FormEvent, ReactNode } from 'react';
import type { ChildView, CommandType, CommandView, DeviceWithPresence, StatusStep } from '@safestream/sdk';
import { useChildren, useCommand, useCommands, useDevices } from '@safestream/sdk/react';
import { StatusChip } from './StatusChip';
import type { ChipStatus } from './StatusChip';
import { clip, commandLabel, errorText, formatTime, safeHref, videoTitle, videoUrl } from './format';
import { onDevicesChanged } from './refresh';
import { useToasts } from './Toasts';

export type ChildrenState = ReturnType<typeof useChildren>;

export function ChildrenPanel(props: { state: ChildrenState }): ReactNode {
  const { children, loading, error, reload } = props.state;

  return (
    <section className="panel" aria-labelledby="children-h">
      <div className="panel-head">
        <h2 id="children-h">Children</h2>
        <button type="button" className="btn-small" onClick={() => void reload()}>
          Refresh<span className="visually-hidden"> children</span>
        </button>
      </div>
      {error ? (
        <p className="error" role="alert">
          Could not load children: {errorText(error)}
        </p>
      ) : null}
      {loading && children.length === 0 ? <p className="muted">Loading children…</p> : null}
      {!loading && !error && children.length === 0 ? (
        <p className="muted">No children yet. The main app (or PUT /api/children/&#123;id&#125;) creates them.</p>
      ) : null}
      {children.map((child) => (
        <ChildSection key={child.id} child={child} />
      ))}
    </section>
  );
}

function ChildSection(props: { child: ChildView }): ReactNode {
  const { child } = props;
  const headingId = `child-h-${child.id}`;
  return (
    <section className="child" data-testid={`child-${child.id}`} aria-labelledby={headingId}>
      <h3 id={headingId}>
        {child.name}
        {child.dailyLimitMinutes !== null ? (
          <span className="muted small"> · limit {String(child.dailyLimitMinutes)} min/day</span>
        ) : null}
      </h3>
      <DeviceList childId={child.id} />
      <CommandPanel child={child} headingId={headingId} />
      <RecentCommands childId={child.id} />
    </section>
  );
}

function DeviceList(props: { childId: string }): ReactNode {
  const { childId } = props;
  const { devices, loading, error, reload } = useDevices(childId);

  // A device paired from this page (the SDK itself reloads when an unknown device reports).
  useEffect(() => onDevicesChanged((id) => {
    if (id === childId) void reload();
  }), [childId, reload]);

  return (
    <div className="devices">
      <h4>Devices</h4>
      {error ? <p className="error">Could not load devices: {errorText(error)}</p> : null}
      {loading && devices.length === 0 ? <p className="muted">Loading devices…</p> : null}
      {!loading && !error && devices.length === 0 ? (
        <p className="muted">No devices. Pair one with the code shown on the child&apos;s device.</p>
      ) : null}
      {devices.length > 0 ? (
        <ul className="device-list">
          {devices.map((d) => (
            <DeviceRow key={d.id} device={d} />
          ))}
        </ul>
      ) : null}
    </div>
  );
}

function DeviceRow(props: { device: DeviceWithPresence }): ReactNode {
  const d = props.device;
  const title = videoTitle(d.currentVideo);
  const href = safeHref(videoUrl(d.currentVideo));
  const presence = d.online ? 'online' : 'offline';
  return (
    <li className="device" data-testid={`device-${d.id}`} data-online={d.online ? 'true' : 'false'}>
      <div className="device-line">
        <span className="device-name">{d.name}</span>
        <span className="chip chip-presence" data-presence={presence}>
          {presence}
        </span>
        {d.revoked ? <span className="chip chip-revoked">revoked</span> : null}
      </div>
      <div className="device-line small">
        <span className="viewing" data-watching={d.activeViewing ? 'true' : 'false'}>
          {d.activeViewing ? 'Watching' : 'Not watching'}
        </span>
        {title !== null ? (
          <>
            <span aria-hidden="true"> · </span>
            <span className="video">
              {d.activeViewing ? <span className="visually-hidden">Current video: </span> : <span className="muted">last video: </span>}
              {href !== null ? (
                <a href={href} target="_blank" rel="noopener noreferrer nofollow" className="video-title">
                  {title}
                </a>
              ) : (
                <span className="video-title">{title}</span>
              )}
            </span>
          </>
        ) : null}
      </div>
      {!d.online && d.lastSeen ? <div className="muted small">Last seen {formatTime(d.lastSeen)}</div> : null}
    </li>
  );
}

type CommandHook = ReturnType<typeof useCommand>;

function chipStatusOf(h: CommandHook): ChipStatus | null {
  if (h.status) return h.status;
  if (h.error) return 'ERROR';
  if (h.pending) return 'SENDING';
  return null;
}

function errorOf(h: CommandHook): string | null {
  if (h.status === 'FAILED' || h.status === 'EXPIRED') {
    const fromTrail = [...h.trail].reverse().find((s) => s.error)?.error ?? null;
    const text = h.command?.error ?? fromTrail ?? h.status.toLowerCase();
    return clip(String(text), 300);
  }
  if (h.error && !h.status) return errorText(h.error);
  return null;
}

const BUTTONS: { type: CommandType; label: string }[] = [
  { type: 'PAUSE', label: 'Pause' },
  { type: 'RESUME', label: 'Resume' },
  { type: 'LOCK_DEVICE', label: 'Lock' },
  { type: 'UNLOCK_DEVICE', label: 'Unlock' },
  { type: 'SHOW_MESSAGE', label: 'Show message' },
];

function CommandPanel(props: { child: ChildView; headingId: string }): ReactNode {
  const { child, headingId } = props;
  // One hook per button, so a second command does not stop following the first one.
  const pause = useCommand();
  const resume = useCommand();
  const lock = useCommand();
  const unlock = useCommand();
  const message = useCommand();
  const hooks: Record<CommandType, CommandHook> = {
    PAUSE: pause,
    RESUME: resume,
    LOCK_DEVICE: lock,
    UNLOCK_DEVICE: unlock,
    SHOW_MESSAGE: message,
  };
  const [last, setLast] = useState<CommandType | null>(null);
  const toasts = useToasts();
  // Show message opens an inline form (a labelled field, not window.prompt, which some
  // in-app browsers suppress and which announces poorly).
  const [composing, setComposing] = useState(false);
  const [text, setText] = useState('');
  const messageField = useRef<HTMLInputElement>(null);
  const messageButton = useRef<HTMLButtonElement>(null);
  const fieldId = useId();
  useEffect(() => {
    if (composing) messageField.current?.focus();
  }, [composing]);

  function closeComposer(): void {
    setComposing(false);
    setText('');
    messageButton.current?.focus();
  }

  function onButton(type: CommandType): void {
    if (type === 'SHOW_MESSAGE') setComposing((c) => !c);
    else send(type);
  }

  function onMessage(e: FormEvent<HTMLFormElement>): void {
    e.preventDefault();
    const t = text.trim();
    if (t === '') return;
    send('SHOW_MESSAGE', { message: t.slice(0, 1000) });
    closeComposer();
  }

  function send(type: CommandType, payload?: Record<string, unknown>): void {
    setLast(type);
    hooks[type].send(child.id, type, payload).then(
      (r) => {
        // A final status also gets a toast: the chip may be scrolled out of view.
        if (!r) return;
        const ok = r.command.status === 'EXECUTED';
        const why = ok ? '' : `: ${clip(String(r.command.error ?? r.command.status.toLowerCase()), 200)}`;
        toasts.push({
          title: `${commandLabel(type)} ${ok ? 'done' : r.command.status.toLowerCase()} on ${child.name}`,
          message: `${r.command.status}${why}`,
          kind: ok ? 'info' : 'alert',
        });
      },
      () => {
        // the hook keeps the error in its state; shown in the chip below
      },
    );
  }

  const lastHook = last ? hooks[last] : null;
  const lastStatus = lastHook ? chipStatusOf(lastHook) : null;
  const lastError = lastHook ? errorOf(lastHook) : null;

  return (
    <div className="commands">
      <h4>Send a command</h4>
      <p className="muted small">Goes to every device of {child.name}.</p>
      <div className="button-row">
        {BUTTONS.map((b) => (
          <button
            key={b.type}
            ref={b.type === 'SHOW_MESSAGE' ? messageButton : undefined}
            type="button"
            className={b.type === 'LOCK_DEVICE' ? 'btn btn-warn' : 'btn'}
            aria-describedby={headingId}
            aria-expanded={b.type === 'SHOW_MESSAGE' ? composing : undefined}
            onClick={() => onButton(b.type)}
          >
            {b.label}
          </button>
        ))}
      </div>
      {composing ? (
        <form className="form message-form" onSubmit={onMessage} data-testid={`message-form-${child.id}`}>
          <label htmlFor={fieldId}>Message to show on {child.name}&apos;s devices</label>
          <input
            id={fieldId}
            ref={messageField}
            value={text}
            onChange={(e) => setText(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === 'Escape') closeComposer();
            }}
            maxLength={1000}
            autoComplete="off"
          />
          <div className="button-row">
            <button type="submit" className="btn" disabled={text.trim() === ''}>
              Send message
            </button>
            <button type="button" className="btn-small" onClick={closeComposer}>
              Cancel
            </button>
          </div>
        </form>
      ) : null}
      <div className="last-command" role="status" aria-live="polite">
        {last && lastStatus ? (
          <>
            <span className="muted small">Last command: {commandLabel(last)}</span>{' '}
            <StatusChip status={lastStatus} testId={`last-command-${child.id}`} />
            {lastError ? <span className="cmd-error"> {lastError}</span> : null}
          </>
        ) : null}
      </div>
      {lastHook && lastHook.trail.length > 0 ? <Trail steps={lastHook.trail} testId={`last-trail-${child.id}`} /> : null}
    </div>
  );
}

/** Every status the last command went through, with the time since it was created. */
function Trail(props: { steps: readonly StatusStep[]; testId: string }): ReactNode {
  const t0 = Date.parse(props.steps[0]?.at ?? '');
  return (
    <ol className="trail" data-testid={props.testId} aria-label="Status trail">
      {props.steps.map((s, i) => {
        const dt = Date.parse(s.at) - t0;
        return (
          <li key={i}>
            {i > 0 ? <span aria-hidden="true">→ </span> : null}
            {s.status}
            {i > 0 && Number.isFinite(dt) ? <span className="muted"> +{Math.max(0, dt)} ms</span> : null}
          </li>
        );
      })}
    </ol>
  );
}

function RecentCommands(props: { childId: string }): ReactNode {
  const { commands, loading, error, reload } = useCommands(props.childId, { limit: 10 });
  return (
    <div className="recent">
      <div className="panel-head">
        <h4>Recent commands</h4>
        <button type="button" className="btn-small" onClick={() => void reload()}>
          Refresh<span className="visually-hidden"> commands</span>
        </button>
      </div>
      {error ? <p className="error">Could not load commands: {errorText(error)}</p> : null}
      {loading && commands.length === 0 ? <p className="muted">Loading commands…</p> : null}
      {!loading && !error && commands.length === 0 ? <p className="muted">No commands yet.</p> : null}
      {commands.length > 0 ? (
        <ul className="command-list">
          {commands.map((c) => (
            <CommandRow key={c.id} command={c} />
          ))}
        </ul>
      ) : null}
    </div>
  );
}

export function CommandRow(props: { command: CommandView; showChild?: string }): ReactNode {
  const c = props.command;
  return (
    <li className="command-row" data-testid={`command-${c.id}`}>
      <span className="command-type">{commandLabel(c.commandType)}</span>
      {props.showChild !== undefined ? <span className="muted small">{props.showChild}</span> : null}
      <time className="muted small" dateTime={c.createdAt}>
        {formatTime(c.createdAt)}
      </time>
      <StatusChip status={c.status} />
      {c.error ? <span className="cmd-error">{clip(c.error)}</span> : null}
    </li>
  );
}
