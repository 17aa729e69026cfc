"""Normalisation of the identity keys of a lead or a driver account (SPEC §3, §4).

Pure Python: no Airflow, no database. Every public function is *total* (it never raises, whatever
``str`` or ``None`` it is given) and *idempotent* (normalising a normalised value gives it back).

Strong keys (a match on one of them may create a link, SPEC §4):

``PHONE``
    E.164 Peruvian **mobile** number, ``+519XXXXXXXX``. Google's ``phonenumbers`` is the authority
    (region ``PE``, valid, type ``MOBILE``); :func:`_phone_via_phonenumbers` is that reference
    implementation. It costs ~50 µs per value, so :func:`normalize_phone` first tries
    :func:`_phone_fast`, which decides the common shapes (``987654321``, ``+51 987 654 321``,
    ``0051987654321``, ``(+51) 987-654-321``, ``0987654321`` ...) and the obvious non-numbers with
    two regular expressions, and defers everything else to phonenumbers. The unit tests prove with
    hypothesis that both give the same answer. An 8-digit value (a DNI typed into the phone field, a
    Lima landline such as ``12345678`` or ``014567890``) is never a phone. Placeholder mobiles made
    of a 9 and eight equal digits (``999999999``, ``900000000``) are rejected as well (by both
    paths), because a value shared by thousands of unrelated leads must never become a strong key.

``DOC``
    ``DNI:<8 digits>`` or ``CE:<9-12 upper alphanumerics>`` (carné de extranjería). Rules, applied to
    the value after an optional leading label (``DNI``, ``D.N.I.``, ``CE``, ``C.E.``, ``carné``,
    optionally followed by ``N°``/``Nro.`` and ``:``) is removed and spaces, dots and dashes are
    dropped:

    * 8 digits: a DNI (but labelled ``CE``: rejected, the label and the shape disagree).
    * 9 characters, the first 8 digits (the 9-digit rule): a DNI with its check character when it is
      labelled ``DNI``, or written with a separator before the last character (``12345678-9``), or
      when the last character is a letter (``12345678K``); the check character must then be valid
      (``stdnum.pe.cui``), otherwise the value is rejected (a wrong check character means a typo
      somewhere, and a wrong strong key is worse than none). Any other 9-digit value
      (``001234567``, ``123456789``, or anything labelled ``CE``) is a carné.
    * 11 digits forming a valid RUC (``stdnum.pe.ruc``): a person's RUC ``10<DNI><check>`` yields
      that DNI; any other RUC (a company's) is rejected. Invalid RUC-looking values fall through.
    * 9-12 alphanumerics with at least one digit: a carné (``CE:<UPPER>``).
    * Everything else, and placeholders made of one repeated character (``00000000``), is rejected.

``LICENSE``
    Upper-case alphanumerics after dropping separators; 6-12 characters, at least one digit, not one
    repeated character.

Weak keys (evidence only, never a link on their own): the plate (``A1B234``, ``ABC123``,
``AB1234``) and the names (:func:`fold_name`, :func:`name_similarity`, :func:`given_names_conflict`).

:func:`normalize_record` normalises a whole source row into :class:`NormalizedKeys` and explains in
``problems`` every field that was filled in but rejected. It costs a few microseconds for typical
rows (``bench/normalize_bench.py``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA
from stdnum.pe import cui, ruc

__all__ = [
    "NormalizedKeys",
    "fold_name",
    "given_names_conflict",
    "name_similarity",
    "normalize_doc",
    "normalize_license",
    "normalize_phone",
    "normalize_plate",
    "normalize_record",
]

# --------------------------------------------------------------------------------------------------
# Phone
# --------------------------------------------------------------------------------------------------

# phonenumbers refuses (raises TOO_LONG) any input longer than this, before looking at it.
_PHONENUMBERS_MAX_INPUT = 250

# Common shapes, decided without phonenumbers. Optional country code (51, +51, 0051, (+51), (51),
# with spaces), optional national prefix 0, then the mobile number: 9 and 8 digits, with at most one
# space/dot/dash between two digits. The result is always +51 and the last nine digits.
_PHONE_FAST_MOBILE = re.compile(
    r"\s*"
    r"(?:(?:\+ *|00 *)?51|\( *(?:\+ *|00 *)?51 *\))?"
    r"[ .\-]*"
    r"(?:0[ .\-]*)?"
    r"(9(?:[ .\-]?[0-9]){8})"
    r"\s*",
    re.ASCII,
)
# Without any (Unicode) digit, phonenumbers cannot find a number at all.
_ANY_DIGIT = re.compile(r"\d")
# phonenumbers turns letters into keypad digits (vanity numbers) only when there are 3+ ASCII letters.
_ASCII_LETTER = re.compile(r"[A-Za-z]")
_MOBILE_DIGITS = 9
# 9 followed by eight equal digits: form placeholders, not somebody's phone.
_PLACEHOLDER_PHONES = frozenset("+519" + d * 8 for d in "0123456789")

_DEFER = object()  # _phone_fast: "ask phonenumbers"


def _e164_mobile_via_phonenumbers(raw: str) -> str | None:
    """phonenumbers' verdict: the E.164 form if `raw` is a valid Peruvian mobile number, else None."""
    try:
        num = phonenumbers.parse(raw, "PE")
    except Exception:  # NumberParseException, or anything else the parser trips on: not a phone
        return None
    if (
        num.country_code == 51
        and phonenumbers.is_valid_number(num)
        and phonenumbers.number_type(num) == phonenumbers.PhoneNumberType.MOBILE
    ):
        return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    return None


