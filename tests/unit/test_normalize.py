"""Unit tests of cabinet_leads.normalize: examples, the fast phone path against phonenumbers,
totality and idempotency properties."""

from __future__ import annotations

import itertools

import phonenumbers
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cabinet_leads import normalize as nz
from cabinet_leads.normalize import (
    NormalizedKeys,
    fold_name,
    given_names_conflict,
    name_similarity,
    normalize_doc,
    normalize_license,
    normalize_phone,
    normalize_plate,
    normalize_record,
)

NASTY = [
    "",
    " ",
    "\t\n",
    "\x00",
    "987654321\x00",
    "\x00987654321",
    "9" * 100_000,
    "x" * 100_000,
    "12345678-9" * 10_000,
    "😀",
    "987😀654321",
    "'; drop table x; --",
    "Robert'); DROP TABLE students;--",
    "NULL",
    "None",
    "\u202e987654321",
    "\ufeff987654321",
    "\ud800",  # lone surrogate
    "١٢٣٤٥٦٧٨",  # Arabic-Indic digits
    "９８７６５４３２１",  # full-width digits
    "+",
    "()",
    "tel:+51-987-654-321",
]

PUBLIC_NORMALISERS = [normalize_phone, normalize_doc, normalize_license, normalize_plate]


# --------------------------------------------------------------------------------------------------
# Phone: examples
# --------------------------------------------------------------------------------------------------

MOBILE_SPELLINGS = [
    "984217563",
    "+51984217563",
    "+51 984 217 563",
    "+51-984-217-563",
    "+51.984.217.563",
    "51984217563",
    "51 984217563",
    "0051984217563",
    "0051 984 217 563",
    "00 51 984217563",
    "984-217-563",
    "984 217 563",
    "984.217.563",
    "0984217563",
    "0 984 217 563",
    "(+51) 984217563",
    "(+51)984-217-563",
    "(51) 984217563",
    "+ 51 984217563",
    "  984217563  ",
    "+510984217563",
    "9 8 4 2 1 7 5 6 3",
    "９８４２１７５６３",  # full-width digits: phonenumbers' slow path
    "Tel: 984217563",  # label: slow path
    "+51 (0) 984 217 563",
]


@pytest.mark.parametrize("raw", MOBILE_SPELLINGS)
def test_phone_mobile_spellings(raw):
    assert normalize_phone(raw) == "+51984217563"
    assert nz._phone_via_phonenumbers(raw) == "+51984217563"


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "   ",
        "12345678",  # DNI in the phone field / valid Lima landline
        "1234-5678",
        "014567890",  # Lima landline with trunk prefix
        "(01) 456-7890",
        "+51 1 4567890",
        "+5114567890",
        "044 123456",  # Trujillo landline
        "98765432",  # one digit short
        "9842175630",  # one digit too many
        "1984217563",
        "887654321",  # 9 digits, not starting with 9
        "+1 415 555 2671",  # foreign
        "+34 612 345 678",  # Spanish mobile
        "999999999",  # placeholders
        "900000000",
        "+51 999 999 999",
        "N/A",
        "sin telefono",
        "'; drop table x; --",
        "984217563/987654322",
    ],
)
def test_phone_rejected(raw):
    assert normalize_phone(raw) is None
    assert nz._phone_via_phonenumbers(raw) is None


def test_phone_is_idempotent_on_examples():
    for raw in MOBILE_SPELLINGS:
        out = normalize_phone(raw)
        assert normalize_phone(out) == out


@pytest.mark.parametrize(
    "raw",
    [
        "984217563",
        "+51 984 217 563",
        "51984217563",
        "0051984217563",
        "984-217-563",
        "0984217563",
        "(+51) 984217563",
        "+51984217563",
        "",
        "  ",
        "12345678",
        "014567890",
        "N/A",
        "-",
        "x" * 100_000,
        "'; drop table x; --",
    ],
)
def test_phone_common_shapes_take_the_fast_path(raw):
    assert nz._phone_fast(raw) is not nz._DEFER


