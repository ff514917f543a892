// End-to-end test of the web UI in a real browser: Debian's chromium driven by
// playwright-core. Run by crates/cli/tests/ui.rs against a daemon on a generated store:
//   node tests/e2e.mjs http://127.0.0.1:PORT/ SCREENSHOT_DIR
// Prints one line per step; exits 1 with the reason at the first failed check.

import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, shots] = process.argv.slice(2);
if (!url || !shots) {
  console.error("usage: node tests/e2e.mjs URL SCREENSHOT_DIR");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const profile = mkdtempSync(join(tmpdir(), "flowdrill-e2e-"));

function check(cond, what) {
  if (!cond) throw new Error("check failed: " + what);
  console.log("ok: " + what);
}

const ctx = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let failed = false;
try {
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });

  // Waits for the answer of the current state (the page sets data-state).
  const ready = async () => {
    await page.waitForFunction(() => ["ready", "error"].includes(document.body.dataset.state ?? ""), null, {
      timeout: 30000,
    });
    return page.evaluate(() => document.body.dataset.state);
  };
  const status = () => page.textContent("[data-testid=status]");
  const shot = (name) => page.screenshot({ path: join(shots, name + ".png") });
  const filterValue = () => page.inputValue("[data-testid=filter]");

  // 1. The time series.
  await page.goto(url);
  check((await ready()) === "ready", "the page loads the time series");
  check((await status()).startsWith("series"), "the status line describes the series");
  check((await page.getAttribute("[data-testid=chart]", "data-kind")) === "series", "the chart is a series");
  await shot("series");

  // 2. Brush a time range on the chart.
  const box = await page.locator("[data-testid=chart]").boundingBox();
  const y = box.y + box.height / 2;
  await page.mouse.move(box.x + box.width * 0.35, y);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.5, y, { steps: 8 });
  await page.mouse.move(box.x + box.width * 0.6, y, { steps: 8 });
  await page.mouse.up();
  await page.waitForFunction(() => new URLSearchParams(location.search).get("time")?.includes(".."), null, {
    timeout: 10000,
  });
  check((await ready()) === "ready", "the brushed range answers");
  const time = await page.inputValue("[data-testid=time]");
  check(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\.\d{4}-/.test(time), `the time box shows the brushed range (${time})`);
  await shot("series-brushed");

  // 3. HHH of sources; drill into a prefix.
  await page.click("[data-testid=tab-hhh]");
  check((await ready()) === "ready", "the HHH view loads");
  const rows = page.locator("tr.drill");
  check((await rows.count()) > 1, "the HHH tree has rows to drill into");
  await shot("hhh");
  const prefixRow = page.locator("tr.drill[data-drill*='net']").first();
  const clause = await prefixRow.getAttribute("data-drill");
  await prefixRow.click();
  check((await ready()) === "ready", "drilling answers");
  check((await filterValue()) === clause, `the filter is the prefix's clause (${clause})`);
  check((await status()).includes("filter "), "the status line shows the filter");
  await shot("hhh-drilled");

  // 4. Back: the filter is gone again.
  await page.goBack();
  check((await ready()) === "ready", "back answers");
  check((await filterValue()) === "", "back restores the unfiltered view");
  check(new URL(page.url()).searchParams.get("view") === "hhh", "back stays on the HHH view");
  await page.goForward();
  await ready();
  check((await filterValue()) === clause, "forward brings the drill back");
  await page.goBack();
  await ready();

  // 5. The heatmap: hover a cell, then click it.
  await page.click("[data-testid=tab-hhh2]");
  check((await ready()) === "ready", "the heatmap loads");
  check((await page.getAttribute("[data-testid=chart]", "data-kind")) === "grid", "the chart is a heatmap");
  const cell = await page.evaluate(() => {
    const c = window.flowdrillChart;
    const rows = c.getOption().yAxis[0].data.length;
    const cols = c.getOption().xAxis[0].data.length;
    return { px: c.convertToPixel({ seriesIndex: 0 }, [0, 0]), rows, cols };
  });
  const cbox = await page.locator("[data-testid=chart]").boundingBox();
  await page.mouse.move(cbox.x + cell.px[0], cbox.y + cell.px[1]);
  await page.waitForFunction(
    () => [...document.querySelectorAll("#chart div")].some((d) => d.textContent?.includes("share:")),
    null,
    { timeout: 10000 },
  );
  const tip = await page.evaluate(
    () => [...document.querySelectorAll("#chart div")].find((d) => d.textContent?.includes("share:"))?.textContent,
  );
  check(tip.includes("×") && /±|exact/.test(tip), `hovering a cell shows its numbers and error (${tip})`);
  await shot("hhh2-hover");
  await page.mouse.click(cbox.x + cell.px[0], cbox.y + cell.px[1]);
  check((await ready()) === "ready", "clicking a cell drills");
  const both = await filterValue();
  check(both.includes(") and ("), `the cell's drill narrows both keys (${both})`);
  await page.goBack();
  await ready();

  // 6. The filter box: a good filter applies, a bad one shows its error at its position.
  await page.fill("[data-testid=filter]", "proto tcp");
  await page.press("[data-testid=filter]", "Enter");
  await page.waitForFunction(() => new URLSearchParams(location.search).get("filter") === "proto tcp");
  check((await ready()) === "ready", "a typed filter applies");
  check((await status()).includes("filter"), "the status line shows the typed filter");
  const before = page.url();
  await page.fill("[data-testid=filter]", "proto tcp and port");
  await page.press("[data-testid=filter]", "Enter");
  await page.waitForFunction(() => (document.querySelector("[data-testid=filter-error]")?.textContent ?? "").includes("^"));
  const err = await page.textContent("[data-testid=filter-error]");
  check(/\n {18}\^/.test(err) && err.includes("column 19"), `a bad filter shows its error at its position:\n${err}`);
  check(page.url() === before, "a bad filter is not applied");
  await shot("filter-error");

  // 7. Every other view, with a screenshot.
  await page.fill("[data-testid=filter]", "");
  await page.click("#clear-filter");
  await ready();
  for (const v of ["top", "dist", "compare", "scans"]) {
    await page.click(`[data-testid=tab-${v}]`);
    check((await ready()) === "ready", `the ${v} view loads`);
    check((await page.locator("[data-testid=tables] tr").count()) > 1, `the ${v} view has a table`);
    await shot(v);
  }
  // 8. Exports.
  const dl = page.waitForEvent("download");
  await page.click("[data-testid=export-csv]");
  const d = await dl;
  check(d.suggestedFilename() === "flowdrill-scans.csv", "CSV export downloads");
  const dl2 = page.waitForEvent("download");
  await page.click("[data-testid=export-png]");
  check((await dl2).suggestedFilename() === "flowdrill-scans.png", "PNG export downloads");

  check(errors.length === 0, "no errors in the page: " + errors.join("; "));
} catch (e) {
  failed = true;
  console.error("FAILED: " + (e?.message ?? e));
} finally {
  await ctx.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
