// Device Bound Session Credentials in headless Chromium, driven by playwright-core, against
// the portal example behind an https proxy (see tests/dbsc_browser.rs).
//
//   SERVER_URL=https://127.0.0.1:8443 API_URL=http://127.0.0.1:3000 SPKI=… DBSC=1 TTL_SECS=5 \
//   ORG_TOKEN=polar_oat_… CUSTOMER_ID=… node tests/browser/dbsc.spec.mjs
//
// DBSC=1 starts Chromium with DBSC enabled (software keys, no refresh quota); DBSC=0 without,
// as a browser that does not support it. Exits 0 when every step passed, 1 on the first
// failure, 3 when playwright-core is not installed.

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') {
    console.error(`FAIL: environment variable ${name} is required`);
    process.exit(1);
  }
  return value;
};

const SERVER_URL = env('SERVER_URL').replace(/\/$/, '');
const API_URL = env('API_URL').replace(/\/$/, '');
const SPKI = env('SPKI');
const DBSC = env('DBSC') === '1';
const TTL_SECS = Number(env('TTL_SECS', '5'));
const ORG_TOKEN = env('ORG_TOKEN');
const CUSTOMER_ID = env('CUSTOMER_ID');
const COOKIE_NAME = env('COOKIE_NAME', '__Host-customer_session');
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (error) {
  console.error(`SKIP: playwright-core is not installed (${error.message})`);
  process.exit(3);
}