def test_common_records_never_call_phonenumbers(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("phonenumbers.parse called on the common path")

    monkeypatch.setattr(phonenumbers, "parse", boom)
    for phone in ["984217563", "+51 984 217 563", "0051984217563", "984-217-563", "", None]:
        keys = normalize_record("Juan", "Pérez", phone, "45873216", "Q45873216", "A1B-234")
        assert keys.problems == ()
    # A DNI in the phone field is explained without phonenumbers as well.
    assert normalize_record("Juan", "Pérez", "12345678", None, None, None).problems == (
        "phone: 8-digit value looks like a DNI, not a mobile",
    )


# --------------------------------------------------------------------------------------------------
# Phone: the fast path agrees with phonenumbers
# --------------------------------------------------------------------------------------------------

PHONE_PREFIXES = [
    "",
    "+51",
    "51",
    "0051",
    "00 51",
    "+ 51",
    "(+51)",
    "(51)",
    "(0051)",
    "( +51 )",
    "+51 0",
    "51 0",
    "0",
    "00",
    "+",
    "1",
    "+1",
    "5",
    "510",
    "(0)",
    "051",
    "+5",
    "00051",
    "(",
    ")",
    "19110051",
    "+051",
    "+510",
    "005",
    "0510",
    "+52",
    "52",
    "++51",
    "+(51)",
    "Tel:",
    "tel: ",
    "cel ",
    "#",
    "*",
]
PHONE_SEPARATORS = ["", " ", "-", ".", "  ", "--", " - ", "/", "(", ")", "\t", "\n", "_", ",", "x", "+"]
PHONE_SUFFIXES = ["", " ", "x", " ext 5", "#", "a", ".", ";", "abc", "/987654322", "\n", "-", ")", "0"]
PHONE_BODIES = [
    "984217563",
    "987654321",
    "98765432",
    "9876543210",
    "987654",
    "12345678",
    "14567890",
    "987654321987",
]


def test_fast_path_agrees_with_phonenumbers_on_a_grid():
    grid = itertools.product(PHONE_PREFIXES, ["", " ", "-", ".", "  "], PHONE_BODIES, ["", " ", ".", "#"])
    for prefix, sep, body, suffix in grid:
        for grouped in (body, " ".join([body[:3], body[3:6], body[6:]]), "-".join([body[:3], body[3:]])):
            raw = prefix + sep + grouped + suffix
            assert normalize_phone(raw) == nz._phone_via_phonenumbers(raw), raw


@st.composite
def phone_like(draw) -> str:
    prefix = draw(st.sampled_from(PHONE_PREFIXES))
    body = draw(
        st.one_of(
            st.from_regex(r"9[0-9]{8}", fullmatch=True),
            st.from_regex(r"[0-9]{1,13}", fullmatch=True),
            st.sampled_from(PHONE_BODIES),
            st.sampled_from(["999999999", "900000000", "911111111", "987654321", "912345678", "912121212"]),
            st.sampled_from(sorted(nz.PLACEHOLDER_PHONES)).map(lambda e164: e164[3:]),
        )
    )
    out = [prefix, draw(st.sampled_from(PHONE_SEPARATORS))]
    for ch in body:
        out.append(ch)
        if draw(st.integers(0, 4)) == 0:
            out.append(draw(st.sampled_from(PHONE_SEPARATORS)))
    out.append(draw(st.sampled_from(PHONE_SUFFIXES)))
    if draw(st.integers(0, 9)) == 0:  # garbage somewhere
        pos = draw(st.integers(0, len(out)))
        out.insert(pos, draw(st.text(max_size=3)))
    return "".join(out)


PHONE_ALPHABET = "0123456789999 +()-./x#*aAW\t\n٣５\x00"
DIGITY = st.text(alphabet=PHONE_ALPHABET, max_size=20)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(phone_like(), DIGITY))
@example("984217563")
@example("+51 984 217 563")
@example("0051984217563")
@example("(+51) 984217563")
@example("0984217563")
@example("12345678")
@example("014567890")
@example("9" * 251)
@example("ABCDEFGHI")  # vanity letters
@example("98765WXYZ")
def test_normalize_phone_equals_phonenumbers(raw):
    assert normalize_phone(raw) == nz._phone_via_phonenumbers(raw)


@settings(max_examples=1000, deadline=None)
@given(st.text())
def test_normalize_phone_equals_phonenumbers_on_any_text(raw):
    assert normalize_phone(raw) == nz._phone_via_phonenumbers(raw)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(phone_like(), DIGITY, st.text()))
def test_every_fast_answer_is_phonenumbers_answer(raw):
    fast = nz._phone_fast(raw)
    if fast is not nz._DEFER:
        assert fast == nz._phone_via_phonenumbers(raw)
    # Before the placeholder filter as well (the problem notes rely on it).
    mobile = nz._mobile_fast(raw)
    if mobile is not nz._DEFER:
        assert mobile == nz._e164_mobile_via_phonenumbers(raw)


@settings(max_examples=500, deadline=None)
@given(st.from_regex(r"(\+51|51|0051|\(\+51\))?[ -]?9[0-9]{2}[ .-]?[0-9]{3}[ .-]?[0-9]{3}", fullmatch=True))
def test_realistic_mobiles_are_fast_and_correct(raw):
    fast = nz._phone_fast(raw)
    assert fast is not nz._DEFER
    assert fast == nz._phone_via_phonenumbers(raw)
    digits = "".join(c for c in raw if c.isdigit())[-9:]
    assert fast == (None if "+51" + digits in nz.PLACEHOLDER_PHONES else "+51" + digits)


def test_phonenumbers_authority_requires_mobile_type():
    # A DNI typed into the phone field is a *valid* Lima landline for phonenumbers.
    num = phonenumbers.parse("12345678", "PE")
    assert phonenumbers.is_valid_number(num)
    assert nz._phone_via_phonenumbers("12345678") is None


