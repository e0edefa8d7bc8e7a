import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import type { ReactNode } from 'react';
import { SocketProvider, useChildren, useSafeStream } from '@safestream/sdk/react';
import { AdminPanel } from './Admin';
import { ChildrenPanel } from './Children';
import { Header } from './Header';
import { NotificationsPanel } from './Notifications';
import { PairingPanel } from './Pairing';
import { SignIn } from './SignIn';
import { LiveToasts, ToastProvider } from './Toasts';
import { clearToken, decodeToken, storeToken, takeTokenFromLocation } from './token';

export function App(props: { initialToken: string | null }): ReactNode {
  const [token, setToken] = useState<string | null>(props.initialToken);

  const signIn = useCallback((t: string) => {
    storeToken(t);
    setToken(t);
  }, []);
  const signOut = useCallback(() => {
    clearToken();
    setToken(null);
  }, []);

  // A `#token=` link opened in this tab while the page is already loaded.
  useEffect(() => {
    const onHash = (): void => {
      if (!/[#&]token=/.test(window.location.hash)) return;
      const t = takeTokenFromLocation();
      if (t) setToken(t);
    };
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to main content
      </a>
      {token === null ? (
        <SignIn onSignIn={signIn} />
      ) : (
        // A new token is a new client: key the provider by it (it closes the old one).
        <Session key={token} token={token} onSignOut={signOut} />
      )}
    </>
  );
}

function Session(props: { token: string; onSignOut: () => void }): ReactNode {
  const tokenRef = useRef(props.token);
  const getToken = useCallback(() => tokenRef.current, []);
  return (
    <SocketProvider getToken={getToken}>
      <ToastProvider>
        <ConsoleView token={props.token} onSignOut={props.onSignOut} />
        <LiveToasts />
      </ToastProvider>
    </SocketProvider>
  );
}

function ConsoleView(props: { token: string; onSignOut: () => void }): ReactNode {
  const client = useSafeStream();
  const childrenState = useChildren();
  const info = useMemo(() => decodeToken(props.token), [props.token]);

  return (
    <>
      <Header info={info} onSignOut={props.onSignOut} />
      <main id="main" className="layout" tabIndex={-1}>
        <div className="col col-main">
          <ChildrenPanel state={childrenState} />
        </div>
        <div className="col col-side">
          <NotificationsPanel />
          <PairingPanel childList={childrenState.children} />
          {client.isAdmin ? <AdminPanel childList={childrenState.children} /> : null}
        </div>
      </main>
    </>
  );
}
