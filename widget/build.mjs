// Builds the widget and the demo page into ../web/ (the node's static_dir):
//   web/widget.js, web/widget.js.map, web/demo/index.html, web/demo/demo.js, web/demo/demo.css,
//   web/kb/index.html, web/kb/kb.js, web/kb/kb.css (the public help-article page, docs/kb.md)
// Only these files are written; anything else in web/ (e.g. the dashboard in web/app/)
// is left alone.
//   node build.mjs            build (minified, with a source map)
//   node build.mjs --watch    rebuild on change
//   node build.mjs --size     build and print the gzipped size of widget.js
import * as esbuild from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(process.env.CHATDESK_WEB_DIR || path.join(here, '..', 'web'));
const args = new Set(process.argv.slice(2));
const BUDGET = 35 * 1024;

const common = {
    bundle: true,
    minify: true,
    sourcemap: 'linked',
    format: 'iife',
    target: 'es2020',
    legalComments: 'none',
    logLevel: 'warning',
};

const builds = [
    { entryPoints: [path.join(here, 'src/index.js')], outfile: path.join(out, 'widget.js') },
    { entryPoints: [path.join(here, 'demo/demo.js')], outfile: path.join(out, 'demo/demo.js') },
    { entryPoints: [path.join(here, 'kb/kb.js')], outfile: path.join(out, 'kb/kb.js') },
];

function copyStatic() {
    fs.mkdirSync(path.join(out, 'demo'), { recursive: true });
    for (const f of ['index.html', 'demo.css']) fs.copyFileSync(path.join(here, 'demo', f), path.join(out, 'demo', f));
    fs.mkdirSync(path.join(out, 'kb'), { recursive: true });
    for (const f of ['index.html', 'kb.css']) fs.copyFileSync(path.join(here, 'kb', f), path.join(out, 'kb', f));
}

function size() {
    const js = fs.readFileSync(path.join(out, 'widget.js'));
    const gz = zlib.gzipSync(js, { level: 9 }).length;
    console.log(`widget.js: ${js.length} bytes, ${gz} bytes gzipped (budget ${BUDGET})`);
    if (gz > BUDGET) {
        console.error('widget.js is over its size budget');
        process.exitCode = 1;
    }
}

fs.mkdirSync(out, { recursive: true });
copyStatic();
if (args.has('--watch')) {
    for (const b of builds) {
        const ctx = await esbuild.context({ ...common, ...b });
        await ctx.watch();
    }
    fs.watch(path.join(here, 'demo'), () => copyStatic());
    console.log(`watching; output in ${out}`);
} else {
    await Promise.all(builds.map((b) => esbuild.build({ ...common, ...b })));
    size();
}
