"""Normalisation of the identity keys of a lead or a driver account (SPEC §3, §4).

Pure Python: no Airflow, no database. Every public function is *total* (it never raises, whatever
``str`` or ``None`` it is given), *idempotent* (normalising a normalised value gives it back) and
*bounded*: an input longer than :data:`MAX_FIELD_LENGTH` characters is refused (its length is
checked before anything else, so a 1,000,000-character value costs nothing), and no result is ever
longer than :data:`MAX_FIELD_LENGTH`.

Strong keys (a match on one of them may create a link, SPEC §4):

``PHONE``
    E.164 Peruvian **mobile** number, ``+519XXXXXXXX``. Google's ``phonenumbers`` is the authority
    (region ``PE``, valid, type ``MOBILE``); :func:`_phone_via_phonenumbers` is that reference
    implementation. It costs ~50 µs per value, so :func:`normalize_phone` first tries
    :func:`_phone_fast`, which decides the common shapes (``984217563``, ``+51 984 217 563``,
    ``0051984217563``, ``(+51) 984-217-563``, ``0984217563`` ...) and the obvious non-numbers with
    two regular expressions, and defers everything else to phonenumbers. The unit tests prove with
    hypothesis that both give the same answer. An 8-digit value (a DNI typed into the phone field, a
    Lima landline such as ``12345678`` or ``014567890``) is never a phone. Placeholder mobiles
    (:data:`PLACEHOLDER_PHONES`, see *Placeholders*) are rejected by both paths.

``DOC``
    ``DNI:<8 digits>`` or ``CE:<9-12 upper alphanumerics>`` (carné de extranjería). Leading labels
    are removed first: at most one kind label (``DNI``, ``D.N.I.``, ``Documento nacional de
    identidad``, ``CE``, ``C.E.``, ``carné [de extranjería]``, or the neutral ``Doc``, ``Doc.``,
    ``Documento [de identidad]``), then optionally a number label (``N°``, ``Nº``, ``N.``, ``N.°``,
    ``Nro``, ``Nro.``, ``No.``, ``No``, ``Num``, ``Num.``, ``Núm.``, ``Número``, optionally followed
    by ``de <kind label>``), and ``:`` / ``#`` anywhere in between (``#45873216``, ``Documento:
    ...``, ``N° de documento: ...``). A kind label may run into the digits (``dni45873216``); the
    word number labels must be followed by a space, ``.``, ``:``, ``#`` or ``°`` (``NRO1234567``
    stays a carné-shaped value, so a normalised carné is never re-read as a label). Only the
    ``DNI``/``CE`` labels say which document it is. Then spaces, dots and dashes are dropped and:

    * 8 digits: a DNI (but labelled ``CE``: rejected, the label and the shape disagree).
    * 9 characters, the first 8 digits (the 9-digit rule): a DNI with its check character when it is
      labelled ``DNI``, or written with a separator before the last character (``45873216-2``), or
      when the last character is a letter (``45873216G``); the check character must then be valid
      (``stdnum.pe.cui``), otherwise the value is rejected (a wrong check character means a typo
      somewhere, and a wrong strong key is worse than none). Any other 9-digit value
      (``001234567``, ``123456780``, or anything labelled ``CE``) is a carné.
    * 11 digits forming a valid RUC (``stdnum.pe.ruc``): a person's RUC ``10<DNI><check>`` yields
      that DNI; any other RUC (a company's) is rejected. Invalid RUC-looking values fall through.
    * 9-12 alphanumerics with at least one digit: a carné (``CE:<UPPER>``).
    * Everything else is rejected, notably a value with no digit once the label is removed
      (``Nro. ABCDEFGHI``), placeholders (:data:`PLACEHOLDER_DOCS`) and values of 6+ characters
      made of one repeated character.

``LICENSE``
    Upper-case alphanumerics after dropping separators; 6-12 characters, at least one digit, not one
    repeated character, and not a placeholder: the digits after at most two leading letters must not
    be in :data:`PLACEHOLDER_DIGITS` (``123456789``, ``Q12345678``, ``A87654321``, ``Q1234567``).
    Peruvian licences are usually a letter and the holder's DNI, so ``Q`` + a real DNI is accepted
    and ``Q`` + a placeholder DNI is not.

Weak keys (evidence only, never a link on their own): the plate (``A1B234``, ``ABC123``,
``AB1234``) and the names (:func:`fold_name`, :func:`name_similarity`, :func:`given_names_conflict`).

Placeholders
    A value typed by hundreds of unrelated people to get past a form (phone ``987654321``, DNI
    ``12345678``, licence ``987654321``) must never become a strong key: every record carrying it
    would be merged into one person. The rejected shapes are the digit strings of 7 to 12 digits in
    :data:`PLACEHOLDER_DIGITS`:

    * a *run*: each digit is the previous one plus one, or each minus one, modulo 10 (``12345678``,
      ``87654321``, ``01234567``, ``23456789``, ``34567890``, ``123456789``, ``9876543210``);
    * a *repeated unit*: a unit of 1 to 4 digits repeated at least twice to fill the value (the
      last repetition may be cut short), the unit itself having at most two distinct digits or being
      a run (``00000000``, ``11111111``, ``99999999``, ``12121212``, ``10101010``, ``12312312``,
      ``123123123``, ``12341234``, ``98769876``, ``11001100``, ``20002000``).

    Per key type: a mobile is a placeholder (:data:`PLACEHOLDER_PHONES`) when its nine national
    digits or the eight after the leading 9 are in :data:`PLACEHOLDER_DIGITS` (``987654321``,
    ``912345678``, ``923456789``, ``901234567``, ``999999999``, ``900000000``, ``912121212``,
    ``912341234``, ``900900900``); a DNI when its 8 digits are (also written with a check
    character, or inside a person's RUC); an all-digit carné when its digits are; together
    :data:`PLACEHOLDER_DOCS`. A licence: see ``LICENSE``. Each rejected value gives the problem
    note ``"<field>: placeholder value"``.

    False positives are negligible: a real DNI or mobile number is, for this purpose, random
    digits, and the shapes above are few. Of the 10^8 strings of 8 digits, 970 are in
    :data:`PLACEHOLDER_DIGITS` (about 1 real DNI in 100,000); of the 10^8 mobile numbers, 974 are
    in :data:`PLACEHOLDER_PHONES` (about 1 in 100,000); for 9 to 12 digits (carnés, licences) the
    rate is at most 1 in 1,000,000, and for 7 digits (short licences) 1 in 24,000. A refused real
    value only loses that one key (the record keeps its other keys, and a note says why): a missed
    link, never a wrong one. Unrestricted 4-digit units would refuse 1 real DNI in 10,000, hence
    the "simple unit" condition; values of 6 digits or fewer are never treated as placeholders (too
    many real short values have these shapes).

Length limit
    :data:`MAX_FIELD_LENGTH` = 200 characters. The longest legitimate values, a full name with
    particles (``María del Pilar de los Ángeles Fernández de Córdova y Sánchez de la Barrera``, 75)
    or a labelled document (``Carné de extranjería N° 001234567890``, 36), are well under 100; 200
    doubles that. It also stays below phonenumbers' own refusal (250 characters), so both phone
    paths see the same inputs, and it bounds the per-pair name work (rapidfuzz, the word pairs of
    :func:`given_names_conflict`): microseconds for real names, a few milliseconds for the worst
    200-character input.

:func:`normalize_record` normalises a whole source row into :class:`NormalizedKeys` and explains in
``problems`` every field that was filled in but rejected. A row with a field over the limit is
refused as a whole before anything is folded or parsed: ``invalid_reason`` names the column(s) and
length(s), and there are no keys and no names. It costs a few microseconds for typical rows
(``bench/normalize_bench.py``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from itertools import product

import phonenumbers
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA
from stdnum.pe import cui, ruc

__all__ = [
    "MAX_FIELD_LENGTH",
    "PLACEHOLDER_DIGITS",
    "PLACEHOLDER_DOCS",
    "PLACEHOLDER_PHONES",
    "NormalizedKeys",
    "fold_name",
    "given_names_conflict",
    "name_mismatch",
    "name_similarity",
    "normalize_doc",
    "normalize_license",
    "normalize_phone",
    "normalize_plate",
    "normalize_record",
]

#: Longest accepted value of any field, in characters (justification in the module docstring).
MAX_FIELD_LENGTH = 200

# --------------------------------------------------------------------------------------------------
# Placeholders
# --------------------------------------------------------------------------------------------------

_PLACEHOLDER_MIN_DIGITS = 7
_PLACEHOLDER_MAX_DIGITS = 12
_PLACEHOLDER_MAX_UNIT = 4


def _runs(length: int) -> set[str]:
    """The 20 digit strings of `length` where each digit is the previous one +1 (or -1) modulo 10."""
    return {
        "".join(str((start + step * i) % 10) for i in range(length))
        for start in range(10)
        for step in (1, -1)
    }


def _placeholder_digit_strings(length: int) -> set[str]:
    """The placeholder shapes of `length` digits (rules in the module docstring, *Placeholders*)."""
    out = _runs(length)
    for size in range(1, _PLACEHOLDER_MAX_UNIT + 1):
        if 2 * size > length:
            break
        runs = _runs(size)
        for unit in map("".join, product("0123456789", repeat=size)):
            if len(set(unit)) <= 2 or unit in runs:
                out.add((unit * (length // size + 1))[:length])
    return out


#: Placeholder digit strings of 7-12 digits: runs and repeated simple units (module docstring).
PLACEHOLDER_DIGITS: frozenset[str] = frozenset(
    s
    for length in range(_PLACEHOLDER_MIN_DIGITS, _PLACEHOLDER_MAX_DIGITS + 1)
    for s in _placeholder_digit_strings(length)
)

#: Placeholder mobiles (E.164): the 9 national digits, or the 8 after the leading 9, are a placeholder.
PLACEHOLDER_PHONES: frozenset[str] = frozenset(
    "+51" + n
    for n in {s for s in PLACEHOLDER_DIGITS if len(s) == 9 and s[0] == "9"}
    | {"9" + s for s in PLACEHOLDER_DIGITS if len(s) == 8}
)

#: Normalised DOC values never returned: placeholder DNIs and all-digit placeholder carnés.
PLACEHOLDER_DOCS: frozenset[str] = frozenset(
    ("DNI:" if len(s) == 8 else "CE:") + s for s in PLACEHOLDER_DIGITS if 8 <= len(s) <= 12
)

# --------------------------------------------------------------------------------------------------
# Phone
# --------------------------------------------------------------------------------------------------

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

_DEFER = object()  # _mobile_fast: "ask phonenumbers"


def _e164_mobile_via_phonenumbers(raw: str) -> str | None:
    """phonenumbers' verdict: the E.164 form if `raw` is a valid Peruvian mobile number, else None
    (placeholders included)."""
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
    if not isinstance(raw, str) or len(raw) > MAX_FIELD_LENGTH:
        return None
    e164 = _e164_mobile_via_phonenumbers(raw)
    return None if e164 in PLACEHOLDER_PHONES else e164


def _mobile_fast(raw: str) -> object:
    """For the shapes it recognises, phonenumbers' verdict (E.164 string or None, placeholders
    included, like :func:`_e164_mobile_via_phonenumbers`), else ``_DEFER``. `raw` is at most
    :data:`MAX_FIELD_LENGTH` characters long."""
    if raw.isascii() and raw.isdigit():  # the usual spelling: bare digits
        if len(raw) < _MOBILE_DIGITS:
            return None
        if len(raw) == _MOBILE_DIGITS:
            return "+51" + raw if raw[0] == "9" else None
    elif not raw or raw.isspace():
        return None
    m = _PHONE_FAST_MOBILE.fullmatch(raw)
    if m is not None:
        digits = m.group(1)
        if len(digits) != 9:
            digits = digits.replace(" ", "").replace("-", "").replace(".", "")
        return "+51" + digits
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


def _phone_fast(raw: str) -> object:
    """The answer of :func:`normalize_phone` for the shapes it recognises, else ``_DEFER``.

    Every answer it gives equals phonenumbers' answer (proved by the unit tests).
    """
    if len(raw) > MAX_FIELD_LENGTH:
        return None
    e164 = _mobile_fast(raw)
    return None if e164 in PLACEHOLDER_PHONES else e164


def normalize_phone(raw: str | None) -> str | None:
    """``'+51987654320'`` for a Peruvian mobile number in any usual spelling, else None."""
    if not isinstance(raw, str):
        return None
    result = _phone_fast(raw)  # checks the length first
    if result is _DEFER:
        return _phone_via_phonenumbers(raw)
    return result  # type: ignore[return-value]


_EIGHT_DIGITS_PLAIN = re.compile(r"\s*[1-9](?:[ .\-]?[0-9]){7}\s*", re.ASCII)


def _phone_problem(raw: str) -> str:
    """Why a filled-in phone value (at most MAX_FIELD_LENGTH long) was rejected."""
    if _EIGHT_DIGITS_PLAIN.fullmatch(raw):
        return "phone: 8-digit value looks like a DNI, not a mobile"
    if isinstance(_mobile_fast(raw), str):  # a mobile, hence a placeholder
        return "phone: placeholder value"
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

# Leading labels (module docstring, DOC): [kind] [number [de kind]], ':' / '#' anywhere in between.
# A kind label must not run into a letter ('CEX1' is not labelled) but may run into digits; the word
# number labels must be followed by a space or a mark ('NRO1234567' is not labelled).
_DOC_KIND = (
    r"(?:(?P<dni>d\s*\.?\s*n\s*\.?\s*i|documento\s+nacional\s+de\s+identidad)"
    r"|(?P<ce>c\s*\.?\s*e|carn[eé]t?(?:\s+de\s+extranjer[ií]a)?)"
    r"|doc(?:umento)?(?:\s+de\s+identidad)?)"
    r"(?![^\W\d_])"
)
_DOC_NUMBER = (
    r"(?:n\s*[°º]|n\s*\.\s*[°º]?|(?:nro|no|num|n[uú]m|n[uú]mero)(?=[\s.:#°º])\.?)"
    r"(?:[\s:#]*de\s+" + _DOC_KIND.replace("P<dni>", "P<dni2>").replace("P<ce>", "P<ce2>") + r")?"
)
_DOC_LABEL = re.compile(
    rf"[\s:#]*(?:{_DOC_KIND}[\s.:#]*)?(?:{_DOC_NUMBER}[\s.:#]*)?",
    re.IGNORECASE,
)
_DNI_CHECK_CHAR = re.compile(r"[0-9]{8}[0-9A-Z]", re.ASCII)


def _doc(raw: str) -> tuple[str | None, str]:
    """(normalised DOC or None, problem note when rejected). `raw` is at most MAX_FIELD_LENGTH long."""
    if len(raw) == 8 and raw.isascii() and raw.isdigit():  # the usual spelling
        if raw in PLACEHOLDER_DIGITS:
            return None, "doc: placeholder value"
        return "DNI:" + raw, ""
    label = None
    if not raw[:1].isdigit():  # no label before a leading digit: skip the regular expression
        m = _DOC_LABEL.match(raw)  # everything in it is optional: always a match, maybe empty
        if m.end():
            if m.group("dni") or m.group("dni2"):
                label = "DNI"
            elif m.group("ce") or m.group("ce2"):
                label = "CE"
            raw = raw[m.end() :]
    value = raw.strip()
    sep_before_last = len(value) >= 2 and value[-2] in _ID_SEPARATOR_CHARS
    c = _compact_id(value)
    if not c or _UPPER_ALNUM.fullmatch(c) is None:
        return None, "doc: not a DNI or carné"
    n = len(c)
    if (n >= 6 and len(set(c)) == 1) or c in PLACEHOLDER_DIGITS:
        return None, "doc: placeholder value"
    if n == 8 and c.isdigit():
        if label == "CE":
            return None, "doc: labelled CE but has the 8 digits of a DNI"
        return "DNI:" + c, ""
    if n == 9 and _DNI_CHECK_CHAR.fullmatch(c):
        dni_with_check = label == "DNI" or (label is None and (sep_before_last or not c[8].isdigit()))
        if dni_with_check:
            if c[:8] in PLACEHOLDER_DIGITS or len(set(c[:8])) == 1:
                return None, "doc: placeholder value"
            if cui.is_valid(c):
                return "DNI:" + c[:8], ""
            return None, "doc: DNI check character does not match"
        return "CE:" + c, ""
    if label == "DNI":
        return None, "doc: labelled DNI but not 8 digits"
    if n == 11 and label is None and c.isdigit() and ruc.is_valid(c):
        if c.startswith("10"):
            dni = c[2:10]
            if dni in PLACEHOLDER_DIGITS:
                return None, "doc: placeholder value"
            return "DNI:" + dni, ""
        return None, "doc: RUC without a DNI in it (not 10...), not a DNI or carné"
    if 9 <= n <= 12 and not c.isalpha():
        return "CE:" + c, ""
    if n == 7 and c.isdigit():
        return None, "doc: 7 digits, not a DNI (leading zero lost?)"
    return None, "doc: not a DNI or carné"


def normalize_doc(raw: str | None) -> str | None:
    """``'DNI:45873216'`` or ``'CE:001234567'`` (rules in the module docstring), else None."""
    if not isinstance(raw, str) or len(raw) > MAX_FIELD_LENGTH:
        return None
    return _doc(raw)[0]


# --------------------------------------------------------------------------------------------------
# LICENSE, PLATE
# --------------------------------------------------------------------------------------------------

_LICENSE = re.compile(r"[A-Z0-9]{6,12}", re.ASCII)
_HAS_DIGIT = re.compile(r"[0-9]", re.ASCII)
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_PLATE = re.compile(r"[A-Z][0-9][A-Z][0-9]{3}|[A-Z]{3}[0-9]{3}|[A-Z]{2}[0-9]{4}", re.ASCII)


def _license(raw: str) -> tuple[str | None, str]:
    """(normalised LICENSE or None, problem note when rejected). `raw` is at most MAX_FIELD_LENGTH."""
    c = _compact_id(raw)
    if _LICENSE.fullmatch(c) is None or _HAS_DIGIT.search(c) is None:
        return None, "license: not 6-12 letters and digits with at least one digit"
    if len(set(c)) == 1:
        return None, "license: placeholder value"
    digits = c.lstrip(_LETTERS)  # after at most two leading letters
    if digits in PLACEHOLDER_DIGITS and len(c) - len(digits) <= 2:
        return None, "license: placeholder value"
    return c, ""


def normalize_license(raw: str | None) -> str | None:
    """``'Q45873216'``: 6-12 upper-case alphanumerics with a digit, not a placeholder."""
    if not isinstance(raw, str) or len(raw) > MAX_FIELD_LENGTH:
        return None
    return _license(raw)[0]


def normalize_plate(raw: str | None) -> str | None:
    """``'A1B234'`` / ``'ABC123'`` / ``'AB1234'`` (Peruvian plate shapes), else None."""
    if not isinstance(raw, str) or len(raw) > MAX_FIELD_LENGTH:
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


def _clip(folded: str) -> str:
    """A folded name cut to MAX_FIELD_LENGTH characters (compatibility characters such as U+FDFA
    expand when folded, and several parts add up)."""
    return folded if len(folded) <= MAX_FIELD_LENGTH else folded[:MAX_FIELD_LENGTH].rstrip()


def fold_name(*parts: str | None) -> str:
    """``fold_name('José', 'Ñáñez-Peña')`` == ``'jose nanez pena'``: lower case, accents and ñ
    folded, punctuation removed (apostrophes dropped, other marks become spaces), single spaces;
    ``''`` when nothing is left. A part longer than :data:`MAX_FIELD_LENGTH` is not a name and is
    ignored; the result is cut to :data:`MAX_FIELD_LENGTH` characters."""
    folded = [_fold_part(p) for p in parts if isinstance(p, str) and p and len(p) <= MAX_FIELD_LENGTH]
    return _clip(" ".join(f for f in folded if f))


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
    """The distinct words of a given name, in order (particles dropped, abbreviations expanded)."""
    tokens = fold_name(name).split()
    kept = [t for t in tokens if t not in _GIVEN_PARTICLES]
    return list(dict.fromkeys(_GIVEN_ALIASES.get(t, t) for t in (kept or tokens)))


def _all_words_match(short: list[str], long_: list[str]) -> bool:
    return all(any(_same_given(s, t) for t in long_) for s in short)


def given_names_conflict(first_a: str | None, first_b: str | None) -> bool:
    """True only when both given names are present and clearly different.

    Both names are folded (:func:`fold_name`) and split into words (particles such as ``del``
    ignored, ``Ma.`` read as ``María``, a repeated word counted once). There is no conflict when
    every word of the name with fewer words matches some word of the other one, either way round
    when both have as many words (so ``Juan Carlos`` vs ``Juan`` or ``Carlos`` is fine, ``Juan
    Carlos`` vs ``Juan Pablo`` is a conflict; the answer never depends on the order of the
    arguments). Two words match when they are equal, when one
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
    if len(ta) < len(tb):
        return not _all_words_match(ta, tb)
    if len(tb) < len(ta):
        return not _all_words_match(tb, ta)
    return not (_all_words_match(ta, tb) or _all_words_match(tb, ta))


