"""Micro-benchmark of cabinet_leads.normalize (figures only, no assertions).

    .venv/bin/python bench/normalize_bench.py [N]

Generates N (default 200,000) phone values in the shapes seen in the cabinet (mostly mobiles in the
usual spellings, some DNIs / landlines / junk typed into the phone field), then prints µs per value
for the fast path (``normalize_phone``) and for the phonenumbers reference
(``_phone_via_phonenumbers``), and µs per row for ``normalize_record`` on rows built from them and on
rows with a 1,000,000-character field (refused on its length).
"""

from __future__ import annotations

import random
import sys
import time

from cabinet_leads import normalize as nz

FIRST = ["José", "Juan Carlos", "María del Carmen", "LUIS", "ana", "Jhon", "Rosa Elena", "Miguel Ángel"]
LAST = ["Ñáñez Peña", "García Pérez", "QUISPE MAMANI", "Rojas", "Flores Huamán", "de la Cruz Soto"]


def _mobile(rng: random.Random) -> str:
    d = "9" + "".join(rng.choice("0123456789") for _ in range(8))
    return rng.choice(
        [
            d,
            d,
            d,
            f"+51{d}",
            f"+51 {d[:3]} {d[3:6]} {d[6:]}",
            f"51{d}",
            f"0051{d}",
            f"{d[:3]}-{d[3:6]}-{d[6:]}",
            f"0{d}",
            f"(+51) {d}",
        ]
    )


def phone_values(n: int, seed: int = 20240601) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.85:
            out.append(_mobile(rng))
        elif r < 0.90:
            out.append("".join(rng.choice("0123456789") for _ in range(8)))  # DNI / landline
        elif r < 0.93:
            out.append("01" + "".join(rng.choice("0123456789") for _ in range(7)))  # Lima landline
        elif r < 0.98:
            out.append("")
        else:
            out.append(rng.choice(["N/A", "no tengo", "-", "Tel: 987 654 321", "+1 415 555 2671"]))
    return out


def rows(phones: list[str], seed: int = 7) -> list[tuple[str, str, str, str, str, str]]:
    rng = random.Random(seed)
    out = []
    for p in phones:
        dni = "".join(rng.choice("0123456789") for _ in range(8))
        doc = rng.choice([dni, dni, f"DNI {dni}", f"{dni[:2]}.{dni[2:5]}.{dni[5:]}", "", "0" + dni])
        lic = rng.choice([f"Q{dni}", f"q-{dni}", "", f"A{dni[:7]}"])
        plate = rng.choice(["A1B-234", "abc123", "", "AB 1234", "X9Z-001"])
        out.append((rng.choice(FIRST), rng.choice(LAST), p, doc, lic, plate))
    return out


def per_value_us(fn, values) -> float:
    start = time.perf_counter()
    for v in values:
        fn(v)
    return (time.perf_counter() - start) / len(values) * 1e6


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    phones = phone_values(n)
    deferred = sum(nz._phone_fast(v) is nz._DEFER for v in phones)
    print(f"{n:,} phone values, {deferred / n:.1%} deferred by the fast path to phonenumbers")

    fast = per_value_us(nz.normalize_phone, phones)
    slow = per_value_us(nz._phone_via_phonenumbers, phones)
    print(f"normalize_phone (fast path)        {fast:8.2f} µs/value")
    print(f"_phone_via_phonenumbers (reference) {slow:7.2f} µs/value   ({slow / fast:.0f}x)")

    mobiles = [v for v in phones if nz._phone_fast(v) not in (None, nz._DEFER)]
    fast_m = per_value_us(nz.normalize_phone, mobiles)
    slow_m = per_value_us(nz._phone_via_phonenumbers, mobiles)
    print(
        f"  mobiles only ({len(mobiles):,}): fast {fast_m:.2f} µs/value, phonenumbers {slow_m:.2f} µs/value"
    )

    data = rows(phones)
    nz._fold_part.cache_clear()
    start = time.perf_counter()
    for r in data:
        nz.normalize_record(*r)
    rec = (time.perf_counter() - start) / len(data) * 1e6
    print(f"normalize_record                   {rec:8.2f} µs/row")

    typical = [r for r in data if nz._phone_fast(r[2]) is not nz._DEFER]
    start = time.perf_counter()
    for r in typical:
        nz.normalize_record(*r)
    rec_typ = (time.perf_counter() - start) / len(typical) * 1e6
    print(f"normalize_record (fast-path phones) {rec_typ:7.2f} µs/row")

    huge = "9" * 1_000_000  # refused on its length (MAX_FIELD_LENGTH) before any work
    over = [(huge, *r[1:]) for r in typical[:1000]] + [(*r[:3], huge, *r[4:]) for r in typical[:1000]]
    print(
        f"normalize_record (a 1,000,000-char field) {per_value_us(lambda r: nz.normalize_record(*r), over):4.2f} µs/row"
    )


if __name__ == "__main__":
    main()
