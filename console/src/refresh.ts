// A tiny in-page signal: "this child's device list changed" (e.g. after a pairing was
// approved here), so the child's section reloads its devices over REST.

type Listener = (childId: string) => void;
const listeners = new Set<Listener>();

export function notifyDevicesChanged(childId: string): void {
  for (const l of [...listeners]) l(childId);
}

export function onDevicesChanged(listener: Listener): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}
