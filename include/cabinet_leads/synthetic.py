"""Deterministic synthetic data: a Peru-shaped, dirty fleet-partner data set plus its ground truth.

``seed(url, leads=N, seed=S, anchor=A, days=D)`` fills the four source tables of SPEC §3 and the
``demo`` ground-truth schema (``include/sql/demo/ground_truth.sql``) of a database. The same
``(leads, seed, anchor, days)`` on an empty database always yields byte-identical table contents:
the only source of randomness is one ``random.Random(seed)``, consumed in a fixed order; nothing
depends on set/dict-hash order, ``hash()`` or the clock (``updated_at`` is derived from the data).

What is generated (rates are approximate):

* **persons** – given names (1–2), paternal + maternal surname (Spanish/Quechua, with accents and
  ñ), a unique mobile ``9XXXXXXXX``, a unique DNI (8 digits; 3% carné de extranjería: 9 digits with
  leading zeros), a driver licence for 70% (letter + 8 digits, often letter + DNI), a plate for
  most drivers. 1% of persons bring a relative (same paternal surname mostly, other first name,
  own DNI) who uses the *same phone*; the relative gives their own DNI on 90% of sign-ups.
* **leads** – exactly ``leads`` rows; 8% of persons sign up 2–3 times. Every field is dirty:
  phone formats (``987654321``, ``+51 987 654 321``, ``0051…``, ``987-654-321``, ``51…``,
  ``0…``), a DNI typed into the phone field (3%), landlines, ``''`` and NULL; documents with
  separators or a check character, 15% missing; licences in any case with dashes, 50% missing;
  names in any case, with or without accents, surnames swapped, one-letter typos. A few leads
  carry unusable data (a 2,000+ character field or a date years ahead: ``invalid`` in the ground
  truth), one lead's first name is ``<script>alert(1)</script>``, and ~3% are created within ten
  minutes of Lima midnight.
* **drivers** – 55% of the persons who signed up get an account a few days after their first
  lead (5% of them a second account in another park); 10% of accounts belong to persons who never
  signed up. Cleaner data, still formatted in various ways, sometimes without phone or document.
* **driver_daily_trips** – 25% of driving persons never drive; the others drive casually,
  regularly or full time for a while, so milestones 1, 5 and 25 within 14 days are all reached.
  Some persons drive only on their second account.
* **milestone_claims** – ~75% of reached milestones are claimed (sometimes on the second
  account; approved, pending or a few rejected), the rest are deliberately left unclaimed; a few
  rejected claims exist for milestones that were never reached.

Everything is streamed into PostgreSQL with ``COPY``; 100k leads take a few seconds.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from array import array
from bisect import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg

from cabinet_leads import db

log = logging.getLogger(__name__)

try:
    LIMA: dt.tzinfo = ZoneInfo("America/Lima")
except ZoneInfoNotFoundError:  # no tz database on the host: Lima is UTC-5 all year anyway
    LIMA = dt.timezone(dt.timedelta(hours=-5), "America/Lima")
LIMA_OFFSET_S = 5 * 3600  # Peru has kept UTC-5 without DST since 1994
DAY_S = 86_400
EPOCH_ORD = dt.date(1970, 1, 1).toordinal()

SOURCE_TABLES = (
    "public.module_ct_cabinet_leads",
    "public.drivers",
    "public.driver_daily_trips",
    "public.milestone_claims",
)
DEMO_TABLES = ("demo.persons", "demo.lead_truth", "demo.driver_truth")
MILESTONES = (1, 5, 25)
WINDOW_DAYS = 14

# ----------------------------------------------------------------------------- vocabulary

MALE_NAMES = (
    "José", "Juan", "Luis", "Carlos", "Jorge", "Jesús", "Julio", "César", "Víctor", "Raúl",
    "Ángel", "Andrés", "Miguel", "Pedro", "Manuel", "Óscar", "Edwin", "Wilmer", "Nilton", "Elmer",
    "Percy", "Walter", "Hugo", "Fredy", "Alexander", "Christian", "Renzo", "Joaquín", "Martín",
    "Sebastián", "Adrián", "Efraín", "Germán", "Rubén", "Iván", "Yony", "Jhon", "Kevin", "Brayan",
    "Anthony",
)  # fmt: skip
FEMALE_NAMES = (
    "María", "Ana", "Rosa", "Carmen", "Luz", "Sofía", "Lucía", "Milagros", "Yesenia", "Ruth",
    "Gladys", "Flor", "Norma", "Elena", "Inés", "Mónica", "Verónica", "Raquel", "Belén", "Rocío",
    "Jazmín", "Maribel", "Yolanda", "Nélida", "Fiorella", "Katherine", "Mariela", "Sonia", "Zoila",
    "Dayana",
)  # fmt: skip
GIVEN_NAMES = MALE_NAMES + FEMALE_NAMES  # a person's given names come from one of the two halves

SURNAMES = (
    "Quispe", "Mamani", "Flores", "Huamán", "Rodríguez", "Núñez", "Peña", "García", "Sánchez",
    "Ramírez", "Torres", "Chávez", "Vásquez", "Gutiérrez", "Rojas", "Díaz", "Mendoza", "Espinoza",
    "Castillo", "Cóndor", "Ccori", "Huanca", "Apaza", "Ticona", "Yupanqui", "Chambi", "Condori",
    "Cusi", "Huillca", "Ñahui", "Ñaupari", "Mayta", "Pari", "Paucar", "Poma", "Inca", "Llanos",
    "Córdova", "Ibáñez", "Muñoz", "Zúñiga", "Cárdenas", "Pérez", "López", "Gómez", "Martínez",
    "Hernández", "Villanueva", "Vargas", "Salazar", "Cruz", "Silva", "Romero", "Ríos", "Ramos",
    "Medina", "Aguilar", "León", "Ortiz", "Guzmán", "Bustamante", "Benítez", "Carhuamaca",
    "Huaranga", "Taipe", "Ccahuana", "Sulca", "Quiñones", "Ñique", "Acuña", "Yáñez", "Montañez",
    "Arévalo", "Alarcón", "Tapia", "Soto", "Cahuana", "Laura", "Coaquira", "Chura",
)  # fmt: skip

PARKS = ("P-LIM-01", "P-LIM-02", "P-LIM-03", "P-CAL-01", "P-AQP-01", "P-TRU-01")
PARK_WEIGHTS = (30, 22, 15, 13, 12, 8)
SOURCES = ("web", "app", "referral", "facebook", "tiktok", "walk_in", None)
SOURCE_WEIGHTS = (45, 25, 12, 8, 5, 3, 2)
LICENSE_LETTERS = "QABCDEFHIJKLMNOPRSTUVWXYZ"
PLATE_LETTERS = "ABCDEFGHJKLMNPRSTUVWXZ"
LOWER = "abcdefghijklmnopqrstuvwxyz"
SCRIPT_NAME = "<script>alert(1)</script>"

_UNACCENT = str.maketrans("áéíóúüñÁÉÍÓÚÜÑ", "aeiouunAEIOUUN")

# Seed-independent bijections (affine maps modulo 10^k with multipliers coprime to 10): person ids
# map to unique phones/documents, also across several seeded batches (truncate=False).
_M_PHONE, _C_PHONE = 73_939_133, 12_345_671
_M_DNI, _C_DNI = 61_803_399, 40_123_457
_M_CE, _C_CE = 2_718_281, 314_159
# Licences not based on the DNI: _dni() of an input in [5e7, 1e8), never a person's own DNI input
_LICENSE_OTHER_SHIFT, _M_LICENSE = 50_000_000, 7_777_777


def _mobile(pid: int) -> str:
    return f"9{(pid * _M_PHONE + _C_PHONE) % 100_000_000:08d}"


def _dni(pid: int) -> str:
    return f"{(pid * _M_DNI + _C_DNI) % 100_000_000:08d}"


def _ce(pid: int) -> str:
    return f"{(pid * _M_CE + _C_CE) % 10_000_000:09d}"


def _dni_check_char(dni: str, letter: bool) -> str:
    """The DNI verification character (digit or letter), as printed on the card."""
    c = sum(w * int(n) for w, n in zip((3, 2, 7, 6, 5, 4, 3, 2), dni, strict=True)) % 11
    return ("KJIHGFEDCBA" if letter else "65432110987")[c]


def _chooser(items: Sequence[Any], weights: Sequence[float]) -> Callable[[float], Any]:
    """A weighted choice driven by one ``rng.random()`` value (fast and order-stable)."""
    cum = list(accumulate(weights))
    total = cum[-1]
    items = tuple(items)

    def pick(u: float) -> Any:
        return items[bisect(cum, u * total)]

    return pick


# ----------------------------------------------------------------------------- results


@dataclass
class SeedSummary:
    leads: int
    drivers: int
    persons: int
    trip_rows: int
    claims: int
    seconds: float


# ----------------------------------------------------------------------------- the generator


class _Generator:
    """Holds the population compactly (arrays of small ints) so a million leads fit in memory."""

    def __init__(
        self,
        *,
        leads: int,
        seed: int,
        anchor: dt.date,
        days: int,
        base_person: int,
        base_lead: int,
        base_driver: int,
        base_claim: int,
    ) -> None:
        self.n_leads = leads
        self.rng = random.Random(seed)
        self._u: Callable[[], float] = self.rng.random  # the one source of randomness, in [0, 1)
        self.anchor = anchor
        self.days = days
        self.anchor_day = anchor.toordinal()  # Lima-local day ordinal of the anchor
        self.anchor_ts = (self.anchor_day - EPOCH_ORD) * DAY_S + LIMA_OFFSET_S  # epoch s, 00:00 Lima
        self.base_person = base_person
        self.base_lead = base_lead
        self.base_driver = base_driver
        self.base_claim = base_claim
        self._date_cache: dict[int, str] = {}

        # persons (index i -> person_id base_person + i + 1)
        self.g1 = array("h")
        self.g2 = array("h")  # -1: no second given name
        self.pat = array("h")
        self.mat = array("h")
        self.is_ce = bytearray()
        self.lic_kind = bytearray()  # 0 none, 1 letter + DNI, 2 letter + other digits
        self.lic_letter = bytearray()
        self.home_park = bytearray()
        self.plate: list[str | None] = []
        self.phone_owner: dict[int, int] = {}  # relative index -> index of the person whose phone they use
        self.n_lead_persons = 0

        # sign-ups
        self.first_ts = array("q")  # per lead person; epoch seconds
        self.extra_ts: dict[int, list[int]] = {}
        self.lead_person = array("l")  # per sign-up (generation order)
        self.lead_keys: list[int] = []  # (ts << 32) | sign-up seq, sorted later into lead ids
        self.moved_to_future: dict[int, list[int]] = {}  # person -> original ts of invalid future leads

        # driver accounts (index a); ids assigned in hiring order
        self.acc_person = array("l")
        self.acc_hire = array("q")
        self.acc_park = bytearray()
        self.primary_acc: dict[int, int] = {}
        self.second_acc: dict[int, int] = {}
        self.acc_driver_id: list[str] = []
        self.acc_order: list[int] = []

        self.pick_park = _chooser(range(len(PARKS)), PARK_WEIGHTS)
        self.pick_source = _chooser(SOURCES, SOURCE_WEIGHTS)
        self.pick_phone_fmt = _chooser(
            ("plain", "intl_spaced", "0051", "dashed", "51", "0", "+51", "spaced"),
            (40, 15, 8, 10, 10, 5, 7, 5),
        )

    # ------------------------------------------------------------------ small helpers

    def _int(self, n: int) -> int:
        """Uniform integer in [0, n)."""
        return int(self._u() * n)

    def _date(self, day_ord: int) -> str:
        s = self._date_cache.get(day_ord)
        if s is None:
            s = self._date_cache[day_ord] = dt.date.fromordinal(day_ord).isoformat()
        return s

    def _ts(self, ts: int) -> str:
        """Epoch seconds as a Lima-local timestamptz literal (fast, no datetime objects)."""
        local = ts - LIMA_OFFSET_S
        day, sod = divmod(local, DAY_S)
        h, rem = divmod(sod, 3600)
        m, s = divmod(rem, 60)
        return f"{self._date(day + EPOCH_ORD)} {h:02d}:{m:02d}:{s:02d}-05"

    def _day(self, ts: int) -> int:
        """Lima-local day ordinal of an epoch timestamp."""
        return (ts - LIMA_OFFSET_S) // DAY_S + EPOCH_ORD

    def pid(self, i: int) -> int:
        return self.base_person + i + 1

    # ------------------------------------------------------------------ persons

    def _new_plate(self) -> str:
        L, r = PLATE_LETTERS, self._int
        if self._u() < 0.7:  # since 2010: A1B-234
            return f"{L[r(len(L))]}{r(10)}{L[r(len(L))]}-{r(10)}{r(10)}{r(10)}"
        return f"{L[r(len(L))]}{L[r(len(L))]}{L[r(len(L))]}-{r(10)}{r(10)}{r(10)}"

    def _add_person(
        self, *, pat: int | None = None, avoid_given: int = -1, licence_rate: float = 0.70
    ) -> int:
        i = len(self.g1)
        offset, n_names = (0, len(MALE_NAMES)) if self._u() < 0.85 else (len(MALE_NAMES), len(FEMALE_NAMES))
        g1 = offset + self._int(n_names)
        while g1 == avoid_given:
            g1 = offset + self._int(n_names)
        g2 = offset + self._int(n_names) if self._u() < 0.45 else -1
        if g2 == g1:
            g2 = -1
        self.g1.append(g1)
        self.g2.append(g2)
        self.pat.append(self._int(len(SURNAMES)) if pat is None else pat)
        self.mat.append(self._int(len(SURNAMES)))
        self.is_ce.append(1 if self._u() < 0.03 else 0)
        if self._u() < licence_rate:
            # letter + DNI is common; foreigners (CE) always get other digits
            self.lic_kind.append(2 if self.is_ce[i] or self._u() < 0.4 else 1)
            self.lic_letter.append(self._int(len(LICENSE_LETTERS)) if self._u() < 0.4 else 0)
            self.plate.append(self._new_plate() if self._u() < 0.9 else None)
        else:
            self.lic_kind.append(0)
            self.lic_letter.append(0)
            self.plate.append(self._new_plate() if self._u() < 0.3 else None)
        self.home_park.append(self.pick_park(self._u()))
        return i

    def phone_of(self, i: int) -> str:
        return _mobile(self.pid(self.phone_owner.get(i, i)))

    def doc_of(self, i: int) -> str:
        return _ce(self.pid(i)) if self.is_ce[i] else _dni(self.pid(i))

    def license_of(self, i: int) -> str | None:
        kind = self.lic_kind[i]
        if kind == 0:
            return None
        letter = LICENSE_LETTERS[self.lic_letter[i]]
        if kind == 1:
            return letter + _dni(self.pid(i))
        return letter + _dni(_LICENSE_OTHER_SHIFT + self.pid(i) * _M_LICENSE % _LICENSE_OTHER_SHIFT)

    def given_of(self, i: int) -> str:
        g2 = self.g2[i]
        return GIVEN_NAMES[self.g1[i]] if g2 < 0 else f"{GIVEN_NAMES[self.g1[i]]} {GIVEN_NAMES[g2]}"

    def surnames_of(self, i: int) -> str:
        return f"{SURNAMES[self.pat[i]]} {SURNAMES[self.mat[i]]}"

    def _signups(self, i: int, k: int) -> None:
        """k sign-ups of person i, spread over the window before the anchor."""
        rng_u = self._u
        d = self._int(self.days)
        day = self.anchor_day - self.days + d
        r = rng_u()
        if r < 0.03:  # within ten minutes of Lima midnight
            sod = DAY_S - 1 - self._int(600) if rng_u() < 0.5 else self._int(600)
        elif r < 0.30:
            sod = self._int(DAY_S)
        else:  # daytime-heavy: 06:00 .. 24:00, peak mid-afternoon
            sod = int(6 * 3600 + (rng_u() + rng_u()) * 9 * 3600) % DAY_S
        first = (day - EPOCH_ORD) * DAY_S + LIMA_OFFSET_S + sod
        self.first_ts.append(first)
        times = [first]
        for _ in range(k - 1):
            if rng_u() < 0.3:  # double submission, minutes apart
                t = times[-1] + 60 + self._int(3600)
            else:
                t = times[-1] + DAY_S + self._int(24 * DAY_S)
            if t >= self.anchor_ts:
                t = times[-1] + int(rng_u() * (self.anchor_ts - times[-1]))
            times.append(t)
        if k > 1:
            self.extra_ts[i] = times[1:]
        for t in times:
            seq = len(self.lead_person)
            self.lead_person.append(i)
            self.lead_keys.append((t << 32) | seq)

    def build_population(self) -> None:
        n = self.n_leads
        while len(self.lead_person) < n:
            i = self._add_person()
            r = self._u()
            k = 1 if r < 0.92 else (2 if r < 0.976 else 3)
            self._signups(i, min(k, n - len(self.lead_person)))
            if self._u() < 0.012 and len(self.lead_person) < n:
                # a relative who uses the same phone: other first name, usually same paternal surname
                pat = self.pat[i] if self._u() < 0.85 else None
                j = self._add_person(pat=pat, avoid_given=self.g1[i])
                self.phone_owner[j] = i
                k = 1 if self._u() < 0.85 else 2
                self._signups(j, min(k, n - len(self.lead_person)))
        self.n_lead_persons = len(self.g1)

    # ------------------------------------------------------------------ driver accounts

    def _add_account(self, i: int, hire: int, park: int) -> int:
        a = len(self.acc_person)
        self.acc_person.append(i)
        self.acc_hire.append(hire)
        self.acc_park.append(park)
        return a

    def build_accounts(self) -> None:
        u = self._u
        for i in range(self.n_lead_persons):
            if u() >= (0.70 if self.lic_kind[i] else 0.20):
                continue
            r = u()
            if r < 0.1:  # same day, a few hours later
                delay = 3600 + self._int(10 * 3600)
            else:
                delay = DAY_S + self._int(9 * DAY_S)
            hire = self.first_ts[i] + delay
            if hire >= self.anchor_ts:
                continue  # not hired yet
            self.primary_acc[i] = self._add_account(i, hire, self.home_park[i])
            if u() < 0.05:
                hire2 = hire + 3 * DAY_S + self._int(37 * DAY_S)
                if hire2 < self.anchor_ts:
                    park2 = (self.home_park[i] + 1 + self._int(len(PARKS) - 1)) % len(PARKS)
                    self.second_acc[i] = self._add_account(i, hire2, park2)
        # drivers who never signed up as leads: ~10% of all accounts
        n_extra = round(len(self.acc_person) / 9)
        span = (self.days + 90) * DAY_S
        for _ in range(n_extra):
            i = self._add_person(licence_rate=0.95)
            hire = self.anchor_ts - 1 - self._int(span)
            self.primary_acc[i] = self._add_account(i, hire, self.home_park[i])
        order = sorted(range(len(self.acc_person)), key=lambda a: (self.acc_hire[a], a))
        ids = [""] * len(order)
        for n, a in enumerate(order, start=self.base_driver + 1):
            ids[a] = f"D{n:07d}"
        self.acc_driver_id = ids
        self.acc_order = order

    # ------------------------------------------------------------------ dirty renderings

    def _phone_text(self, national9: str) -> str:
        fmt = self.pick_phone_fmt(self._u())
        n = national9
        if fmt == "plain":
            return n
        if fmt == "intl_spaced":
            return f"+51 {n[:3]} {n[3:6]} {n[6:]}"
        if fmt == "0051":
            return "0051" + n
        if fmt == "dashed":
            return f"{n[:3]}-{n[3:6]}-{n[6:]}"
        if fmt == "51":
            return "51" + n
        if fmt == "0":
            return "0" + n
        if fmt == "+51":
            return "+51" + n
        return f"{n[:3]} {n[3:6]} {n[6:]}"

    def _landline(self) -> str:
        digits = f"{2 + self._int(7)}{self._int(1_000_000):06d}"
        return f"(01) {digits}" if self._u() < 0.5 else "01" + digits

    def _missing(self) -> str | None:
        return "" if self._u() < 0.6 else None

    def _doc_text(self, i: int) -> str:
        doc = self.doc_of(i)
        r = self._u()
        if self.is_ce[i]:
            if r < 0.8:
                return doc
            return f"{doc[:3]}-{doc[3:6]}-{doc[6:]}" if r < 0.9 else f" {doc}"
        if r < 0.70:
            return doc
        if r < 0.77:
            return f"{doc[:2]} {doc[2:5]} {doc[5:]}"
        if r < 0.84:
            return f"{doc[:2]}.{doc[2:5]}.{doc[5:]}"
        if r < 0.90:
            return f"{doc[:2]}-{doc[2:5]}-{doc[5:]}"
        if r < 0.96:
            return f" {doc} "
        return f"{doc}-{_dni_check_char(doc, self._u() < 0.3)}"  # with the card's check character

    def _license_text(self, lic: str) -> str:
        r = self._u()
        if r < 0.5:
            return lic
        if r < 0.7:
            return lic.lower()
        if r < 0.9:
            return f"{lic[0]}-{lic[1:]}"
        return f"{lic[0].lower()} {lic[1:]}"

    def _plate_text(self, plate: str) -> str:
        r = self._u()
        if r < 0.6:
            return plate
        if r < 0.85:
            return plate.replace("-", "")
        if r < 0.95:
            return plate.lower()
        return plate.replace("-", " ")

    def _typo(self, s: str) -> str:
        if len(s) < 3:
            return s
        p = 1 + self._int(len(s) - 2)
        op = self._int(4)
        if op == 0:
            return s[:p] + LOWER[self._int(26)] + s[p + 1 :]
        if op == 1:
            return s[:p] + s[p + 1 :]
        if op == 2:
            return s[:p] + s[p] + s[p:]
        return s[: p - 1] + s[p] + s[p - 1] + s[p + 1 :]

    def _case(self, s: str) -> str:
        r = self._u()
        if r < 0.5:
            return s
        if r < 0.8:
            return s.upper()
        if r < 0.95:
            return s.lower()
        return f" {s} "

    def _lead_names(self, i: int) -> tuple[str | None, str | None]:
        u = self._u
        g2 = self.g2[i]
        given = GIVEN_NAMES[self.g1[i]]
        if g2 >= 0 and u() < 0.7:
            given = f"{given} {GIVEN_NAMES[g2]}"
        pat, mat = SURNAMES[self.pat[i]], SURNAMES[self.mat[i]]
        r = u()
        if r < 0.10:
            last = f"{mat} {pat}"  # surnames swapped (maternal first, legal since 2021)
        elif r < 0.18:
            last = pat
        else:
            last = f"{pat} {mat}"
        if u() < 0.4:
            given = given.translate(_UNACCENT)
            last = last.translate(_UNACCENT)
        if u() < 0.03:
            if u() < 0.5:
                given = self._typo(given)
            else:
                last = self._typo(last)
        if u() < 0.02:  # everything typed into first_name
            return self._case(f"{given} {last}"), self._missing()
        return self._case(given), self._case(last)

    def lead_row(self, lead_id: int, i: int, ts: int, invalid: str | None, script: bool) -> tuple:
        u = self._u
        first, last = self._lead_names(i)
        if script:
            first = SCRIPT_NAME
        shares_phone = i in self.phone_owner
        r = u()
        if r < 0.03:
            phone: str | None = self.doc_of(i)  # the DNI typed into the phone field
        elif r < 0.05:
            phone = self._landline()
        elif r < 0.08:
            phone = ""
        elif r < 0.10:
            phone = None
        else:
            phone = self._phone_text(self.phone_of(i))
        doc = self._missing() if u() < (0.10 if shares_phone else 0.15) else self._doc_text(i)
        lic = self.license_of(i)
        if lic is None:
            r = u()
            lic_text = ("-", "N/A", "0")[self._int(3)] if r < 0.01 else (None if r < 0.7 else "")
        elif u() < 0.5:
            lic_text = self._missing()
        else:
            lic_text = self._license_text(lic)
        plate = self.plate[i]
        plate_text = self._plate_text(plate) if plate is not None and u() < 0.4 else None
        park = PARKS[self.home_park[i] if u() < 0.9 else self.pick_park(u())]
        source = self.pick_source(u())
        external_id = None if u() < 0.0002 else f"CAB-{lead_id:07d}"
        r = u()
        updated = ts + 60 * self._int(180) if r < 0.95 else ts + self._int(10 * DAY_S)
        if updated >= self.anchor_ts > ts:
            updated = ts + int(u() * (self.anchor_ts - ts))
        if invalid == "future":
            ts = updated = ts + (3 + self._int(6)) * 365 * DAY_S
        elif invalid == "long_first_name":
            first = ((first or "Juan") + " ") * (2_000 // max(1, len(first or "Juan")) + 1)
        elif invalid == "long_phone":
            phone = "9" * (2_000 + self._int(500))
        elif invalid == "long_document":
            doc = "1" * (2_000 + self._int(500))
        return (
            lead_id,
            external_id,
            self._ts(ts),
            first,
            last,
            phone,
            doc,
            lic_text,
            plate_text,
            park,
            source,
            self._ts(updated),
        )

    def driver_row(self, a: int) -> tuple:
        u = self._u
        i = self.acc_person[a]
        given, last = self.given_of(i), self.surnames_of(i)
        r = u()
        if r < 0.25:
            given, last = given.upper(), last.upper()
        elif r < 0.32:
            given, last = given.translate(_UNACCENT), last.translate(_UNACCENT)
        r = u()
        phone = self._missing() if r < 0.03 else self._phone_text(self.phone_of(i))
        r = u()
        if r < 0.03:
            doc = self._missing()
        elif r < 0.80:
            doc = self.doc_of(i)
        else:
            doc = self._doc_text(i)
        lic = self.license_of(i)
        lic_text = None if lic is None or u() < 0.05 else (lic if u() < 0.7 else self._license_text(lic))
        plate = self.plate[i]
        hire = self.acc_hire[a]
        updated = hire + self._int(30 * DAY_S)
        if updated >= self.anchor_ts:
            updated = hire + int(u() * (self.anchor_ts - hire))
        return (
            self.acc_driver_id[a],
            PARKS[self.acc_park[a]],
            given,
            last,
            phone,
            doc,
            lic_text,
            plate,
            self._ts(hire),
            self._ts(updated),
        )

    # ------------------------------------------------------------------ trips and claims

    def _drive(self, a: int) -> dict[int, int]:
        """Daily completed trips of one account: a profile, a start shortly after hiring, a churn."""
        u = self._u
        r = u()
        if r < 0.4:
            p, lo, hi = 0.30, 0, 4  # casual
        elif r < 0.8:
            p, lo, hi = 0.60, 1, 10  # regular
        else:
            p, lo, hi = 0.85, 5, 15  # full time
        start = self._day(self.acc_hire[a]) + self._int(5)
        r = u()
        span = 3 + self._int(12) if r < 0.35 else (15 + self._int(31) if r < 0.75 else 10_000)
        end = min(start + span, self.anchor_day - 1)
        out: dict[int, int] = {}
        width = hi - lo + 1
        for day in range(start, end + 1):
            if u() < p:
                out[day] = lo + int(u() * width)
        return out

    def _lead_days(self, i: int) -> list[int]:
        if i >= self.n_lead_persons:
            return []
        moved = self.moved_to_future.get(i, ())
        times = [self.first_ts[i], *self.extra_ts.get(i, ())]
        return [self._day(t) for t in times if t not in moved]


# ----------------------------------------------------------------------------- loading


def _bases(conn: psycopg.Connection) -> tuple[int, int, int, int]:
    """Highest ids already present (all zero after a truncate), so appended batches do not collide."""
    row = conn.execute(
        "select"
        " (select coalesce(max(person_id), 0) from demo.persons),"
        " (select coalesce(max(id), 0) from public.module_ct_cabinet_leads),"
        " (select coalesce(max(substr(driver_id, 2)::bigint), 0) from public.drivers"
        "   where driver_id ~ '^D[0-9]{1,18}$'),"
        " (select coalesce(max(substr(claim_id, 3)::bigint), 0) from public.milestone_claims"
        "   where claim_id ~ '^CL[0-9]{1,18}$')"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def _phase(name: str, started: float) -> None:
    log.debug("seed: %s done at %.2fs", name, time.perf_counter() - started)


def lima_today() -> dt.date:
    return dt.datetime.now(LIMA).date()


class ExistingDataError(db.DatabaseError):
    """The source tables hold rows seed() did not write: replacing them needs an explicit override."""


def _source_counts(conn: psycopg.Connection) -> dict[str, int]:
    row = conn.execute(
        "select " + ", ".join(f"(select count(*) from {t})" for t in SOURCE_TABLES)  # noqa: S608 - constants
    ).fetchone()
    assert row is not None
    return dict(zip(SOURCE_TABLES, (int(n) for n in row), strict=True))


def _marker(conn: psycopg.Connection) -> dict[str, int] | None:
    """The row counts the last seed() recorded, or None when this database was never seeded."""
    if conn.execute("select to_regclass('demo.seed_marker')").fetchone()[0] is not None:
        rows = conn.execute("select table_name, row_count from demo.seed_marker").fetchall()
        return {t: int(n) for t, n in rows} or None
    if conn.execute("select to_regclass('demo.driver_truth')").fetchone()[0] is None:
        return None
    # Seeded before the marker existed: the ground truth covers exactly the leads and the drivers.
    legacy = conn.execute(
        "select (select count(*) from public.module_ct_cabinet_leads) = (select count(*) from demo.lead_truth)"
        " and (select count(*) from public.module_ct_cabinet_leads) ="
        "     (select count(*) from public.module_ct_cabinet_leads l join demo.lead_truth t on t.lead_id = l.id)"
        " and (select count(*) from public.drivers) = (select count(*) from demo.driver_truth)"
        " and (select count(*) from public.drivers) ="
        "     (select count(*) from public.drivers d join demo.driver_truth t using (driver_id))"
    ).fetchone()[0]
    return _source_counts(conn) if legacy else None


def _where(conn: psycopg.Connection) -> str:
    """Which database, for a message (from the live connection: never a password)."""
    info = conn.info
    place = f"socket {info.host}" if info.host.startswith("/") else f"{info.host}:{info.port}"
    return f"database {info.dbname!r} ({place})"


def seed(
    url: str,
    *,
    leads: int,
    seed: int = 42,
    anchor: dt.date | None = None,
    days: int = 120,
    truncate: bool = True,
    replace_existing_data: bool = False,
) -> SeedSummary:
    """Fill the source tables and the ``demo`` ground truth with a deterministic synthetic data set.

    ``url`` is a libpq URL. ``anchor`` (default: today in Lima) is the day after the last sign-up
    day; leads are created over the ``days`` days before it. With ``truncate`` the four source
    tables, the demo tables and every table the job derived (``db.DERIVED_TABLES``) are emptied
    first (identities restarted); without it the new rows are appended with ids after the existing
    ones. Everything is loaded in one transaction; afterwards the lead id identity continues after
    the highest id, so upstream inserts with a default id keep working.

    Seeding never replaces data it did not write: when a source table holds rows and the row counts
    differ from those recorded in ``demo.seed_marker`` by the last seed (or there is none),
    :class:`ExistingDataError` is raised and nothing changes, unless ``replace_existing_data``.
    """
    if leads < 0:
        raise ValueError("leads must be >= 0")
    if days < 1:
        raise ValueError("days must be >= 1")
    started = time.perf_counter()
    anchor = anchor or lima_today()

    with psycopg.connect(db.libpq_url(url)) as conn:
        # one seed at a time, and no upstream writes between the check and the load
        conn.execute(f"lock table {', '.join(SOURCE_TABLES)} in exclusive mode")
        before = _source_counts(conn)
        ours = not any(before.values()) or _marker(conn) == before
        if truncate and not ours and not replace_existing_data:
            counts = ", ".join(f"{t} {n}" for t, n in before.items())
            raise ExistingDataError(
                f"refusing to seed {_where(conn)}: its source tables hold rows seed did not write ({counts}); "
                "point DATABASE_URL at a scratch database, or pass --replace-existing-data to delete them"
            )
        conn.execute(db.read_sql("demo/ground_truth.sql"))
        if truncate:
            conn.execute(f"truncate {', '.join(SOURCE_TABLES + DEMO_TABLES)} restart identity")
            db.reset_derived(conn)
        base_person, base_lead, base_driver, base_claim = _bases(conn)
        if base_person + 2 * leads >= _LICENSE_OTHER_SHIFT:
            raise ValueError("too many persons for unique synthetic phones and documents (limit ~25M leads)")
        g = _Generator(
            leads=leads,
            seed=seed,
            anchor=anchor,
            days=days,
            base_person=base_person,
            base_lead=base_lead,
            base_driver=base_driver,
            base_claim=base_claim,
        )
        g.build_population()
        g.build_accounts()
        _phase("population", started)
        cur = conn.cursor()

        # ---- leads, in creation order (lead ids follow lead_created_at, as in the cabinet)
        g.lead_keys.sort()
        n_invalid = max(1, round(leads * 0.0005)) if leads >= 100 else 0
        special = g.rng.sample(range(leads), min(leads, n_invalid + 1))
        invalid_kinds = ("long_first_name", "long_phone", "long_document", "future")
        invalid_at = {pos: invalid_kinds[g._int(len(invalid_kinds))] for pos in special[1:]}
        script_at = special[0] if special else -1
        truth_person = array("l")
        mask = (1 << 32) - 1
        with cur.copy(
            "copy public.module_ct_cabinet_leads (id, external_id, lead_created_at, first_name,"
            " last_name, phone, document_number, license_number, plate, park_id, source, updated_at)"
            " from stdin"
        ) as copy:
            write = copy.write_row
            lead_person, row_fn = g.lead_person, g.lead_row
            for pos, key in enumerate(g.lead_keys):
                i = lead_person[key & mask]
                truth_person.append(i)
                invalid = invalid_at.get(pos)
                if invalid == "future":  # its 14-day window is gone: no milestone can come from it
                    g.moved_to_future.setdefault(i, []).append(key >> 32)
                write(row_fn(base_lead + pos + 1, i, key >> 32, invalid, pos == script_at))
        del g.lead_keys

        _phase("leads", started)
        # ---- driver accounts, in hiring order
        with cur.copy(
            "copy public.drivers (driver_id, park_id, first_name, last_name, phone, document_number,"
            " license_number, plate, hired_at, updated_at) from stdin"
        ) as copy:
            for a in g.acc_order:
                copy.write_row(g.driver_row(a))

        _phase("drivers", started)
        # ---- trips (person by person, across accounts) and the claims they lead to
        claims: list[tuple[int, str, int, str]] = []
        trip_rows = 0
        u = g._u
        with cur.copy(
            "copy public.driver_daily_trips (driver_id, trip_date, completed_trips) from stdin"
        ) as copy:
            # plain text lines: driver ids, dates and counts never need COPY escaping
            buf: list[str] = []
            date_of = g._date
            for i in range(len(g.g1)):
                a1 = g.primary_acc.get(i)
                if a1 is None:
                    continue
                a2 = g.second_acc.get(i)
                if u() < 0.25:  # never drives (a few still get a claim, rejected)
                    _claims_for(g, i, a1, a2, [], claims)
                    continue
                accounts = [a1] if a2 is None else [a1, a2]
                if a2 is not None:
                    r = u()
                    if r < 0.3:
                        accounts = [a2]  # drives on the second account only
                    elif r < 0.6:
                        accounts = [a1]
                per_acc = []
                for a in accounts:
                    trips = g._drive(a)
                    did = g.acc_driver_id[a]
                    buf.extend(f"{did}\t{date_of(day)}\t{n}\n" for day, n in trips.items())
                    trip_rows += len(trips)
                    per_acc.append((a, trips))
                _claims_for(g, i, a1, a2, per_acc, claims)
                if len(buf) >= 8192:
                    copy.write("".join(buf))
                    buf.clear()
            copy.write("".join(buf))

        claims.sort()
        with cur.copy(
            "copy public.milestone_claims (claim_id, driver_id, milestone, claimed_at, status) from stdin"
        ) as copy:
            for n, (when, did, milestone, status) in enumerate(claims, start=base_claim + 1):
                copy.write_row((f"CL{n:08d}", did, milestone, g._ts(when), status))

        _phase("trips and claims", started)
        # ---- ground truth
        with cur.copy(
            "copy demo.persons (person_id, first_name, last_name, phone_e164, doc, doc_type, license,"
            " plate, shares_phone_with) from stdin"
        ) as copy:
            owner_of = g.phone_owner
            for i in range(len(g.g1)):
                owner = owner_of.get(i)
                copy.write_row(
                    (
                        g.pid(i),
                        g.given_of(i),
                        g.surnames_of(i),
                        "+51" + g.phone_of(i),
                        g.doc_of(i),
                        "CE" if g.is_ce[i] else "DNI",
                        g.license_of(i),
                        g.plate[i],
                        None if owner is None else g.pid(owner),
                    )
                )
        with cur.copy("copy demo.lead_truth (lead_id, person_id, invalid) from stdin") as copy:
            for pos, i in enumerate(truth_person):
                copy.write_row((base_lead + pos + 1, g.pid(i), pos in invalid_at))
        with cur.copy("copy demo.driver_truth (driver_id, person_id) from stdin") as copy:
            for a in g.acc_order:
                copy.write_row((g.acc_driver_id[a], g.pid(g.acc_person[a])))
        # COPY with explicit ids does not advance the identity: continue after the highest id
        conn.execute(
            "select setval(pg_get_serial_sequence('public.module_ct_cabinet_leads', 'id'),"
            " coalesce(max(id), 0) + 1, false) from public.module_ct_cabinet_leads"
        )
        conn.execute("delete from demo.seed_marker")
        if ours or truncate:  # appended to data seed did not write: stays unmarked
            cur.executemany(
                "insert into demo.seed_marker (table_name, row_count) values (%s, %s)",
                list(_source_counts(conn).items()),
            )
        conn.commit()
        _phase("ground truth and commit", started)

        conn.autocommit = True
        for table in SOURCE_TABLES + DEMO_TABLES:
            conn.execute(f"analyze {table}")
        _phase("analyze", started)

    summary = SeedSummary(
        leads=leads,
        drivers=len(g.acc_person),
        persons=len(g.g1),
        trip_rows=trip_rows,
        claims=len(claims),
        seconds=round(time.perf_counter() - started, 3),
    )
    log.info("seeded %s", summary)
    return summary


def _claims_for(
    g: _Generator,
    i: int,
    a1: int,
    a2: int | None,
    per_acc: list[tuple[int, dict[int, int]]],
    out: list[tuple[int, str, int, str]],
) -> None:
    """Claims of person i (a lead person with a driver account).

    Each milestone reached within some lead's 14-day window is claimed with probability 0.75, on
    the account that drove most in that window (sometimes on the person's other account). A
    milestone nobody reached is, rarely, claimed anyway and rejected.
    """
    if i >= g.n_lead_persons:
        return  # drivers who never were leads earn no lead bonus
    # per milestone: the earliest (day, account that drove most in that window) over the lead windows
    reached_at: dict[int, tuple[int, int]] = {}
    if per_acc:
        for start in sorted(g._lead_days(i)):
            total = 0
            by_acc = [0] * len(per_acc)
            pending = [m for m in MILESTONES if m not in reached_at or reached_at[m][0] > start]
            for day in range(start, start + WINDOW_DAYS):
                if not pending:
                    break
                for k, (_a, trips) in enumerate(per_acc):
                    n = trips.get(day, 0)
                    total += n
                    by_acc[k] += n
                while pending and total >= pending[0]:
                    best = 0
                    for k in range(1, len(per_acc)):
                        if by_acc[k] > by_acc[best]:
                            best = k
                    m = pending.pop(0)
                    if m not in reached_at or day < reached_at[m][0]:
                        reached_at[m] = (day, per_acc[best][0])
    u = g._u
    for milestone in MILESTONES:
        reached = reached_at.get(milestone)
        if reached is None:
            if u() < 0.005:  # a bogus claim: rejected by the platform
                when = g.acc_hire[a1] + g._int(max(1, g.anchor_ts - g.acc_hire[a1]))
                out.append((when, g.acc_driver_id[a1], milestone, "rejected"))
            continue
        if u() >= 0.75:
            continue  # deliberately unclaimed: money left on the table
        day, acc = reached
        if a2 is not None and u() < 0.2:
            acc = a2 if acc == a1 else a1
        when = (day + 1 - EPOCH_ORD) * DAY_S + LIMA_OFFSET_S + g._int(10 * DAY_S)
        if when < g.acc_hire[acc]:  # claimed on an account hired after the milestone was reached
            when = g.acc_hire[acc] + g._int(3 * DAY_S)
        if when >= g.anchor_ts:
            continue  # not claimed yet
        r = u()
        status = "rejected" if r < 0.03 else ("pending" if r < 0.25 else "approved")
        out.append((when, g.acc_driver_id[acc], milestone, status))
