/**
 * The layering docs/architecture.md promises, checked on the source: a folder of src/ imports
 * only from folders below it in LAYERS (and from src/sys, which every layer may use), so data
 * flows one way and no two folders depend on each other. A new folder must be placed here.
 */
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Top to bottom, as in docs/architecture.md. */
const LAYERS = ['cli', 'daemon', 'vfs', 'fuse', 'engines', 'io', 'access', 'resolve', 'discovery', 'sys'];

const here = path.dirname(fileURLToPath(import.meta.url));
// Compiled to dist/test/unit/: the sources are three levels up.
const SRC = path.resolve(here, '../../../src');

function sourcesOf(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourcesOf(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Every `from '...'` and `import('...')` specifier of a file, type-only imports included. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const statics = text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s*'(\.[^']*)'/gms);
  const dynamics = text.matchAll(/\bimport\(\s*'(\.[^']*)'\s*\)/g);
  return [...statics, ...dynamics].flatMap((m) => (m[1] ? [m[1]] : []));
}

test('every folder of src/ is placed in the layering', (t) => {
  const folders = readdirSync(SRC, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);
  for (const f of folders) t.true(LAYERS.includes(f), `src/${f} is missing from LAYERS (and docs/architecture.md)`);
});

test('a folder imports only from the folders below it', (t) => {
  const wrong: string[] = [];
  for (const file of sourcesOf(SRC)) {
    const from = path.relative(SRC, file).split(path.sep)[0] ?? '';
    const rank = LAYERS.indexOf(from);
    for (const spec of importsOf(file)) {
      const target = path.relative(SRC, path.resolve(path.dirname(file), spec)).split(path.sep)[0] ?? '';
      if (target === from || target === 'sys' || target.startsWith('..')) continue;
      const targetRank = LAYERS.indexOf(target);
      if (targetRank <= rank) wrong.push(`${path.relative(SRC, file)} imports ${spec} (${from} -> ${target})`);
    }
  }
  t.deepEqual(wrong, []);
});