# --------------------------------------------------------------------------------------------------
# DOC
# --------------------------------------------------------------------------------------------------
# Valid check characters (stdnum.pe.cui): 45873216 -> '2' or 'G'; 10117410 -> '2' or 'G'.


def _dni_check_chars(dni: str) -> str:
    from stdnum.pe import cui

    return cui.calc_check_digits(dni)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("45873216", "DNI:45873216"),
        (" 45873216 ", "DNI:45873216"),
        ("45.873.216", "DNI:45873216"),
        ("45 873 216", "DNI:45873216"),
        ("4587-3216", "DNI:45873216"),
        ("04587321", "DNI:04587321"),
        ("DNI 45873216", "DNI:45873216"),
        ("DNI:45873216", "DNI:45873216"),
        ("dni45873216", "DNI:45873216"),
        ("D.N.I. 45873216", "DNI:45873216"),
        ("D.N.I. N° 45873216", "DNI:45873216"),
        ("DNI Nro. 45873216", "DNI:45873216"),
        ("DNI - 45873216", "DNI:45873216"),
        ("４５８７３２１６", "DNI:45873216"),
        # 8 digits + check character (valid ones: 45873216 -> '2' / 'G')
        ("45873216-2", "DNI:45873216"),
        ("45873216 2", "DNI:45873216"),
        ("45873216G", "DNI:45873216"),
        ("45873216-g", "DNI:45873216"),
        ("DNI 458732162", "DNI:45873216"),
        ("10117410-2", "DNI:10117410"),
        # wrong check character: rejected (a typo somewhere in a strong key)
        ("45873216-9", None),
        ("45873216K", None),
        ("DNI 458732169", None),
        # a plain 9-digit value is a carné de extranjería (the 9-digit rule)
        ("458732169", "CE:458732169"),
        ("458732162", "CE:458732162"),
        ("001234567", "CE:001234567"),
        ("CE 001234567", "CE:001234567"),
        ("CE:001234567", "CE:001234567"),
        ("C.E. 001234567", "CE:001234567"),
        ("C.E. N° 001234567", "CE:001234567"),
        ("ce001234567", "CE:001234567"),
        ("Carné de extranjería 001234567", "CE:001234567"),
        ("CE 45873216-9", "CE:458732169"),  # labelled CE: the label decides
        ("ab1234567", "CE:AB1234567"),
        ("001234567890", "CE:001234567890"),
        ("000-123-456", "CE:000123456"),
        # person's RUC (10 + DNI + check) -> the DNI; company RUC -> rejected
        ("10101174102", "DNI:10117410"),
        ("20512333797", None),
        # placeholders and junk
        ("00000000", None),
        ("11111111", None),
        ("000000000", None),
        ("11111111-1", None),
        ("1234567", None),
        ("1234567890123", None),
        ("ABCDEFGHI", None),
        ("CE 45873216", None),  # labelled CE, 8 digits: label and shape disagree
        ("DNI 4587321690", None),
        ("45873216/9", None),
        ("N/A", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_doc(raw, expected):
    assert normalize_doc(raw) == expected


def test_doc_check_characters_used_in_the_table_are_the_valid_ones():
    assert _dni_check_chars("45873216") == "2G"
    assert "2" in _dni_check_chars("10117410")


@settings(max_examples=500, deadline=None)
@given(
    st.from_regex(
        r"((DNI|dni|D\.N\.I\.|CE|C\.E\.)[:]? ?)?[0-9]{2}[. ]?[0-9]{3}[. ]?[0-9]{3}([- ]?[0-9A-Z])?",
        fullmatch=True,
    )
)
def test_doc_realistic_shapes_are_idempotent(raw):
    out = normalize_doc(raw)
    assert out is None or out.startswith(("DNI:", "CE:"))
    if out is not None:
        assert normalize_doc(out) == out


@pytest.mark.parametrize(
    "raw",
    [
        "Nro. 45873216",
        "Nro 45873216",
        "No. 45873216",
        "No 45873216",
        "Num 45873216",
        "Num. 45873216",
        "Núm. 45873216",
        "Número: 45873216",
        "Doc 45873216",
        "Doc. 45873216",
        "Documento: 45873216",
        "Documento de identidad 45873216",
        "Documento nacional de identidad: 45873216",
        "N° 45873216",
        "Nº45873216",
        "N.° 45873216",
        "N. 45873216",
        "#45873216",
        "# 45873216",
        "N° de documento: 45873216",
        "Nro. de DNI 45873216",
        "DNI #45873216",
        "DNI Nro: 45873216",
        "Doc. N° 45.873.216",
        "  nro.  45873216  ",
    ],
)
def test_doc_labels_are_stripped(raw):
    assert normalize_doc(raw) == "DNI:45873216"
    assert normalize_record(None, None, None, raw, None, None).problems == ()


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Carné de extranjería Nro. 001234567", "CE:001234567"),
        ("CE #001234567", "CE:001234567"),
        ("N° 001234567", "CE:001234567"),  # a neutral label does not say which document it is
        ("Doc: 458732162", "CE:458732162"),  # the 9-digit rule, as without a label
        ("N° de carné 001234567", "CE:001234567"),
        ("CE Nro. 45873216", None),  # labelled CE, 8 digits
        ("N° de CE 45873216", None),
        ("DNI N° 001234567", None),  # labelled DNI, 9 digits without a valid check character
        ("NRO1234567", "CE:NRO1234567"),  # a word label must be followed by a space or a mark
        ("Nota 45873216", "CE:NOTA45873216"),  # not a label: runs into a letter
        ("Nro. 12345678", None),  # the label is stripped, the placeholder stays rejected
        ("DNI ABCDEFGH", None),  # only letters after the label
    ],
)
def test_doc_labels_kind_and_shape(raw, expected):
    assert normalize_doc(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "Nro. ABCDEFGHI",
        "Doc: ABCDEFGH",
        "#ABCDEFGHIJ",
        "Documento: pendiente",
        "N° ----",
        "Nro.",
    ],
)
def test_doc_only_letters_after_a_label_is_rejected(raw):
    assert normalize_doc(raw) is None
    keys = normalize_record(None, None, None, raw, None, None)
    assert keys.doc is None
    assert keys.problems == ("doc: not a DNI or carné",)


