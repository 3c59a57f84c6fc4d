// The portal example's browser flow in headless Chromium, driven by playwright-core.
//
//   SERVER_URL=http://127.0.0.1:3000 ORG_TOKEN=polar_oat_… CUSTOMER_ID=… \
//   COOKIE_NAME=__Host-customer_session node tests/browser/portal.spec.mjs
//
// Optional: CHROMIUM (default /usr/bin/chromium), SCREENSHOT (default target/portal.png).
// Exits 0 when every step passed, 1 on the first failure (with the step's name), 3 when
// playwright-core is not installed (`npm ci --prefix tests/browser`).

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') {
    console.error(`FAIL: environment variable ${name} is required`);
    process.exit(1);
  }
  return value;
};

const SERVER_URL = env('SERVER_URL').replace(/\/$/, '');
const ORG_TOKEN = env('ORG_TOKEN');
const CUSTOMER_ID = env('CUSTOMER_ID');
const COOKIE_NAME = env('COOKIE_NAME', '__Host-customer_session');
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');
const SCREENSHOT = env('SCREENSHOT', 'target/portal.png');

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (error) {
  console.error(`SKIP: playwright-core is not installed (${error.message})`);
  process.exit(3);
}

class StepFailure extends Error {}

let step = 'start';
// Each step logs its success when the next one begins.
const begin = (name) => {
  if (step !== 'start') console.log(`ok - ${step}`);
  step = name;
};
const check = (condition, message) => {
  if (!condition) throw new StepFailure(message);
};

let browser;
// A hung browser must not hang the test run.
const watchdog = setTimeout(async () => {
  console.error(`FAIL [${step}]: timed out after 90 s`);
  await browser?.close().catch(() => {});
  process.exit(1);
}, 90_000);

