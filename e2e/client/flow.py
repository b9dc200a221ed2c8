"""Drives a real flow through a Python client generated from /api/v1/openapi.json
(openapi-python-client): register, log in, list projects, book a unit, read the booking.
If the document understates or misstates what the server does, the generated models fail to
parse the answers here. Run by scripts/generated-client.sh; KAVLING_URL, KAVLING_ADMIN_EMAIL and
KAVLING_ADMIN_PASSWORD describe the server, and the generated package `kavling_client` is on
PYTHONPATH."""

import os
import random
import re
import sys
import uuid

import httpx

from kavling_client import AuthenticatedClient, Client
from kavling_client.api.auth import login, me, register
from kavling_client.api.bookings import create_bookings, get_bookings
from kavling_client.api.projects import list_projects
from kavling_client.api.units import list_projects_units
from kavling_client.models import (
    BookingStatus,
    BookingView,
    LoginInput,
    NewBooking,
    NewCustomer,
    PageProjectView,
    PageUnitView,
    RegisterInput,
    Role,
    Session,
    UnitStatus,
    UserView,
)

BASE = os.environ["KAVLING_URL"].rstrip("/")


PASSED = 0


def check(cond, what):
    global PASSED
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        print(f"generated client flow: {PASSED} passed, 1 failed")
        sys.exit(1)
    PASSED += 1
    print(f"ok: {what}")


anon = Client(base_url=BASE, raise_on_unexpected_status=True)

email = f"buyer-{uuid.uuid4().hex[:12]}@client.test"
res = register.sync_detailed(
    client=anon,
    body=RegisterInput(email=email, password="generated-client-1", full_name="Budi Generated", role=Role.BUYER),
)
check(res.status_code == 201 and isinstance(res.parsed, Session), f"register answers 201 with a session ({res.status_code})")
check(res.parsed.user.email == email and res.parsed.user.role == Role.BUYER, "the new user is a buyer")

res = login.sync_detailed(client=anon, body=LoginInput(email=email, password="generated-client-1"))
check(res.status_code == 200 and isinstance(res.parsed, Session), "the buyer logs in")
buyer = AuthenticatedClient(base_url=BASE, token=res.parsed.token, raise_on_unexpected_status=True)
who = me.sync(client=buyer)
check(isinstance(who, UserView) and who.email == email, "GET /me parses as UserView")

staff_session = login.sync(
    client=anon,
    body=LoginInput(email=os.environ["KAVLING_ADMIN_EMAIL"], password=os.environ["KAVLING_ADMIN_PASSWORD"]),
)
check(isinstance(staff_session, Session), "the admin logs in")
staff = AuthenticatedClient(base_url=BASE, token=staff_session.token, raise_on_unexpected_status=True)

projects = list_projects.sync(client=anon)
check(isinstance(projects, PageProjectView) and projects.meta.pagination.total >= 1, "projects list with pagination")
project = projects.data[0]

units = list_projects_units.sync(client=anon, id=project.id)
check(isinstance(units, PageUnitView), "the project's units parse as a page")
free = [u for u in units.data if u.status == UnitStatus.AVAILABLE]
check(len(free) > 0, "an available unit exists")
unit = free[0]

res = create_bookings.sync_detailed(
    client=staff,
    body=NewBooking(
        unit_id=unit.id,
        booking_fee=5_000_000,
        customer=NewCustomer(name="Siti Generated", phone="081234567890"),
    ),
)
check(res.status_code == 201 and isinstance(res.parsed, BookingView), f"the booking is created ({res.status_code})")
booking = res.parsed
check(booking.status == BookingStatus.PENDING_PAYMENT, "a new booking waits for payment")
check(booking.booking_code.startswith("BK-"), f"booking code {booking.booking_code}")

read = get_bookings.sync(client=staff, id=booking.id)
check(isinstance(read, BookingView) and read.id == booking.id and read.unit.id == unit.id, "the booking reads back")

units = list_projects_units.sync(client=anon, id=project.id)
check(any(u.id == unit.id and u.status == UnitStatus.BOOKED for u in units.data), "the unit is BOOKED")

# The document's patterns are the server's rules, not approximations: for a spread of NIKs, NPWPs
# and phones (real and impossible dates, women's days, leap years, separators), the pattern read
# by Python's `re` (as generators and schemathesis read it) accepts exactly what the server does.
doc = httpx.get(f"{BASE}/api/v1/openapi.json").json()
fields = doc["components"]["schemas"]["NewCustomer"]["properties"]
# JSON Schema patterns are ECMA-262, where `$` ends the text; Python's `$` also matches before a
# final newline, so it is read as Python's `\Z` (what schemathesis does too).
patterns = {
    name: re.compile(re.sub(r"\$$", r"\\Z", fields[name]["pattern"]))
    for name in ("ktpNumber", "npwpNumber", "phone")
}
rng = random.Random(20261205)
niks = []
for yy in range(0, 100, 3):
    for dd, mm in ((29, 2), (69, 2), (28, 2), (31, 4), (71, 12), (30, 11), (0, 5), (40, 5), (32, 1), (15, 13)):
        niks.append(f"3201{rng.randint(10, 99)}{dd:02}{mm:02}{yy:02}{rng.randint(0, 9999):04}")
niks += ["00010115059000010", "0001011505900001", "3201011505900000", "32.01.01-150590.0001", "3201 0115 0590 0001 ",
         "(32)0101150590/0001", "3201011505900001\n", "320101150590000", "3201015505900002", ""]
cases = [("ktpNumber", v) for v in niks]
cases += [("npwpNumber", v) for v in ("09.254.294.3-407.000", "012345678901234", "0123456789012345", "01234567890123", "0123-4567-8901-234x", " ")]
cases += [("phone", v) for v in ("081234567890", "+62 812-3456-7890", "6281234567", "0812345678901", "08123456789012", "0212345678", "+081234567890", "(0812) 345.678")]
agree = 0
for n, (field, value) in enumerate(cases):
    body = {"name": f"Pola {n}", "phone": "081234567890"}
    body[field] = value
    res = httpx.post(f"{BASE}/api/v1/customers", json=body, headers={"Authorization": f"Bearer {staff_session.token}"})
    refused_field = res.status_code == 422 and any(e["field"] == field for e in res.json().get("errors", []))
    server_accepts = res.status_code in (201, 409)
    schema_accepts = patterns[field].search(value) is not None
    if schema_accepts != server_accepts or (not server_accepts and not refused_field):
        check(False, f"{field}={value!r}: the pattern says {schema_accepts}, the server {res.status_code} {res.text}")
    agree += 1
check(agree == len(cases), f"the document's patterns and the server agree on {agree} values")
print(f"generated client flow: {PASSED} passed, 0 failed")
