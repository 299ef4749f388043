/**
 * Summarises a V8 .cpuprofile (`node --cpu-prof`, e.g. the chat benchmark's CHAT_BENCH_CPU_PROF) by what a chat turn
 * spends its CPU on. Each sample goes to the category of the innermost frame on its stack that one of the rules below
 * recognises (so JSON.stringify called by the SSE writer counts as stream work, a drizzle call under the audit recorder
 * as a database write), else to the leaf's own fallback (Node internals, GC). Idle time is left out of the shares.
 *
 * When the chat benchmark wrote `<name>.windows.json` beside the profile (the bursts' start and end on the profiler's
 * clock), only the samples inside those windows count, and the CPU time per turn is printed as well.
 *
 *   npx tsx bench/lib/cpuprofile-summary.ts <file.cpuprofile> [top functions per category=6]
 */
import fs from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface Window {
  name: string;
  from: number;
  to: number;
  turns: number;
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Innermost match wins; the order only matters for a frame that two rules would both match. */
const RULES: Array<[string, RegExp]> = [
  ['redaction', /\/modules\/redaction\/|libphonenumber-js|chat\.context\.[jt]s.*(createRedactor|redact)/],
  ['tokenizer counting', /js-tiktoken|\/chat\/chat\.tokens\./],
  ['authentication', /\/modules\/auth\/|\/plugins\/auth\.|\/node_modules\/jose\//],
  ['rate limiting', /@fastify\/rate-limit|\/plugins\/security\./],
  ['audit recorder (hash, MAC, sanitize)', /\/modules\/audit\/|\/lib\/crypto\/hash-chain|canonical/],
  ['field encryption', /\/vault\/field-cipher|\/lib\/crypto\/(?!hash-chain)/],
  ['session and budget checks', /\/chat\/chat\.repository\.[jt]s.*findSession|\/llm\/llm\.service\.[jt]s.*(checkBudget|resolveModel|current)/],
  ['database (driver, ORM, embedded engine)', /\/node_modules\/(pg|pg-protocol|pg-pool|pg-types|postgres-[a-z]+|drizzle-orm|@electric-sql)\/|\/db\/|\.repository\.[jt]s/],
  ['redis client', /\/node_modules\/(ioredis|redis-parser|@ioredis)\//],
  ['provider stream parsing (per chunk)', /eventsource-parser|\/node_modules\/zod\/|parseJsonEventStream|safeParseJSON|validateTypes|TransformStream|webstreams/],
  ['provider request set-up', /\/node_modules\/(@ai-sdk|ai|ollama-ai-provider-v2)\/|\/modules\/llm\/|undici/],
  ['context assembly and turn logic', /\/modules\/chat\/|\/modules\/tools\//],
  ['stream set-up and SSE writes', /\/lib\/sse|\/lib\/infra\/sse|reply\.raw|ServerResponse|OutgoingMessage/],
  ['HTTP framework (routing, hooks, validation, serialisation)', /\/node_modules\/(fastify|find-my-way|avvio|@fastify|light-my-request|ajv|fast-json-stringify|secure-json-parse|fast-querystring|process-warning)\/|\/plugins\/|\/http\//],
  ['logging and metrics', /\/node_modules\/(pino|prom-client|sonic-boom|thread-stream)\//],
];

function fallback(frame: CallFrame): string {
  if (frame.functionName === '(idle)') return '(idle)';
  if (frame.functionName === '(garbage collector)') return 'garbage collection';
  if (frame.functionName === '(program)') return 'V8/Node native (program)';
  if (frame.url.startsWith('node:')) return 'Node internals (net, http, streams, timers)';
  if (frame.url === '') return 'native builtins (JSON, RegExp, crypto...)';
  return 'other';
}

function main(): void {
  const file = process.argv[2];
  if (!file) throw new Error('usage: cpuprofile-summary.ts <file.cpuprofile> [top]');
  const top = Number(process.argv[3] ?? 6);
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const windowsFile = file.replace(/\.cpuprofile$/, '.windows.json');
  const windows = fs.existsSync(windowsFile) ? (JSON.parse(fs.readFileSync(windowsFile, 'utf8')) as Window[]) : [];
  const inWindow = (at: number) => windows.length === 0 || windows.some((w) => at >= w.from && at <= w.to);
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

  const categoryOf = new Map<number, string>();
  const classify = (id: number): string => {
    const known = categoryOf.get(id);
    if (known) return known;
    const leaf = byId.get(id)!;
    let category: string | undefined;
    for (let at: number | undefined = id; at !== undefined && category === undefined; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame;
      const key = `${frame.url} ${frame.functionName}`;
      category = RULES.find(([, rule]) => rule.test(key))?.[0];
    }
    category ??= fallback(leaf.callFrame);
    categoryOf.set(id, category);
    return category;
  };

  const totals = new Map<string, number>();
  const functions = new Map<string, Map<string, number>>();
  let at = profile.startTime;
  let sampled = 0;
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0;
    if (!inWindow(at)) return;
    const ms = (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0) / 1000;
    sampled += ms;
    const category = classify(id);
    totals.set(category, (totals.get(category) ?? 0) + ms);
    const frame = byId.get(id)!.callFrame;
    const where = frame.url === '' ? '' : ` ${frame.url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${frame.lineNumber + 1}`;
    const name = `${frame.functionName || '(anonymous)'}${where}`;
    const perFunction = functions.get(category) ?? new Map<string, number>();
    perFunction.set(name, (perFunction.get(name) ?? 0) + ms);
    functions.set(category, perFunction);
  });

  const idle = totals.get('(idle)') ?? 0;
  const busy = [...totals.entries()].filter(([c]) => c !== '(idle)').reduce((sum, [, ms]) => sum + ms, 0);
  const scope = windows.length === 0 ? 'the whole run' : windows.map((w) => `${w.name} (${((w.to - w.from) / 1e6).toFixed(2)} s)`).join(', ');
  console.log(`${file}, ${scope}: ${(sampled / 1000).toFixed(2)} s sampled, ${(busy / 1000).toFixed(2)} s busy on the main thread, ${(idle / 1000).toFixed(2)} s idle`);
  const turns = windows.reduce((sum, w) => sum + w.turns, 0);
  if (turns > 0) console.log(`main-thread CPU per turn (start to stored answer, 64 chunks relayed): ${(busy / turns).toFixed(2)} ms`);
  const sorted = [...totals.entries()].filter(([c]) => c !== '(idle)').sort((a, b) => b[1] - a[1]);
  for (const [category, ms] of sorted) {
    console.log(`${((100 * ms) / busy).toFixed(1).padStart(5)} %  ${ms.toFixed(0).padStart(7)} ms  ${category}`);
    const fns = [...functions.get(category)!.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
    for (const [name, fms] of fns) console.log(`${''.padStart(18)}${fms.toFixed(0).padStart(6)} ms  ${name}`);
  }
}

main();
