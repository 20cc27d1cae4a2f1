// The widget's stylesheet, applied inside its shadow root (adoptedStyleSheets, which a
// strict CSP allows; a <style> element only where constructable sheets are missing).
// :host resets inheritance so the host page's styles do not leak in; the shadow root
// keeps ours from leaking out.
export const CSS = `
:host{all:initial;position:fixed;z-index:2147483000;bottom:0;right:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"PingFang SC","Hiragino Sans GB","Microsoft YaHei","Noto Sans CJK SC","WenQuanYi Micro Hei",sans-serif;color:#1f2328;--cd-color:#2563eb;--cd-on:#fff}
:host([data-pos=left]){right:auto;left:0}
*,*::before,*::after{box-sizing:border-box}
[hidden]{display:none!important}
button,input,select,textarea{font:inherit;color:inherit}
button{cursor:pointer}
:focus-visible{outline:2px solid var(--cd-color);outline-offset:2px}
.launcher{position:fixed;bottom:20px;right:20px;width:56px;height:56px;border-radius:50%;border:0;background:var(--cd-color);color:var(--cd-on);box-shadow:0 4px 14px rgba(0,0,0,.25);display:flex;align-items:center;justify-content:center;transition:transform .15s}
:host([data-pos=left]) .launcher{right:auto;left:20px}
.launcher:hover{transform:scale(1.06)}
.launcher svg{width:28px;height:28px;fill:currentColor}
.badge{position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;padding:0 6px;border-radius:10px;background:#dc2626;color:#fff;font-size:12px;font-weight:600;line-height:20px;text-align:center;box-shadow:0 0 0 2px #fff}
.panel{position:fixed;bottom:88px;right:20px;width:370px;height:min(600px,calc(100vh - 108px));display:flex;flex-direction:column;background:#fff;border-radius:14px;box-shadow:0 10px 40px rgba(0,0,0,.22);overflow:hidden}
:host([data-pos=left]) .panel{right:auto;left:20px}
.head{display:flex;align-items:flex-start;gap:8px;padding:14px 14px 12px 18px;background:var(--cd-color);color:var(--cd-on)}
.head>div{flex:1;min-width:0}
.head h2{margin:0;font-size:16px;font-weight:600}
.sub{margin:2px 0 0;font-size:12px;display:flex;align-items:center;gap:6px}
.dot{width:8px;height:8px;border-radius:50%;background:#9ca3af;flex:none}
.dot.on{background:#22c55e}
.icon{background:transparent;border:0;color:inherit;width:32px;height:32px;border-radius:8px;display:flex;align-items:center;justify-content:center;flex:none}
.icon:hover{background:rgba(255,255,255,.18)}
.icon svg{width:18px;height:18px;fill:currentColor}
.conn{padding:6px 12px;font-size:12px;background:#fef3c7;color:#78350f;text-align:center}
.body{flex:1;min-height:0;display:flex;flex-direction:column}
.greet{margin:0 0 12px;padding:10px 12px;border-radius:10px;background:#f3f4f6;white-space:pre-wrap;overflow-wrap:anywhere}
.form{padding:16px 18px;overflow:auto;flex:1}
.kb{margin:0 0 12px}.kbq{width:100%}.kbh{margin:6px 0 2px;font-size:12px;font-weight:600;color:#4b5563}
.kbl{list-style:none;margin:0;padding:0}.kbl li{padding:6px 0;border-bottom:1px solid #e5e7eb}
.kbl p{margin:2px 0 0;font-size:12px;color:#6b7280;overflow-wrap:anywhere}
.note{margin:0 0 12px;padding:8px 10px;border-radius:8px;background:#fff7ed;color:#7c2d12;font-size:13px}
.field{display:block;margin:0 0 10px}
.field>span{display:block;font-size:12px;font-weight:600;color:#4b5563;margin-bottom:3px}
.field em{font-style:normal;font-weight:400;color:#6b7280}
.row{display:flex;gap:10px}
.row>.field{flex:1;min-width:0}
input,select,textarea{width:100%;padding:8px 10px;border:1px solid #d1d5db;border-radius:8px;background:#fff}
input:focus,select:focus,textarea:focus{border-color:var(--cd-color);outline:none;box-shadow:0 0 0 3px color-mix(in srgb,var(--cd-color) 25%,transparent)}
textarea{resize:none}
.form textarea{min-height:80px;resize:vertical}
.err{color:#b91c1c;font-size:12px;margin:2px 0 0}
[aria-invalid=true]{border-color:#dc2626}
.btn{display:inline-flex;align-items:center;justify-content:center;gap:6px;padding:9px 16px;border-radius:8px;border:1px solid transparent;background:var(--cd-color);color:var(--cd-on);font-weight:600}
.btn.wide{width:100%}
.btn.ghost{background:#fff;color:#1f2328;border-color:#d1d5db}
.btn:disabled{opacity:.6;cursor:default}
.chat{flex:1;min-height:0;display:flex;flex-direction:column}
.info{padding:6px 14px;font-size:12px;color:#374151;background:#f9fafb;border-bottom:1px solid #eef0f2;display:flex;gap:10px;flex-wrap:wrap}
.info:empty{display:none}
.log{flex:1;min-height:0;overflow-y:auto;padding:12px 14px;overscroll-behavior:contain}
.older{display:block;margin:0 auto 10px;padding:4px 10px;font-size:12px;border:1px solid #d1d5db;border-radius:12px;background:#fff;color:#4b5563}
.list{list-style:none;margin:0;padding:0}
.msg{display:flex;flex-direction:column;align-items:flex-start;margin:0 0 10px;max-width:100%}
.msg.me{align-items:flex-end}
.who{font-size:11px;color:#6b7280;margin:0 4px 2px}
.bubble{max-width:85%;padding:8px 12px;border-radius:14px 14px 14px 4px;background:#f3f4f6;white-space:pre-wrap;overflow-wrap:anywhere;word-break:break-word}
.me .bubble{border-radius:14px 14px 4px 14px;background:var(--cd-color);color:var(--cd-on)}
.me .bubble a{color:inherit}
.bubble a{color:var(--cd-color);text-decoration:underline}
.pending .bubble{opacity:.65}
.failed .bubble{background:#fee2e2;color:#7f1d1d}
.meta{font-size:11px;color:#6b7280;margin:2px 4px 0;display:flex;gap:6px;align-items:center}
.meta button{border:0;background:none;padding:0;color:#b91c1c;text-decoration:underline;font-size:11px}
.sys{align-items:center}
.sys .bubble{background:none;color:#6b7280;font-size:12px;text-align:center;padding:2px 8px}
.typing{min-height:20px;padding:0 16px 2px;font-size:12px;color:#6b7280}
.banner{margin:0 12px 8px;padding:10px 12px;border-radius:10px;background:#ecfdf5;color:#064e3b;font-size:13px}
.banner p{margin:0 0 8px}
.banner .acts{display:flex;gap:8px;flex-wrap:wrap}
.banner .btn{padding:6px 12px;font-size:13px}
.stars{display:flex;gap:4px;margin:0 0 8px;border:0;padding:0}
.stars legend{padding:0;margin:0 0 6px;font-size:13px}
.stars label{cursor:pointer;font-size:26px;line-height:1;color:#d1d5db}
.stars input{position:absolute;opacity:0;width:1px;height:1px}
.stars label.on{color:#f59e0b}
.scale{border:0;padding:0;margin:0 0 8px}
.scale[hidden]{display:none}
.scale legend{padding:0;margin:0 0 6px;font-size:13px}
.scale .opts{display:flex;flex-wrap:wrap;gap:3px}
.scale label{cursor:pointer}
.scale input{position:absolute;opacity:0;width:1px;height:1px}
.scale label span{display:inline-block;min-width:22px;padding:3px 0;text-align:center;border:1px solid #d1d5db;border-radius:4px;font-size:12px}
.scale input:checked+span{background:var(--cd-color);border-color:var(--cd-color);color:#fff}
.scale input:focus-visible+span{outline:2px solid var(--cd-color);outline-offset:2px}
.scale .ends{display:flex;justify-content:space-between;font-size:11px;color:#6b7280;margin-top:2px}
.stars input:focus-visible+span{outline:2px solid var(--cd-color);outline-offset:2px;border-radius:4px}
.banner textarea{min-height:54px;margin:0 0 8px}
.compose{display:flex;gap:8px;align-items:flex-end;padding:10px 12px;border-top:1px solid #eef0f2}
.compose textarea{flex:1;max-height:120px;min-height:40px}
.send{width:40px;height:40px;border-radius:50%;border:0;background:var(--cd-color);color:var(--cd-on);display:flex;align-items:center;justify-content:center;flex:none}
.send svg{width:18px;height:18px;fill:currentColor}
.clip{width:36px;height:40px;border:0;background:none;color:#667085;display:flex;align-items:center;justify-content:center;flex:none}
.clip svg{width:20px;height:20px;fill:currentColor}
.field .lbl{margin-bottom:4px}
.add-files{padding:6px 12px;font-weight:500}
.add-files svg{width:16px;height:16px;fill:currentColor}
.field.files .tray{padding:6px 0 0}
.tray{list-style:none;margin:0;padding:6px 12px 0;display:flex;flex-direction:column;gap:4px;font-size:12px}
.tray .att{display:flex;gap:6px;align-items:center}
.tray .name{flex:1;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.tray progress{width:70px}
.tray .err{color:#b42318}
.tray button{border:0;background:none;color:var(--cd-color);cursor:pointer}
.atts{display:flex;flex-wrap:wrap;gap:6px;margin-top:4px}
.att-open{border:0;padding:0;background:none;cursor:zoom-in}
.att-img{display:block;max-width:200px;max-height:160px;border-radius:8px;min-width:40px;min-height:30px;background:#eef0f2}
.att-file{display:flex;flex-direction:column;align-items:flex-start;border:1px solid #d0d5dd;border-radius:8px;padding:6px 10px;background:#fff;color:#1d2939;cursor:pointer;max-width:220px}
.att-file .size{font-size:11px;color:#667085}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
@media (max-width:480px){
.panel{inset:0;width:auto;height:auto;border-radius:0;bottom:0;right:0}
:host([data-open]) .launcher{display:none}
input,select,textarea{font-size:16px}
}
@media (prefers-reduced-motion:reduce){.launcher{transition:none}}
`;