def _phone_via_phonenumbers(raw: str | None) -> str | None:
    """Reference implementation of :func:`normalize_phone` (slow, ~50 µs): phonenumbers only."""
    if not isinstance(raw, str):
        return None
    e164 = _e164_mobile_via_phonenumbers(raw)
    return None if e164 in _PLACEHOLDER_PHONES else e164


def _phone_fast(raw: str) -> object:
    """The answer for the shapes it recognises (E.164 string or None), else ``_DEFER``.

    Every answer it gives equals phonenumbers' answer (proved by the unit tests).
    """
    if raw.isascii() and raw.isdigit():  # the usual spelling: bare digits
        if len(raw) < _MOBILE_DIGITS:
            return None
        if len(raw) == _MOBILE_DIGITS:
            e164 = "+51" + raw
            return None if raw[0] != "9" or e164 in _PLACEHOLDER_PHONES else e164
    elif not raw or raw.isspace():
        return None
    if len(raw) > _PHONENUMBERS_MAX_INPUT:
        return None
    m = _PHONE_FAST_MOBILE.fullmatch(raw)
    if m is not None:
        digits = m.group(1)
        if len(digits) != 9:
            digits = digits.replace(" ", "").replace("-", "").replace(".", "")
        e164 = "+51" + digits
        return None if e164 in _PLACEHOLDER_PHONES else e164
    if _ASCII_LETTER.search(raw) is None:
        # Only digits and punctuation: the national number (9 and eight digits) is a run of the
        # input's digits, so fewer than nine digits, or exactly nine not starting with a 9 (a
        # landline with its 0 prefix such as 014567890), cannot be a mobile.
        digits = 0
        first = ""
        for m in _ANY_DIGIT.finditer(raw):
            if not digits:
                first = m.group()
            digits += 1
            if digits > _MOBILE_DIGITS:
                return _DEFER
        if digits < _MOBILE_DIGITS or unicodedata.digit(first, -1) != 9:
            return None
        return _DEFER
    if _ANY_DIGIT.search(raw) is None:
        return None
    return _DEFER


