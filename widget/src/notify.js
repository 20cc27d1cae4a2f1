// Notice of new agent messages while the tab is hidden: the document title alternates
// with "(n) New message" and a short WebAudio beep plays (no audio file to load).

let audioCtx = null;

/** Creates/resumes the AudioContext; call from a user gesture so that beeps may play later. */
export function unlockAudio() {
    try {
        const AC = window.AudioContext || window.webkitAudioContext;
        if (!AC) return;
        if (!audioCtx) audioCtx = new AC();
        if (audioCtx.state === 'suspended') audioCtx.resume().catch(() => {});
    } catch {
        audioCtx = null;
    }
}

export function beep() {
    try {
        if (!audioCtx || audioCtx.state !== 'running') return false;
        const t = audioCtx.currentTime;
        const osc = audioCtx.createOscillator();
        const gain = audioCtx.createGain();
        osc.type = 'sine';
        osc.frequency.setValueAtTime(880, t);
        osc.frequency.setValueAtTime(1320, t + 0.09);
        gain.gain.setValueAtTime(0.0001, t);
        gain.gain.exponentialRampToValueAtTime(0.15, t + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.25);
        osc.connect(gain).connect(audioCtx.destination);
        osc.start(t);
        osc.stop(t + 0.26);
        return true;
    } catch {
        return false;
    }
}

export class TitleFlash {
    constructor() {
        this.timer = 0;
        this.saved = null;
        this.count = 0;
        this.onVis = () => {
            if (!document.hidden) this.stop();
        };
        document.addEventListener('visibilitychange', this.onVis);
    }

    /** Starts (or updates) the flashing with the number of new messages. */
    flash(text) {
        if (this.saved === null) this.saved = document.title;
        this.text = text;
        if (this.timer) return;
        let on = false;
        const tick = () => {
            on = !on;
            // the page may have changed its own title meanwhile: keep its latest one
            if (!on && document.title !== this.text) this.saved = document.title;
            document.title = on ? this.text : this.saved;
        };
        tick();
        this.timer = setInterval(tick, 1000);
    }

    stop() {
        if (!this.timer) return;
        clearInterval(this.timer);
        this.timer = 0;
        if (this.saved !== null) document.title = this.saved;
        this.saved = null;
    }
}
