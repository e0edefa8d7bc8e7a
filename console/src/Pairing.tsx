import { useId, useState } from 'react';
import type { FormEvent, ReactNode } from 'react';
import type { ChildView, ClaimResult } from '@safestream/sdk';
import { useSafeStream } from '@safestream/sdk/react';
import { errorText } from './format';
import { notifyDevicesChanged } from './refresh';

type Outcome = { ok: true; text: string } | { ok: false; text: string };

export function PairingPanel(props: { childList: ChildView[] }): ReactNode {
  const client = useSafeStream();
  const children = props.childList;
  const [code, setCode] = useState('');
  const [childId, setChildId] = useState('');
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const codeId = useId();
  const childSelectId = useId();
  const hintId = useId();

  const selected = childId || children[0]?.id || '';

  async function onSubmit(e: FormEvent<HTMLFormElement>): Promise<void> {
    e.preventDefault();
    const trimmed = code.trim();
    if (!trimmed) {
      setOutcome({ ok: false, text: 'Enter the code shown on the device.' });
      return;
    }
    if (!selected) {
      setOutcome({ ok: false, text: 'Choose the child this device is for.' });
      return;
    }
    setBusy(true);
    setOutcome(null);
    try {
      const result: ClaimResult = await client.claimPairing(trimmed, selected);
      const childName = children.find((c) => c.id === selected)?.name ?? selected;
      if (result.kind === 'approved') {
        setOutcome({ ok: true, text: `Paired: device ${result.deviceId} now belongs to ${childName}.` });
        notifyDevicesChanged(result.childId);
      } else {
        setOutcome({
          ok: true,
          text: `Claimed "${result.pairing.deviceName}" (status ${result.pairing.status}); it still needs an approval.`,
        });
      }
      setCode('');
    } catch (err) {
      setOutcome({ ok: false, text: errorText(err) });
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="panel" aria-labelledby="pair-h">
      <h2 id="pair-h">Pair a device</h2>
      <form className="form" onSubmit={(e) => void onSubmit(e)} data-testid="pairing-form">
        <label htmlFor={codeId}>Enter the code shown on the child&apos;s device</label>
        <input
          id={codeId}
          name="code"
          value={code}
          onChange={(e) => setCode(e.target.value)}
          autoComplete="off"
          autoCapitalize="characters"
          spellCheck={false}
          maxLength={16}
          placeholder="K7QF-M2XD"
          aria-describedby={hintId}
          required
        />
        <p id={hintId} className="muted small">
          8 characters; the dash and case do not matter. Codes expire after 10 minutes.
        </p>
        <label htmlFor={childSelectId}>Child</label>
        <select id={childSelectId} name="childId" value={selected} onChange={(e) => setChildId(e.target.value)} required>
          {children.length === 0 ? <option value="">No children</option> : null}
          {children.map((c) => (
            <option key={c.id} value={c.id}>
              {c.name}
            </option>
          ))}
        </select>
        <div>
          <button type="submit" className="btn" disabled={busy || children.length === 0}>
            {busy ? 'Pairing…' : 'Pair device'}
          </button>
        </div>
      </form>
      <div role="status" aria-live="polite" data-testid="pairing-result">
        {outcome ? <p className={outcome.ok ? 'success' : 'error'}>{outcome.text}</p> : null}
      </div>
    </section>
  );
}
