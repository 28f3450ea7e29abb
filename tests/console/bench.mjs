// The console's speed in Debian's headless Chromium, against a running `cfhost serve` (run by
// `cargo bench -p cfhost --bench console`, which prepares it). Two modes:
//   node bench.mjs paint  - prints one JSON line: the callflow view's first paint (the tree's
//                           own paint, by the Element Timing API) over fresh tabs, and the
//                           200-node tree's draw time (build and layout of its DOM), first and
//                           on every redraw;
//   node bench.mjs watch  - keeps the operator and calls views open (each polls the API every
//                           2 s) until its stdin closes; prints `watching` once they are up.
// Environment: CFHOST_URL, CFHOST_OPERATOR_TOKEN, CFHOST_ACCOUNT_TOKEN, CFHOST_ACCOUNT,
// CFHOST_SMALL (a callflow id), CFHOST_BIG (a 200-node callflow id), CHROMIUM, CFHOST_RUNS.

import { chromium } from 'playwright-core';

const URL_ = process.env.CFHOST_URL;
const RUNS = Number(process.env.CFHOST_RUNS ?? 20);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'] });

/** A fresh tab signed in with `token` (and, for the operator, showing `account`). */
async function tab(token) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.addInitScript(([t, a]) => {
    sessionStorage.setItem('cfhost-token', t);
    if (a) sessionStorage.setItem('cfhost-account', a);
  }, [token, process.env.CFHOST_ACCOUNT]);
  return { context, page: await context.newPage() };
}

/** When the tree of the callflow view at `hash` was painted, from navigation start (ms). */
async function firstPaint(hash) {
  const { context, page } = await tab(process.env.CFHOST_ACCOUNT_TOKEN);
  await page.goto(`${URL_}/${hash}`);
  const painted = await page.evaluate(() => new Promise((resolve) => {
    new PerformanceObserver((list) => {
      const entry = list.getEntries().find((e) => e.identifier === 'callflow-tree');
      if (entry) resolve(entry.renderTime || entry.loadTime);
    }).observe({ type: 'element', buffered: true });
  }));
  const fcp = await page.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null);
  const drawn = await page.evaluate(() => performance.getEntriesByName('cfhost-tree').map((m) => m.duration));
  await context.close();
  return { painted, fcp, drawn };
}

function stats(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  return { n: sorted.length, median: at(0.5), p95: at(0.95), max: sorted[sorted.length - 1] };
}

const round = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, typeof v === 'number' ? Math.round(v * 10) / 10 : v]));

if (process.argv[2] === 'paint') {
  const small = [];
  const fcp = [];
  for (let i = 0; i < RUNS; i += 1) {
    const run = await firstPaint(`#/callflows/${process.env.CFHOST_SMALL}`);
    small.push(run.painted);
    fcp.push(run.fcp);
  }
  const bigPaint = [];
  const bigDraw = [];
  for (let i = 0; i < RUNS; i += 1) {
    const run = await firstPaint(`#/callflows/${process.env.CFHOST_BIG}`);
    bigPaint.push(run.painted);
    bigDraw.push(run.drawn[0]);
  }
  // Redraws of the big tree: each choice of a node draws it again.
  const { context, page } = await tab(process.env.CFHOST_ACCOUNT_TOKEN);
  await page.goto(`${URL_}/#/callflows/${process.env.CFHOST_BIG}`);
  await page.locator('.tree').waitFor();
  const nodes = await page.locator('.node-button').count();
  for (let i = 0; i < RUNS; i += 1) {
    await page.locator('.node-button').nth((i * 37) % nodes).click();
  }
  const redraws = await page.evaluate(() => performance.getEntriesByName('cfhost-tree').map((m) => m.duration).slice(1));
  await context.close();
  console.log(JSON.stringify({
    callflow_view_tree_painted_ms: round(stats(small)),
    callflow_view_first_contentful_paint_ms: round(stats(fcp)),
    big_tree_nodes: nodes,
    big_tree_painted_ms: round(stats(bigPaint)),
    big_tree_first_draw_ms: round(stats(bigDraw)),
    big_tree_redraw_ms: round(stats(redraws)),
  }));
} else if (process.argv[2] === 'watch') {
  const operator = await tab(process.env.CFHOST_OPERATOR_TOKEN);
  await operator.page.goto(`${URL_}/#/operator`);
  await operator.page.locator('#figure-cps').waitFor();
  const calls = await tab(process.env.CFHOST_OPERATOR_TOKEN);
  await calls.page.goto(`${URL_}/#/calls`);
  await calls.page.locator('table caption').first().waitFor();
  console.log('watching');
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.on('end', resolve));
} else {
  console.error('usage: node bench.mjs paint|watch');
  process.exitCode = 2;
}
await browser.close();