DOC_LABELS = [
    "",
    "DNI",
    "D.N.I.",
    "Doc",
    "Documento",
    "N°",
    "Nº",
    "Nro.",
    "No.",
    "Num",
    "Núm.",
    "#",
    "DNI Nro.",
]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(DOC_LABELS),
    st.sampled_from(["", " ", ": ", ". ", " - "]),
    st.from_regex(r"[0-9]{8}", fullmatch=True).filter(lambda d: d not in nz.PLACEHOLDER_DIGITS),
    st.sampled_from(["{}", "{0}{1}.{2}{3}{4}.{5}{6}{7}", "{0}{1} {2}{3}{4} {5}{6}{7}"]),
)
def test_any_label_before_any_dni(label, sep, dni, layout):
    raw = label + sep + layout.format(*dni) if layout != "{}" else label + sep + dni
    if label == "Num" and sep == "":
        # A word number label must be followed by a space or a mark: 'NUM12345679' is carné-shaped.
        assert normalize_doc(raw) == "CE:" + raw.upper().replace(".", "").replace(" ", "")
    else:
        assert normalize_doc(raw) == "DNI:" + dni


# --------------------------------------------------------------------------------------------------
# LICENSE, PLATE
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Q45873216", "Q45873216"),
        ("q45873216", "Q45873216"),
        ("Q-45873216", "Q45873216"),
        (" q 4587 3216 ", "Q45873216"),
        ("Q.45.873.216", "Q45873216"),
        ("A12345", "A12345"),  # 6 digits or fewer: never a placeholder
        ("123456", "123456"),
        ("AB4587321690", "AB4587321690"),
        ("Ｑ４５８７３２１６", "Q45873216"),
        ("A1234", None),  # too short
        ("AB12345678901", None),  # too long
        ("ABCDEFGH", None),  # no digit
        ("000000", None),  # one repeated character
        ("Q4587#3216", None),
        ("Q45873216 (vence 2025)", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_license(raw, expected):
    assert normalize_license(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("A1B-234", "A1B234"),
        ("a1b234", "A1B234"),
        (" A1B 234 ", "A1B234"),
        ("ABC-123", "ABC123"),
        ("abc.123", "ABC123"),
        ("AB-1234", "AB1234"),
        ("ab 1234", "AB1234"),
        ("A1B23", None),
        ("A1B2345", None),
        ("1AB234", None),
        ("ABCD123", None),
        ("A12345", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_plate(raw, expected):
    assert normalize_plate(raw) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.from_regex(
        r"[A-Za-z][0-9][A-Za-z][- ]?[0-9]{3}|[A-Za-z]{3}[- ]?[0-9]{3}|[A-Za-z]{2}[- ]?[0-9]{4}",
        fullmatch=True,
    )
)
def test_realistic_plates(raw):
    out = normalize_plate(raw)
    assert out == raw.replace("-", "").replace(" ", "").upper()
    assert normalize_plate(out) == out


# --------------------------------------------------------------------------------------------------
# Placeholders
# --------------------------------------------------------------------------------------------------


def _is_placeholder_by_rule(digits: str) -> bool:
    """The documented rule, written independently of normalize._placeholder_digit_strings."""
    if not (7 <= len(digits) <= 12 and digits.isdigit()):
        return False
    steps = {(int(b) - int(a)) % 10 for a, b in itertools.pairwise(digits)}
    if steps in ({1}, {9}):
        return True
    for size in range(1, 5):
        unit = digits[:size]
        unit_steps = {(int(b) - int(a)) % 10 for a, b in itertools.pairwise(unit)}
        simple = len(set(unit)) <= 2 or unit_steps in ({1}, {9})
        if (
            2 * size <= len(digits)
            and simple
            and all(digits[i] == unit[i % size] for i in range(len(digits)))
        ):
            return True
    return False


@st.composite
def placeholder_candidates(draw) -> str:
    """Digit strings near the placeholder shapes (random strings almost never are one)."""
    length = draw(st.integers(5, 13))
    kind = draw(st.integers(0, 3))
    if kind == 0:  # a repeated unit, maybe not simple
        unit = draw(st.from_regex(r"[0-9]{1,5}", fullmatch=True))
        out = (unit * length)[:length]
    elif kind == 1:  # a run, maybe with a step other than 1
        start, step = draw(st.integers(0, 9)), draw(st.sampled_from([1, 9, 2, 0]))
        out = "".join(str((start + step * i) % 10) for i in range(length))
    elif kind == 2:  # a placeholder with one digit changed
        out = draw(st.sampled_from(sorted(nz.PLACEHOLDER_DIGITS)))
        i = draw(st.integers(0, len(out) - 1))
        out = out[:i] + draw(st.sampled_from("0123456789")) + out[i + 1 :]
    else:
        out = draw(st.from_regex(rf"[0-9]{{{length}}}", fullmatch=True))
    return out


@settings(max_examples=2000, deadline=None)
@given(placeholder_candidates())
@example("12345678")
@example("12341234")
@example("12121212")
@example("58375837")  # a 4-digit unit that is not simple: a real DNI
@example("123456")  # too short to be a placeholder
def test_placeholder_digits_follow_the_documented_rule(digits):
    assert (digits in nz.PLACEHOLDER_DIGITS) is _is_placeholder_by_rule(digits)


def test_placeholder_sets_are_small_enough_for_a_negligible_false_positive_rate():
    # The figures quoted in the module docstring (Placeholders, false positives).
    by_length = {n: sum(len(s) == n for s in nz.PLACEHOLDER_DIGITS) for n in range(7, 13)}
    assert by_length == {7: 410, 8: 970, 9: 970, 10: 970, 11: 970, 12: 970}
    assert len(nz.PLACEHOLDER_PHONES) == 974
    dnis = {s.removeprefix("DNI:") for s in nz.PLACEHOLDER_DOCS if s.startswith("DNI:")}
    assert dnis == {s for s in nz.PLACEHOLDER_DIGITS if len(s) == 8}
    carnes = {s.removeprefix("CE:") for s in nz.PLACEHOLDER_DOCS if s.startswith("CE:")}
    assert carnes == {s for s in nz.PLACEHOLDER_DIGITS if 9 <= len(s) <= 12}


@pytest.mark.parametrize(
    "raw",
    [
        "987654321",
        "912345678",
        "923456789",
        "901234567",
        "998765432",
        "999999999",
        "900000000",
        "911111111",
        "912121212",
        "909090909",
        "912341234",
        "987698769",
        "912312312",
        "900900900",
        "+51 987 654 321",
        "0051912345678",
        "(+51) 923-456-789",
        "0999999999",
        "Tel: 987 654 321",  # phonenumbers' path
        "９１２３４５６７８",  # phonenumbers' path
    ],
)
def test_placeholder_phones_are_rejected_with_a_note(raw):
    assert normalize_phone(raw) is None
    assert nz._phone_via_phonenumbers(raw) is None
    assert normalize_record(None, None, raw, None, None, None).problems == ("phone: placeholder value",)


def test_every_placeholder_phone_is_a_mobile_rejected_by_both_paths():
    for e164 in nz.PLACEHOLDER_PHONES:
        national = e164[3:]
        assert nz._e164_mobile_via_phonenumbers(national) == e164  # a valid mobile number ...
        assert normalize_phone(national) is None  # ... refused by both paths
        assert nz._phone_via_phonenumbers(national) is None
        assert normalize_phone(e164) is None


@pytest.mark.parametrize(
    "raw", ["987654320", "912345679", "912121213", "984217563", "958375837", "923456788"]
)
def test_mobiles_near_the_placeholders_are_kept(raw):
    assert normalize_phone(raw) == "+51" + raw == nz._phone_via_phonenumbers(raw)


@settings(max_examples=1000, deadline=None)
@given(
    st.from_regex(r"9[0-9]{8}", fullmatch=True)
    | st.sampled_from(sorted(nz.PLACEHOLDER_PHONES)).map(lambda e: e[3:])
)
def test_a_mobile_is_rejected_exactly_when_it_is_a_placeholder(national):
    is_placeholder = _is_placeholder_by_rule(national) or _is_placeholder_by_rule(national[1:])
    assert ("+51" + national in nz.PLACEHOLDER_PHONES) is is_placeholder
    assert normalize_phone(national) == (None if is_placeholder else "+51" + national)


@pytest.mark.parametrize(
    "raw",
    [
        "12345678",
        "87654321",
        "23456789",
        "01234567",
        "34567890",
        "98765432",
        "00000000",
        "11111111",
        "99999999",
        "12121212",
        "10101010",
        "12341234",
        "98769876",
        "12312312",
        "11001100",
        "DNI 12345678",
        "Nro. 87654321",
        "12.345.678",
        "12345678-1",  # valid check character, placeholder DNI
        "12345678E",
        "10123456781",  # a person's RUC around a placeholder DNI
        "123456789",  # all-digit carnés
        "987654321",
        "123123123",
        "000000000",
        "1234567890",
        "CE 123456789",
        "121212121212",
    ],
)
def test_placeholder_docs_are_rejected_with_a_note(raw):
    assert normalize_doc(raw) is None
    assert normalize_record(None, None, None, raw, None, None).problems == ("doc: placeholder value",)


@pytest.mark.parametrize(
    "raw", ["45873216", "12345679", "12341235", "58375837", "04587321", "001234567", "123456780"]
)
def test_docs_near_the_placeholders_are_kept(raw):
    assert normalize_doc(raw) is not None


@settings(max_examples=1000, deadline=None)
@given(placeholder_candidates().filter(lambda d: len(d) == 8))
def test_a_dni_is_rejected_exactly_when_it_is_a_placeholder(dni):
    expected = None if _is_placeholder_by_rule(dni) else "DNI:" + dni
    assert normalize_doc(dni) == expected
    assert normalize_doc(f"DNI {dni[:2]}.{dni[2:5]}.{dni[5:]}") == expected
    assert ("DNI:" + dni in nz.PLACEHOLDER_DOCS) is (expected is None)


def test_normalize_doc_never_returns_a_placeholder_doc():
    for doc in nz.PLACEHOLDER_DOCS:
        assert normalize_doc(doc) is None
        assert normalize_doc(doc.split(":")[1]) is None


@pytest.mark.parametrize(
    "raw",
    [
        "123456789",
        "987654321",
        "12345678",
        "1234567",
        "A12345678",
        "Q12345678",
        "Q87654321",
        "Q-1234-5678",
        "q 12.345.678",
        "Q1234567",
        "AB12345678",
        "Q00000000",
        "Q99999999",
        "Q12121212",
        "B123123123",
        "1234567890",
    ],
)
def test_placeholder_licenses_are_rejected_with_a_note(raw):
    assert normalize_license(raw) is None
    assert normalize_record(None, None, None, None, raw, None).problems == ("license: placeholder value",)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Q45873216", "Q45873216"),  # letter + a real DNI
        ("Q12345679", "Q12345679"),
        ("A12345", "A12345"),  # 6 digits or fewer: not judged
        ("123456", "123456"),
        ("ABC12345678", "ABC12345678"),  # three letters: not the letter + DNI shape
        ("Q1234A5678", "Q1234A5678"),
    ],
)
def test_licenses_near_the_placeholders_are_kept(raw, expected):
    assert normalize_license(raw) == expected


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(["", "Q", "A", "B", "AB"]), placeholder_candidates())
def test_a_license_is_rejected_exactly_when_its_digits_are_a_placeholder(prefix, digits):
    raw = prefix + digits
    if not 6 <= len(raw) <= 12:
        return
    rejected = _is_placeholder_by_rule(digits) or len(set(raw)) == 1
    assert normalize_license(raw) == (None if rejected else raw)


