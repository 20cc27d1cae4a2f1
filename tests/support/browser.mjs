// Launching Debian's Chromium for the browser tests (widget and dashboard): one place for
// the binary, its flags and the kill-by-PID clean-up. `chromium` is playwright-core's,
// required by the caller from its own package (widget/ or dashboard/).
import fs from 'node:fs';
import { withTimeout, killPid, alive, waitDead, waitUntil, SCALE, WAIT } from '../server/harness.mjs';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// Headless, no sandbox (root), and nothing that reaches for the network on its own: the
// machine's network is closed and such connections are refused many at a time.
export const CHROMIUM_ARGS = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-dev-shm-usage',
    '--autoplay-policy=no-user-gesture-required',
];

/** Starts Chromium (a fresh temporary profile from playwright) and connects to it;
 *  returns { server, browser, pid }. The process is killed by PID if the test process
 *  exits without stopChromium(). */
export async function launchChromium(chromium) {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: apt-get install -y chromium`);
    const server = await withTimeout(
        chromium.launchServer({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 * SCALE }),
        40_000 * SCALE,
        'chromium to start',
    );
    const pid = server.process().pid;
    process.once('exit', () => killPid(pid)); // safety net if after() never ran
    const browser = await withTimeout(chromium.connect(server.wsEndpoint()), 20_000 * SCALE, 'connect to chromium');
    return { server, browser, pid };
}

export async function stopChromium({ server, browser, pid } = {}) {
    if (browser) await withTimeout(browser.close(), 10_000, 'browser close').catch(() => {});
    if (server) await withTimeout(server.close(), 10_000, 'browser server close').catch(() => {});
    if (pid && alive(pid)) {
        killPid(pid, 'SIGKILL');
        await waitDead(pid, 5000);
    }
}

/** Throttles page's uploads to bytesPerSecond (Chromium's network emulation), so that an
 *  upload's progress can be seen between its ends; answers a function that lifts it. */
export async function slowUplink(page, bytesPerSecond) {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    const set = (up, latency) => cdp.send('Network.emulateNetworkConditions', { offline: false, latency, downloadThroughput: -1, uploadThroughput: up });
    await set(bytesPerSecond, 20);
    return () => set(-1, 0);
}

/** Waits for the <progress> bar (a locator), checks its accessible name, then waits until
 *  it shows a value strictly between 0 and 100. */
export async function progressBetween(bar, label) {
    await bar.waitFor();
    if ((await bar.getAttribute('aria-label')) !== label) throw new Error(`progress bar named ${await bar.getAttribute('aria-label')}, not ${label}`);
    return waitUntil(
        async () => {
            const val = Number(await bar.getAttribute('value', { timeout: 200 }).catch(() => 'NaN'));
            return val > 0 && val < 100;
        },
        { timeout: WAIT * 2, interval: 50, what: 'the upload progress between its ends' },
    );
}
