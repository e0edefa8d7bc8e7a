import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App';
import { takeTokenFromLocation } from './token';

// Before anything renders: move a `#token=` fragment to sessionStorage and out of the URL.
const initialToken = takeTokenFromLocation();

const root = document.getElementById('root');
if (root) {
  createRoot(root).render(
    <StrictMode>
      <App initialToken={initialToken} />
    </StrictMode>,
  );
}