# --------------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "parts, expected",
    [
        (("José", "Ñáñez Peña"), "jose nanez pena"),
        (("JOSÉ", "ÑÁÑEZ PEÑA"), "jose nanez pena"),
        (("  josé  ", "  ñáñez   peña "), "jose nanez pena"),
        (("José-Luis", "García-Pérez"), "jose luis garcia perez"),
        (("María.", "O'Brien"), "maria obrien"),
        (("Ma. del Carmen", "D’Angelo"), "ma del carmen dangelo"),
        (("Zoë", "Müller"), "zoe muller"),
        (("", "Pérez"), "perez"),
        ((None, "Pérez"), "perez"),
        (("José", None), "jose"),
        ((None, None), ""),
        ((), ""),
        (("", ""), ""),
        (("😀", "!!"), ""),
        (("juan\x00carlos",), "juan carlos"),
        (("Ａｎａ",), "ana"),
    ],
)
def test_fold_name(parts, expected):
    assert fold_name(*parts) == expected


@pytest.mark.parametrize(
    "a, b, low, high",
    [
        ("José Pérez García", "garcia perez jose", 100, 100),  # surnames swapped, accents, case
        ("Juan Pérez", "Juan Carlos Pérez García", 100, 100),  # subset
        ("Juan Pérez", "Luis Rojas", 0, 50),
        ("Maria Lopez", "Mária Lópes", 85, 99),
        ("", "Juan", 0, 0),
        (None, None, 0, 0),
    ],
)
def test_name_similarity(a, b, low, high):
    assert low <= name_similarity(a, b) <= high


