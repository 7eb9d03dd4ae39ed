// page.mjs - the chat page of `llamac serve` in headless Chromium (Debian's /usr/bin/chromium) driven by
// playwright-core (run by tests/test_serve.c). Usage: node tests/serve/page.mjs PORT KEY [SCREENSHOT.png]
// Checks: the page loads behind the API key (the browser's Basic login), with no request leaving the server; a
// message with a system prompt and temperature 0 streams into the page and equals the API's greedy answer to the
// same conversation; Stop ends a long answer at once and the server frees the slot. Exit 0 passed, 1 failed, 3 the
// browser or playwright-core cannot be started.
import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [port, key, shot] = process.argv.slice(2);
const base = `http://127.0.0.1:${port}`;
let chromium;
try {
  chromium = createRequire((process.env.NODE_PATH || ".") + "/")("playwright-core").chromium;
} catch (e) {
  console.log("cannot load playwright-core: " + e.message);
  process.exit(3);
}
let failed = 0;
const check = (cond, what) => {
  if (!cond) { failed++; console.log("    FAIL " + what); }
};
const step = (name) => console.log("    - " + name);
const deadline = setTimeout(() => { console.log("    FAIL the page test took more than 120 s"); process.exit(1); }, 120000);

async function api(path, body) {
  const r = await fetch(base + path, { method: body ? "POST" : "GET", body: body && JSON.stringify(body),
    headers: { Authorization: "Bearer " + key, "Content-Type": "application/json" } });
  return body ? r.json() : r.text();
}
const metric = async (name) => Number((await api("/metrics")).match(new RegExp("\\n" + name + " (\\S+)"))[1]);

const profile = mkdtempSync(join(tmpdir(), "llamac-chromium-"));
let ctx;
try {
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium", headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--no-first-run"],
    httpCredentials: { username: "web", password: key },
  });
} catch (e) {
  console.log("cannot start Chromium: " + e.message);
  rmSync(profile, { recursive: true, force: true });
  process.exit(3);
}
try {
  const page = ctx.pages()[0] || (await ctx.newPage());
  const foreign = [];
  page.on("request", (r) => { if (!r.url().startsWith(base)) foreign.push(r.url()); });
  step("the page loads");
  const resp = await page.goto(base + "/");
  check(resp.status() === 200, "status " + resp.status());
  check((await page.title()) === "llamac chat", "title");

  step("a message streams in and equals the API's greedy answer");
  const system = "You are a test.", user = "Hello from the browser";
  await page.fill("#system", system);
  await page.fill("#temperature", "0");
  await page.fill("#max_tokens", "16");
  await page.fill("#input", user);
  await page.click("#send");
  await page.waitForSelector(".msg.assistant[data-state=done]", { timeout: 60000 });
  const shown = await page.textContent(".msg.assistant .text");
  const want = await api("/v1/chat/completions", { messages: [{ role: "system", content: system }, { role: "user", content: user }],
                                                  temperature: 0, top_p: 0.95, max_tokens: 16 });
  check(shown === want.choices[0].message.content, `page ${JSON.stringify(shown)} vs API ${JSON.stringify(want.choices[0].message.content)}`);
  check((await page.getAttribute(".msg.assistant", "data-finish")) === want.choices[0].finish_reason, "finish reason shown");
  check((await page.textContent("#status")).includes("tokens"), "status line");

  step("Stop ends a long answer and frees the slot");
  await page.fill("#max_tokens", "2000");
  await page.fill("#input", "Now a long one");
  await page.click("#send");
  const second = page.locator(".msg.assistant").nth(1);
  await page.waitForFunction(() => {
    const m = document.querySelectorAll(".msg.assistant")[1];
    return m && m.querySelector(".text").textContent.length > 0;
  }, null, { timeout: 60000 });
  await page.click("#stop");
  await page.waitForSelector(".msg.assistant:nth-of-type(4)[data-state=done]", { timeout: 10000 }).catch(() => {});
  check((await second.getAttribute("data-finish")) === "stopped", "finish after Stop: " + (await second.getAttribute("data-finish")));
  let active = -1;
  for (let i = 0; i < 100 && active !== 0; i++) {
    active = await metric("llamac_slots_active");
    if (active) await new Promise((r) => setTimeout(r, 50));
  }
  check(active === 0, "slots still active after Stop: " + active);
  check(!(await page.isDisabled("#send")), "Send is enabled again");
  check(foreign.length === 0, "requests left the server: " + foreign.join(", "));
  if (shot) await page.screenshot({ path: shot });
} catch (e) {
  failed++;
  console.log("    FAIL " + e.message);
} finally {
  await ctx.close();
  rmSync(profile, { recursive: true, force: true });
  clearTimeout(deadline);
}
console.log(failed ? `    ${failed} checks failed` : "    all page checks passed");
process.exit(failed ? 1 : 0);
