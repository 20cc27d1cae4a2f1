// Desktop notifications and sounds. The sounds are synthesised with WebAudio (no audio
// files to serve); the AudioContext is created on the first user gesture, as browsers
// require.

let ctx = null;
let lastSound = 0;
export let soundsPlayed = 0;

export function unlockAudio() {
    if (ctx) {
        if (ctx.state === 'suspended') ctx.resume().catch(() => {});
        return;
    }
    const AC = globalThis.AudioContext || globalThis.webkitAudioContext;
    if (!AC) return;
    try {
        ctx = new AC();
    } catch {
        ctx = null;
    }
}

/** kind 'new': a rising two-note chime (new chat); 'message': one soft note. */
export function playSound(kind = 'message') {
    const now = Date.now();
    if (now - lastSound < 1500) return;
    lastSound = now;
    soundsPlayed++;
    document.documentElement.dataset.sounds = String(soundsPlayed);
    if (!ctx) return;
    try {
        const notes = kind === 'new' ? [660, 880] : [740];
        let t0 = ctx.currentTime + 0.01;
        for (const f of notes) {
            const osc = ctx.createOscillator();
            const gain = ctx.createGain();
            osc.type = 'sine';
            osc.frequency.value = f;
            gain.gain.setValueAtTime(0.0001, t0);
            gain.gain.exponentialRampToValueAtTime(0.18, t0 + 0.02);
            gain.gain.exponentialRampToValueAtTime(0.0001, t0 + 0.28);
            osc.connect(gain).connect(ctx.destination);
            osc.start(t0);
            osc.stop(t0 + 0.3);
            t0 += 0.16;
        }
    } catch {
        /* no audio: never mind */
    }
}

export function notifySupported() {
    return typeof Notification !== 'undefined';
}

export function notifyPermission() {
    return notifySupported() ? Notification.permission : 'unsupported';
}

export async function requestNotifyPermission() {
    if (!notifySupported()) return 'unsupported';
    try {
        return await Notification.requestPermission();
    } catch {
        return Notification.permission;
    }
}

export function notifyDesktop(title, body, onClick) {
    if (!notifySupported() || Notification.permission !== 'granted') return null;
    try {
        // the body is plain text for the OS; never HTML
        const n = new Notification(title, { body, tag: title + body.slice(0, 20), silent: true });
        n.onclick = () => {
            n.close();
            onClick && onClick();
        };
        return n;
    } catch {
        return null;
    }
}
