// serve-load.mjs - load test of a running `llamac serve` (loopback only): C concurrent streaming chat requests, each
// greedy with max_tokens N, distinct prompts; prints aggregate generated tokens/s over the wall time, the mean time to
// first token, the mean per-stream rate and the steady-state decode rate (the sum over streams of the tokens after the
// first over the time after the first). Every request is aborted after the time limit. No npm packages (Node's fetch).
// Usage: node bench/serve-load.mjs PORT CONCURRENCY TOKENS [SECONDS] [KEY]
const [port, conc, tokens, seconds = "300", key = ""] = process.argv.slice(2);
const C = Number(conc), N = Number(tokens);
const url = `http://127.0.0.1:${port}/v1/chat/completions`;
const deadline = AbortSignal.timeout(Number(seconds) * 1000);

async function one(i) {
  const t0 = performance.now();
  const r = await fetch(url, {
    method: "POST", signal: deadline,
    headers: { "Content-Type": "application/json", ...(key ? { Authorization: "Bearer " + key } : {}) },
    body: JSON.stringify({ messages: [{ role: "user", content: `Load test stream ${i}: write about the number ${i * 7 + 3}.` }],
                           temperature: 0, max_tokens: N, stream: true, stream_options: { include_usage: true } }),
  });
  if (!r.ok) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  const dec = new TextDecoder();
  let buf = "", first = 0, usage = null;
  for await (const part of r.body) {
    buf += dec.decode(part, { stream: true });
    let k;
    while ((k = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (!ev.startsWith("data: {")) continue;
      const chunk = JSON.parse(ev.slice(6));
      if (chunk.usage) usage = chunk.usage;
      if (!first && chunk.choices[0] && chunk.choices[0].delta.content) first = performance.now();
    }
  }
  const t1 = performance.now();
  return { tokens: usage ? usage.completion_tokens : 0, ttft: (first || t1) - t0, gen: (t1 - (first || t1)) / 1000, t0, t1 };
}

const t0 = performance.now();
const res = await Promise.all(Array.from({ length: C }, (_, i) => one(i)));
const wall = (performance.now() - t0) / 1000;
const total = res.reduce((a, r) => a + r.tokens, 0);
const ttft = res.reduce((a, r) => a + r.ttft, 0) / C / 1000;
const per = res.reduce((a, r) => a + (r.gen > 0 ? (r.tokens - 1) / r.gen : 0), 0) / C;
console.log(JSON.stringify({ streams: C, tokens: total, wall_s: +wall.toFixed(3), aggregate_tps: +(total / wall).toFixed(2),
                             mean_ttft_s: +ttft.toFixed(3), mean_stream_tps: +per.toFixed(2),
                             decode_tps: +(per * C).toFixed(2) }));
