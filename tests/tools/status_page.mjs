// Opens mirror's status page in Debian's Chromium (driven by playwright-core) and checks what a
// person would: every table is there, the initial sync advances between two loads, nothing is
// logged as an error, no request leaves the machine, and it lays out at desktop and phone widths.
//
// Usage: node status_page.mjs <page URL> <output folder> <table>...
// Prints one JSON line with what it saw; exits non-zero on the first failed check.

import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, out, ...tables] = process.argv.slice(2);
const local = (u) => {
  const { protocol, hostname } = new URL(u);
  return protocol === "data:" || protocol === "about:" || hostname === "127.0.0.1" || hostname === "localhost";
};
const fail = (message) => {
  console.error(`status page check failed: ${message}`);
  process.exitCode = 1;
  throw new Error(message);
};

// A fresh profile: Playwright hands it to Chromium as --user-data-dir.
const profile = mkdtempSync(join(tmpdir(), "mirror-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const errors = [];
const outside = [];
const requests = [];
context.on("request", (r) => {
  requests.push(r.url());
  if (!local(r.url())) outside.push(r.url());
});
// Refuse anything that would leave the machine, so a failure cannot leak traffic either.
await context.route("**/*", (route) => (local(route.request().url()) ? route.continue() : route.abort()));

async function look(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll("[data-table]")].map((e) => ({
      table: e.dataset.table,
      phase: e.dataset.phase,
      copied: Number(e.dataset.copied),
      rows: Number(e.dataset.rows),
      progressbar: e.querySelector("[role=progressbar]") !== null,
      chart: e.querySelector("svg") !== null,
    })),
  );
}

const seen = {};
try {
  for (const [name, viewport, mobile] of [
    ["desktop", { width: 1280, height: 900 }, false],
    ["phone", { width: 390, height: 844 }, true],
  ]) {
    const page = await context.newPage();
    await page.setViewportSize(viewport);
    page.on("console", (m) => m.type() === "error" && errors.push(`${name}: ${m.text()}`));
    page.on("pageerror", (e) => errors.push(`${name}: ${e.message}`));
    const first = await page.goto(url, { waitUntil: "load" });
    if (first.status() !== 200) fail(`${name}: ${url} answered ${first.status()}`);
    const before = await look(page);
    for (const t of tables) {
      if (!before.some((c) => c.table === t)) fail(`${name}: table ${t} is not on the page`);
    }
    await page.waitForTimeout(2500);
    await page.reload({ waitUntil: "load" });
    const after = await look(page);
    const progress = (cards) => cards.reduce((n, c) => n + c.copied + c.rows, 0);
    if (!(progress(after) > progress(before))) {
      fail(`${name}: no progress between two loads (${progress(before)} then ${progress(after)})`);
    }
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 0) fail(`${name}: the page is ${overflow}px wider than the screen`);
    const refresh = await page.evaluate(() => document.querySelector("meta[http-equiv=refresh]")?.content);
    if (!refresh) fail(`${name}: the page does not refresh itself`);
    await page.screenshot({ path: join(out, `status-${name}.png`), fullPage: true });
    seen[name] = { before, after, overflow, mobile };
    await page.close();
  }
  if (errors.length) fail(`console errors: ${errors.join("; ")}`);
  if (outside.length) fail(`requests left the machine: ${outside.join(", ")}`);
  console.log(JSON.stringify({ ok: true, requests: requests.length, seen }));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
