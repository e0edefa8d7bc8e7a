// Turning untrusted values (from devices, the backend, the relay) into plain strings.
// Everything here returns text that React renders as text nodes; nothing is ever HTML.

const MAX_TEXT = 300;

export function clip(text: string, max: number = MAX_TEXT): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function field(obj: Record<string, unknown>, ...names: string[]): string | null {
  for (const name of names) {
    const v = obj[name];
    if (typeof v === 'string' && v.trim() !== '') return v;
    if (typeof v === 'number') return String(v);
  }
  return null;
}

/** The title of what a device reports as `currentVideo` (an object, a string or null). */
export function videoTitle(video: unknown): string | null {
  if (video === null || video === undefined) return null;
  if (typeof video === 'string') return video.trim() === '' ? null : clip(video);
  if (typeof video === 'number' || typeof video === 'boolean') return String(video);
  if (typeof video === 'object' && !Array.isArray(video)) {
    const title = field(video as Record<string, unknown>, 'title', 'name', 'videoTitle');
    if (title !== null) return clip(title);
    const url = field(video as Record<string, unknown>, 'url', 'videoUrl');
    if (url !== null) return clip(url);
  }
  try {
    return clip(JSON.stringify(video));
  } catch {
    return null;
  }
}

/** The URL of a reported video, when there is one. */
export function videoUrl(video: unknown): string | null {
  if (video && typeof video === 'object' && !Array.isArray(video)) {
    return field(video as Record<string, unknown>, 'url', 'videoUrl');
  }
  return null;
}

/**
 * A URL that may be used as an href: absolute http(s) only. `javascript:`, `data:`,
 * relative and unparsable URLs give null (render them as text, not as a link).
 */
export function safeHref(url: unknown): string | null {
  if (typeof url !== 'string') return null;
  let parsed: URL;
  try {
    parsed = new URL(url.trim());
  } catch {
    return null;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return null;
  return parsed.href;
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, {
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });
}

/** A readable text for any thrown value, with the SafeStreamError code when there is one. */
export function errorText(err: unknown): string {
  if (err === null || err === undefined) return '';
  if (err instanceof Error) {
    const e = err as Error & { code?: unknown; status?: unknown; retryAfterSec?: unknown };
    const parts: string[] = [e.message || e.name];
    const code = typeof e.code === 'string' ? e.code : null;
    if (code && code !== e.message) parts.push(`(${code}${typeof e.status === 'number' && e.status ? `, HTTP ${e.status}` : ''})`);
    if (typeof e.retryAfterSec === 'number') parts.push(`— try again in ${e.retryAfterSec} s`);
    return clip(parts.join(' '), 500);
  }
  if (typeof err === 'string') return clip(err, 500);
  return 'Unknown error';
}

export const COMMAND_LABELS: Record<string, string> = {
  PAUSE: 'Pause',
  RESUME: 'Resume',
  LOCK_DEVICE: 'Lock',
  UNLOCK_DEVICE: 'Unlock',
  SHOW_MESSAGE: 'Show message',
};

export function commandLabel(type: string): string {
  return COMMAND_LABELS[type] ?? type;
}
