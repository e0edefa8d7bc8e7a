import { useId, useState } from 'react';
import type { FormEvent, ReactNode } from 'react';
import { decodeToken, looksLikeJwt } from './token';

export function SignIn(props: { onSignIn: (token: string) => void; notice?: string | null }): ReactNode {
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | null>(null);
  const fieldId = useId();
  const hintId = useId();
  const errorId = useId();

  function onSubmit(e: FormEvent<HTMLFormElement>): void {
    e.preventDefault();
    const token = value.trim();
    if (!looksLikeJwt(token)) {
      setError('That is not a JWT: expected three base64url parts separated by dots.');
      return;
    }
    const { exp } = decodeToken(token);
    if (exp !== null && exp * 1000 <= Date.now()) {
      setError(`This token expired at ${new Date(exp * 1000).toLocaleString()}. Ask the main app for a new one.`);
      return;
    }
    setError(null);
    props.onSignIn(token);
  }

  return (
    <main id="main" className="signin" tabIndex={-1}>
      <h1>SafeStream console</h1>
      <p>
        Sign in with a parent token (the JWT your main app issues). It stays in this browser tab only and is
        sent to this relay alone.
      </p>
      {props.notice ? (
        <p className="error" role="alert">
          {props.notice}
        </p>
      ) : null}
      <form className="form" onSubmit={onSubmit} noValidate data-testid="signin">
        <label htmlFor={fieldId}>Parent token (JWT)</label>
        <textarea
          id={fieldId}
          name="token"
          rows={5}
          value={value}
          onChange={(e) => setValue(e.target.value)}
          autoComplete="off"
          spellCheck={false}
          aria-describedby={error ? `${hintId} ${errorId}` : hintId}
          aria-invalid={error ? true : undefined}
          required
        />
        <p id={hintId} className="muted small">
          In development, the relay&apos;s <code>--dev</code> mode prints a link that signs you in directly.
        </p>
        {error ? (
          <p id={errorId} className="error" role="alert">
            {error}
          </p>
        ) : null}
        <div>
          <button type="submit" className="btn">
            Sign in
          </button>
        </div>
      </form>
    </main>
  );
}
