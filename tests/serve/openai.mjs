// openai.mjs - `llamac serve` through the official OpenAI npm client (run by tests/test_serve.c).
// Usage: node tests/serve/openai.mjs PORT KEY [quick] [tools]   (NODE_PATH: the folder holding node_modules/openai)
// Checks: non-streaming and streaming chat give the same greedy text and consistent usage; logprobs are
// log-probabilities (the greedy token is the most likely, top lists sorted, sums <= 1); tools reach the template and
// an answer without a call has no tool_calls; with "tools" (a model made to call a tool) the client gets a parsed
// call, finish_reason tool_calls, streamed and not; completions; 16 concurrent greedy streams each equal the same
// request sent alone. Exit 0 all passed, 1 a check failed, 3 the client cannot be loaded.
import { createRequire } from "node:module";

const [port, key, ...flags] = process.argv.slice(2);
const quick = flags.includes("quick");
let OpenAI;
try {
  const require = createRequire((process.env.NODE_PATH || ".") + "/");
  OpenAI = require("openai").OpenAI;
} catch (e) {
  console.log("cannot load the openai package: " + e.message);
  process.exit(3);
}
const client = new OpenAI({ apiKey: key, baseURL: `http://127.0.0.1:${port}/v1`, timeout: 120000, maxRetries: 0 });
const model = "serve-test";
let failed = 0;
const check = (cond, what) => {
  if (!cond) { failed++; console.log("    FAIL " + what); }
};
const step = (name) => console.log("    - " + name);

async function streamText(params) {
  const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = "", finish = null, usage = null, calls = [], chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices[0];
    if (!c) continue;
    if (c.delta.content) text += c.delta.content;
    if (c.delta.tool_calls) calls.push(...c.delta.tool_calls);
    if (c.finish_reason) finish = c.finish_reason;
  }
  return { text, finish, usage, calls, chunks };
}

async function concurrent() {
  const n = 16, len = quick ? 12 : 32;
  step(`${n} concurrent greedy streams equal the same requests sent alone (${len} tokens each)`);
  const prompts = Array.from({ length: n }, (_, i) => [{ role: "user", content: `Request number ${i}: ${"xyz".repeat(i % 5)} go` }]);
  // concurrently first, while no slot holds these prompts: prompts and answers are all decoded in shared batches
  const t0 = Date.now();
  const together = await Promise.all(prompts.map((p) => streamText({ model, messages: p, temperature: 0, max_tokens: len })));
  const secs = (Date.now() - t0) / 1000;
  const alone = [];
  for (const p of prompts) alone.push(await streamText({ model, messages: p, temperature: 0, max_tokens: len }));
  let same = 0;
  for (let i = 0; i < n; i++) {
    if (together[i].text === alone[i].text && together[i].finish === alone[i].finish) same++;
    else console.log(`    stream ${i}: ${JSON.stringify(together[i].text)} vs alone ${JSON.stringify(alone[i].text)}`);
  }
  check(same === n, `${same} of ${n} concurrent streams equal their sequential runs`);
  check(new Set(alone.map((x) => x.text)).size > 1, "the prompts give different answers");
  const toks = together.reduce((a, x) => a + x.usage.completion_tokens, 0);
  console.log(`    (${toks} tokens in ${secs.toFixed(2)} s concurrently)`);
}

const messages = [{ role: "system", content: "You are a test." }, { role: "user", content: "Hello there, model." }];

if (flags.includes("tools")) {
  // a model whose greedy answer is a Llama 3.1 custom tool call (built by test_serve.c)
  step("tool call, not streamed");
  const tools = [{ type: "function", function: { name: "get_weather", description: "Weather of a city",
                   parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } }];
  const ask = [{ role: "user", content: "Weather?" }];
  const r = await client.chat.completions.create({ model, messages: ask, tools, temperature: 0, max_tokens: 64 });
  const m = r.choices[0].message;
  check(r.choices[0].finish_reason === "tool_calls", "finish_reason " + r.choices[0].finish_reason);
  check(m.tool_calls && m.tool_calls.length === 1, "one tool call: " + JSON.stringify(m));
  if (m.tool_calls && m.tool_calls.length) {
    const c = m.tool_calls[0];
    check(c.type === "function" && c.function.name === "get_weather", "call " + JSON.stringify(c));
    check(JSON.stringify(JSON.parse(c.function.arguments)) === JSON.stringify({ city: "Paris" }), "arguments " + c.function.arguments);
    check(typeof c.id === "string" && c.id.length > 0, "call id");
    check(m.content === null || m.content === "", "no text besides the call: " + JSON.stringify(m.content));
  }
  if (m.tool_calls && m.tool_calls.length && flags.includes("llama31")) {
    // the result goes back (Llama 3.1's template): the conversation with the call and the tool's answer is answered
    const c = m.tool_calls[0];
    const r2 = await client.chat.completions.create({ model, tools, temperature: 0, max_tokens: 4, messages: [...ask, m,
      { role: "tool", tool_call_id: c.id, content: JSON.stringify({ temperature: 21 }) }] });
    check(r2.choices[0].message.role === "assistant", "answer after the tool result");
  }
  step("tool call, streamed");
  const s = await streamText({ model, messages: ask, tools, temperature: 0, max_tokens: 64 });
  check(s.finish === "tool_calls" && s.calls.length === 1 && s.calls[0].function.name === "get_weather",
        "streamed call: " + JSON.stringify(s));
  check(s.text === "", "streamed text besides the call: " + JSON.stringify(s.text));
  step("tool_choice none: the call is text");
  const n = await client.chat.completions.create({ model, messages: ask, tools, tool_choice: "none", temperature: 0, max_tokens: 64 });
  check(!n.choices[0].message.tool_calls && n.choices[0].message.content.includes("get_weather"),
        "tool_choice none: " + JSON.stringify(n.choices[0]));
  console.log(failed ? `    ${failed} checks failed` : "    all tool checks passed");
  process.exit(failed ? 1 : 0);
}