def normalize_phone(raw: str | None) -> str | None:
    """``'+51987654321'`` for a Peruvian mobile number in any usual spelling, else None."""
    if not isinstance(raw, str):
        return None
    result = _phone_fast(raw)
    if result is _DEFER:
        return _phone_via_phonenumbers(raw)
    return result  # type: ignore[return-value]


_EIGHT_DIGITS_PLAIN = re.compile(r"\s*[1-9](?:[ .\-]?[0-9]){7}\s*", re.ASCII)


def _phone_problem(raw: str) -> str:
    """Why a filled-in phone value was rejected (only called for rejected values)."""
    if _EIGHT_DIGITS_PLAIN.fullmatch(raw):
        return "phone: 8-digit value looks like a DNI, not a mobile"
    if len(raw) > _PHONENUMBERS_MAX_INPUT:
        return "phone: not a phone number (too long)"
    try:
        num = phonenumbers.parse(raw, "PE")
    except Exception:
        return "phone: not a phone number"
    if num.country_code != 51:
        return f"phone: foreign number (+{num.country_code}), not a Peruvian mobile"
    valid = phonenumbers.is_valid_number(num)
    kind = phonenumbers.number_type(num)
    if valid and kind == phonenumbers.PhoneNumberType.FIXED_LINE:
        return "phone: landline"
    if valid and kind == phonenumbers.PhoneNumberType.MOBILE:
        return "phone: placeholder value"
    return "phone: not a valid Peruvian mobile number"


# --------------------------------------------------------------------------------------------------
# Shared helpers for DOC / LICENSE / PLATE
# --------------------------------------------------------------------------------------------------

# Separators dropped inside identifiers: whitespace, dots, dashes (ASCII and Unicode), underscores.
_ID_SEPARATORS = re.compile(r"[\s.\-_\u2010-\u2015\u2212]+")
_ID_SEPARATOR_CHARS = frozenset(" \t\r\n\f\v.-_\u2010\u2011\u2012\u2013\u2014\u2015\u2212")
_UPPER_ALNUM = re.compile(r"[A-Z0-9]+", re.ASCII)


def _compact_id(raw: str) -> str:
    """Upper-case `raw` without separators; compatibility forms (full-width digits ...) folded."""
    if raw.isascii():
        if raw.isalnum():
            return raw.upper()
    else:
        raw = unicodedata.normalize("NFKC", raw)
    return _ID_SEPARATORS.sub("", raw).upper()


def _is_blank(raw: str | None) -> bool:
    """True for values that mean "not filled in": None, '', only punctuation, 'N/A', 'null' ..."""
    if not isinstance(raw, str):
        return True
    if len(raw) > 40:
        return False
    folded = _fold_part(raw)
    return folded == "" or folded in _NULL_TOKENS


_NULL_TOKENS = frozenset(
    {
        "na",
        "n a",
        "nd",
        "n d",
        "null",
        "none",
        "nan",
        "nil",
        "sin dato",
        "sin datos",
        "no tiene",
        "ninguno",
        "ninguna",
        "no",
        "sn",
        "s n",
        "x",
        "xx",
        "xxx",
        "0",
    }
)


# --------------------------------------------------------------------------------------------------
# DOC
# --------------------------------------------------------------------------------------------------

# Optional leading label: DNI / D.N.I. / CE / C.E. / carné [de extranjería], then optionally N° / Nro.
# and ':' / '#'. The label must not run into a letter ('CEX1' is not labelled), it may run into digits.
_DOC_LABEL = re.compile(
    r"\s*(?:(?P<dni>d\s*\.?\s*n\s*\.?\s*i)|(?P<ce>c\s*\.?\s*e|carn[eé]t?(?:\s+de\s+extranjer[ií]a)?))"
    r"(?![a-zA-Z])\s*\.?\s*"
    r"(?:(?:n[°º]|nro\.?|no\.|n\.°?|num\.?|n[uú]mero)(?![a-zA-Z])\s*)?"
    r"[:#]?\s*",
    re.IGNORECASE,
)
_DNI_CHECK_CHAR = re.compile(r"[0-9]{8}[0-9A-Z]", re.ASCII)