try {
  begin('create a session with the organization token');
  const created = await fetch(`${SERVER_URL}/v1/customer-sessions/`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${ORG_TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ customer_id: CUSTOMER_ID }),
  });
  check(created.status === 201, `POST /v1/customer-sessions/ answered ${created.status}`);
  const session = await created.json();
  const token = session.token;
  const portalUrl = session.customer_portal_url;
  check(
    portalUrl.startsWith(`${SERVER_URL}/portal?customer_session_token=${token}`),
    `unexpected customer_portal_url ${portalUrl}`,
  );
  const customerName = session.customer.name;
  const customerEmail = session.customer.email;

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const context = await browser.newContext();
  const page = await context.newPage();

  // Everything the browser sends and every console error (CSP violations land there).
  const requests = [];
  page.on('request', (request) => requests.push(request));
  const consoleErrors = [];
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => consoleErrors.push(String(error)));

  begin('open customer_portal_url');
  const opened = await page.goto(portalUrl);
  check(opened.status() === 200, `the portal page answered ${opened.status()}`);
  const landed = new URL(page.url());
  check(landed.pathname === '/portal', `landed on ${landed.pathname}`);
  check(!page.url().includes(token), `the address bar still holds the token: ${page.url()}`);
  check(
    !landed.searchParams.has('customer_session_token'),
    `the address bar still has customer_session_token: ${page.url()}`,
  );
  check(
    !landed.searchParams.has('email'),
    `the address bar still holds the email address: ${page.url()}`,
  );

  begin('the page shows the customer');
  const heading = await page.locator('h1').textContent();
  check(heading === customerName, `heading is ${JSON.stringify(heading)}, not ${customerName}`);
  const text = await page.locator('main').innerText();
  check(text.includes(customerEmail), `the email is not shown:\n${text}`);
  check(text.includes('123 Main St'), `the billing address is not shown:\n${text}`);
  check((await page.content()).indexOf(token) === -1, 'the token is in the page');

  begin('the session cookie');
  const cookies = await context.cookies();
  check(cookies.length === 1, `expected one cookie, got ${JSON.stringify(cookies.map((c) => c.name))}`);
  const [cookie] = cookies;
  check(cookie.name === COOKIE_NAME, `cookie is named ${cookie.name}, not ${COOKIE_NAME}`);
  check(cookie.httpOnly, 'the cookie is not HttpOnly');
  check(cookie.sameSite === 'Lax', `the cookie is SameSite=${cookie.sameSite}`);
  check(cookie.path === '/', `the cookie path is ${cookie.path}`);
  check(cookie.secure === COOKIE_NAME.startsWith('__Host-'), `the cookie's Secure is ${cookie.secure}`);
  const sessionEnd = Date.parse(session.expires_at) / 1000;
  check(cookie.expires > 0 && cookie.expires <= sessionEnd + 1, `the cookie expires at ${cookie.expires}, the session at ${sessionEnd}`);
  check((await page.evaluate(() => document.cookie)) === '', 'scripts can read the cookie');

  await page.screenshot({ path: SCREENSHOT, fullPage: true });

  begin('reload keeps the session');
  const reloaded = await page.reload();
  check(reloaded.status() === 200, `reload answered ${reloaded.status()}`);
  check((await page.locator('h1').textContent()) === customerName, 'reload lost the customer');

  begin('a cross-site form cannot sign the customer out');
  // A page on another site that posts to the logout route.
  await page.route('http://attacker.test/**', (route) =>
    route.fulfill({
      contentType: 'text/html',
      body: `<form method="post" action="${SERVER_URL}/portal/logout"><button id="go">win a prize</button></form>`,
    }),
  );
  await page.goto('http://attacker.test/');
  const [attack] = await Promise.all([
    page.waitForResponse(`${SERVER_URL}/portal/logout`),
    page.click('#go'),
  ]);
  // The sign-out refuses a cross-site POST (403) whether or not SameSite=Lax kept the
  // cookie off it; an older server answered 401 without the cookie. Either way the
  // session must survive.
  check([401, 403].includes(attack.status()), `the cross-site POST answered ${attack.status()}`);
  console.log(`   (cross-site POST answered ${attack.status()})`);
  await page.goto(`${SERVER_URL}/portal`);
  check((await page.locator('h1').textContent()) === customerName, 'the cross-site POST ended the session');

  begin('sign out');
  const [signedOut] = await Promise.all([
    page.waitForResponse(`${SERVER_URL}/portal/logout`),
    page.getByRole('button', { name: 'Sign out' }).click(),
  ]);
  check(signedOut.status() === 303, `logout answered ${signedOut.status()}`);
  await page.waitForURL(`${SERVER_URL}/portal`);
  check((await context.cookies()).length === 0, 'the cookie survived sign-out');

  begin('reload after sign-out shows the sign-in page');
  const after = await page.reload();
  check(after.status() === 401, `reload after sign-out answered ${after.status()}`);
  check(
    (await page.locator('h1').textContent()) === 'Sign-in link required',
    `after sign-out the page shows ${await page.locator('h1').textContent()}`,
  );

  begin('the token is revoked for the API too');
  const me = await fetch(`${SERVER_URL}/v1/customer-portal/customers/me`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  check(me.status === 401, `the API still accepts the token (${me.status})`);

  begin('the original portal link is dead');
  const again = await page.goto(portalUrl);
  check(again.status() === 401, `the old link answered ${again.status()}`);
  check(
    (await page.locator('h1').textContent()) === 'Link expired or invalid',
    `the old link shows ${await page.locator('h1').textContent()}`,
  );
  check((await context.cookies()).length === 0, 'the old link set a cookie');

  begin('the token went nowhere but the first request');
  for (const [index, request] of requests.entries()) {
    const isHandoff = request.url() === portalUrl;
    check(isHandoff || !request.url().includes(token), `request ${index} carries the token: ${request.url()}`);
    const referer = (await request.allHeaders()).referer ?? '';
    check(!referer.includes(token), `request ${index} has the token in Referer: ${referer}`);
  }
  // Chromium logs every 4xx it loads; the 401 pages are expected, and so is one 403 when
  // the cross-site sign-out was refused. Anything else is not (a Content-Security-Policy
  // violation, for one, would be reported here).
  const loadFailure = 'Failed to load resource: the server responded with a status of ';
  const refusals = consoleErrors.filter((text) => text.startsWith(`${loadFailure}403`));
  check(
    refusals.length <= (attack.status() === 403 ? 1 : 0),
    `unexpected 403s in the console:\n${refusals.join('\n')}`,
  );
  const unexpected = consoleErrors.filter(
    (text) => !text.startsWith(`${loadFailure}401`) && !text.startsWith(`${loadFailure}403`),
  );
  check(unexpected.length === 0, `console errors:\n${unexpected.join('\n')}`);

  begin('done');
  console.log(`ok: portal browser flow (cookie ${COOKIE_NAME}, screenshot ${SCREENSHOT})`);
  await browser.close();
  clearTimeout(watchdog);
} catch (error) {
  const detail = error instanceof StepFailure ? error.message : error.stack ?? String(error);
  console.error(`FAIL [${step}]: ${detail}`);
  await browser?.close().catch(() => {});
  process.exit(1);
}
