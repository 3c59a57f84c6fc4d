"""Polar's official Python SDK (`polar-sdk` 1.x) as a client of the portal example.

Run by tests/portal_e2e.rs against a live server. Environment:

    SERVER_URL   base URL of the server, e.g. http://127.0.0.1:3000
    ORG_TOKEN    the organization token it accepts
    CUSTOMER_ID  a seeded individual customer with an email and an external id

For every API version the SDK ships, it creates a customer session with the organization
token (by customer id, then by external id), then uses the returned customer session token
for the customer portal calls. The SDK deserializes every response strictly into its
generated models, so a missing key or a wrong type fails here.

Exit status: 0 when everything matches, 1 on a mismatch or an SDK error, 3 when the SDK
is not installed (the Rust test decides whether that is a skip or a failure).
"""

import os
import sys
import traceback

try:
    import polar
    from polar import v2026_04, v2026_10, v2027_01
except ImportError as error:
    print(f"SKIP: polar-sdk is not installed ({error})", file=sys.stderr)
    sys.exit(3)

VERSIONS = {"2026-04": v2026_04, "2026-10": v2026_10, "2027-01": v2027_01}


class Mismatch(Exception):
    pass


def expect(actual, expected, what):
    if actual != expected:
        raise Mismatch(f"{what}: expected {expected!r}, got {actual!r}")


def check_version(api, server_url, org_token, customer_id):
    with api.Polar(org_token, base_url=server_url) as merchant:
        session = merchant.customer_sessions.create(customer_id=customer_id)
        expect(session.customer_id, customer_id, "session.customer_id")
        expect(session.token.startswith("polar_cst_"), True, "token prefix")
        expect(session.token in session.customer_portal_url, True, "token in portal URL")
        customer = session.customer
        expect(type(customer).__name__, "CustomerIndividual", "customer model")

        by_external_id = merchant.customer_sessions.create(
            external_customer_id=customer.external_id,
            return_url="https://example.com/account",
        )
        expect(by_external_id.customer_id, customer_id, "customer_id by external id")
        expect(by_external_id.return_url, "https://example.com/account", "return_url")

        try:
            merchant.customer_sessions.create(customer_id="00000000-0000-4000-8000-000000000000")
            raise Mismatch("an unknown customer was accepted")
        except api.errors.HTTPValidationError as error:
            expect(error.status_code, 422, "unknown customer status")
            expect(error.error.detail[0].msg, "Customer does not exist.", "422 message")

    with api.Polar(session.token, base_url=server_url) as portal:
        me = portal.customer_portal.customers.get()
        expect(me.id, customer_id, "customers/me id")
        expect(me.email, customer.email, "customers/me email")
        expect(me.type, "individual", "customers/me type")

        introspected = portal.customer_portal.customer_session.introspect()
        expect(introspected.expires_at, session.expires_at, "introspect expires_at")

        user = portal.customer_portal.customer_session.get_authenticated_user()
        expect((user.type, user.customer_id, user.email), ("customer", customer_id, customer.email), "user")

    with api.Polar(by_external_id.token, base_url=server_url) as portal:
        expect(portal.customer_portal.customers.get().id, customer_id, "external-id session customer")

    with api.Polar(org_token, base_url=server_url) as not_a_session:
        try:
            not_a_session.customer_portal.customers.get()
            raise Mismatch("the organization token was accepted as a customer session")
        except polar.PolarClientError as error:
            expect(error.status_code, 401, "organization token on the portal")

    return me.email


def main():
    server_url = os.environ["SERVER_URL"]
    org_token = os.environ["ORG_TOKEN"]
    customer_id = os.environ["CUSTOMER_ID"]
    print(f"polar-sdk {polar.__version__}")
    for version, api in VERSIONS.items():
        try:
            email = check_version(api, server_url, org_token, customer_id)
        except Exception:  # any SDK or validation error is a failure of this version
            print(f"FAIL {version}", file=sys.stderr)
            traceback.print_exc()
            return 1
        print(f"ok {version}: customer {customer_id} <{email}>")
    return 0


if __name__ == "__main__":
    sys.exit(main())