def _doc(raw: str) -> tuple[str | None, str]:
    """(normalised DOC or None, problem note when rejected)."""
    if len(raw) == 8 and raw.isascii() and raw.isdigit():  # the usual spelling
        if len(set(raw)) == 1:
            return None, "doc: placeholder value"
        return "DNI:" + raw, ""
    if len(raw) > 100:
        return None, "doc: not a DNI or carné (too long)"
    label = None
    m = _DOC_LABEL.match(raw)
    if m is not None:
        label = "DNI" if m.group("dni") else "CE"
        raw = raw[m.end() :]
    value = raw.strip()
    sep_before_last = len(value) >= 2 and value[-2] in _ID_SEPARATOR_CHARS
    c = _compact_id(value)
    if not c or _UPPER_ALNUM.fullmatch(c) is None:
        return None, "doc: not a DNI or carné"
    n = len(c)
    body = c[:8] if n == 9 and c[:8].isdigit() else c
    if len(set(body)) == 1 and n >= 6:
        return None, "doc: placeholder value"
    if n == 8 and c.isdigit():
        if label == "CE":
            return None, "doc: labelled CE but has the 8 digits of a DNI"
        return "DNI:" + c, ""
    if n == 9 and _DNI_CHECK_CHAR.fullmatch(c):
        dni_with_check = label == "DNI" or (label is None and (sep_before_last or not c[8].isdigit()))
        if dni_with_check:
            if cui.is_valid(c):
                return "DNI:" + c[:8], ""
            return None, "doc: DNI check character does not match"
        return "CE:" + c, ""
    if label == "DNI":
        return None, "doc: labelled DNI but not 8 digits"
    if n == 11 and label is None and c.isdigit() and ruc.is_valid(c):
        if c.startswith("10"):
            dni = c[2:10]
            if len(set(dni)) == 1:
                return None, "doc: placeholder value"
            return "DNI:" + dni, ""
        return None, "doc: RUC without a DNI in it (not 10...), not a DNI or carné"
    if 9 <= n <= 12 and not c.isalpha():
        return "CE:" + c, ""
    if n == 7 and c.isdigit():
        return None, "doc: 7 digits, not a DNI (leading zero lost?)"
    return None, "doc: not a DNI or carné"


def normalize_doc(raw: str | None) -> str | None:
    """``'DNI:12345678'`` or ``'CE:001234567'`` (rules in the module docstring), else None."""
    if not isinstance(raw, str):
        return None
    return _doc(raw)[0]


# --------------------------------------------------------------------------------------------------
# LICENSE, PLATE
# --------------------------------------------------------------------------------------------------

_LICENSE = re.compile(r"[A-Z0-9]{6,12}", re.ASCII)
_HAS_DIGIT = re.compile(r"[0-9]", re.ASCII)
_PLATE = re.compile(r"[A-Z][0-9][A-Z][0-9]{3}|[A-Z]{3}[0-9]{3}|[A-Z]{2}[0-9]{4}", re.ASCII)


def normalize_license(raw: str | None) -> str | None:
    """``'Q12345678'``: 6-12 upper-case alphanumerics with a digit, not one repeated character."""
    if not isinstance(raw, str) or len(raw) > 100:
        return None
    c = _compact_id(raw)
    if _LICENSE.fullmatch(c) is None or _HAS_DIGIT.search(c) is None or len(set(c)) == 1:
        return None
    return c


def normalize_plate(raw: str | None) -> str | None:
    """``'A1B234'`` / ``'ABC123'`` / ``'AB1234'`` (Peruvian plate shapes), else None."""
    if not isinstance(raw, str) or len(raw) > 100:
        return None
    c = _compact_id(raw)
    return c if _PLATE.fullmatch(c) is not None else None


# --------------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------------

