// Polar's official JavaScript SDK (`@polar-sh/sdk` 1.x) as a client of the portal example.
//
// Run by tests/portal_e2e.rs against a live server, with SERVER_URL, ORG_TOKEN and
// CUSTOMER_ID in the environment (see python_client.py, which checks the same things).
//
// Exit status: 0 when everything matches, 1 on a mismatch or an SDK error, 3 when the SDK
// is not installed (`npm ci` in tests/sdk/).

const VERSIONS = ["2026-04", "2026-10", "2027-01"];

async function load(version) {
  try {
    return await import(`@polar-sh/sdk/${version}`);
  } catch (error) {
    if (error?.code === "ERR_MODULE_NOT_FOUND") {
      console.error(`SKIP: @polar-sh/sdk is not installed (${error.message})`);
      process.exit(3);
    }
    throw error;
  }
}

function expect(actual, expected, what) {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

async function checkVersion(api, baseUrl, orgToken, customerId) {
  const merchant = api.createPolar({ accessToken: orgToken, baseUrl });
  const session = await merchant.customerSessions.create({ customer_id: customerId });
  expect(session.customer_id, customerId, "session.customer_id");
  expect(session.token.startsWith("polar_cst_"), true, "token prefix");
  expect(session.customer_portal_url.includes(session.token), true, "token in portal URL");
  const customer = session.customer;
  expect(customer.type, "individual", "customer type");

  const byExternalId = await merchant.customerSessions.create({
    external_customer_id: customer.external_id,
    return_url: "https://example.com/account",
  });
  expect(byExternalId.customer_id, customerId, "customer_id by external id");
  expect(byExternalId.return_url, "https://example.com/account", "return_url");

  try {
    await merchant.customerSessions.create({ customer_id: "00000000-0000-4000-8000-000000000000" });
    throw new Error("an unknown customer was accepted");
  } catch (error) {
    if (!(error instanceof api.errors.HTTPValidationError)) throw error;
    expect(error.statusCode, 422, "unknown customer status");
    expect(error.error.detail[0].msg, "Customer does not exist.", "422 message");
  }

  const portal = api.createPolar({ accessToken: session.token, baseUrl });
  const me = await portal.customerPortal.customers.get();
  expect(me.id, customerId, "customers/me id");
  expect(me.email, customer.email, "customers/me email");
  expect(me.type, "individual", "customers/me type");

  const introspected = await portal.customerPortal.customerSession.introspect();
  expect(introspected.expires_at, session.expires_at, "introspect expires_at");

  const user = await portal.customerPortal.customerSession.getAuthenticatedUser();
  expect([user.type, user.customer_id, user.email], ["customer", customerId, customer.email], "user");

  const viaExternalId = api.createPolar({ accessToken: byExternalId.token, baseUrl });
  expect((await viaExternalId.customerPortal.customers.get()).id, customerId, "external-id session customer");

  try {
    await merchant.customerPortal.customers.get();
    throw new Error("the organization token was accepted as a customer session");
  } catch (error) {
    if (error?.statusCode !== 401) throw error;
  }
  return me.email;
}

const { SERVER_URL, ORG_TOKEN, CUSTOMER_ID } = process.env;
for (const version of VERSIONS) {
  const api = await load(version);
  try {
    const email = await checkVersion(api, SERVER_URL, ORG_TOKEN, CUSTOMER_ID);
    console.log(`ok ${version}: customer ${CUSTOMER_ID} <${email}>`);
  } catch (error) {
    console.error(`FAIL ${version}:`, error);
    process.exit(1);
  }
}
