// Builds the claim page into dist/ (committed; the broker serves it with include_bytes!,
// so `cargo build` needs no Node). `node build.mjs --check` rebuilds in memory and fails
// when dist/ is stale or the script is 100 KB gzipped or more.
import { build } from 'esbuild';
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const check = process.argv.includes('--check');
const LIMIT = 100 * 1024;

const result = await build({
  entryPoints: [here + 'src/main.js'],
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020'],
  legalComments: 'eof',
  write: false,
  logLevel: 'warning',
});
const outputs = {
  'claim.js': result.outputFiles[0].contents,
  'index.html': readFileSync(here + 'src/index.html'),
  'claim.css': readFileSync(here + 'src/claim.css'),
};
const gz = gzipSync(outputs['claim.js'], { level: 9 }).length;
console.log(`claim.js: ${outputs['claim.js'].length} bytes, ${gz} bytes gzipped (limit ${LIMIT})`);
if (gz >= LIMIT) {
  console.error(`claim.js is ${gz} bytes gzipped; the page must stay under ${LIMIT}`);
  process.exit(1);
}
let stale = [];
for (const [name, bytes] of Object.entries(outputs)) {
  const path = here + 'dist/' + name;
  const same = existsSync(path) && Buffer.compare(readFileSync(path), Buffer.from(bytes)) === 0;
  if (check) {
    if (!same) stale.push(name);
  } else if (!same) {
    mkdirSync(here + 'dist', { recursive: true });
    writeFileSync(path, bytes);
    console.log(`wrote dist/${name}`);
  }
}
if (stale.length) {
  console.error(`web/dist is stale (${stale.join(', ')}): run \`npm run build\` in web/ and commit web/dist`);
  process.exit(1);
}