_APOSTROPHES = "'`\u2018\u2019\u02bc\u00b4"
# ASCII fast path: apostrophes vanish (O'Brien -> obrien), other punctuation becomes a space.
_ASCII_FOLD = str.maketrans(
    {
        **{chr(i): " " for i in range(128) if not chr(i).isalnum()},
        **{a: None for a in _APOSTROPHES if a.isascii()},
    }
)
_DROP_APOSTROPHES = str.maketrans({a: None for a in _APOSTROPHES})


def _fold_unicode_once(s: str) -> str:
    s = unicodedata.normalize("NFKD", s.translate(_DROP_APOSTROPHES))
    s = unicodedata.normalize("NFKD", s.casefold())
    s = "".join(ch if ch.isalnum() else " " for ch in s if not unicodedata.combining(ch))
    return " ".join(s.split())


@lru_cache(maxsize=65536)
def _fold_part(s: str) -> str:
    if s.isascii():
        return " ".join(s.translate(_ASCII_FOLD).lower().split())
    # Exotic compatibility characters may need a second pass; iterate to the fixed point.
    out = _fold_unicode_once(s)
    for _ in range(4):
        again = _fold_unicode_once(out)
        if again == out:
            break
        out = again
    return out


def fold_name(*parts: str | None) -> str:
    """``fold_name('José', 'Ñáñez-Peña')`` == ``'jose nanez pena'``: lower case, accents and ñ
    folded, punctuation removed (apostrophes dropped, other marks become spaces), single spaces;
    ``''`` when nothing is left."""
    folded = [_fold_part(p) for p in parts if isinstance(p, str) and p]
    return " ".join(f for f in folded if f)


def name_similarity(a: str | None, b: str | None) -> int:
    """0..100, rapidfuzz ``token_set_ratio`` of the folded names (word order does not matter, and a
    name whose words are all in the other one scores 100). 0 when either name is empty."""
    fa, fb = fold_name(a), fold_name(b)
    if not fa or not fb:
        return 0
    return int(round(fuzz.token_set_ratio(fa, fb)))


# Given names: particles ignored, usual abbreviations expanded.
_GIVEN_PARTICLES = frozenset({"de", "del", "la", "las", "los", "y", "e"})
_GIVEN_ALIASES = {"ma": "maria", "fco": "francisco"}
_DOUBLED = re.compile(r"(.)\1+")


def _given_key(token: str) -> str:
    """A light Spanish spelling key: Jhon/John, Lizbeth/Lisbeth, Yesica/Jessica, Cristhian/Christian,
    Vanesa/Vanessa come out equal. Applied to both sides, so it never creates a difference."""
    t = token.replace("h", "")
    if t[:1] == "y" and len(t) > 1:
        t = "j" + t[1:]
    t = t.replace("y", "i").replace("z", "s").replace("v", "b").replace("k", "c")
    return _DOUBLED.sub(r"\1", t) or token


def _gender_pair(x: str, y: str) -> bool:
    """Mario/Maria, Julio/Julia, Juan/Juana, Luis/Luisa, Vicente/Vicenta: related but different."""
    if len(x) == len(y) and x[:-1] == y[:-1] and {x[-1], y[-1]} in ({"a", "o"}, {"a", "e"}):
        return True
    return x + "a" == y or y + "a" == x


def _same_given(x: str, y: str) -> bool:
    if x == y:
        return True
    if len(x) == 1 or len(y) == 1:  # an initial
        return x[0] == y[0]
    if _gender_pair(x, y):
        return False
    kx, ky = _given_key(x), _given_key(y)
    if kx == ky:
        return True
    if kx[0] != ky[0]:  # typos rarely hit the first letter: Raul/Saul, Mario/Dario differ
        return False
    longest = max(len(kx), len(ky))
    budget = 0 if longest <= 3 else (1 if longest <= 8 else 2)
    return OSA.distance(kx, ky, score_cutoff=budget) <= budget