class StepFailure extends Error {}
let step = 'start';
const begin = (name) => {
  if (step !== 'start') console.log(`ok - ${step}`);
  step = name;
};
const check = (condition, message) => {
  if (!condition) throw new StepFailure(message);
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let browser;
const watchdog = setTimeout(async () => {
  console.error(`FAIL [${step}]: timed out after 120 s`);
  await browser?.close().catch(() => {});
  process.exit(1);
}, 120_000);

try {
  begin('create a session with the organization token');
  const created = await fetch(`${API_URL}/v1/customer-sessions/`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${ORG_TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ customer_id: CUSTOMER_ID }),
  });
  check(created.status === 201, `POST /v1/customer-sessions/ answered ${created.status}`);
  const session = await created.json();
  const token = session.token;
  const portalUrl = session.customer_portal_url;
  check(portalUrl.startsWith(`${SERVER_URL}/portal?`), `customer_portal_url is ${portalUrl}`);
  const customerName = session.customer.name;

  const args = [
    '--headless=new',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    `--ignore-certificate-errors-spki-list=${SPKI}`,
  ];
  if (DBSC) {
    args.push(
      '--enable-features=DeviceBoundSessions:RefreshQuota/false,' +
        'EnableBoundSessionCredentialsSoftwareKeysForManualTesting',
    );
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, args });
  const context = await browser.newContext();
  const page = await context.newPage();

  // The browser's own account of its DBSC sessions, beside what the server shows.
  const events = [];
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  let cdpEvents = false;
  if (DBSC) {
    try {
      await cdp.send('Network.enableDeviceBoundSessions', { enable: true });
      cdpEvents = true;
    } catch (error) {
      console.log(`   (no DBSC events over CDP: ${error.message})`);
    }
  }
  cdp.on('Network.deviceBoundSessionEventOccurred', (event) => events.push(event));

  // Every value the session cookie takes; the token may be one only without DBSC.
  const seen = new Set();
  const sessionCookie = async () => {
    const cookie = (await context.cookies()).find((c) => c.name === COOKIE_NAME);
    if (cookie) seen.add(cookie.value);
    return cookie;
  };
  const showsCustomer = async (what) => {
    const heading = await page.locator('h1').textContent();
    check(heading === customerName, `${what}: the page shows ${JSON.stringify(heading)}`);
  };

  begin('open customer_portal_url over https');
  const opened = await page.goto(portalUrl);
  check(opened.status() === 200, `the portal page answered ${opened.status()}`);
  check(new URL(page.url()).pathname === '/portal', `landed on ${page.url()}`);
  await showsCustomer('after the hand-off');

  if (DBSC) {
    begin('the browser registers: its cookie becomes a bound credential');
    let cookie;
    for (let i = 0; i < 100; i += 1) {
      cookie = await sessionCookie();
      if (cookie?.value.startsWith('dbsc1.')) break;
      await sleep(100);
    }
    check(cookie?.value.startsWith('dbsc1.'), `no bound credential: cookie is ${cookie?.value.slice(0, 12)}…`);
    check(!cookie.value.includes(token), 'the bound credential contains the token');
    check(cookie.httpOnly && cookie.secure, 'the bound credential is not HttpOnly and Secure');
    const lifetime = cookie.expires - Date.now() / 1000;
    check(lifetime > 0 && lifetime <= TTL_SECS + 1, `the bound credential lives ${lifetime} s`);
    const first = cookie.value;

    begin('after it expired, a navigation is held back, refreshed with a signed proof and served');
    await sleep((TTL_SECS + 1.5) * 1000);
    const later = await page.goto(`${SERVER_URL}/portal`);
    check(later.status() === 200, `the page after expiry answered ${later.status()}`);
    await showsCustomer('after expiry');
    cookie = await sessionCookie();
    check(cookie?.value.startsWith('dbsc1.'), 'no bound credential after the refresh');
    check(cookie.value !== first, 'the credential was not renewed');
    if (cdpEvents) {
      const text = JSON.stringify(events);
      check(text.includes('Success'), `no successful registration among the DBSC events: ${text}`);
      check(text.includes('Refreshed'), `no refresh among the DBSC events: ${text}`);
      console.log(`   (${events.length} DBSC events)`);
    }
  } else {
    begin("a browser without DBSC keeps today's cookie: the token, until the session ends");
    await sleep(1500);
    const cookie = await sessionCookie();
    check(cookie?.value === token, 'the cookie is not the session token');
    const sessionEnd = Date.parse(session.expires_at) / 1000;
    check(cookie.expires > sessionEnd - 60, `the cookie expires at ${cookie.expires}`);
    await sleep((TTL_SECS + 1) * 1000);
    const later = await page.goto(`${SERVER_URL}/portal`);
    check(later.status() === 200, `the page answered ${later.status()}`);
    await showsCustomer('later');
    check((await sessionCookie())?.value === token, 'the cookie changed');
  }

  begin('sign out');
  const [signedOut] = await Promise.all([
    page.waitForResponse(`${SERVER_URL}/portal/logout`),
    page.getByRole('button', { name: 'Sign out' }).click(),
  ]);
  check(signedOut.status() === 303, `logout answered ${signedOut.status()}`);
  await page.waitForURL(`${SERVER_URL}/portal`);
  check((await page.locator('h1').textContent()) === 'Sign-in link required', 'still signed in');
  const me = await fetch(`${API_URL}/v1/customer-portal/customers/me`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  check(me.status === 401, `the API still accepts the token (${me.status})`);

  begin('signed out for good: no refresh brings the session back');
  await sleep((TTL_SECS + 1) * 1000);
  const after = await page.goto(`${SERVER_URL}/portal`);
  check(after.status() === 401, `the page after sign-out answered ${after.status()}`);
  check((await sessionCookie()) === undefined, 'a session cookie came back');
  if (DBSC && cdpEvents) {
    const text = JSON.stringify(events);
    check(/[Tt]erminat/.test(text), `the DBSC session was not terminated: ${text}`);
  }

  begin('the token was never a cookie of a registered browser');
  const values = [...seen];
  if (DBSC) {
    // Before registration the hand-off's cookie is the token; afterwards never again.
    const firstBound = values.findIndex((v) => v.startsWith('dbsc1.'));
    check(firstBound >= 0, 'no bound credential seen');
    check(!values.slice(firstBound).includes(token), 'the token came back after registration');
  } else {
    check(values.every((v) => v === token), 'a cookie other than the token');
  }

  begin('done');
  console.log(`ok: dbsc browser flow (${DBSC ? 'with' : 'without'} DBSC)`);
  await browser.close();
  clearTimeout(watchdog);
} catch (error) {
  const detail = error instanceof StepFailure ? error.message : error.stack ?? String(error);
  console.error(`FAIL [${step}]: ${detail}`);
  await browser?.close().catch(() => {});
  process.exit(1);
}