if (flags.includes("concurrent")) { // only the 16-stream check (another model)
  await concurrent();
  console.log(failed ? `    ${failed} checks failed` : "    all checks passed");
  process.exit(failed ? 1 : 0);
}

step("chat, not streamed");
const r = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: 20 });
check(r.object === "chat.completion" && r.choices.length === 1, "shape");
const msg = r.choices[0].message;
check(msg.role === "assistant" && typeof msg.content === "string", "message");
check(["stop", "length"].includes(r.choices[0].finish_reason), "finish_reason " + r.choices[0].finish_reason);
check(r.usage.completion_tokens <= 20 && r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens,
      "usage " + JSON.stringify(r.usage));
check(r.choices[0].finish_reason !== "length" || r.usage.completion_tokens === 20, "length means 20 tokens");

step("chat, streamed: the same greedy text");
const s = await streamText({ model, messages, temperature: 0, max_tokens: 20 });
check(s.text === msg.content, `streamed ${JSON.stringify(s.text)} vs ${JSON.stringify(msg.content)}`);
check(s.finish === r.choices[0].finish_reason, "finish " + s.finish);
check(s.usage && s.usage.completion_tokens === r.usage.completion_tokens, "stream usage " + JSON.stringify(s.usage));

step("stop sequence");
if (msg.content.length > 4) {
  const stop = msg.content.slice(2, 4);
  const st = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: 20, stop: [stop] });
  const want = msg.content.slice(0, msg.content.indexOf(stop));
  check(st.choices[0].message.content === want && st.choices[0].finish_reason === "stop",
        `stop ${JSON.stringify(stop)}: ${JSON.stringify(st.choices[0].message.content)} want ${JSON.stringify(want)}`);
  const ss = await streamText({ model, messages, temperature: 0, max_tokens: 20, stop });
  check(ss.text === want && ss.finish === "stop", `streamed stop: ${JSON.stringify(ss.text)}`);
}

step("logprobs");
const lp = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: 8, logprobs: true, top_logprobs: 3 });
const content = lp.choices[0].logprobs && lp.choices[0].logprobs.content;
check(Array.isArray(content) && content.length === lp.usage.completion_tokens, "one entry per token");
for (const e of content || []) {
  check(e.logprob <= 0 && e.top_logprobs.length === 3, "entry " + JSON.stringify(e));
  check(Math.abs(e.logprob - e.top_logprobs[0].logprob) < 1e-6, "greedy picks the most likely token");
  check(e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob && e.top_logprobs[1].logprob >= e.top_logprobs[2].logprob, "sorted");
  check(e.top_logprobs.reduce((a, t) => a + Math.exp(t.logprob), 0) <= 1 + 1e-6, "probabilities sum to at most 1");
  check(Array.isArray(e.bytes), "bytes");
}
const lps = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: 8, logprobs: true, top_logprobs: 2, stream: true });
let n_lp = 0;
for await (const chunk of lps) if (chunk.choices[0] && chunk.choices[0].logprobs) n_lp += chunk.choices[0].logprobs.content.length;
check(n_lp === content.length, `streamed logprobs: ${n_lp} entries, want ${content.length}`);

step("with tools, an answer without a call has no tool_calls");
const tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: {} } } }];
const t = await client.chat.completions.create({ model, messages, tools, temperature: 0, max_tokens: 8 });
check(!t.choices[0].message.tool_calls && t.choices[0].finish_reason !== "tool_calls", "no call: " + JSON.stringify(t.choices[0]));

step("seeded sampling repeats");
const a1 = await client.chat.completions.create({ model, messages, temperature: 1, seed: 42, max_tokens: 12 });
const a2 = await client.chat.completions.create({ model, messages, temperature: 1, seed: 42, max_tokens: 12 });
check(a1.choices[0].message.content === a2.choices[0].message.content, "same seed, same text");

step("completions");
const c = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 10, temperature: 0, logprobs: 2 });
check(c.object === "text_completion" && typeof c.choices[0].text === "string", "completion");
check(c.choices[0].logprobs.tokens.length === c.usage.completion_tokens, "completion logprobs");

step("errors come back as APIError with the field");
try {
  await client.chat.completions.create({ model, messages, max_tokens: -1 });
  check(false, "max_tokens -1 accepted");
} catch (e) {
  check(e.status === 400 && e.param === "max_tokens", `error ${e.status} ${e.param} ${e.message}`);
}

await concurrent();

console.log(failed ? `    ${failed} checks failed` : "    all checks passed");
process.exit(failed ? 1 : 0);