@pytest.mark.parametrize(
    "a, b, conflict",
    [
        ("Juan", "Luis", True),
        ("Pedro", "Pablo", True),
        ("Raúl", "Saúl", True),
        ("Mario", "María", True),
        ("Juan", "Juana", True),
        ("Luis", "Luisa", True),
        ("Julio", "Julia", True),
        ("Juan Carlos", "Juan Pablo", True),
        ("Gabriela", "Graciela", True),
        ("Ana", "Ada", True),
        ("Jose", "Jsoe", False),  # typo
        ("José", "JOSE", False),  # accents, case
        ("Juan Carlos", "Juan", False),  # missing second given name
        ("Carlos", "Juan Carlos", False),  # goes by the second given name
        ("Juan Carlos", "Carlos Juan", False),
        ("Alejandro", "Alejnadro", False),
        ("Maria", "Mria", False),
        ("Jhon", "John", False),
        ("Jhonatan", "Jonathan", False),
        ("Yesica", "Jessica", False),
        ("Cristhian", "Christian", False),
        ("Lizbeth", "Lisbeth", False),
        ("Ma. del Carmen", "María", False),
        ("María del Carmen", "Maria Carmen", False),
        ("J.", "Juan", False),
        ("Juan", None, False),
        ("", "Luis", False),
        (None, None, False),
        ("!!", "Luis", False),
        ("Juan Juan", "Juan Carlos", False),  # a repeated word counts once
        ("Ana Ana", "Luis Pedro", True),
    ],
)
def test_given_names_conflict(a, b, conflict):
    assert given_names_conflict(a, b) is conflict
    assert given_names_conflict(b, a) is conflict


