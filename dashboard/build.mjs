// Builds the agent dashboard into ../web/app/ (the node's static_dir serves it at /app/):
//   web/app/index.html, web/app/app.js (an ES module) and chunk-*.js it imports on demand
//   (+ source maps), web/app/app.css
// Only web/app/ is written; the widget's files in web/ are left alone.
//   node build.mjs            build (minified, with a source map)
//   node build.mjs --watch    rebuild on change
// CHATDESK_WEB_DIR overrides ../web.
import * as esbuild from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const web = path.resolve(process.env.CHATDESK_WEB_DIR || path.join(here, '..', 'web'));
const out = path.join(web, 'app');
const watch = process.argv.includes('--watch');

const options = {
    // app.js plus chunks loaded on demand (chunk-*.js: Chart.js for the reports page)
    entryPoints: { app: path.join(here, 'src/main.jsx') },
    outdir: out,
    splitting: true,
    chunkNames: 'chunk-[hash]',
    bundle: true,
    minify: !watch && !process.argv.includes("--no-minify"),
    sourcemap: 'linked',
    format: 'esm',
    target: 'es2020',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    legalComments: 'none',
    logLevel: 'warning',
    charset: 'utf8',
    define: { 'process.env.NODE_ENV': '"production"' },
};

function copyStatic() {
    fs.mkdirSync(out, { recursive: true });
    // chunks of earlier builds (their names are content hashes)
    for (const f of fs.readdirSync(out)) if (f.startsWith('chunk-')) fs.rmSync(path.join(out, f));
    fs.copyFileSync(path.join(here, 'src/index.html'), path.join(out, 'index.html'));
    fs.copyFileSync(path.join(here, 'src/app.css'), path.join(out, 'app.css'));
}

/** The page must keep working under the node's CSP: no inline script or style. */
function checkHtml() {
    const html = fs.readFileSync(path.join(here, 'src/index.html'), 'utf8');
    if (/<script(?![^>]*\bsrc=)[^>]*>/i.test(html) || /<style\b/i.test(html) || /\sstyle\s*=/i.test(html) || /\son[a-z]+\s*=/i.test(html))
        throw new Error('src/index.html has inline script/style/handlers, which the CSP blocks');
}

checkHtml();
copyStatic();
if (watch) {
    const ctx = await esbuild.context(options);
    await ctx.watch();
    fs.watch(path.join(here, 'src'), (ev, f) => {
        if (f === 'index.html' || f === 'app.css') copyStatic();
    });
    console.log(`watching; output in ${out}`);
} else {
    await esbuild.build(options);
    const js = fs.readFileSync(path.join(out, 'app.js'));
    console.log(`web/app/app.js: ${js.length} bytes, ${zlib.gzipSync(js, { level: 9 }).length} gzipped`);
}
