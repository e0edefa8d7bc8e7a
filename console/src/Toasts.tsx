import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState } from 'react';
import type { ReactNode } from 'react';
import { useEvent } from '@safestream/sdk/react';
import { clip } from './format';

const AUTO_HIDE_MS = 6000;
const MAX_TOASTS = 5;

interface Toast {
  id: number;
  title: string;
  message: string;
  kind: 'info' | 'alert';
}

interface ToastApi {
  push(t: Omit<Toast, 'id'>): void;
}

const ToastContext = createContext<ToastApi | null>(null);

export function useToasts(): ToastApi {
  const api = useContext(ToastContext);
  if (!api) throw new Error('useToasts outside <ToastProvider>');
  return api;
}

export function ToastProvider(props: { children: ReactNode }): ReactNode {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const nextId = useRef(1);

  const region = useRef<HTMLDivElement>(null);
  const dismiss = useCallback((id: number) => {
    // A toast that held the keyboard focus hands it to the region, not to the page.
    const el = region.current;
    if (el !== null && el.contains(document.activeElement)) el.focus();
    setToasts((list) => list.filter((t) => t.id !== id));
  }, []);

  const api = useMemo<ToastApi>(
    () => ({
      push(t) {
        const id = nextId.current++;
        setToasts((list) => [...list, { ...t, id }].slice(-MAX_TOASTS));
      },
    }),
    [],
  );

  return (
    <ToastContext.Provider value={api}>
      {props.children}
      <div
        ref={region}
        tabIndex={-1}
        className="toasts"
        data-testid="toasts"
        aria-live="polite"
        aria-relevant="additions"
        role="region"
        aria-label="Alerts"
      >
        {toasts.map((t) => (
          <ToastItem key={t.id} toast={t} onDismiss={dismiss} />
        ))}
      </div>
    </ToastContext.Provider>
  );
}

function ToastItem(props: { toast: Toast; onDismiss: (id: number) => void }): ReactNode {
  const { toast, onDismiss } = props;
  const [paused, setPaused] = useState(false);

  // Auto-hide after ~6 s, paused while the mouse pointer or the keyboard focus is on it.
  useEffect(() => {
    if (paused) return undefined;
    const timer = window.setTimeout(() => onDismiss(toast.id), AUTO_HIDE_MS);
    return () => window.clearTimeout(timer);
  }, [paused, toast.id, onDismiss]);

  return (
    <div
      className={`toast toast-${toast.kind}`}
      data-testid="toast"
      // A mouse pointer only: a tap emulates an enter with no leave, which would pin the toast.
      onPointerEnter={(e) => {
        if (e.pointerType === 'mouse') setPaused(true);
      }}
      onPointerLeave={(e) => {
        if (e.pointerType === 'mouse') setPaused(false);
      }}
      onFocus={() => setPaused(true)}
      onBlur={() => setPaused(false)}
    >
      <div className="toast-body">
        <strong className="toast-title">{toast.title}</strong>
        {toast.message ? <p className="toast-message">{toast.message}</p> : null}
      </div>
      <button type="button" className="toast-close" aria-label="Dismiss" onClick={() => onDismiss(toast.id)}>
        ×
      </button>
    </div>
  );
}

/** Listens to the relay's live events and shows them as toasts. */
export function LiveToasts(): null {
  const { push } = useToasts();

  useEvent('notification:new', (n) => {
    push({ kind: 'info', title: clip(String(n.title ?? 'Notification'), 200), message: clip(String(n.message ?? ''), 500) });
  });

  useEvent('screentime:alert', (a) => {
    push({
      kind: 'alert',
      title: 'Screen time',
      message: clip(`${String(a.childName)} reached ${String(a.minutesUsed)}/${String(a.limit)} min`, 300),
    });
  });

  return null;
}