# --------------------------------------------------------------------------------------------------
# Whole record
# --------------------------------------------------------------------------------------------------


def test_normalize_record_typical():
    keys = normalize_record("José", "Ñáñez Peña", "+51 984 217 563", "DNI 45873216", "q-45873216", "a1b-234")
    assert keys == NormalizedKeys(
        phone="+51984217563",
        doc="DNI:45873216",
        license="Q45873216",
        plate="A1B234",
        name="jose nanez pena",
        given_name="jose",
        problems=(),
    )
    assert keys.strong_keys == {"PHONE": "+51984217563", "DOC": "DNI:45873216", "LICENSE": "Q45873216"}
    assert list(keys.strong_keys) == ["PHONE", "DOC", "LICENSE"]


def test_normalize_record_empty():
    keys = normalize_record(None, "", "", "  ", None, "")
    assert keys.strong_keys == {}
    assert keys.name == "" and keys.given_name == ""
    assert keys.problems == ()


def test_normalize_record_blank_like_values_are_not_problems():
    keys = normalize_record("Ana", "Rojas", "N/A", "-", "null", "sin dato")
    assert keys.problems == ()


def test_normalize_record_problems():
    keys = normalize_record("Ana", "Rojas", "014567890", "00000000", "AB", "XYZ")
    assert keys.strong_keys == {}
    assert keys.problems == (
        "phone: landline",
        "doc: placeholder value",
        "license: not 6-12 letters and digits with at least one digit",
        "plate: not a Peruvian plate (A1B234, ABC123, AB1234)",
    )


@pytest.mark.parametrize(
    "phone, note",
    [
        ("12345678", "phone: 8-digit value looks like a DNI, not a mobile"),
        ("014567890", "phone: landline"),
        ("(01) 456-7890", "phone: landline"),
        ("999999999", "phone: placeholder value"),
        ("+34 612 345 678", "phone: foreign number (+34), not a Peruvian mobile"),
        ("9876543210", "phone: not a valid Peruvian mobile number"),
        ("llamar", "phone: not a phone number"),
    ],
)
def test_phone_problem_notes(phone, note):
    keys = normalize_record(None, None, phone, None, None, None)
    assert keys.phone is None
    assert keys.problems == (note,)


def test_phone_typed_in_the_doc_field_is_not_a_carne():
    keys = normalize_record("Ana", "Rojas", "984217563", "984217563", None, None)
    assert keys.strong_keys == {"PHONE": "+51984217563"}
    assert keys.problems == ("doc: same value as the phone, not a carné",)


def test_normalize_record_name_matches_fold_name():
    keys = normalize_record("  Ma. del Carmen ", "D'Angelo  Núñez", None, None, None, None)
    assert keys.name == fold_name("  Ma. del Carmen ", "D'Angelo  Núñez") == "ma del carmen dangelo nunez"
    assert keys.given_name == "ma del carmen"