# Surnames: particles ignored ("de la Cruz" compares as "cruz").
_SURNAME_PARTICLES = frozenset({"de", "del", "la", "las", "los", "y", "e", "da", "di", "van", "von", "san"})


def _surname_tokens(full: str | None, given: str | None) -> list[str]:
    """The surname words of a folded full name (``fold_name(first_name, last_name)``) whose folded
    first name is ``given``: the words after the given name, particles dropped."""
    tokens = fold_name(full).split()
    first = fold_name(given).split()
    if first and tokens[: len(first)] == first:
        tokens = tokens[len(first):]
    return [t for t in tokens if t not in _SURNAME_PARTICLES]


def _same_surname(x: str, y: str) -> bool:
    """Equal, or one typo (OSA distance 1, a transposition counts as one) in words of 5+ letters
    with the same first letter."""
    if x == y:
        return True
    if min(len(x), len(y)) < 5 or x[0] != y[0]:
        return False
    return OSA.distance(x, y, score_cutoff=1) <= 1


def _same_first_given(x: str, y: str) -> bool:
    """Stricter than the given-name conflict test, for links through the phone alone: equal words,
    equal Spanish spelling keys (Jhon/John, Yesica/Jessica), or one typo in the written words (4+
    letters, same first letter). Never an initial, never a spelling key plus a typo (Jhon/Yony are
    two relatives), never Mario/Maria."""
    if x == y:
        return True
    if _gender_pair(x, y):
        return False
    if _given_key(x) == _given_key(y):
        return True
    return min(len(x), len(y)) >= 4 and x[0] == y[0] and OSA.distance(x, y, score_cutoff=1) <= 1


