/**
 * Lists the import cycles among the modules under src/ (type-only imports
 * included: a cycle of types is still two modules that cannot be read one
 * without the other), and exits 1 when there is one. Reads the relative
 * `import … from`, `export … from` and `import()` specifiers of every .ts
 * file; run by .ci/run.
 *
 *   deno run --allow-read scripts/import-cycles.ts [DIR]
 */

import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const root = resolve(Deno.args[0] ?? "src");

function modules(dir: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...modules(path));
    else if (name.endsWith(".ts")) found.push(path);
  }
  return found;
}

const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*)["'](\.{1,2}\/[^"']+)["']/g;

const graph = new Map<string, string[]>();
for (const file of modules(root)) {
  const text = readFileSync(file, "utf8");
  const deps: string[] = [];
  for (const m of text.matchAll(SPECIFIER)) {
    const target = resolve(dirname(file), m[1]!);
    if (target.startsWith(root + "/")) deps.push(target);
  }
  graph.set(file, deps);
}

// Tarjan's strongly connected components: each of more than one module is a cycle.
let counter = 0;
const index = new Map<string, number>();
const low = new Map<string, number>();
const stack: string[] = [];
const onStack = new Set<string>();
const cycles: string[][] = [];

function visit(v: string): void {
  index.set(v, counter);
  low.set(v, counter);
  counter++;
  stack.push(v);
  onStack.add(v);
  for (const w of graph.get(v) ?? []) {
    if (!graph.has(w)) continue;
    if (!index.has(w)) {
      visit(w);
      low.set(v, Math.min(low.get(v)!, low.get(w)!));
    } else if (onStack.has(w)) {
      low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
  }
  if (low.get(v) !== index.get(v)) return;
  const component: string[] = [];
  let w: string;
  do {
    w = stack.pop()!;
    onStack.delete(w);
    component.push(w);
  } while (w !== v);
  if (component.length > 1) cycles.push(component);
}

for (const v of graph.keys()) if (!index.has(v)) visit(v);

const cwd = Deno.cwd();
for (const c of cycles) {
  console.log(`import cycle: ${c.map((f) => relative(cwd, f)).sort().join(" ")}`);
}
console.log(`${graph.size} modules, ${cycles.length} import cycles`);
if (cycles.length > 0) Deno.exit(1);
