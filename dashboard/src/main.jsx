// chatdesk agent dashboard: entry point.
import { render } from 'preact';
import { App } from './ui/App.jsx';
import { boot, S } from './store.js';
import { initLang } from './i18n.js';
import { installShortcuts } from './keys.js';

initLang(S.prefs.lang);
installShortcuts();
render(<App />, document.getElementById('app'));
boot();