def name_mismatch(given_a: str | None, full_a: str | None, given_b: str | None, full_b: str | None) -> str | None:
    """Why two records' names do not agree, or None when they do: the rule a link through the phone
    alone must pass (relatives share phones, so a phone is not enough).

    Both sides are folded (case, accents, punctuation). They agree when both have a given name and a
    surname, the **first given names** match (equal, the same Spanish spelling key such as Jhon/John,
    or one typo in words of 4+ letters with the same first letter; never an initial, never a spelling
    key plus a typo, never Mario/Maria) and the
    **paternal surnames** match: the first surname of one equals, or is one typo away from, either
    surname of the other (so swapped surnames, ``Quispe Mamani`` / ``Mamani Quispe``, agree). A
    missing given name or surname on either side never agrees.
    """
    ga, gb = _given_tokens(given_a), _given_tokens(given_b)
    if not ga or not gb:
        return "given name missing"
    sa, sb = _surname_tokens(full_a, given_a), _surname_tokens(full_b, given_b)
    if not sa or not sb:
        return "surname missing"
    if not _same_first_given(ga[0], gb[0]):
        return "first given name differs"
    if not (any(_same_surname(sa[0], t) for t in sb) or any(_same_surname(sb[0], t) for t in sa)):
        return "paternal surname differs"
    return None


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
    # Set when the row was refused as a whole (a field longer than MAX_FIELD_LENGTH), e.g.
    # "first_name is 1000000 characters long (limit 200)"; then every key is None, the names are ''
    # and problems is (). None for every row that was normalised.
    invalid_reason: str | None = None

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


