"""Drives a real flow through a Python client generated from /api/v1/openapi.json
(openapi-python-client): register, log in, list projects, book a unit, read the booking.
If the document understates or misstates what the server does, the generated models fail to
parse the answers here. Run by scripts/generated-client.sh; KAVLING_URL, KAVLING_ADMIN_EMAIL and
KAVLING_ADMIN_PASSWORD describe the server, and the generated package `kavling_client` is on
PYTHONPATH."""

import os
import sys
import uuid

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
print(f"generated client flow: {PASSED} passed, 0 failed")