# --------------------------------------------------------------------------------------------------
# Totality and idempotency (properties)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", NASTY + [None])
def test_every_normaliser_is_total_on_nasty_inputs(raw):
    for fn in PUBLIC_NORMALISERS:
        out = fn(raw)
        assert out is None or isinstance(out, str)
    assert isinstance(fold_name(raw), str)
    assert 0 <= name_similarity(raw, "Juan Pérez") <= 100
    assert isinstance(given_names_conflict(raw, "Juan"), bool)
    keys = normalize_record(raw, raw, raw, raw, raw, raw)
    assert isinstance(keys, NormalizedKeys)


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_normalisers_are_total_and_idempotent(raw):
    for fn in PUBLIC_NORMALISERS:
        out = fn(raw)
        if out is not None:
            assert isinstance(out, str)
            assert fn(out) == out, fn.__name__


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
    | st.text(alphabet="0123456789 .-:DNICEdnice°", max_size=20)
    | st.text(alphabet="0123456789 .-:#°ºDNICEOMRUTdnicemortuú", max_size=24)
)
def test_doc_is_total_and_idempotent(raw):
    out = normalize_doc(raw)
    if out is not None:
        assert out.startswith(("DNI:", "CE:"))
        assert normalize_doc(out) == out


@settings(max_examples=500, deadline=None)
@given(st.text(), st.text())
def test_fold_name_is_idempotent_and_clean(a, b):
    folded = fold_name(a, b)
    assert fold_name(folded) == folded
    assert folded == folded.strip()
    assert "  " not in folded
    assert all(ch.isalnum() or ch == " " for ch in folded)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_fold_name_ascii_fast_path_matches_unicode_path(raw):
    assert nz._fold_part(raw) == nz._fold_unicode_once(raw)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), st.text()), st.one_of(st.none(), st.text()))
@example("0:0", "0:1")  # equal word counts: symmetric all the same
@example("Juan Juan", "Juan Carlos")
def test_name_helpers_are_total(a, b):
    score = name_similarity(a, b)
    assert isinstance(score, int) and 0 <= score <= 100
    assert name_similarity(a, b) == name_similarity(b, a)
    assert given_names_conflict(a, b) is given_names_conflict(b, a)
    assert given_names_conflict(a, a) is False


GIVEN_WORDS = st.sampled_from(
    ["Juan", "José", "Jose", "Carlos", "Ana", "María", "Ma.", "Mario", "J.", "Luis", "Luisa", "del"]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(GIVEN_WORDS, max_size=4), st.lists(GIVEN_WORDS, max_size=4))
def test_given_names_conflict_is_symmetric(a, b):
    assert given_names_conflict(" ".join(a), " ".join(b)) is given_names_conflict(" ".join(b), " ".join(a))


@settings(max_examples=300, deadline=None)
@given(*[st.one_of(st.none(), st.text(max_size=30), phone_like()) for _ in range(6)])
def test_normalize_record_is_total_and_consistent(first, last, phone, doc, lic, plate):
    keys = normalize_record(first, last, phone, doc, lic, plate)
    assert keys.phone == normalize_phone(phone)
    assert keys.license == normalize_license(lic)
    assert keys.plate == normalize_plate(plate)
    assert keys.doc in (normalize_doc(doc), None)
    assert keys.name == fold_name(first, last)
    assert keys.given_name == fold_name(first)
    assert set(keys.strong_keys) <= {"PHONE", "DOC", "LICENSE"}
    assert all(isinstance(p, str) and ": " in p for p in keys.problems)


# ------------------------------------------------------------------ names for a link through the phone alone


@pytest.mark.parametrize(
    ("a", "b", "why"),
    [
        (("Juan", "Quispe Mamani"), ("JUAN", "Mamani Quispe"), None),  # swapped surnames
        (("Jhon", "Quispe"), ("John", "Quipse"), None),  # spelling key, one typo in the surname
        (("María José", "de la Cruz"), ("Maria", "Cruz López"), None),  # accents, particles
        (("Yony Anthony", "Perez"), ("Anthony", "Perez"), "first given name differs"),
        (("Alexander", "Rojas"), ("Fredy", "Rojas"), "first given name differs"),
        (("Mario", "Rojas"), ("Maria", "Rojas"), "first given name differs"),  # siblings
        (("Jhon", "Chura"), ("Yony Pedro", "Chura Sulca"), "first given name differs"),  # relatives (seed 1)
        (("J", "Rojas"), ("Juan", "Rojas"), "first given name differs"),  # an initial is not a name
        (("Jaun", "Rojas"), ("Juan", "Rojas"), None),  # one typo
        (("Juan", "Rojas"), ("Juan", "Perez"), "paternal surname differs"),
        ((None, "Rojas"), ("Juan", "Rojas"), "given name missing"),
        (("Juan", ""), ("Juan", "Rojas"), "surname missing"),
    ],
)
def test_name_mismatch(a, b, why):
    from cabinet_leads.normalize import fold_name, name_mismatch

    assert name_mismatch(fold_name(a[0]), fold_name(*a), fold_name(b[0]), fold_name(*b)) == why
    assert name_mismatch(fold_name(b[0]), fold_name(*b), fold_name(a[0]), fold_name(*a)) == why