_COLUMNS = ("first_name", "last_name", "phone", "document_number", "license_number", "plate")


def _too_long(row: tuple[str | None, ...]) -> str:
    """``'first_name is 1000000 characters long (limit 200)'``, for every column over the limit."""
    return "; ".join(
        f"{column} is {len(value)} characters long (limit {MAX_FIELD_LENGTH})"
        for column, value in zip(_COLUMNS, row, strict=True)
        if isinstance(value, str) and len(value) > MAX_FIELD_LENGTH
    )


def normalize_record(
    first_name: str | None,
    last_name: str | None,
    phone: str | None,
    document_number: str | None,
    license_number: str | None,
    plate: str | None,
) -> NormalizedKeys:
    """Normalise one source row (lead or driver account). Never raises.

    A row with a field longer than :data:`MAX_FIELD_LENGTH` is refused before anything is folded or
    parsed: :attr:`NormalizedKeys.invalid_reason` names every such column with its length, and the
    result carries no key, no name and no problem note.
    """
    limit = MAX_FIELD_LENGTH
    try:  # the common case in a few len() calls
        over = (
            len(first_name or "") > limit
            or len(last_name or "") > limit
            or len(phone or "") > limit
            or len(document_number or "") > limit
            or len(license_number or "") > limit
            or len(plate or "") > limit
        )
    except TypeError:  # a value that is neither str nor None (treated as missing below)
        over = True
    if over:
        invalid_reason = _too_long((first_name, last_name, phone, document_number, license_number, plate))
        if invalid_reason:
            return NormalizedKeys(
                phone=None,
                doc=None,
                license=None,
                plate=None,
                name="",
                given_name="",
                problems=(),
                invalid_reason=invalid_reason,
            )

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

    lic: str | None = None
    if isinstance(license_number, str):
        lic, why = _license(license_number)
        if lic is None and not _is_blank(license_number):
            problems.append(why)

    pl = normalize_plate(plate)
    if pl is None and not _is_blank(plate):
        problems.append("plate: not a Peruvian plate (A1B234, ABC123, AB1234)")

    first = _fold_part(first_name) if isinstance(first_name, str) else ""
    last = _fold_part(last_name) if isinstance(last_name, str) else ""
    name = f"{first} {last}" if first and last else (first or last)
    if len(name) > limit:  # folding may lengthen a name (see _clip)
        name, first = _clip(name), _clip(first)
    return NormalizedKeys(
        phone=p, doc=d, license=lic, plate=pl, name=name, given_name=first, problems=tuple(problems)
    )