def _given_tokens(name: str | None) -> list[str]:
    tokens = fold_name(name).split()
    kept = [t for t in tokens if t not in _GIVEN_PARTICLES]
    return [_GIVEN_ALIASES.get(t, t) for t in (kept or tokens)]


def given_names_conflict(first_a: str | None, first_b: str | None) -> bool:
    """True only when both given names are present and clearly different.

    Both names are folded (:func:`fold_name`) and split into words (particles such as ``del``
    ignored, ``Ma.`` read as ``María``). There is no conflict when every word of the name with fewer
    words matches some word of the other one (so ``Juan Carlos`` vs ``Juan`` or ``Carlos`` is fine,
    ``Juan Carlos`` vs ``Juan Pablo`` is a conflict). Two words match when they are equal, when one
    is an initial of the other, when their Spanish spelling keys are equal (Jhon/John), or when -
    with the same first letter - they are within the typo threshold: rapidfuzz OSA distance (a
    transposition counts as one edit) of at most 1 for words up to 8 letters, 2 for longer words,
    and 0 for words of up to 3 letters (Ana/Ada differ). Masculine/feminine pairs (Mario/Maria,
    Juan/Juana, Luis/Luisa) are always a conflict: siblings sharing a phone are common.

    Known limits of "clearly": single-edit pairs such as Marco/Mario or Maria/Marina are treated as
    possible typos (no conflict).
    """
    ta, tb = _given_tokens(first_a), _given_tokens(first_b)
    if not ta or not tb:
        return False
    short, long_ = (ta, tb) if len(ta) <= len(tb) else (tb, ta)
    return not all(any(_same_given(s, t) for t in long_) for s in short)


# --------------------------------------------------------------------------------------------------
# Whole record
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NormalizedKeys:
    phone: str | None
    doc: str | None
    license: str | None
    plate: str | None
    name: str  # fold_name(first_name, last_name)
    given_name: str  # fold_name(first_name)
    problems: tuple[str, ...]  # notes on fields that were filled in but rejected

    @property
    def strong_keys(self) -> dict[str, str]:
        """The valid strong keys, in the order PHONE, DOC, LICENSE."""
        keys: dict[str, str] = {}
        if self.phone is not None:
            keys["PHONE"] = self.phone
        if self.doc is not None:
            keys["DOC"] = self.doc
        if self.license is not None:
            keys["LICENSE"] = self.license
        return keys


def normalize_record(
    first_name: str | None,
    last_name: str | None,
    phone: str | None,
    document_number: str | None,
    license_number: str | None,
    plate: str | None,
) -> NormalizedKeys:
    """Normalise one source row (lead or driver account). Never raises."""
    problems: list[str] = []

    p = normalize_phone(phone)
    if p is None and not _is_blank(phone):
        problems.append(_phone_problem(phone))  # type: ignore[arg-type]

    d: str | None = None
    if isinstance(document_number, str):
        d, why = _doc(document_number)
        if d is None and not _is_blank(document_number):
            problems.append(why)
    # The phone typed into the document field as well: not a carné.
    if p is not None and d is not None and d == "CE:" + p[3:]:
        d = None
        problems.append("doc: same value as the phone, not a carné")

    lic = normalize_license(license_number)
    if lic is None and not _is_blank(license_number):
        problems.append("license: not 6-12 letters and digits with at least one digit")

    pl = normalize_plate(plate)
    if pl is None and not _is_blank(plate):
        problems.append("plate: not a Peruvian plate (A1B234, ABC123, AB1234)")

    first = _fold_part(first_name) if isinstance(first_name, str) else ""
    last = _fold_part(last_name) if isinstance(last_name, str) else ""
    name = f"{first} {last}" if first and last else (first or last)
    return NormalizedKeys(
        phone=p, doc=d, license=lic, plate=pl, name=name, given_name=first, problems=tuple(problems)
    )
